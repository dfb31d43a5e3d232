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


# ------------------------------------------------------------------ validation (dciodvfy) and derivation
# Every modality the presets write (their sample scans), enhanced multi-frame CT and MR, a MONOCHROME1 CR and
# lossy sources. Not bad_sequence.dcm (ct_neck): its SOPInstanceUID is not a valid UID, and the derived file
# must reference its source as it is, so the reference repeats the source's error.
VALIDATED = ["693_UNCR.dcm", "J2K_pixelrep_mismatch.dcm", "explicit_VR-UN.dcm", "CT_small.dcm", "MR2_UNCI.dcm",
             "emri_small.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "RG1_UNCI.dcm", "RG3_UNCI.dcm",
             "eCT_Supplemental.dcm", "emri_small_jpeg_2k_lossless.dcm", "693_J2KI.dcm", "JPEGLSNearLossless_16.dcm",
             "MR_small_bigendian.dcm", "rtdose.dcm", str(CR_MONOCHROME1)]


def dciodvfy_errors(path: Path) -> list[str]:
    """The error lines dciodvfy (dicom3tools) prints for a file; skips (or fails where MEDGAN_REQUIRE_DCIODVFY=1,
    as in CI) when dciodvfy is not installed."""
    import os
    import shutil
    import subprocess
    if shutil.which("dciodvfy") is None:
        if os.environ.get("MEDGAN_REQUIRE_DCIODVFY") == "1":
            pytest.fail("dciodvfy is required (MEDGAN_REQUIRE_DCIODVFY=1): apt-get install dicom3tools")
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools)")
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in result.stderr.splitlines() if line.startswith("Error")]


@pytest.mark.parametrize("name", VALIDATED, ids=lambda n: Path(n).name)
def test_a_derived_file_adds_no_dciodvfy_error_to_its_source(tmp_path, name):
    source = Path(name) if Path(name).is_absolute() else Path(get_testdata_file(name, download=False))
    image = read_dicom(source)
    out = write_derived(image, image.slices, tmp_path / "derived.dcm", weights_sha256=SHA, model_name="ct")
    before = dciodvfy_errors(source)
    assert not any("read failed" in e for e in before), before
    assert [e for e in dciodvfy_errors(out) if e not in before] == []


def code_of(item: Dataset) -> tuple[str, str, str]:
    return item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning


def test_the_derivation_is_coded_as_this_step_and_extends_the_chain_of_sources(tmp_path):
    from medgan_nb.data.dicom_write import DERIVATION_CODE, SOURCE_PURPOSE
    earlier, lossy = Dataset(), Dataset()
    earlier.ReferencedSOPClassUID, earlier.ReferencedSOPInstanceUID = CTImageStorage, generate_uid()
    lossy.CodeValue, lossy.CodingSchemeDesignator, lossy.CodeMeaning = "113040", "DCM", "Lossy Compression"
    path = synthetic(tmp_path / "src.dcm", np.arange(16, dtype=np.uint16).reshape(4, 4), 16,
                     SourceImageSequence=[earlier], DerivationCodeSequence=[lossy], ImageType=["DERIVED", "PRIMARY"])
    image = read_dicom(path)
    ds = pydicom.dcmread(write_derived(image, image.slices, tmp_path / "out.dcm", weights_sha256=SHA))
    assert [code_of(c) for c in ds.DerivationCodeSequence] == [DERIVATION_CODE]
    assert [s.ReferencedSOPInstanceUID for s in ds.SourceImageSequence] == [image.sop_instance_uid,
                                                                            earlier.ReferencedSOPInstanceUID]
    assert code_of(ds.SourceImageSequence[0].PurposeOfReferenceCodeSequence[0]) == SOURCE_PURPOSE


def test_an_enhanced_ct_is_derived_frame_by_frame_in_its_functional_groups(tmp_path):
    from medgan_nb.data.dicom_write import DERIVATION_CODE
    image = read_dicom(get_testdata_file("eCT_Supplemental.dcm"))
    ds = pydicom.dcmread(write_derived(image, image.slices, tmp_path / "e.dcm", weights_sha256=SHA))
    assert list(ds.ImageType[:2]) == ["DERIVED", "PRIMARY"]
    groups = [*ds.SharedFunctionalGroupsSequence, *ds.PerFrameFunctionalGroupsSequence]
    frame_types = [item.FrameType[0] for group in groups
                   for elem in group if elem.VR == "SQ" for item in elem.value if "FrameType" in item]
    assert frame_types and set(frame_types) == {"DERIVED"}
    derivation = ds.SharedFunctionalGroupsSequence[0].DerivationImageSequence[0]
    assert [code_of(c) for c in derivation.DerivationCodeSequence] == [DERIVATION_CODE]
    assert derivation.SourceImageSequence[0].ReferencedSOPInstanceUID == image.sop_instance_uid
    assert "AI-enhanced" in derivation.DerivationDescription and "SourceImageSequence" not in ds
    evidence = ds.SourceImageEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert evidence.ReferencedSOPInstanceUID == image.sop_instance_uid


def test_an_enhanced_mr_drops_what_only_original_images_may_carry(tmp_path):
    from medgan_nb.data.dicom_write import ORIGINAL_ONLY
    image = read_dicom(get_testdata_file("emri_small.dcm"))
    assert "PulseSequenceName" in image.dataset
    ds = pydicom.dcmread(write_derived(image, image.slices, tmp_path / "m.dcm", weights_sha256=SHA))
    assert ds.ImageType[0] == "DERIVED" and ds.ImageType[1] == image.dataset.ImageType[1]
    assert not [k for k in ORIGINAL_ONLY if k in ds]
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == image.sop_instance_uid   # no groups: top level
