"""Notebook 06's figures (medgan_nb.figures.scans): the right panels, finite pictures, and the physics they show."""
import math
import re
import sys

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import medgan_nb.figures.ct as figures_ct
import medgan_nb.figures.scans as figures_scans
from medgan_nb.data import Slice, to_model  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _disc(size: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 < radius ** 2


def ct_slice(size: int = 32) -> Slice:
    """Water in air with a bone ring, in HU, as a CT `Slice` (source = the stored slice)."""
    hu = np.full((size, size), -1000.0)
    hu[_disc(size, 0.42 * size)] = 800.0
    hu[_disc(size, 0.36 * size)] = 0.0
    image = to_model(hu, "ct", -1000.0, 1000.0)
    return Slice("ct-test#0", image, 2.0, -1000.0, 1000.0, source=image.copy())


def grey_slice(modality: str, size: int = 32) -> Slice:
    """A bright disc and a faint square on black, in model units."""
    u = np.zeros((size, size))
    u[_disc(size, 0.3 * size)] = 0.8
    u[2:8, 2:8] = 0.3
    return Slice(f"{modality}-test#0", (u * 2 - 1).astype(np.float32), 1.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def slices() -> dict:
    return {"ct": ct_slice(), "mri": grey_slice("mri"), "xray": grey_slice("xray")}


def images(fig: plt.Figure) -> list[np.ndarray]:
    """The image data of every panel that shows one, checked to be finite."""
    out = [np.asarray(ax.get_images()[0].get_array(), dtype=np.float64) for ax in fig.axes if ax.get_images()]
    for a in out:
        assert a.size and np.isfinite(a).all()
    return out


def test_ct_chain_figure_shows_measurement_and_images(slices):
    fig = figures_ct.ct_chain_figure(slices["ct"], 1e4)
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 6
    sino, noisy, diff, stored, ramp, hann = images(fig)
    assert sino.shape == (32, 51) and sino.max() > 0.5           # full_views(32) views; line integrals > 0
    assert 0 < np.abs(noisy - sino).max() and np.abs(diff).max() > 0
    for img in (stored, ramp, hann):
        assert img.shape == (32, 32) and 0 <= img.min() and img.max() <= 1
    noise = [float(re.search(r"noise (\d+) HU", ax.get_title()).group(1)) for ax in fig.axes[4:]]
    assert 0 < noise[1] < noise[0]                                # the Hann filter is less noisy than the ramp


def test_ct_noise_std_follows_the_square_root_law(slices):
    full, half = figures_ct.ct_noise_std(slices["ct"], 1e4), figures_ct.ct_noise_std(slices["ct"], 2.5e3)
    assert full > 0 and half / full == pytest.approx(2.0, rel=0.15)


def test_ct_noise_vs_image_noise_has_a_ring_spectrum(slices):
    fig = figures_ct.ct_noise_vs_image_noise_figure(slices["ct"], 1e4)
    assert len(fig.axes) == 7
    assert len(images(fig)) == 6
    ct_line, white_line = fig.axes[-1].get_lines()
    ct_power, white_power = ct_line.get_ydata(), white_line.get_ydata()
    assert np.isfinite(ct_power).all() and np.isfinite(white_power).all()
    assert ct_power[0] < 0.5 * ct_power.mean()                   # ramp filter: little power at low frequencies
    assert ct_power[0] < white_power[0]


def test_noise_spectrum_of_white_noise_is_flat():
    noise = torch.randn(64, 64, generator=torch.Generator().manual_seed(0)).numpy()
    freq, power = figures_ct.noise_spectrum(noise)
    assert freq[0] > 0 and freq[-1] <= 0.5 and np.isfinite(power).all()
    assert power[1:].std() / power[1:].mean() < 0.4 and power.mean() == pytest.approx(1.0, rel=0.2)


def test_ct_dose_curve_falls_with_slope_one_half(slices):
    fig = figures_ct.ct_dose_curve(slices["ct"], [1e5, 1e3, 1e4])
    assert len(fig.axes) == 1
    measured, law = fig.axes[0].get_lines()
    doses, stds = measured.get_xdata(), measured.get_ydata()
    assert list(doses) == [1e3, 1e4, 1e5] and np.isfinite(stds).all() and (np.diff(stds) < 0).all()
    assert np.polyfit(np.log(doses), np.log(stds), 1)[0] == pytest.approx(-0.5, abs=0.1)
    assert np.isfinite(law.get_ydata()).all()


def test_ct_sparse_views_streak_without_noise(slices):
    fig = figures_ct.ct_sparse_views_figure(slices["ct"], views=(6, None))
    assert len(fig.axes) == 2
    sparse, full = images(fig)
    assert np.abs(sparse - full).max() > 0.1


def test_mri_chain_figure(slices):
    fig = figures_scans.mri_chain_figure(slices["mri"], acceleration=4, noise=0.01)
    assert len(fig.axes) == 5
    clean, kspace, mask, zero_filled, tv = images(fig)
    assert set(np.unique(mask)) <= {0.0, 1.0} and mask[:, 0].mean() == pytest.approx(0.25, abs=0.05)
    assert np.abs(zero_filled - clean).mean() > 0.005
    assert all(0 <= a.min() and a.max() <= 1 for a in (clean, zero_filled, tv))
    title = fig.axes[2].get_title()
    assert "4x nominal" in title and abs(float(title.split(", ")[-1].split("x")[0]) - 4) < 0.4   # effective


def test_mri_motion_figure_zero_shift_is_the_clean_image(slices):
    fig = figures_scans.mri_motion_figure(slices["mri"], shifts=(0, 3))
    assert len(fig.axes) == 2
    still, moved = images(fig)
    assert np.allclose(still, figures_scans.reader_view("mri", slices["mri"].image, slices["mri"]), atol=1e-4)
    assert np.abs(moved - still).max() > 0.01


def test_rician_bias_figure_background_mean_is_sigma_sqrt_pi_over_2():
    fig = figures_scans.rician_bias_figure(sigmas=(0.0, 0.05, 0.1), signal=0.1, size=32)
    assert len(fig.axes) == 2
    (phantom,) = images(fig)
    assert phantom.shape == (32, 96)
    background = fig.axes[1].get_lines()[0]
    sigmas, means = background.get_xdata(), background.get_ydata()
    assert means[0] == pytest.approx(0, abs=1e-9)
    assert np.allclose(means[1:], sigmas[1:] * math.sqrt(math.pi / 2), rtol=0.1)


def test_xray_figure(slices):
    fig = figures_scans.xray_figure(slices["xray"], exposures=(20, 2000), blur_sigma=1.0)
    assert len(fig.axes) == 5
    shown, model_view, blurred, low, high = images(fig)
    assert np.allclose(shown, 1 - model_view, atol=1e-6)          # the model sees the radiograph inverted
    assert np.abs(low - blurred).mean() > np.abs(high - blurred).mean()


def test_modality_explorer_and_its_fixed_stand_in(slices):
    fig = figures_scans.modality_explorer(slices, dose=1e3, acceleration=4, noise=0.03, exposure=20)
    assert len(fig.axes) == 6 and len(images(fig)) == 6
    titles = [ax.get_title() for ax in fig.axes[3:]]
    assert all("dB" in t for t in titles)
    fixed = figures_scans.modality_strengths_figure(slices)
    assert len(fixed.axes) == 9 and len(images(fixed)) == 9


def test_show_modality_explorer_without_ipywidgets_prints_one_line(slices, monkeypatch, capsys):
    from medgan_nb.figures import NO_IPYWIDGETS
    monkeypatch.setitem(sys.modules, "ipywidgets", None)          # import ipywidgets -> ImportError
    fig = figures_scans.show_modality_explorer(slices)
    assert capsys.readouterr().out.strip() == NO_IPYWIDGETS
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 9 and len(images(fig)) == 9


def test_val_psnr_figure(tmp_path):
    (tmp_path / "val.csv").write_text("step,epoch,psnr,ssim,psnr_degraded,ssim_degraded\n"
                                      "10,1,25.5,0.7,24.0,0.6\n20,2,26.5,0.75,24.0,0.6\n")
    fig = figures_scans.val_psnr_figure(tmp_path)
    restored, degraded = fig.axes[0].get_lines()
    assert len(fig.axes) == 1 and list(restored.get_ydata()) == [25.5, 26.5] and list(degraded.get_xdata()) == [1, 2]


def test_comparison_figure_scores_the_evaluation_s_inputs(monkeypatch):
    from medgan_nb.config import notebook_scan_config
    from medgan_nb.evaluation import CONDITIONS, evaluate_scans, methods_for
    monkeypatch.setenv("MEDGAN_TINY", "1")
    cfg = notebook_scan_config("mri", scan_size=48)
    identity = torch.nn.Identity()
    condition = next(iter(CONDITIONS["mri"]))
    s, restored = figures_scans.restorations(identity, cfg, condition)
    assert list(restored) == methods_for("mri") and np.array_equal(restored["model"], restored["input"])
    rows = evaluate_scans(identity, cfg, realisations=1, conditions={condition: CONDITIONS["mri"][condition]},
                          quiet=True)["rows"]
    scored = {r["method"]: r["psnr"] for r in rows if r["slice"] == s.key}
    assert figures_scans.psnr_of("mri", restored["input"], s) == pytest.approx(scored["input"])
    assert figures_scans.psnr_of("mri", restored["tv"], s) == pytest.approx(scored["tv"], abs=1e-4)
    fig = figures_scans.comparison_figure(identity, cfg, condition)
    assert len(fig.axes) == len(restored) + 1 and len(images(fig)) == len(restored) + 1
    assert f"{scored['input']:.2f} dB" in fig.axes[0].get_title()


def test_dicom_figures_and_tags(tmp_path):
    from pydicom.data import get_testdata_file

    from medgan_nb.data import read_dicom, write_derived
    source = get_testdata_file("CT_small.dcm")
    image = read_dicom(source)
    fig = figures_scans.dicom_windows_figure(image)
    assert len(fig.axes) == 4
    windowed = images(fig)
    assert len(windowed) == 3 and all(0 <= a.min() and a.max() <= 1 for a in windowed)
    derived = write_derived(image, image.slices + 10, tmp_path / "derived.dcm", weights_sha256="0" * 64)
    pair = figures_scans.dicom_pair_figure(source, derived)
    assert len(pair.axes) == 3
    _, _, diff = images(pair)
    assert np.allclose(diff, 10, atol=1)
    table = figures_scans.dicom_tags_markdown(source, derived)
    assert table.count("\n") == len(figures_scans.DERIVED_TAGS) + 2
    assert "| SOPInstanceUID |" in table and "`DERIVED\\SECONDARY\\AXIAL`" in table
    assert image.sop_instance_uid in table.splitlines()[-1]


def test_comparison_sentences_and_scans_table():
    from medgan_nb.data import SAMPLE_SCANS
    table = {"noise": {"input": {"psnr": 20.0}, "nlm": {"psnr": 24.0}, "tv": {"psnr": 23.0}, "model": {"psnr": 25.5}},
             "hard": {"input": {"psnr": 20.0}, "nlm": {"psnr": 19.0}, "tv": {"psnr": 23.0}, "model": {"psnr": 19.5}}}
    first, second = figures_scans.comparison_sentences({"table": table})
    assert "+5.50 dB" in first and "NLM at 24.00 dB" in first and "1.50 dB above" in first
    assert "-0.50 dB" in second and "not better" in second and "TV at 23.00 dB" in second and "3.50 dB below" in second
    assert figures_scans.scans_markdown().count("\n") == len(SAMPLE_SCANS) + 1
