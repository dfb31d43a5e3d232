"""CT, MRI and X-ray data, 1-channel training, per-modality evaluation and DICOM enhancement (issue 12)."""
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file

import medgan_nb.data.scans as data_scans
from medgan_nb.config import Config
from medgan_nb.data import default_dataset, read_dicom
from medgan_nb.degrade import ModalityDegradation, kspace, mri_acquire, mri_degrade, tv_reconstruction
from medgan_nb.evaluation import evaluate_scans, markdown, methods_for, run_model
from medgan_nb.inference import enhance
from medgan_nb.inference.files import UnsuitableDicomError
from medgan_nb.models import load_generator
from medgan_nb.training import train

pytest.importorskip("data_store", reason="pydicom-data (the sample scans) is not installed")


def tiny(modality: str, **changes) -> Config:
    """A tiny 1-channel config: small scans, few realisations, seconds to train."""
    return Config.from_preset("tiny", channels=1, modality=modality, scan_size=64 if modality == "ct" else 128,
                         image_size=32, scan_realisations=2, crops_per_frame=4, epochs=1, **changes)


@pytest.mark.parametrize("modality", ["ct", "mri", "xray"])
def test_units_round_trip_and_window(modality):
    values = np.linspace(-1500, 2500, 101, dtype=np.float32).reshape(1, 1, -1)
    lo, hi = data_scans.window_of(modality, values)
    x = data_scans.to_model(values, modality, lo, hi)
    assert x.min() >= -1 and x.max() <= 1
    inside = (values >= lo) & (values <= hi)
    back = data_scans.from_model(x, modality, lo, hi)
    np.testing.assert_allclose(back[inside], values[inside], atol=1e-3 * (hi - lo))
    if modality == "ct":
        assert (lo, hi) == (-1000.0, 1000.0)
    if modality == "xray":                # bright bone = low transmission: the model sees it inverted
        assert x[0, 0, 0] == 1 and x[0, 0, -1] == -1


def test_splits_never_share_a_scan_region():
    for modality in ("ct", "mri", "xray"):
        seen: dict[tuple, str] = {}
        for scan in data_scans.SAMPLE_SCANS:
            if scan.modality != modality:
                continue
            for other, split in seen.items():
                if other[0] == scan.file:           # the same file: its row bands must not overlap
                    assert other[2] <= scan.rows[0] or scan.rows[1] <= other[1], (scan, other)
                    assert split != "test" and scan.split != "test", "a test scan is also used elsewhere"
            seen[(scan.file, *scan.rows)] = scan.split
        assert {"train", "val", "test"} <= set(seen.values()), modality


def test_every_sample_scan_is_the_kind_of_image_its_models_learn():
    from medgan_nb.data.dicom import kind_problem, read_header
    for scan in data_scans.SAMPLE_SCANS:
        if scan.file is not None:
            assert kind_problem(read_header(data_scans.sample_scan_path(scan.file))) is None, scan.name


def test_ct_reference_is_the_noiseless_reconstruction():
    s = data_scans.sample_slices("ct", "test", 64)[0]                      # CT_small.dcm at 64²
    inside = np.ones_like(s.image, dtype=bool)
    inside[s.image <= -1 + 1e-6] = False
    assert s.image.shape == (64, 64) and inside.mean() > 0.5
    noisy, params = data_scans.degrade_slice(s, ModalityDegradation("ct", dose=2e3), "k")
    assert params["ct_dose"] == 2e3 and params["ct_pixel_mm"] == pytest.approx(s.pixel_mm)
    again, _ = data_scans.degrade_slice(s, ModalityDegradation("ct", dose=2e3), "k")
    np.testing.assert_array_equal(noisy, again)                       # seeded by key
    clean, _ = data_scans.degrade_slice(s, ModalityDegradation("ct", dose=float("inf")), "k")
    np.testing.assert_allclose(clean, s.image, atol=1e-5)              # reference = the noiseless FBP of the source
    assert np.abs(s.source - s.image).max() > 0.05                      # which is not the stored image
    assert np.abs(noisy - s.image).mean() > 10 * np.abs(clean - s.image).mean()


def test_scan_pairs_are_aligned_patches():
    cfg = tiny("xray")
    train_set, val_set = default_dataset("train", cfg), default_dataset("val", cfg)
    assert len(train_set) == 1 * 2 * 4                                 # one slice × 2 realisations × 4 crops
    clean, degraded, key = train_set[0]
    assert clean.shape == degraded.shape == (1, 32, 32) and "xr_chest" in key
    assert clean.abs().max() <= 1 and not torch.equal(clean, degraded)
    diff = (degraded - clean).std()
    shifted = (degraded[:, 1:] - clean[:, :-1]).std()
    assert diff < shifted                                              # aligned: the same pixels, not a shifted crop
    c1, d1, _ = val_set[0]
    c2, d2, _ = val_set[0]
    assert torch.equal(c1, c2) and torch.equal(d1, d2)                 # validation is fixed


def test_small_slices_are_left_out_with_a_warning(caplog):
    big = data_scans.Slice("big", np.zeros((40, 40), np.float32), None, 0, 1)
    small = data_scans.Slice("small", np.zeros((16, 40), np.float32), None, 0, 1)
    pairs = data_scans.ScanPairs([big, small], ModalityDegradation("xray", exposure=100.0), 32, 1, random=False)
    assert len(pairs) == 1 and "small" in caplog.text
    with pytest.raises(ValueError, match="smaller than the 32"):
        data_scans.ScanPairs([small], ModalityDegradation("xray", exposure=100.0), 32, 1, random=False)


def test_config_checks_channels_and_modality():
    with pytest.raises(ValueError, match="channels must be 1"):
        Config.from_preset("tiny", modality="ct")
    with pytest.raises(ValueError, match="modality must be one of"):
        Config.from_preset("tiny", modality="pet", channels=1)
    for name in ("ct", "mri", "xray"):
        cfg = Config.from_preset(name)
        assert cfg.channels == 1 and cfg.modality == name and cfg.residual


def test_tv_reconstruction_beats_zero_filling():
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize
    x = torch.from_numpy(resize(shepp_logan_phantom(), (96, 96)))[None, None]
    g = torch.Generator().manual_seed(0)
    k, params = mri_acquire(x, noise_sigma=0.0, acceleration=3.0, generator=g)
    zero_filled = mri_degrade(x, noise_sigma=0.0, acceleration=3.0, generator=torch.Generator().manual_seed(0))
    tv = tv_reconstruction(k[0], params["mri_mask"][0])
    err_zf = (zero_filled.image[0, 0] - x[0, 0]).pow(2).mean()
    err_tv = (tv - x[0, 0]).pow(2).mean()
    assert err_tv < 0.7 * err_zf
    full = kspace(x[0, 0])                                               # all lines: TV denoising only
    assert tv_reconstruction(full, torch.ones(96, dtype=torch.bool), weight=1e-4).sub(x[0, 0]).abs().max() < 0.02


@pytest.mark.parametrize("modality", ["ct", "mri", "xray"])
def test_one_channel_training_and_evaluation(modality, tmp_path):
    run = train(tiny(modality, output_dir=str(tmp_path)), quiet=True)
    rows = (run / "val.csv").read_text().splitlines()
    assert len(rows) == 2 and float(rows[1].split(",")[2]) > 10
    generator, cfg = load_generator(run / "checkpoints" / "best.pt")
    assert generator.in_channels == 1 and generator.modality == modality
    result = evaluate_scans(generator, cfg, realisations=1, quiet=True)
    assert result["methods"] == methods_for(modality) and result["methods"][-1] == "model"
    for by_method in result["table"].values():
        assert set(by_method) == set(result["methods"])
        assert all(np.isfinite(v["psnr"]) and 0 < v["ssim"] <= 1 for v in by_method.values())
    if modality == "ct":        # Hann smoothing of the very same projections beats the ramp filter at low dose
        low = result["table"]["dose 5e3"]
        assert low["fbp_hann"]["psnr"] > low["input"]["psnr"] and low["input"]["rmse_hu"] > 0
    text = markdown(result)
    table_rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(table_rows) == sum(len(m) for table in result["per_scan"].values() for m in table.values())
    assert len(result["verdicts"]) == len(result["table"]) and text.count("model − best classic on 1 scan(s)") == len(
        result["table"]) and "n too small" in text                    # one test scan per modality


def test_run_model_pads_odd_sizes():
    cfg = tiny("mri")
    from medgan_nb.models import build_generator
    generator = build_generator(cfg)                 # residual, zero-initialised head: returns its input
    image = np.random.default_rng(0).uniform(-1, 1, (37, 45)).astype(np.float32)
    out = run_model(generator, image)
    assert out.shape == image.shape


def _ct_checkpoint(tmp_path: Path) -> Path:
    run = train(tiny("ct", output_dir=str(tmp_path / "runs")), quiet=True)
    return run / "checkpoints" / "best.pt"


def test_enhance_dicom_writes_a_derived_dicom_and_png(tmp_path):
    src = tmp_path / "in" / "slice.dcm"
    src.parent.mkdir()
    src.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    checkpoint = _ct_checkpoint(tmp_path)
    written = enhance(src, tmp_path / "out", checkpoint, quiet=True)
    assert written == [tmp_path / "out" / "slice.dcm"]
    original, derived = read_dicom(src), read_dicom(written[0])
    ds = pydicom.dcmread(written[0])
    assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]
    assert ds.SOPInstanceUID != original.sop_instance_uid and ds.SeriesInstanceUID != original.series_instance_uid
    assert "AI-enhanced" in ds.DerivationDescription
    assert ds.BitsStored == original.dataset.BitsStored and ds.RescaleSlope == original.dataset.RescaleSlope
    outside = (original.slices < -1000) | (original.slices > 1000)
    assert outside.any()                                             # CT_small has bone above +1000 HU
    np.testing.assert_allclose(derived.slices[outside], original.slices[outside], atol=1.0)   # passed through
    record = json.loads((tmp_path / "out" / "audit.jsonl").read_text().splitlines()[-1])
    assert record["dicom"]["sop_instance_uid"] == ds.SOPInstanceUID
    assert record["dicom"]["pixels_passed_through"] == int(outside.sum())
    assert Path(record["dicom"]["png"]).is_file() and record["channels"] == 1
    with pytest.raises(FileExistsError):                             # never overwrites without being asked
        enhance(src, tmp_path / "out", checkpoint, quiet=True)


def test_enhance_dicom_refuses_another_modality(tmp_path):
    src = tmp_path / "mr.dcm"
    src.write_bytes(Path(get_testdata_file("MR_small.dcm")).read_bytes())
    with pytest.raises(ValueError, match="trained on ct; use a mri model"):
        enhance(src, tmp_path / "out", _ct_checkpoint(tmp_path), quiet=True)
    assert not (tmp_path / "out" / "mr.dcm").exists()


def test_enhance_checks_every_dicom_input_before_writing_and_skips_under_skip_bad(tmp_path, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, source in (("a_ct.dcm", "CT_small.dcm"), ("b_mr.dcm", "MR_small.dcm"), ("c_ct.dcm", "CT_small.dcm")):
        (folder / name).write_bytes(Path(get_testdata_file(source)).read_bytes())
    scout = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests" / "98892001" / "CT2N" / "6924"
    (folder / "d_scout.dcm").write_bytes(scout.read_bytes())          # a CT localizer
    checkpoint = _ct_checkpoint(tmp_path)
    with pytest.raises(UnsuitableDicomError, match="b_mr.dcm is a MR image but the model was trained on ct"):
        enhance(folder, tmp_path / "out", checkpoint, quiet=True)
    assert not (tmp_path / "out").exists()              # a_ct.dcm, before it, was not written either
    with caplog.at_level("WARNING", logger="medgan_nb.inference.files"):
        written = enhance(folder, tmp_path / "out", checkpoint, quiet=True, on_error="skip")
    assert written == [tmp_path / "out" / "a_ct.dcm", tmp_path / "out" / "c_ct.dcm"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("skipped 2 of 4 input file(s)" in m for m in messages)
    assert any("d_scout.dcm: a CT localizer (scout view)" in m for m in messages)
    assert len((tmp_path / "out" / "audit.jsonl").read_text().splitlines()) == 2


def test_the_slices_of_one_series_become_one_derived_series_in_order(tmp_path):
    series = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests" / "98892001" / "CT5N"
    sources = sorted(series.iterdir())
    folder = tmp_path / "in"
    folder.mkdir()
    for f in sources:
        (folder / f"{f.name}.dcm").write_bytes(f.read_bytes())
    written = enhance(folder, tmp_path / "out", _ct_checkpoint(tmp_path), quiet=True)
    assert len(written) == len(sources) == 5
    source = {f"{f.name}.dcm": pydicom.dcmread(f, stop_before_pixels=True) for f in sources}
    derived = {p.name: pydicom.dcmread(p, stop_before_pixels=True) for p in written}
    assert len({d.SeriesInstanceUID for d in derived.values()}) == 1          # one new series, not one per file
    assert len({d.SOPInstanceUID for d in derived.values()}) == 5
    for name, d in derived.items():
        s = source[name]
        assert d.SeriesInstanceUID != s.SeriesInstanceUID and d.SeriesNumber == s.SeriesNumber + 1000
        assert d.ImagePositionPatient == s.ImagePositionPatient and d.InstanceNumber == s.InstanceNumber
    again = enhance(folder, tmp_path / "out2", _ct_checkpoint(tmp_path / "b"), quiet=True)
    assert pydicom.dcmread(again[0]).SeriesInstanceUID != next(iter(derived.values())).SeriesInstanceUID


def test_cli_evaluates_a_scan_model(tmp_path, capsys):
    from medgan_nb.cli import main
    run = train(tiny("xray", output_dir=str(tmp_path / "runs")), quiet=True)
    assert main(["evaluate", str(run), "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| exposure 200 | model |" in printed
    result = json.loads((tmp_path / "eval" / "scans.json").read_text())
    assert result["modality"] == "xray" and result["slices"] == ["xr_tibia#0"]
    assert "xray on the test slices" in (tmp_path / "eval" / "report.md").read_text()
    assert main(["evaluate", str(run), "--grid", "--out", str(tmp_path / "eval2")]) == 1
    assert "--grid: for endoscopy models only" in capsys.readouterr().err


def test_notebook_scan_config(monkeypatch, tmp_path):
    from medgan_nb.config import notebook_scan_config
    monkeypatch.setenv("MEDGAN_OUTPUT", str(tmp_path))
    monkeypatch.setenv("MEDGAN_TINY", "1")
    cfg = notebook_scan_config("ct")
    assert (cfg.modality, cfg.channels, cfg.scan_size, cfg.output_dir) == ("ct", 1, 64, str(tmp_path))
    monkeypatch.delenv("MEDGAN_TINY")
    cfg = notebook_scan_config("mri")
    assert cfg.max_minutes == 10.0 and cfg.epochs == 300 and cfg.image_size == 128 and cfg.preset == "mri"


def test_derived_dicom_keeps_the_source_derivation(tmp_path):
    from medgan_nb.data import write_derived
    image = read_dicom(get_testdata_file("MR_small.dcm"))
    image.dataset.DerivationDescription = "MEDCOM RESAMPLED"
    out = write_derived(image, image.slices, tmp_path / "d.dcm", weights_sha256="ab" * 32, model_name="m")
    text = pydicom.dcmread(out).DerivationDescription
    assert text.startswith("AI-enhanced by medgan_nb") and "(GAN" not in text
    assert text.endswith("source: MEDCOM RESAMPLED") and "ab" * 32 in text


def test_a_compressed_sample_scan_without_its_decoder_is_left_out(monkeypatch, caplog):
    from medgan_nb.data import DicomError
    real = data_scans.read_dicom

    def no_decoder(path):
        if Path(path).name == "bad_sequence.dcm":
            raise DicomError(f"{path}: JPEG Lossless: no installed decoder; pip install pylibjpeg pylibjpeg-libjpeg")
        return real(path)
    monkeypatch.setattr(data_scans, "read_dicom", no_decoder)
    keys = [s.key for s in data_scans.sample_slices("ct", "train", 64)]
    assert "ct_neck#0" not in keys and "ct_head#0" in keys
    assert "ct_neck left out" in caplog.text and "pip install" in caplog.text
    monkeypatch.setattr(data_scans, "read_dicom", lambda path: (_ for _ in ()).throw(DicomError("broken")))
    with pytest.raises(DicomError, match="broken"):              # an uncompressed scan that fails is an error
        data_scans.sample_slices("ct", "test", 64)
