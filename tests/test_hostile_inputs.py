"""Hostile inputs: tiny files that claim huge images, files far larger than their images, DICOM headers the
writer cannot honour, and folders holding files that are not images. Each must end in an `ImageLoadError`
(a `DicomError` for DICOM) that names the file and the cause, without a large allocation."""
import os
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import CTImageStorage, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid

from medgan_nb.data import ImageLoadError, decode_image, list_images
from medgan_nb.data.dicom import DicomError, DicomTooLargeError, list_dicom, read_dicom, read_header, unreadable_files
from medgan_nb.data.decode import IMAGE_EXTENSIONS, PIL_FORMATS

MB = 2**20


def header(rows: int, cols: int, frames: int = 1, **tags) -> Dataset:
    """A CT image's header, without pixel data."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID = CTImageStorage, generate_uid(), generate_uid()
    ds.Modality, ds.PhotometricInterpretation, ds.SamplesPerPixel = "CT", "MONOCHROME2", 1
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = rows, cols, 16, 16, 15, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def dicom_file(path: Path, ds: Dataset, pixel_bytes: int, deflated: bool = False,
               keyword: str = "PixelData") -> Path:
    """`ds` followed by a pixel data element of `pixel_bytes` zero bytes, written in chunks (deflated: as the
    DICOM deflated transfer syntax), so a file claiming a gigabyte costs neither memory nor time here."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian if deflated else ExplicitVRLittleEndian
    head, body = DicomBytesIO(), DicomBytesIO()
    for fp in (head, body):
        fp.is_little_endian, fp.is_implicit_VR = True, False
    write_file_meta_info(head, meta)
    write_dataset(body, ds)
    tag = {"PixelData": 0x7FE00010, "FloatPixelData": 0x7FE00008, "DoubleFloatPixelData": 0x7FE00009}[keyword]
    vr = {"PixelData": b"OW", "FloatPixelData": b"OF", "DoubleFloatPixelData": b"OD"}[keyword]
    element = struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr, 0, pixel_bytes)
    z = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    pack = z.compress if deflated else (lambda b: b)
    with open(path, "wb") as f:
        f.write(bytes(128) + b"DICM" + head.getvalue())
        f.write(pack(body.getvalue() + element))
        zeros = bytes(MB)
        for _ in range(pixel_bytes // MB):
            f.write(pack(zeros))
        f.write(pack(bytes(pixel_bytes % MB)))
        if deflated:
            f.write(z.flush())
    return path


def peak_bytes(call) -> tuple[BaseException | None, int]:
    """(what `call()` raised, or None; the peak of Python's allocations during it)."""
    tracemalloc.start()
    try:
        call()
        raised = None
    except BaseException as e:          # noqa: BLE001 (returned to the test)
        raised = e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return raised, peak


# -------------------------------------------------- 1. DICOM pixel bombs
@pytest.mark.parametrize("read", [read_dicom, read_header])
@pytest.mark.parametrize("deflated", [False, True])
def test_dicom_claiming_too_many_pixels_is_refused_before_decoding(tmp_path, read, deflated):
    path = dicom_file(tmp_path / "bomb.dcm", header(24_000, 24_000), 16, deflated)
    with pytest.raises(DicomError) as caught:
        read(path)
    message = str(caught.value)
    assert isinstance(caught.value, DicomTooLargeError) and isinstance(caught.value, ImageLoadError)
    assert str(path) in message and "too large" in message and f"{Image.MAX_IMAGE_PIXELS:,}" in message
    assert "truncated or corrupt" not in message


def test_frames_and_samples_count_towards_the_pixel_limit(tmp_path):
    rows = 4096                              # 4096 x 4096 x 6 frames = 100.7 million > 89.5 million
    path = dicom_file(tmp_path / "frames.dcm", header(rows, rows, frames=6), 16)
    with pytest.raises(DicomTooLargeError, match="6 frame"):
        read_header(path)
    path = dicom_file(tmp_path / "rgb.dcm", header(rows, rows * 2, SamplesPerPixel=3, PlanarConfiguration=0,
                                                   PhotometricInterpretation="RGB"), 16)
    with pytest.raises(DicomTooLargeError, match="3 samples"):
        read_header(path)


def test_a_deflated_bomb_is_refused_without_inflating_it(tmp_path):
    """10,000 x 10,000 16-bit zeros: 200 MB inflated from a 0.9 MB file; the header says what is coming."""
    path = dicom_file(tmp_path / "bomb.dcm", header(10_000, 10_000), 200_000_000, deflated=True)
    assert path.stat().st_size < 2 * MB
    for read in (read_header, read_dicom):
        raised, peak = peak_bytes(lambda: read(path))
        assert isinstance(raised, DicomTooLargeError) and str(path) in str(raised), raised
        assert peak < 100 * MB, f"{read.__name__} allocated {peak / MB:.0f} MB"


def test_a_deflated_file_holding_far_more_than_its_pixels_is_refused(tmp_path):
    """A 100 x 100 image whose pixel element holds 200 MB (inflated from under 1 MB)."""
    path = dicom_file(tmp_path / "padded.dcm", header(100, 100), 200_000_000, deflated=True)
    raised, peak = peak_bytes(lambda: read_dicom(path))
    assert isinstance(raised, DicomTooLargeError), raised
    assert str(path) in str(raised) and "too large" in str(raised)
    assert peak < 100 * MB, f"read_dicom allocated {peak / MB:.0f} MB"


def test_a_sparse_dicom_file_far_larger_than_its_pixels_is_refused(tmp_path):
    path = dicom_file(tmp_path / "sparse.dcm", header(64, 64), 64 * 64 * 2)
    with open(path, "r+b") as f:
        f.truncate(10 * 2**30)               # costs no disk: a sparse file
    raised, peak = peak_bytes(lambda: read_dicom(path))
    assert isinstance(raised, DicomTooLargeError) and str(path) in str(raised), raised
    assert peak < 100 * MB


def test_honest_deflated_and_plain_files_still_read(tmp_path):
    for deflated in (False, True):
        path = dicom_file(tmp_path / f"ok{deflated}.dcm", header(64, 48, frames=2), 64 * 48 * 2 * 2, deflated)
        assert read_header(path).Rows == 64
        image = read_dicom(path)
        assert image.slices.shape == (2, 64, 48) and not image.slices.any()


# ------------------------------------------------------ 2. image bombs
def test_a_sparse_ten_gigabyte_png_is_refused_quickly_without_reading_it(tmp_path):
    path = tmp_path / "huge.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(path)
    with open(path, "r+b") as f:
        f.truncate(10 * 2**30)
    raised, peak = peak_bytes(lambda: decode_image(path))
    assert isinstance(raised, ImageLoadError), raised
    assert str(path) in str(raised) and "too large" in str(raised)
    assert peak < 100 * MB, f"decode_image allocated {peak / MB:.0f} MB"


def test_the_sha256_is_still_that_of_the_file(tmp_path):
    import hashlib
    path = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 30, 3), np.uint8)).save(path)
    assert decode_image(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------ 3. DICOM the writer cannot honour
def with_bytes_replaced(path: Path, old: bytes, new: bytes) -> Path:
    data = path.read_bytes()
    assert data.count(old) == 1 and len(old) == len(new)
    path.write_bytes(data.replace(old, new))
    return path


def float_pixels(tmp_path, keyword):
    ds = header(16, 16)
    del ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    ds.BitsAllocated = 32 if keyword == "FloatPixelData" else 64
    return dicom_file(tmp_path / f"{keyword}.dcm", ds, 16 * 16 * ds.BitsAllocated // 8, keyword=keyword)


UNHONOURED = {
    "FloatPixelData": lambda tmp: float_pixels(tmp, "FloatPixelData"),
    "DoubleFloatPixelData": lambda tmp: float_pixels(tmp, "DoubleFloatPixelData"),
    "RescaleSlope": lambda tmp: with_bytes_replaced(
        dicom_file(tmp / "text.dcm", header(16, 16, RescaleSlope="7.25", RescaleIntercept=0), 512), b"7.25", b"abc "),
    "RescaleIntercept": lambda tmp: dicom_file(tmp / "nan.dcm", header(16, 16, RescaleSlope=1, RescaleIntercept="NaN"),
                                                 512),
    "RescaleSlope ": lambda tmp: dicom_file(tmp / "zero.dcm", header(16, 16, RescaleSlope=0, RescaleIntercept=0), 512),
}


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
@pytest.mark.parametrize("tag", UNHONOURED)
@pytest.mark.parametrize("read", [read_header, read_dicom])
def test_dicom_the_writer_cannot_honour_is_a_dicom_error_naming_file_and_tag(tmp_path, tag, read):
    path = UNHONOURED[tag](tmp_path)
    with pytest.raises(DicomError) as caught:
        read(path)
    assert str(path) in str(caught.value) and tag.strip() in str(caught.value)


# ---------------------------------------- 4. every error names the file
def bad_tag(tmp_path, name, **tags):
    return dicom_file(tmp_path / f"{name}.dcm", header(16, 16, **tags), 512)


MADE_BAD = {
    "frames": lambda tmp: with_bytes_replaced(bad_tag(tmp, "frames", NumberOfFrames=4), b"4 ", b"q "),
    "multi-slope": lambda tmp: bad_tag(tmp, "multi-slope", RescaleSlope=[1, 2], RescaleIntercept=0),
    "bits-stored": lambda tmp: with_bytes_replaced(bad_tag(tmp, "bits-stored", BitsStored=16,
                                                           PhotometricInterpretation="MONOCHROME1"),
                                                   struct.pack("<HH2sHH", 0x28, 0x101, b"US", 2, 16),
                                                   struct.pack("<HH2sHH", 0x28, 0x101, b"US", 2, 0)),
    "missing-pixels": lambda tmp: bad_tag(tmp, "missing-pixels"),
}


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
@pytest.mark.parametrize("kind", MADE_BAD)
def test_every_dicom_error_names_the_file(tmp_path, kind):
    path = MADE_BAD[kind](tmp_path)
    if kind == "missing-pixels":
        path.write_bytes(path.read_bytes()[:-512 - 12])
    with pytest.raises(DicomError) as caught:
        read_dicom(path)
    assert path.name in str(caught.value)


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_a_malformed_instance_number_only_loses_the_sort_key(tmp_path):
    path = with_bytes_replaced(bad_tag(tmp_path, "instance-number", InstanceNumber=4321), b"4321", b"x32y")
    image = read_dicom(path)
    assert image.instance_number is None and image.slices.shape == (1, 16, 16)


# ----------------------------------------- 5. what a folder walk counts
def test_every_extension_pillow_registers_for_a_read_format_is_listed():
    registered = {e for e, f in Image.registered_extensions().items() if f in PIL_FORMATS}
    assert registered <= set(IMAGE_EXTENSIONS)
    assert {".gif", ".webp", ".jpe", ".jfif"} <= set(IMAGE_EXTENSIONS)


@pytest.mark.parametrize("ext, fmt", [(".gif", "GIF"), (".webp", "WEBP"), (".jpe", "JPEG"), (".jfif", "JPEG")])
def test_gif_webp_jpe_jfif_decode(tmp_path, ext, fmt):
    a = np.random.default_rng(1).integers(0, 256, (24, 32, 3), np.uint8)
    path = tmp_path / f"x{ext}"
    Image.fromarray(a).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    assert list_images(tmp_path) == [path]
    out = decode_image(path).rgb()
    assert out.shape == (24, 32, 3) and out.max() > out.min()
    if fmt == "WEBP":
        np.testing.assert_allclose(out, a / 255, atol=1e-6)


def test_symlinked_folders_are_followed_once_and_others_are_counted(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(root / "sub" / "a.png")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(outside / "b.png")
    (outside / "c.pdf").write_bytes(b"%PDF-1.4\n")
    (root / "d.svg").write_text("<svg/>")
    (root / "e.heic").write_bytes(b"\0\0\0\x18ftypheic")
    dicom_file(root / "f.dcm", header(16, 16), 512)
    os.symlink(outside, root / "linked")
    os.symlink(root, root / "sub" / "loop")                     # a loop: must not be walked forever
    assert [p.relative_to(root).as_posix() for p in list_images(root)] == ["linked/b.png", "sub/a.png"]
    assert [p.relative_to(root).as_posix() for p in list_dicom(root)] == ["f.dcm"]
    ignored = [p.relative_to(root).as_posix() for p in unreadable_files(root)]
    assert ignored == ["d.svg", "e.heic", "linked/c.pdf"]


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_enhance_pre_check_skips_or_refuses_them_before_writing(tmp_path):
    from medgan_nb.inference.files import _check_dicom_inputs
    out = tmp_path / "out"
    bad = [dicom_file(tmp_path / "bomb.dcm", header(24_000, 24_000), 16, deflated=True),
           UNHONOURED["FloatPixelData"](tmp_path), UNHONOURED["RescaleSlope"](tmp_path)]
    good = dicom_file(tmp_path / "good.dcm", header(16, 16), 512)
    jobs = [(p, p.name, out / p.name) for p in [*bad, good]]
    assert _check_dicom_inputs(jobs, "ct", "skip") == jobs[-1:]
    with pytest.raises(DicomError, match="too large"):
        _check_dicom_inputs(jobs, "ct", "raise")
    assert not out.exists()
