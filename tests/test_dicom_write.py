"""medgan_nb.data.dicom_write.write_derived: enhanced images written back as derived DICOM files, read again."""
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

import medgan_nb
from medgan_nb.data import is_dicom, read_dicom, write_derived

SHA = "0123456789abcdef" * 4
CR_MONOCHROME1 = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests" / "77654033" / "CR1" / "6154"


def synthetic(path: Path, pixels: np.ndarray, bits: int, photometric: str = "MONOCHROME2", **tags) -> Path:
    """A small CT-like file holding `pixels` (stored values), with the given tags."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = generate_uid(), generate_uid(), "P1"
    ds.Modality = "CT"
    ds.set_pixel_data(pixels, photometric, bits)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_ct_round_trip_keeps_values_geometry_and_context(tmp_path):
    source = get_testdata_file("CT_small.dcm")
    image = read_dicom(source)
    src = pydicom.dcmread(source)
    enhanced = image.slices + 10.3                                    # not a whole number of stored steps
    out = write_derived(image, enhanced, tmp_path / "out.dcm", weights_sha256=SHA, model_name="ct-gan")
    assert out == tmp_path / "out.dcm" and is_dicom(out)
    back, ds = read_dicom(out), pydicom.dcmread(out)
    np.testing.assert_allclose(back.slices, enhanced, atol=0.5 * float(src.RescaleSlope) + 1e-4)
    assert np.array_equal(ds.pixel_array, src.pixel_array + 10) and ds.pixel_array.dtype == np.int16
    for keyword in ("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PhotometricInterpretation",
                    "RescaleSlope", "RescaleIntercept", "PixelSpacing", "ImagePositionPatient",
                    "ImageOrientationPatient", "SliceThickness", "Rows", "Columns", "Modality", "SOPClassUID",
                    "StudyInstanceUID", "PatientID", "PatientName", "FrameOfReferenceUID"):
        assert ds[keyword].value == src[keyword].value, keyword
    assert back.pixel_spacing == image.pixel_spacing and back.position == image.position
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]          # CT keeps value 3
    assert ds.SOPInstanceUID != src.SOPInstanceUID and ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert "AI-enhanced" in ds.SeriesDescription and len(ds.SeriesDescription) <= 64
    text = ds.DerivationDescription
    assert SHA in text and "medgan_nb" in text and medgan_nb.__version__ in text and "ct-gan" in text
    (ref,) = ds.SourceImageSequence
    assert ref.ReferencedSOPInstanceUID == src.SOPInstanceUID and ref.ReferencedSOPClassUID == src.SOPClassUID
    assert ref.PurposeOfReferenceCodeSequence[0].CodeValue == "121322"
    meta = ds.file_meta
    assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID and meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert image.dataset.SOPInstanceUID == src.SOPInstanceUID and "DerivationDescription" not in image.dataset


def test_values_beyond_the_stored_range_are_clipped_not_wrapped(tmp_path):
    pixels = np.full((4, 4), 1024, dtype=np.uint16)                   # 12 unsigned bits: -1024 ... 3071 HU
    image = read_dicom(synthetic(tmp_path / "src.dcm", pixels, 12, RescaleSlope=1, RescaleIntercept=-1024))
    enhanced = image.slices.copy()
    enhanced[0, 0, :2], enhanced[0, 1, :2] = -5000, 5000
    ds = pydicom.dcmread(write_derived(image, enhanced, tmp_path / "out.dcm", weights_sha256=SHA))
    assert ds.pixel_array[0, :2].tolist() == [0, 0] and ds.pixel_array[1, :2].tolist() == [4095, 4095]
    assert ds.pixel_array[2:].tolist() == pixels[2:].tolist()
    back = read_dicom(tmp_path / "out.dcm").slices
    assert back[0, 0, 0] == -1024 and back[0, 1, 0] == 3071

    ct = read_dicom(get_testdata_file("CT_small.dcm"))                # signed 16 bits: -33792 ... 31743 HU
    out = write_derived(ct, np.full_like(ct.slices, 1e6), tmp_path / "ct.dcm", weights_sha256=SHA)
    assert (pydicom.dcmread(out).pixel_array == 32767).all()


def test_monochrome1_stays_monochrome1_and_reads_back_the_same(tmp_path):
    image = read_dicom(CR_MONOCHROME1)
    src = pydicom.dcmread(CR_MONOCHROME1)
    same = write_derived(image, image.slices, tmp_path / "same.dcm", weights_sha256=SHA)
    ds = pydicom.dcmread(same)
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.BitsStored == 12
    assert np.array_equal(ds.pixel_array, src.pixel_array)           # the inversion is undone exactly
    slope = float(src.RescaleSlope)
    brighter = image.slices + 20 * slope                             # brighter as displayed
    back = read_dicom(write_derived(image, brighter, tmp_path / "b.dcm", weights_sha256=SHA))
    np.testing.assert_allclose(back.slices, brighter, atol=slope / 2 + 1e-3)
    assert np.array_equal(pydicom.dcmread(tmp_path / "b.dcm").pixel_array, src.pixel_array - 20)
    assert list(pydicom.dcmread(tmp_path / "b.dcm").ImageType[:2]) == ["DERIVED", "SECONDARY"]


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")      # rtdose.dcm's own UIDs
def test_multi_frame_files_round_trip_every_frame(tmp_path):
    image = read_dicom(get_testdata_file("rtdose.dcm"))
    enhanced = image.slices + 1000 * np.arange(15, dtype=np.float32)[:, None, None]
    ds = pydicom.dcmread(write_derived(image, enhanced, tmp_path / "dose.dcm", weights_sha256=SHA))
    assert int(ds.NumberOfFrames) == 15 and ds.pixel_array.dtype == np.uint32
    np.testing.assert_array_equal(read_dicom(tmp_path / "dose.dcm").slices, enhanced)

    frames = np.arange(27, dtype=np.uint8).reshape(3, 3, 3)          # 27 bytes: odd, padded to even
    small = read_dicom(synthetic(tmp_path / "f3.dcm", frames, 8, SeriesDescription="x" * 64))
    out = write_derived(small, small.slices[::-1], tmp_path / "f3_out.dcm", weights_sha256=SHA)
    np.testing.assert_array_equal(read_dicom(out).slices, frames[::-1].astype(np.float32))
    assert len(pydicom.dcmread(out).SeriesDescription) <= 64


def test_grey_stored_as_colour_is_written_as_one_monochrome2_channel(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    image = read_dicom(synthetic(tmp_path / "rgb.dcm", np.stack([grey] * 3, axis=-1), 8, "RGB"))
    ds = pydicom.dcmread(write_derived(image, image.slices + 1, tmp_path / "out.dcm", weights_sha256=SHA))
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
    assert "PlanarConfiguration" not in ds and np.array_equal(ds.pixel_array, grey + 1)


def test_existing_file_is_not_overwritten_unless_asked(tmp_path):
    image = read_dicom(get_testdata_file("CT_small.dcm"))
    out = write_derived(image, image.slices, tmp_path / "out.dcm", weights_sha256=SHA)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="out.dcm"):
        write_derived(image, image.slices + 5, out, weights_sha256=SHA)
    assert out.read_bytes() == before
    write_derived(image, image.slices + 5, out, weights_sha256=SHA, overwrite=True)
    assert out.read_bytes() != before and sorted(p.name for p in tmp_path.iterdir()) == ["out.dcm"]


@pytest.mark.parametrize("change, match", [
    (lambda a: a[:, :64], "shape"),
    (lambda a: a[0], "shape"),
    (lambda a: np.where(a > 0, np.nan, a), "non-finite"),
    (lambda a: np.where(a > 0, np.inf, a), "non-finite"),
])
def test_bad_input_raises_and_leaves_no_file(tmp_path, change, match):
    image = read_dicom(get_testdata_file("CT_small.dcm"))
    with pytest.raises(ValueError, match=match):
        write_derived(image, change(image.slices.copy()), tmp_path / "out.dcm", weights_sha256=SHA)
    assert list(tmp_path.iterdir()) == []


def test_weights_hash_must_be_a_sha256(tmp_path):
    image = read_dicom(get_testdata_file("CT_small.dcm"))
    with pytest.raises(ValueError, match="SHA-256"):
        write_derived(image, image.slices, tmp_path / "out.dcm", weights_sha256="abc")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("source, lossy, methods", [
    ("JPEGLSNearLossless_16.dcm", "01", ["ISO_14495_1"]),      # lossy syntax, the source does not say so
    ("emri_small_jpeg_2k_lossless.dcm", "00", None),            # a lossless syntax
    ("MR_small.dcm", None, None),                               # uncompressed
])
def test_a_lossy_source_keeps_its_lossy_history_in_the_uncompressed_copy(tmp_path, source, lossy, methods):
    image = read_dicom(get_testdata_file(source))
    out = write_derived(image, image.slices, tmp_path / "d.dcm", weights_sha256="ab" * 32)
    ds = pydicom.dcmread(out, stop_before_pixels=True)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.get("LossyImageCompression") == lossy
    method = ds.get("LossyImageCompressionMethod")
    assert ([method] if isinstance(method, str) else method and list(method)) == methods
