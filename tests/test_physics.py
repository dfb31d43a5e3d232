"""The physics of the scan degradations: X-ray noise in the log (display) domain, honest MRI acceleration,
CT electronic noise and dose stated as the HU noise of a water cylinder. Each test can fail if the physics is wrong."""
import math

import numpy as np
import torch

from medgan_nb.degrade import (
    ModalityDegradation,
    acquired_extent,
    effective_acceleration,
    kspace,
    mirror_lines,
    smooth_phase,
    undersample_kspace,
    water_cylinder_noise,
    xray_degrade,
    xray_noise_std,
)

STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)          # display value in model units: 0 = least exposure (bone), 1 = most


def step_wedge(rows=64, width=32):
    """A step wedge (1, 1, rows, 5 * width) float64: one step per value of STEPS."""
    return torch.cat([torch.full((1, 1, rows, width), v, dtype=torch.float64) for v in STEPS], dim=-1)


def per_step_std(img, width=32):
    return [float(img[..., i * width + 2:(i + 1) * width - 2].std()) for i in range(len(STEPS))]


# -------------------------------------------------------------------- X-ray
def test_xray_noise_rises_where_exposure_falls_on_a_step_wedge():
    wedge = step_wedge()
    out = xray_degrade(wedge, 200.0, keys=["wedge"], electronic_noise=0.0).image
    std = per_step_std(out - wedge)
    assert all(a > b for a, b in zip(std, std[1:])), std                 # least exposure: most noise
    assert min(std) > 0.005
    predicted = [xray_noise_std(v, 200.0, electronic_noise=0.0) for v in STEPS]
    np.testing.assert_allclose(std, predicted, rtol=0.12)                # the delta method on the log display
    assert abs(std[0] / std[-1] / math.sqrt(10) - 1) < 0.15              # one decade of exposure across [0, 1]


def test_xray_no_region_is_left_without_noise_and_infinite_exposure_is_the_identity():
    wedge = step_wedge()
    out = xray_degrade(wedge, 200.0, keys=["k"]).image
    assert float((out == wedge).double().mean()) < 0.01                  # before: every pixel of the 0 step
    torch.testing.assert_close(xray_degrade(wedge, math.inf).image, wedge, atol=1e-12, rtol=0)


def test_xray_electronic_noise_adds_most_where_few_quanta_arrive():
    wedge = step_wedge()
    quantum = per_step_std(xray_degrade(wedge, 50.0, keys=["k"], electronic_noise=0.0).image - wedge)
    both = per_step_std(xray_degrade(wedge, 50.0, keys=["k"], electronic_noise=3.0).image - wedge)
    assert both[0] / quantum[0] > 1.3 and both[-1] / quantum[-1] < 1.15


def test_xray_blur_spreads_the_absorbed_quanta_so_the_noise_is_correlated():
    flat = torch.full((2, 1, 64, 64), 0.5, dtype=torch.float64)
    white = xray_degrade(flat, 100.0, keys=["a", "b"]).image - 0.5
    blurred = xray_degrade(flat, 100.0, blur_sigma=1.5, keys=["a", "b"], electronic_noise=0.0).image - 0.5
    read_out = xray_degrade(flat, 100.0, blur_sigma=1.5, keys=["a", "b"]).image - 0.5      # white noise added

    def neighbour_corr(a):
        return np.corrcoef(a[..., :-1].ravel().numpy(), a[..., 1:].ravel().numpy())[0, 1]

    assert abs(neighbour_corr(white)) < 0.05 and neighbour_corr(blurred) > 0.7          # measured 0.01, 0.89
    assert 0.2 < neighbour_corr(read_out) < neighbour_corr(blurred)                      # measured 0.46
    assert blurred.std() < 0.5 * white.std()                             # the light spread averages the quanta


def test_xray_modality_degradation_keeps_noise_in_the_darkest_band():
    x = step_wedge().float() * 2 - 1
    out = ModalityDegradation("xray", exposure=200.0)(x, keys=["k"]).image
    assert per_step_std(out - x)[0] > 0.02                                # before: exactly 0 at -1 (no quanta)


# ---------------------------------------------------------------------- MRI
def smooth(h=128, w=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(1, 1, h // 8, w // 8, generator=g, dtype=torch.float64),
                                        size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    yy = torch.linspace(-1, 1, h, dtype=torch.float64)[:, None]
    xx = torch.linspace(-1, 1, w, dtype=torch.float64)[None, :]
    return x * ((yy ** 2 + xx ** 2) < 0.7).to(x.dtype)


def reformat(acquired=32, rows=128, seed=1):
    """An interpolated reformat: a `acquired`-row acquisition zero-padded in k-space to `rows` rows."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize
    low = torch.from_numpy(resize(shepp_logan_phantom(), (acquired, rows)))
    k = torch.zeros(rows, rows, dtype=torch.complex128)
    k[rows // 2 - acquired // 2:rows // 2 - acquired // 2 + acquired] = kspace(low) * math.sqrt(rows / acquired)
    return torch.fft.ifft2(torch.fft.ifftshift(k), norm="ortho").real[None, None]


def test_acquired_extent_finds_the_rows_of_an_interpolated_reformat():
    x = reformat(32, 128)
    assert 26 <= acquired_extent(x[0, 0]) <= 33
    d = undersample_kspace(x, 4.0, keys=["r"])
    lines = int(d.params["mri_acquired_lines"][0])
    mask = d.params["mri_mask"][0]
    inside = mask[64 - lines // 2:64 - lines // 2 + lines]
    assert abs(lines / int(inside.sum()) / 4 - 1) < 0.1                   # 4x of the acquired lines
    assert mask.sum() - inside.sum() == 128 - lines                       # rows never acquired: left as they are
    assert abs(float(d.params["mri_effective_acceleration"][0]) / 4 - 1) < 0.1


def test_mri_phase_makes_the_stated_acceleration_true():
    x = smooth()
    for accel in (2.0, 4.0, 6.0):
        d = undersample_kspace(x, accel, keys=["a"], acquired_lines=128)
        eff = float(d.params["mri_effective_acceleration"][0])
        assert abs(eff / accel - 1) < 0.1, (accel, eff)
        assert abs(128 / int(d.params["mri_mask"][0].sum()) / accel - 1) < 0.1


def test_a_real_image_without_phase_gives_about_twice_the_lines_it_keeps():
    """The old fault: a real, zero-phase image has Hermitian k-space, so every kept line also gives its mirror."""
    x = smooth()
    real = undersample_kspace(x, 4.0, centre_fraction=0.0, keys=["a"], acquired_lines=128, phase_rad=0.0)
    mask = real.params["mri_mask"][0]
    k = kspace(x[0, 0])
    filled = torch.where(mask[:, None], k, 0)
    mirrored = mirror_lines(mask)
    filled = torch.where(mirrored[:, None] & ~mask[:, None], mirror_lines(filled).conj(), filled)
    union = mask | mirrored
    torch.testing.assert_close(filled[union], k[union], atol=1e-10, rtol=0)     # the mirrors come for free
    eff = float(real.params["mri_effective_acceleration"][0])
    assert 1.6 < 4.0 / eff < 2.05, eff
    assert abs(effective_acceleration(mask, 128, hermitian=False) / 4 - 1) < 0.1
    phased = kspace(x[0, 0] * smooth_phase(128, 128, math.pi, torch.Generator().manual_seed(0)))
    wrong = (mirror_lines(phased).conj() - phased)[~mask].abs().pow(2).sum() / phased[~mask].abs().pow(2).sum()
    assert wrong > 0.3                                                  # with phase the mirrors are not known


def test_phase_and_extent_leave_full_sampling_and_rician_statistics_alone():
    x = smooth(64, 64)
    torch.testing.assert_close(undersample_kspace(x, 1.0, keys=["a"]).image, x, atol=1e-10, rtol=0)
    assert float(undersample_kspace(x, 1.0, keys=["a"]).params["mri_effective_acceleration"][0]) == 1.0


# ----------------------------------------------------------------------- CT
def test_water_cylinder_hu_noise_falls_as_one_over_sqrt_dose_until_electronic_noise_shows():
    kw = dict(size=64, pixel_mm=4.0, realisations=6)
    high = {d: water_cylinder_noise(d, **kw) for d in (1e5, 1e6)}
    assert abs(high[1e5] / high[1e6] / math.sqrt(10) - 1) < 0.15           # quantum-limited: 1 / sqrt(dose)
    low = water_cylinder_noise(1e3, **kw)
    low_quantum = water_cylinder_noise(1e3, electronic_noise=0.0, **kw)
    per_photon = high[1e6] * math.sqrt(1e6)
    assert low * math.sqrt(1e3) > 1.25 * per_photon                          # the electronic noise floor
    assert abs(low_quantum * math.sqrt(1e3) / per_photon - 1) < 0.15        # without it: still 1 / sqrt(dose)


def test_water_cylinder_noise_is_the_same_number_on_a_grid_too_small_for_the_cylinder():
    small = water_cylinder_noise(1e4, size=32, pixel_mm=4.0, n_views=101, realisations=6)   # 128 mm field of view
    big = water_cylinder_noise(1e4, size=64, pixel_mm=4.0, n_views=101, realisations=6)
    assert abs(small / big - 1) < 1e-9


def test_modality_degradation_takes_the_physics_knobs():
    x = smooth(64, 64).float() * 2 - 1
    mri = ModalityDegradation("mri", acceleration=4.0, acquired_lines=48, phase_rad=1.0)    # > the 16² check batch
    d = mri(x, keys=["k"])
    assert float(d.params["mri_acquired_lines"][0]) == 48
    assert abs(float(d.params["mri_effective_acceleration"][0]) - 4) < 0.4
    assert ModalityDegradation("ct", electronic_noise=0.0, dose=1e4).strengths["electronic_noise"] == 0.0
    assert ModalityDegradation("xray", decades=2.0, electronic_noise=0.5)(x, keys=["k"]).image.shape == x.shape
