import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medgan_nb.metrics import psnr, psnr_masked, ssim, ssim_masked
from medgan_nb.utils import from_numpy_images


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


def test_masked_psnr_is_the_mse_over_the_mask_pixels_in_db():
    rng = np.random.default_rng(2)        # multiples of 1/256: exact through the [0, 1] <-> [-1, 1] mapping
    clean = rng.integers(0, 257, (2, 12, 10, 3)) / 256
    noisy = np.clip(clean + np.round(rng.normal(0, 0.1, clean.shape) * 256) / 256, 0, 1)
    mask = np.zeros((12, 10), bool)
    mask[3:7, 2:9] = True
    got = psnr_masked(from_numpy_images(noisy), from_numpy_images(clean), torch.from_numpy(mask))
    want = [10 * np.log10(1 / np.mean((n[mask] - c[mask]) ** 2)) for n, c in zip(noisy, clean)]
    assert got.shape == (2,)
    np.testing.assert_allclose(got, want, atol=1e-4)
    full = psnr_masked(from_numpy_images(noisy), from_numpy_images(clean), np.ones((2, 12, 10), bool))
    np.testing.assert_allclose(full, psnr(from_numpy_images(noisy), from_numpy_images(clean)), atol=1e-9)


def test_restoration_perfect_outside_the_mask_and_noisy_inside_scores_so():
    rng = np.random.default_rng(3)
    clean = torch.linspace(-0.6, 0.6, 32).expand(1, 3, 32, 32).clone()     # smooth: noise is all SSIM sees
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[10:22, 8:24] = True
    restored = clean.clone()
    restored[..., mask] = (restored[..., mask] + torch.from_numpy(rng.normal(0, 0.4, (1, 3, int(mask.sum()))))
                           .float()).clamp(-1, 1)
    assert psnr_masked(restored, clean, ~mask)[0] == np.inf
    assert psnr_masked(restored, clean, mask)[0] < 20            # 0.2 noise std in [0, 1] units: about 15 dB
    assert ssim_masked(restored, clean, mask)[0] < 0.6
    assert ssim_masked(restored, clean, ~mask)[0] > ssim_masked(restored, clean, mask)[0] + 0.3


def test_masked_ssim_over_an_all_true_mask_is_ssim_and_an_empty_mask_is_nan():
    x = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(1)) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    np.testing.assert_allclose(ssim_masked(y, x, torch.ones(24, 20, dtype=torch.bool)), ssim(y, x), atol=1e-9)
    small = x[..., :8, :8], y[..., :8, :8]                       # a narrower window, as ssim uses
    np.testing.assert_allclose(ssim_masked(small[1], small[0], torch.ones(8, 8)), ssim(small[1], small[0]), atol=1e-9)
    empty = torch.zeros(24, 20, dtype=torch.bool)
    assert np.isnan(psnr_masked(y, x, empty)).all() and np.isnan(ssim_masked(y, x, empty)).all()
    border_only = empty.clone()
    border_only[:3] = True                                       # only in the 5-pixel border SSIM leaves out
    assert np.isnan(ssim_masked(y, x, border_only)).all() and np.isfinite(psnr_masked(y, x, border_only)).all()


def test_masked_metrics_refuse_a_mask_of_another_size():
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match="does not fit images"):
        psnr_masked(x, x, torch.ones(16, 15, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not fit images"):
        ssim_masked(x, x, torch.ones(2, 16, 16, dtype=torch.bool))
