import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medgan_nb.data import from_numpy_images
from medgan_nb.metrics import psnr, ssim


def wang_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM of Wang et al. (2004) by hand, for (H, W, C) images in [0, 1]: Gaussian window sigma 1.5 cut at
    3.5 sigma (11 taps), population (co)variances, K1 0.01, K2 0.03, mean of the map without the 5-pixel
    border that the window overhangs (as scikit-image crops), then the mean over channels."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    blur = lambda a: gaussian_filter(a, sigma=1.5, truncate=3.5, mode="reflect")  # noqa: E731
    values = []
    for ch in range(x.shape[-1]):
        a, b = x[..., ch].astype(np.float64), y[..., ch].astype(np.float64)
        mu_a, mu_b = blur(a), blur(b)
        var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
        cov = blur(a * b) - mu_a * mu_b
        s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
        values.append(s[5:-5, 5:-5].mean())
    return float(np.mean(values))


def test_ssim_is_wangs_gaussian_window_ssim():
    rng = np.random.default_rng(0)        # multiples of 1/256: exact through the [0, 1] <-> [-1, 1] mapping
    clean = rng.integers(0, 257, (2, 24, 20, 3)) / 256
    noisy = np.clip(clean + np.round(rng.normal(0, 0.2, clean.shape) * 256) / 256, 0, 1)
    got = ssim(from_numpy_images(noisy), from_numpy_images(clean))
    want = [wang_ssim(n, c) for n, c in zip(noisy, clean)]
    assert got.shape == (2,)
    np.testing.assert_allclose(got, want, atol=1e-6)
    uniform = ssim(from_numpy_images(noisy), from_numpy_images(clean), gaussian=False)   # the old 7×7 window
    assert np.abs(uniform - np.array(want)).max() > 1e-3


def test_ssim_of_two_constant_images_is_the_luminance_term():
    a, b = 0.25, 0.75
    x = torch.full((1, 3, 16, 16), 2 * a - 1)
    y = torch.full((1, 3, 16, 16), 2 * b - 1)
    c1 = 0.01 ** 2
    assert ssim(x, y)[0] == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-6)
    assert ssim(x, x)[0] == pytest.approx(1.0, abs=1e-9)


def test_psnr_is_the_mse_in_db_on_unit_images():
    x = torch.zeros(2, 3, 16, 16)                    # 0.5 in [0, 1]
    y = x.clone()
    y[1] += 0.2                                      # 0.1 in [0, 1] units: MSE 0.01, PSNR 20 dB
    p = psnr(y, x)
    assert p[0] == np.inf and p[1] == pytest.approx(20.0, abs=1e-4)
    assert psnr(y[1], x[1]) == pytest.approx(p[1:])  # a single (3, H, W) image works too


def test_ssim_works_on_images_smaller_than_the_window():
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert ssim(x, x)[0] == pytest.approx(1.0) and ssim(-x, x)[0] < 0.5
