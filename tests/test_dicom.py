"""medgan_nb.data.dicom: real files from pydicom's bundled test data and synthetic files written here."""
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, SegmentationStorage, generate_uid

from medgan_nb.data import (
    DicomError,
    ImageLoadError,
    NoPixelDataError,
    list_dicom,
    read_dicom,
    read_series,
    to_unit_range,
)
from medgan_nb.utils import WINDOWS, percentile_window, window

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
DIRTESTS = TEST_FILES / "dicomdirtests"


def stored(name_or_path) -> np.ndarray:
    """pydicom's own decoding, as float64 (the reference the reader is checked against)."""
    path = get_testdata_file(name_or_path) if isinstance(name_or_path, str) else name_or_path
    return pydicom.dcmread(path).pixel_array.astype(np.float64)


def write(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", bits: int = 16,
          modality: str = "CT", series: str | None = None, **tags) -> Path:
    """A minimal DICOM file (explicit VR little endian, with preamble) holding `pixels`."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = CTImageStorage
    ds.Modality = modality
    ds.SeriesInstanceUID = series or generate_uid()
    ds.set_pixel_data(pixels, photometric, bits)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


# ------------------------------------------------------------- real files
def test_ct_small_is_in_hounsfield_units():
    image = read_dicom(get_testdata_file("CT_small.dcm"))
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert (ds.RescaleSlope, ds.RescaleIntercept) == (1, -1024)
    assert image.slices.shape == (1, 128, 128) and image.slices.dtype == np.float32
    np.testing.assert_array_equal(image.slices[0], stored("CT_small.dcm") - 1024)
    assert image.slices.min() < -800 and image.slices.max() > 300      # air-like ... bone
    assert abs(np.median(image.slices)) < 300                          # mostly soft tissue
    assert image.modality == "CT" and image.photometric == "MONOCHROME2" and image.bits_stored == 16
    assert image.pixel_spacing == pytest.approx((0.661468, 0.661468))
    assert image.sop_instance_uid == ds.SOPInstanceUID and image.series_instance_uid == ds.SeriesInstanceUID
    assert image.position == pytest.approx((-158.135803, -179.035797, -75.699997))
    assert "PixelData" not in image.dataset and image.dataset.PatientName == ds.PatientName
    assert image.path == Path(get_testdata_file("CT_small.dcm"))


def test_mr_small_keeps_stored_values_and_rle_decodes_the_same():
    image = read_dicom(get_testdata_file("MR_small.dcm"))
    assert image.modality == "MR" and image.slices.shape == (1, 64, 64)
    np.testing.assert_array_equal(image.slices[0], stored("MR_small.dcm"))   # no rescale tags: stored values
    assert image.slices.max() == 2145 and image.pixel_spacing == pytest.approx((0.3125, 0.3125))
    for variant in ("MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm"):
        np.testing.assert_array_equal(read_dicom(get_testdata_file(variant)).slices, image.slices)


def test_multi_frame_file_gives_one_slice_per_frame():
    image = read_dicom(get_testdata_file("rtdose.dcm"))
    assert image.slices.shape == (15, 10, 10)
    np.testing.assert_array_equal(image.slices, stored("rtdose.dcm").astype(np.float32))
    assert len(np.unique(image.slices.reshape(15, -1), axis=0)) > 1     # the frames differ


def test_monochrome1_x_ray_is_inverted_over_the_stored_range():
    path = DIRTESTS / "77654033" / "CR1" / "6154"
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.BitsStored == 12 and ds.PixelRepresentation == 0
    image = read_dicom(path)
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    lo, hi = intercept, 4095 * slope + intercept                      # physical range of 12 unsigned bits
    expected = lo + hi - (stored(path) * slope + intercept)
    np.testing.assert_allclose(image.slices[0], expected, rtol=1e-6)
    s = stored(path)
    assert image.slices[0][np.unravel_index(s.argmin(), s.shape)] == image.slices.max()   # darkest stored -> brightest
    assert image.modality == "CR" and image.pixel_spacing == pytest.approx((0.1, 0.1))  # from ImagerPixelSpacing


def test_colour_image_is_refused():
    path = get_testdata_file("examples_rgb_color.dcm")
    with pytest.raises(DicomError, match=r"colour image \(RGB\): only grayscale is supported") as e:
        read_dicom(path)
    assert str(path) in str(e.value)
    with pytest.raises(DicomError, match="PALETTE COLOR"):
        read_dicom(get_testdata_file("examples_palette.dcm"))


@pytest.mark.parametrize("name, syntax, hint", [
    ("JPEG-lossy.dcm", "JPEG Extended", "pip install pylibjpeg pylibjpeg-libjpeg"),
    ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless", "pip install pylibjpeg pylibjpeg-libjpeg"),
])
def test_compressed_without_decoder_says_what_to_install(name, syntax, hint):
    path = get_testdata_file(name)
    try:
        pydicom.dcmread(path).pixel_array
    except Exception:
        pass
    else:
        pytest.skip(f"{name} is decodable here (a decoder plugin is installed)")
    with pytest.raises(DicomError) as e:
        read_dicom(path)
    msg = str(e.value)
    assert str(path) in msg and syntax in msg and hint in msg and "no installed decoder" in msg


# ------------------------------------------------------- synthetic files
def test_rescale_gives_exact_hounsfield_units(tmp_path):
    raw = np.array([[0, 1, 2, 3], [500, 1000, 2047, -2048]], dtype=np.int16)
    path = write(tmp_path / "ct", raw, bits=12, RescaleSlope=2, RescaleIntercept=-1024,
                 PixelSpacing=[0.5, 0.75])
    image = read_dicom(path)
    np.testing.assert_array_equal(image.slices[0], raw.astype(np.float32) * 2 - 1024)
    assert image.slices[0, 1, 3] == -5120 and image.bits_stored == 12
    assert image.pixel_spacing == (0.5, 0.75)


def test_enhanced_multi_frame_shared_and_per_frame_rescale(tmp_path):
    raw = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    transform, measures, group = Dataset(), Dataset(), Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 3, -1000, "HU"
    measures.PixelSpacing = [0.25, 0.5]
    group.PixelValueTransformationSequence, group.PixelMeasuresSequence = [transform], [measures]
    image = read_dicom(write(tmp_path / "enh.dcm", raw, SharedFunctionalGroupsSequence=[group]))
    np.testing.assert_array_equal(image.slices, raw * 3.0 - 1000)
    assert image.pixel_spacing == (0.25, 0.5)
    frames = [Dataset(), Dataset()]
    for frame in frames:
        frame.PixelValueTransformationSequence = [transform]
    with pytest.raises(DicomError, match=r"per\.dcm: a rescale per frame .* not supported"):
        read_dicom(write(tmp_path / "per.dcm", raw, PerFrameFunctionalGroupsSequence=frames))


def test_synthetic_multi_frame(tmp_path):
    raw = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    image = read_dicom(write(tmp_path / "mf.dcm", raw, modality="MR"))
    assert image.slices.shape == (3, 4, 5) and image.pixel_spacing is None
    np.testing.assert_array_equal(image.slices, raw)


@pytest.mark.parametrize("signed, top", [(False, 4095), (True, -1)])   # [0, 4095] or [-2048, 2047]: lo + hi
def test_monochrome1_inverted_exactly(tmp_path, signed, top):
    raw = np.array([[0, 1, 100], [2047, 5, 7]], dtype=np.int16 if signed else np.uint16)
    image = read_dicom(write(tmp_path / "m1.dcm", raw, "MONOCHROME1", bits=12, modality="DX"))
    np.testing.assert_array_equal(image.slices[0], top - raw.astype(np.float32))
    assert image.photometric == "MONOCHROME1"


def test_grey_stored_as_rgb_is_read_as_one_channel(tmp_path):
    grey = np.array([[0, 10, 200], [255, 30, 40]], dtype=np.uint8)
    image = read_dicom(write(tmp_path / "us.dcm", np.repeat(grey[..., None], 3, axis=2), "RGB", bits=8,
                             modality="US"))
    np.testing.assert_array_equal(image.slices[0], grey)
    colour = np.repeat(grey[..., None], 3, axis=2)
    colour[0, 0, 1] = 9
    with pytest.raises(DicomError, match="only grayscale"):
        read_dicom(write(tmp_path / "us2.dcm", colour, "RGB", bits=8, modality="US"))


def test_file_without_pixel_data(tmp_path):
    report = get_testdata_file("reportsi.dcm")
    with pytest.raises(NoPixelDataError, match="without pixel data.*SR") as e:
        read_dicom(report)
    assert str(report) in str(e.value) and isinstance(e.value, ImageLoadError)
    seg = Dataset()                                     # a segmentation that lost its pixels
    seg.file_meta = FileMetaDataset()
    seg.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    seg.SOPClassUID, seg.SOPInstanceUID, seg.Modality = SegmentationStorage, generate_uid(), "SEG"
    seg.save_as(tmp_path / "seg.dcm", enforce_file_format=True)
    with pytest.raises(NoPixelDataError, match=r"seg\.dcm: DICOM file without pixel data \(Segmentation Storage"):
        read_dicom(tmp_path / "seg.dcm")


def test_image_without_pixel_data_is_an_error_not_a_report(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm")
    with pytest.raises(DicomError, match=r"nopix\.dcm: no pixel data although it is an image \(CT Image Storage") as e:
        read_dicom(tmp_path / "nopix.dcm")
    assert not isinstance(e.value, NoPixelDataError)      # read_series must not skip it silently


@pytest.mark.parametrize("fraction", [0.02, 0.05, 0.1, 0.5, 0.99])     # in the header, and in the pixel data
def test_truncated_file(tmp_path, fraction):
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(DicomError, match=r"cut\.dcm: .*truncated or corrupt"):
        read_dicom(path)


def test_bundled_truncated_file():
    with pytest.raises(DicomError, match="truncated or corrupt.*less than expected"):
        read_dicom(get_testdata_file("MR_truncated.dcm"))


def test_not_a_dicom_file(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("hello " * 50)
    with pytest.raises(DicomError, match=r"notes\.dcm: not a DICOM file \(no 'DICM' marker"):
        read_dicom(path)
    with pytest.raises(ImageLoadError, match="missing.dcm: no such file"):
        read_dicom(tmp_path / "missing.dcm")


# ------------------------------------------------------------------ windows
def test_window_is_the_dicom_linear_function():
    center, width = WINDOWS["soft_tissue"]
    out = window(np.array([-1000, -160, 40, 239, 240, 3000]), center, width)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0, 0, (40 - 39.5) / 399 + 0.5, 1, 1, 1], atol=1e-6)
    assert window(np.array([-1, 0]), 0, 1).tolist() == [0, 1]   # width 1: a threshold
    with pytest.raises(ValueError, match="width"):
        window(np.zeros(3), 0, 0.5)


def test_percentile_window():
    x = np.linspace(0, 100, 1001)
    np.testing.assert_allclose(percentile_window(x, 10, 90), np.clip((x - 10) / 80, 0, 1), atol=1e-6)
    out = percentile_window(x)
    assert out.min() == 0 and out.max() == 1 and np.mean(out == 0) == pytest.approx(0.006, abs=0.002)
    assert not percentile_window(np.full((2, 3), 7.0)).any()
    with pytest.raises(ValueError):
        percentile_window(x, 50, 50)


def test_to_unit_range_choices():
    ct = read_dicom(get_testdata_file("CT_small.dcm"))
    auto = to_unit_range(ct)
    assert auto.shape == (1, 128, 128) and auto.dtype == np.float32 and 0 <= auto.min() and auto.max() <= 1
    np.testing.assert_array_equal(auto, window(ct.slices, 40, 400))
    np.testing.assert_array_equal(to_unit_range(ct, "bone"), window(ct.slices, 400, 1800))
    np.testing.assert_array_equal(to_unit_range(ct, (0, 2000)), window(ct.slices, 0, 2000))
    assert (to_unit_range(ct, "lung") >= auto)[ct.slices < -160].all()   # lung shows air-filled tissue
    mr = read_dicom(get_testdata_file("MR_small.dcm"))
    np.testing.assert_array_equal(to_unit_range(mr), percentile_window(mr.slices))
    assert to_unit_range(mr).max() == 1 and to_unit_range(mr).min() == 0
    with pytest.raises(ValueError, match="unknown window 'brain'"):
        to_unit_range(ct, "brain")


# ------------------------------------------------------------------ folders
def test_list_dicom_finds_files_by_content(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "a" / "b" / "IM0001")   # no extension
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "mr.dcm")
    (tmp_path / "fake.dcm").write_bytes(b"\0" * 200)
    (tmp_path / "short").write_bytes(b"DICM")
    assert list_dicom(tmp_path) == [tmp_path / "a" / "b" / "IM0001", tmp_path / "mr.dcm"]


def test_read_series_sorts_by_position_along_the_normal(tmp_path):
    files = sorted((DIRTESTS / "98892001" / "CT5N").iterdir())
    for i, f in enumerate(reversed(files)):                # file names in another order than the positions
        shutil.copy(f, tmp_path / f"slice{(i * 3) % 5}")
    shutil.copy(DIRTESTS / "DICOMDIR", tmp_path / "DICOMDIR")      # no pixel data: skipped
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "other")
    series = read_series(tmp_path)
    assert len(series) == 2
    ct = series[pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID]
    z = [im.position[2] for im in ct]
    assert z == sorted(z) and len(z) == 5
    assert [im.instance_number for im in ct] == [10, 9, 8, 7, 6]


def test_read_series_falls_back_to_instance_number(tmp_path):
    for f in (DIRTESTS / "98892003" / "MR700").iterdir():     # a localizer: orientations differ per image
        shutil.copy(f, tmp_path / f.name)
    [series] = read_series(tmp_path).values()
    assert [im.instance_number for im in series] == [1, 2, 3, 4, 5, 6, 7]


def test_read_series_groups_synthetic_series(tmp_path):
    uid_a, uid_b = generate_uid(), generate_uid()
    orientation = [1, 0, 0, 0, 1, 0]
    for name, uid, z, number in [("x1", uid_a, 5.0, 1), ("x2", uid_b, 0.0, 2), ("x3", uid_a, -5.0, 2),
                                 ("x4", uid_a, 0.0, 3), ("x5", uid_b, 9.0, 1)]:
        write(tmp_path / name, np.full((2, 2), int(z) + 100, np.int16), series=uid, ImagePositionPatient=[0, 0, z],
              ImageOrientationPatient=orientation, InstanceNumber=number)
    series = read_series(tmp_path)
    assert list(series) == [uid_a, uid_b]
    assert [im.path.name for im in series[uid_a]] == ["x3", "x4", "x1"]
    assert [im.slices[0, 0, 0] for im in series[uid_b]] == [100, 109]
    (tmp_path / "x6").write_bytes((tmp_path / "x1").read_bytes()[:300])
    with pytest.raises(DicomError, match="x6"):                         # a damaged file is not skipped
        read_series(tmp_path)


def test_a_training_folder_skips_files_without_pixels_and_localizers(tmp_path, caplog):
    from medgan_nb.data import folder_slices
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct.dcm")
    shutil.copy(DIRTESTS / "DICOMDIR", tmp_path / "DICOMDIR")      # no pixel data
    shutil.copy(DIRTESTS / "98892001" / "CT2N" / "6924", tmp_path / "scout.dcm")     # a CT localizer
    with caplog.at_level("INFO", logger="medgan_nb.data.scans"):
        slices = folder_slices(tmp_path, "ct", "train", 64, (1.0, 0.0, 0.0))
    assert len(slices) == 1 and slices[0].image.shape == (64, 64)
    assert any("DICOMDIR" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)
    assert any("scout.dcm: a CT localizer" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


@pytest.mark.parametrize("change, problem", [
    ({}, None),
    ({"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, "CT localizer"),
    ({"RescaleType": "US"}, "not Hounsfield units (RescaleType 'US'"),
    ({"RescaleType": "HU"}, None),
    ({"Modality": "DX", "PresentationIntentType": "FOR PROCESSING"}, "raw detector data"),
    ({"Modality": "DX", "PresentationIntentType": "FOR PRESENTATION"}, None),
])
def test_kind_problem_names_images_that_are_not_what_the_models_learnt(change, problem):
    from medgan_nb.data.dicom import kind_problem
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    for keyword, value in change.items():
        setattr(ds, keyword, value)
    found = kind_problem(ds)
    assert found is None if problem is None else problem in found


def test_the_perfusion_map_among_the_sample_scans_is_not_ct_in_hu():
    from medgan_nb.data import sample_scan_path
    from medgan_nb.data.dicom import kind_problem, read_header
    try:
        path = sample_scan_path("eCT_Supplemental.dcm")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    assert "RescaleType 'US'; ImageType DERIVED/PRIMARY/PERFUSION/RCBF" in kind_problem(read_header(path))
