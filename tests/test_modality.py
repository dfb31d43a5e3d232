"""Statistics of the modality degradations (medgan_nb.degrade): each test can fail if the physics is wrong."""
import math

import numpy as np
import pytest
import torch

from medgan_nb.degrade import (
    AIR_HU,
    ModalityDegradation,
    detector_blur,
    fbp,
    gaussian_blur,
    hu_to_mu,
    low_dose_ct,
    low_dose_sinogram,
    motion_kspace,
    mri_degrade,
    mu_to_hu,
    outside_circle,
    project,
    quantum_noise,
    rician_noise,
    sampling_mask,
    undersample_kspace,
    view_angles,
    xray_degrade,
)
from medgan_nb.degrade.xray import DECADES, to_exposure, xray_noise_std

S = 64
YY, XX = np.mgrid[:S, :S]
R = np.hypot(YY - S // 2, XX - S // 2)


def water_disk(n=1, radius=30.0):
    """A uniform water disk (0 HU) in air (-1000 HU), (n, 1, S, S) float64."""
    ph = np.where(R < radius, 0.0, AIR_HU)
    return torch.from_numpy(ph)[None, None].repeat(n, 1, 1, 1)


def bone_phantom():
    """Water disk with two bone inserts (+1000 HU): high-contrast edges that streak with few views."""
    ph = water_disk()[0, 0].numpy().copy()
    ph[np.hypot(YY - 24, XX - 30) < 5] = 1000.0
    ph[np.hypot(YY - 40, XX - 36) < 4] = 1000.0
    return torch.from_numpy(ph)[None, None]


def smooth_image(n=1, h=S, w=S, seed=0):
    """Smooth structured magnitude images in [0, 1] (N, 1, h, w), zero near the border."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(n, 1, h // 8, w // 8, generator=g, dtype=torch.float64),
                                        size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    yy = torch.linspace(-1, 1, h, dtype=torch.float64)[:, None]
    xx = torch.linspace(-1, 1, w, dtype=torch.float64)[None, :]
    return x * ((yy ** 2 + xx ** 2) < 0.7).to(x.dtype)


# ----------------------------------------------------------------------- CT
def noiseless(x, **kw):
    return low_dose_ct(x, math.inf, pixel_mm=1.0, **kw).image[:, 0].numpy()


def test_ct_units_round_trip_and_air_outside_the_circle():
    hu = np.array([-1000.0, 0.0, 1000.0])
    np.testing.assert_allclose(hu_to_mu(hu, 0.5), [0.0, 0.0096, 0.0192])
    np.testing.assert_allclose(mu_to_hu(hu_to_mu(hu, 0.7), 0.7), hu, atol=1e-9)
    out = low_dose_ct(torch.zeros(1, 1, S, S), 1e4, pixel_mm=1.0, keys=["a"]).image[0, 0].numpy()
    assert (out[outside_circle(S)] == AIR_HU).all()


def test_ct_noise_grows_as_dose_falls_like_one_over_sqrt_dose():
    x, roi = water_disk(2), R < 12
    ref = noiseless(x[:1])[0]
    var = []
    for dose in (1e3, 1e4, 1e5):
        out = low_dose_ct(x, dose, pixel_mm=1.0, keys=["a", "b"]).image[:, 0].numpy()
        var.append((out - ref)[:, roi].var())
    assert var[0] > var[1] > var[2]
    for hi, lo in zip(var, var[1:]):                 # measured: ~9.9 and ~10.1 for each 10x dose step
        assert 5 < hi / lo < 20


def test_ct_huge_dose_matches_the_noiseless_reconstruction():
    x = water_disk()
    out = low_dose_ct(x, 1e12, pixel_mm=1.0, keys=[0]).image[0, 0].numpy()
    assert np.abs(out - noiseless(x)[0]).max() < 1.0            # HU; measured ~0.02
    assert np.abs(noiseless(x)[0] - x[0, 0].numpy())[R < 20].max() < 30   # FBP itself is close to the truth


def test_ct_noise_is_correlated_unlike_white_image_noise_of_the_same_std():
    n_img = 6
    x = water_disk(n_img)
    noise = low_dose_ct(x, 1e4, pixel_mm=1.0, keys=list(range(n_img))).image[:, 0].numpy() - noiseless(x[:1])
    patch = noise[:, 16:48, 16:48]
    white = np.random.default_rng(0).normal(size=patch.shape) * patch.std()

    def neighbour_corr(a):
        return np.corrcoef(a[:, :, :-1].ravel(), a[:, :, 1:].ravel())[0, 1]

    def low_over_mid_power(a):          # noise power spectrum: ramp-filtered CT noise has little power near DC
        a = a - a.mean(axis=(1, 2), keepdims=True)
        nps = (np.abs(np.fft.fft2(a)) ** 2).mean(0)
        f = np.hypot(*np.meshgrid(np.fft.fftfreq(a.shape[1]), np.fft.fftfreq(a.shape[2]), indexing="ij"))
        return nps[(f > 0) & (f < 0.15)].mean() / nps[(f > 0.2) & (f < 0.4)].mean()

    assert neighbour_corr(patch) > 0.06 and abs(neighbour_corr(white)) < 0.03      # measured 0.12 vs 0.00
    assert low_over_mid_power(patch) < 0.75 < 0.85 < low_over_mid_power(white)     # measured 0.56 vs 1.03
    hann = low_dose_ct(x, 1e4, pixel_mm=1.0, filter_name="hann", keys=list(range(n_img))).image[:, 0].numpy()
    assert neighbour_corr((hann - noiseless(x[:1], filter_name="hann"))[:, 16:48, 16:48]) > 0.4   # ~0.59
    assert (hann - noiseless(x[:1], filter_name="hann"))[:, R < 12].std() < noise[:, R < 12].std()


def test_ct_sparse_views_leave_more_streak_error_than_full_views():
    x, inside = bone_phantom(), R < 28
    truth = x[0, 0].numpy()
    rmse = {v: np.sqrt(((noiseless(x, n_views=v)[0] - truth)[inside] ** 2).mean()) for v in (16, 32, None)}
    assert rmse[16] > rmse[32] > rmse[None]                      # measured 106, 59, 43 HU
    assert rmse[16] > 1.8 * rmse[None]


def test_fbp_with_a_noisy_sinogram_reproduces_low_dose_ct():
    x = water_disk()
    theta = view_angles(50)
    sino = low_dose_sinogram(x[0, 0].numpy(), 1e4, theta, 1.0, torch.Generator().manual_seed(3))
    assert sino.shape == (S, 50)
    clean = project(x[0, 0].numpy(), theta, 1.0)
    assert 0 < np.abs(sino - clean).mean() < 0.05
    via_fbp = mu_to_hu(fbp(sino, theta, "ramp", output_size=S), 1.0)
    out = low_dose_ct(x, 1e4, n_views=50, pixel_mm=1.0, generator=torch.Generator().manual_seed(3)).image[0, 0]
    inside = ~outside_circle(S)
    np.testing.assert_allclose(out.numpy()[inside], via_fbp[inside], atol=1e-6)


# ---------------------------------------------------------------------- MRI
def test_rician_bias_at_zero_signal_and_none_at_high_snr():
    x = torch.zeros(2, 1, 128, 128, dtype=torch.float64)
    x[:, :, :, 64:] = 1.0
    sigma = 0.1
    out = rician_noise(x, sigma, keys=["a", "b"]).image
    zero_mean = out[:, :, :, :64].mean().item()
    assert abs(zero_mean / (sigma * math.sqrt(math.pi / 2)) - 1) < 0.05        # Rayleigh mean
    assert abs(out[:, :, :, 64:].mean().item() - 1) < 0.01                     # SNR 10: ~ the true value
    assert abs(out[:, :, :, 64:].std().item() / sigma - 1) < 0.05              # and ~Gaussian with std sigma


def test_rician_sigma_is_relative_to_the_image_max():
    x = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    x[..., 0, 0] = 0.5                                  # max 0.5: absolute sigma 0.05
    out = rician_noise(x, 0.1, keys=[1]).image
    assert abs(out[..., 8:, :].mean().item() / (0.05 * math.sqrt(math.pi / 2)) - 1) < 0.05


@pytest.mark.parametrize("pattern", ["random", "equispaced"])
def test_undersampling_mask_keeps_the_fraction_and_the_full_centre(pattern):
    h = 128
    for accel in (2, 4, 8):
        mask = sampling_mask(h, accel, 0.08, pattern, torch.Generator().manual_seed(accel))
        n_centre = round(h * 0.08)
        assert mask[h // 2 - n_centre // 2: h // 2 - n_centre // 2 + n_centre].all()
        if pattern == "random":
            assert int(mask.sum()) == round(h / accel)
        else:
            assert h / accel <= int(mask.sum()) <= h / accel + n_centre
    assert sampling_mask(h, 1, 0.08, pattern).all()


def test_undersample_returns_the_mask_and_error_grows_with_acceleration():
    x = smooth_image(2, seed=1)
    err = []
    for accel in (2, 4, 8):
        d = undersample_kspace(x, accel, keys=["a", "b"], acquired_lines=S)          # every row acquired
        assert d.params["mri_mask"].shape == (2, S) and d.params["mri_mask"].dtype == torch.bool
        assert (d.params["mri_mask"].sum(1) == round(S / accel)).all()
        assert (d.params["mri_effective_acceleration"] == S / round(S / accel)).all()
        err.append(((d.image - x).norm() / x.norm()).item())
    assert err[0] < err[1] < err[2]
    torch.testing.assert_close(undersample_kspace(x, 1).image, x)


def test_equispaced_undersampling_makes_aliasing_copies_at_h_over_r():
    x = torch.zeros(1, 1, S, S, dtype=torch.float64)
    x[..., 4:14, 20:40] = 1.0                                  # a bright block near the top
    accel = 4
    out = undersample_kspace(x, accel, centre_fraction=0.0, pattern="equispaced", keys=[0], acquired_lines=S).image
    ghost = torch.roll(x, S // accel, dims=-2).bool()          # rows 20:30, the first copy
    gap = torch.zeros_like(ghost)
    gap[..., 15:19, 20:40] = True                               # between the original and its copy
    assert abs(out[ghost].mean().item() - 1 / accel) < 0.01     # R copies of 1/R each (measured 0.250)
    assert out[gap].max() < 1e-6
    assert abs(out[x.bool()].mean().item() - 1 / accel) < 0.01
    rand = undersample_kspace(x, accel, centre_fraction=0.0, pattern="random", keys=[0], acquired_lines=S).image
    assert rand[gap].mean() > 0.05                              # random lines: incoherent, spread-out aliasing


def test_motion_with_zero_shift_is_the_identity_and_motion_ghosts_otherwise():
    x = smooth_image(2, seed=2)
    torch.testing.assert_close(motion_kspace(x, 0.0, 0.5, keys=["a", "b"]).image, x, atol=1e-10, rtol=0)
    err = [((motion_kspace(x, s, 0.3, keys=["a", "b"]).image - x).norm() / x.norm()).item() for s in (0.5, 2, 4)]
    assert 0 < err[0] < err[1] < err[2]
    d = motion_kspace(x, 2.0, 0.25, keys=["a", "b"])
    moved = (d.params["mri_motion_shift"].abs().sum(-1) > 0).sum(1)
    assert d.params["mri_motion_shift"].shape == (2, S, 2) and (moved == round(0.25 * S)).all()
    assert d.params["mri_motion_shift"].abs().max() <= 2.0


def test_mri_non_square_and_float32():
    x = smooth_image(1, h=48, w=64).float()
    d = mri_degrade(x, noise_sigma=0.02, acceleration=3, max_shift_px=1, fraction_of_lines=0.2, keys=["k"])
    assert d.image.shape == x.shape and d.image.dtype == torch.float32 and d.params["mri_mask"].shape == (1, 48)


# -------------------------------------------------------------------- X-ray
def test_xray_poisson_noise_in_the_log_display():
    x = torch.full((4, 1, 64, 64), 0.5, dtype=torch.float64)
    var = {}
    for exposure in (50.0, 500.0):
        out = quantum_noise(x, exposure, keys=list(range(4))).image
        quanta = exposure * to_exposure(torch.tensor(0.5)).item()
        bias = -1 / (2 * quanta * math.log(10) * DECADES)                 # E log N ~ log mean - 1 / (2 mean)
        assert abs(out.mean().item() - 0.5 - bias) < 0.004
        var[exposure] = out.var().item()
        first_order = xray_noise_std(0.5, exposure, electronic_noise=0.0) ** 2      # +1.5 / quanta: second order
        assert abs(var[exposure] / first_order / (1 + 1.5 / quanta) - 1) < 0.05     # measured +11 % at 16 quanta
    assert var[50.0] > 8 * var[500.0]


def test_detector_blur_zero_is_identity_and_the_scintillator_blurs_the_quanta():
    x = smooth_image(2, seed=3)
    torch.testing.assert_close(detector_blur(x, 0.0), x)
    torch.testing.assert_close(detector_blur(x, 1.0), gaussian_blur(x, torch.tensor([1.0, 1.0]), 7))
    flat = torch.full((2, 1, 64, 64), 0.5, dtype=torch.float64)
    noise = xray_degrade(flat, 100.0, blur_sigma=2.0, keys=["a", "b"], electronic_noise=0.0).image - 0.5
    c = np.corrcoef(noise[..., :-1].ravel().numpy(), noise[..., 1:].ravel().numpy())[0, 1]
    assert c > 0.8                             # the light spread of each absorbed quantum correlates the noise
    white = xray_degrade(flat, 100.0, keys=["a", "b"], electronic_noise=0.0).image - 0.5
    assert noise.std() < 0.3 * white.std()     # and averages it down


# ------------------------------------------------- pipeline, seeds, checks
@pytest.mark.parametrize("modality, strengths", [
    ("ct", {"dose": (1e3, 1e5), "n_views": (30, 60)}),
    ("mri", {"noise_sigma": (0.01, 0.05), "acceleration": (2, 6), "max_shift_px": 1.0, "fraction_of_lines": 0.2}),
    ("xray", {"exposure": (50, 500), "blur_sigma": (0, 1.5)}),
])
def test_modality_degradation_is_reproducible_per_key(modality, strengths):
    deg = ModalityDegradation(modality, **strengths)
    x = torch.from_numpy(np.clip(smooth_image(3, seed=4).numpy() * 1.6 - 0.8, -1, 1)).float()
    a = deg(x, keys=["a", "b", "c"])
    assert a.image.shape == x.shape and a.image.dtype == x.dtype and a.image.abs().max() <= 1
    assert all(v.shape[0] == 3 for v in a.params.values())
    torch.testing.assert_close(deg(x, keys=["a", "b", "c"]).image, a.image, atol=0, rtol=0)
    other = deg(x, keys=["x", "y", "z"])
    assert not torch.equal(other.image, a.image)
    alone = deg(x[1:2], keys=["b"])                            # same image, same key, other batch
    torch.testing.assert_close(alone.image, a.image[1:2], atol=0, rtol=0)
    g = deg(x, generator=torch.Generator().manual_seed(5)).image
    torch.testing.assert_close(deg(x, generator=torch.Generator().manual_seed(5)).image, g, atol=0, rtol=0)
    ranged = [k for k, v in strengths.items() if isinstance(v, tuple)]
    key = {"dose": "ct_dose", "n_views": "ct_n_views", "noise_sigma": "mri_noise_sigma",
           "acceleration": "mri_acceleration", "exposure": "xray_exposure", "blur_sigma": "xray_blur_sigma"}
    for k in ranged:
        v = a.params[key[k]]
        assert ((v >= strengths[k][0]) & (v <= strengths[k][1])).all() and len(set(v.tolist())) == 3


def test_modality_degradation_ct_window_maps_hu():
    x = water_disk(1).float()                                   # HU
    deg = ModalityDegradation("ct", dose=math.inf, n_views=None, pixel_mm=1.0)
    unit = (x + 1000) / 2000 * 2 - 1                            # default window: -1000 ... +1000 HU -> [-1, 1]
    out = deg(unit, keys=[0]).image
    hu = (out + 1) / 2 * 2000 - 1000
    assert (hu[0, 0].numpy() - x[0, 0].numpy())[R < 20].__abs__().max() < 30
    assert ModalityDegradation("ct", window="soft_tissue").window == (40, 400)


@pytest.mark.parametrize("call, match", [
    (lambda: low_dose_ct(water_disk(), 0.0), "dose"),
    (lambda: low_dose_ct(water_disk(), -5.0), "dose"),
    (lambda: low_dose_ct(torch.zeros(1, 1, 32, 48), 1e4), "square"),
    (lambda: low_dose_ct(water_disk(), 1e4, n_views=0), "n_views"),
    (lambda: low_dose_ct(water_disk(), 1e4, pixel_mm=0.0), "pixel_mm"),
    (lambda: low_dose_ct(torch.zeros(1, 3, 32, 32), 1e4), "1-channel"),
    (lambda: undersample_kspace(smooth_image(), 0.5), "acceleration"),
    (lambda: undersample_kspace(smooth_image(), 2, pattern="spiral"), "pattern"),
    (lambda: undersample_kspace(smooth_image(), 2, centre_fraction=1.5), "centre_fraction"),
    (lambda: rician_noise(smooth_image(), -0.1), "noise_sigma"),
    (lambda: motion_kspace(smooth_image(), -1.0), "max_shift_px"),
    (lambda: motion_kspace(smooth_image(), 1.0, 2.0), "fraction_of_lines"),
    (lambda: quantum_noise(smooth_image(), 0.0), "exposure"),
    (lambda: detector_blur(smooth_image(), -1.0), "sigma"),
    (lambda: rician_noise(smooth_image(2), 0.1, keys=["a"]), "keys"),
    (lambda: ModalityDegradation("pet"), "modality"),
    (lambda: ModalityDegradation("mri", dose=1e4), "strength"),
    (lambda: ModalityDegradation("ct", dose=0), "dose"),
    (lambda: ModalityDegradation("mri", acceleration=(0.5, 2)), "acceleration"),
    (lambda: ModalityDegradation("xray", exposure=(500, 50)), "range"),
    (lambda: ModalityDegradation("ct", window="brain"), "window"),
])
def test_bad_arguments_raise_clear_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
