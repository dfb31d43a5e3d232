"""CT, MRI and X-ray images from DICOM files, in physical units and windowed to [0, 1].

- Rescale: a DICOM file stores integers; ``value = stored * RescaleSlope + RescaleIntercept``
  gives the physical value (Hounsfield units for CT: air -1000, water 0, bone +300 and up).
  Without the two tags (most MR and X-ray) the stored values are kept, as float32: 12- and
  16-bit data keep their full precision, nothing is quantised to 8 bits. (RT dose grids are
  stored values too: DoseGridScaling is not applied.)
- Windows: a display window maps the value ``center - width/2 ... center + width/2`` linearly
  onto [0, 1] (the DICOM linear VOI function, `window`). CT has standard windows in HU
  (`WINDOWS`); MR and X-ray values have no fixed scale, so they are windowed between
  percentiles of the image itself (`percentile_window`). `to_unit_range` picks one.
- MONOCHROME1 (common for X-ray: CR, DX) shows its smallest value as white. `read_dicom` inverts
  it so that larger values are brighter, like MONOCHROME2, over the stored range in physical
  units: ``lo + hi - value``, where lo and hi are the smallest and largest values the stored
  bits can hold (BitsStored, PixelRepresentation) after the rescale. The result stays in the
  same range and does not depend on the image's content.
- Colour (RGB, YBR, e.g. ultrasound) is refused: only grayscale is supported, except a colour
  image whose three channels are identical after pydicom's conversion to RGB (grey stored as
  colour, common in ultrasound), which is read as that one channel. PALETTE COLOR is refused.

Every failure is a `DicomError` (a `medgan_nb.data.ImageLoadError`) whose message names the
file: not a DICOM file, truncated or corrupt (this includes an image SOP class without pixel
data, since pydicom reads a file cut in its header without complaint), no pixel data
(`NoPixelDataError`: structured reports, DICOMDIR, RT plans, segmentations without pixels),
colour, float pixel data (FloatPixelData, DoubleFloatPixelData: an enhanced image could not be
written back in their type), a RescaleSlope or RescaleIntercept that is not one finite number
(or a slope of 0), or a compressed transfer syntax whose decoder is not installed (the message
says which one and what to ``pip install``).

Size limits (`DicomTooLargeError`), checked on the header before any pixel is decoded, so that a
small file cannot claim gigabytes: Rows x Columns x NumberOfFrames x SamplesPerPixel may not
exceed Pillow's pixel limit, ``PIL.Image.MAX_IMAGE_PIXELS`` (89.5 million by default; refused
above 1x, as `medgan_nb.data.decode_image` refuses images; raise it, or set it to None, to read
larger files), and the file (inflated, for the deflated transfer syntax) may hold at most its
pixels' bytes plus `MAX_OTHER_BYTES` for everything else. A deflated file is inflated only as
far as its header before that check (pydicom would inflate it whole).

Not supported: enhanced multi-frame files with a rescale per frame (refused) or positions per
frame (only the top-level tags and the shared functional groups are read), and the Modality LUT
Sequence (refused).

Writing an enhanced image back as a derived DICOM file is `medgan_nb.data.dicom_write`.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np
import pydicom
import pydicom.misc
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_dataset, read_partial, read_preamble
from pydicom.uid import UID

from ..utils.images import WINDOWS, percentile_window, window
from .decode import IMAGE_EXTENSIONS, ImageLoadError, files_under

log = logging.getLogger(__name__)
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_PIXEL_TAGS = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData"}
_PREAMBLE = 128      # the 'DICM' marker follows a 128-byte preamble (DICOM PS3.10, 7.1)
MAX_OTHER_BYTES = 64 * 2**20     # what a file may hold besides its pixels (header, overlays, padding), in bytes
_DEFER = 2**20       # header values larger than this stay in the file until they are used
_CHUNK = 2**20       # inflated at a time


class DicomError(ImageLoadError):
    """A DICOM file that cannot be used; the message names the file and the reason."""


class NoPixelDataError(DicomError):
    """A DICOM file without an image (structured report, DICOMDIR, RT structure set, ...)."""


class DicomTooLargeError(DicomError):
    """A DICOM file declaring more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``, or holding far more data than its
    pixels need (see the module); refused before its pixel data is read."""


@dataclass
class DicomImage:
    """One DICOM file's image(s).

    slices: float32 (n_slices, H, W) in physical units (HU for CT); n_slices > 1 for multi-frame files.
    pixel_spacing: (row, col) spacing in mm from PixelSpacing, else ImagerPixelSpacing (X-ray: at
    the detector), else None. photometric: as stored (MONOCHROME1 has already been inverted).
    position: ImagePositionPatient (x, y, z) in mm, orientation: ImageOrientationPatient (6 values),
    either None when absent. dataset: the pydicom header, with the pixel data removed (`slices`
    holds it), so that a series in memory costs its pixels once.
    """
    slices: np.ndarray
    modality: str
    pixel_spacing: tuple[float, float] | None
    photometric: str
    bits_stored: int
    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    dataset: Dataset
    position: tuple[float, float, float] | None = None
    orientation: tuple[float, ...] | None = None
    instance_number: int | None = None


# ------------------------------------------------------------------ files
def is_dicom(path: str | Path) -> bool:
    """Whether a file carries the 'DICM' marker at byte 128 (the DICOM file format; extensions vary)."""
    try:
        return pydicom.misc.is_dicom(path)
    except OSError:
        return False


def list_dicom(folder: str | Path) -> list[Path]:
    """DICOM files under `folder`, recursively (symbolic links to folders followed, see `files_under`), found by
    content (not extension), sorted by relative path."""
    return files_by_kind(folder)[1]


def unreadable_files(folder: str | Path) -> list[Path]:
    """The files under `folder` (as `files_under`) that are neither images by extension (`IMAGE_EXTENSIONS`) nor
    DICOM by content: what a run over the folder ignores (PDF, SVG, HEIC, notes, ...), for the caller to report."""
    return files_by_kind(folder)[2]


def files_by_kind(folder: str | Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(images by extension, DICOM files by content, the rest) under `folder`, each sorted by relative path: one
    walk (`files_under`) that reads each file's DICOM marker once. A DICOM file named like an image is DICOM."""
    images, dicom, rest = [], [], []
    for p in files_under(folder):
        (dicom if is_dicom(p) else images if p.suffix.lower() in IMAGE_EXTENSIONS else rest).append(p)
    return images, dicom, rest


def read_dicom(path: str | Path) -> DicomImage:
    """Read one DICOM file: its slices in physical units, grayscale, MONOCHROME1 inverted (see the module)."""
    path = Path(path)
    ds = _parse(path)
    if not any(k in ds for k in PIXEL_KEYWORDS):
        sop = ds.get("SOPClassUID") or getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID", "")
        kind = UID(str(sop)).name or "unknown SOP class"
        if "Image Storage" in kind or "Rows" in ds:        # an image without its pixels: damaged, not a report
            raise DicomError(f"{path}: no pixel data although it is an image ({kind}): the file may be "
                             "truncated or corrupt, or was saved without its pixels")
        raise NoPixelDataError(f"{path}: DICOM file without pixel data ({kind}, modality "
                               f"{ds.get('Modality', '?')}): nothing to read as an image")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if "ModalityLUTSequence" in ds:
        raise DicomError(f"{path}: the Modality LUT Sequence is not supported (only RescaleSlope/Intercept)")
    stored = _grayscale(_decode(path, ds), ds, photometric, path)
    slope, intercept = rescale_of(ds, path)
    bits = _integer(ds, path, "BitsStored") or 8 * stored.dtype.itemsize
    values = stored.astype(np.float64) * slope + intercept
    if photometric == "MONOCHROME1":
        lo, hi = _physical_range(ds, stored, slope, intercept)
        values = lo + hi - values
    return _image(path, ds, values.astype(np.float32), photometric, bits)


def read_series(folder: str | Path) -> dict[str, list[DicomImage]]:
    """The DICOM images under `folder` grouped by SeriesInstanceUID, each series sorted (see `sort_slices`).

    Files without pixel data (DICOMDIR, reports) are skipped with a log line; any other bad file raises.
    Series are ordered by their first file's path.
    """
    series: dict[str, list[DicomImage]] = {}
    for path in list_dicom(folder):
        try:
            image = read_dicom(path)
        except NoPixelDataError as e:
            log.info("skipped: %s", e)
            continue
        series.setdefault(image.series_instance_uid, []).append(image)
    return {uid: sort_slices(images) for uid, images in series.items()}


def sort_slices(images: list[DicomImage]) -> list[DicomImage]:
    """Slices in anatomical order: by position along the slice normal (ascending) when all share one
    orientation and have a position, else by InstanceNumber when all have one, else by path."""
    by_path = sorted(images, key=lambda im: im.path.as_posix())
    if all(im.position and im.orientation for im in by_path):
        first = np.asarray(by_path[0].orientation, dtype=np.float64)
        if all(np.allclose(im.orientation, first, atol=1e-4) for im in by_path):
            normal = np.cross(first[:3], first[3:])
            return sorted(by_path, key=lambda im: float(np.dot(im.position, normal)))
    if all(im.instance_number is not None for im in by_path):
        return sorted(by_path, key=lambda im: im.instance_number)
    return by_path


# ----------------------------------------------------------------- decoding
def read_header(path: str | Path) -> Dataset:
    """One DICOM file's header, without its pixel data (cheap: to check many files before reading any image);
    `DicomError` as `read_dicom`'s parsing step, including its checks of the header (`_check_header`), so that a
    file `read_dicom` would refuse for its size, float pixels or rescale is refused here already."""
    return _parse(Path(path), stop_before_pixels=True)


def _parse(path: Path, stop_before_pixels: bool = False) -> Dataset:
    """The parsed file, or only its header up to the pixel data; the header is read and checked first
    (`_check_header`), and the file's size (`_check_stored`) before pydicom reads it whole. `DicomError` when it is
    missing, not DICOM, cannot be parsed or cannot be used, `DicomTooLargeError` when it is too large."""
    if not path.is_file():
        raise DicomError(f"{path}: no such file")
    if not is_dicom(path):
        raise DicomError(f"{path}: not a DICOM file (no 'DICM' marker at byte {_PREAMBLE})")
    try:
        header, pixels, deflated_at = _read_header(path)
        _check_header(path, header, pixels)
        if stop_before_pixels or pixels is None:
            return header
        _check_stored(path, header, deflated_at)
        return pydicom.dcmread(path)
    except DicomError:
        raise
    except Exception as e:                    # pydicom raises many types on damaged files
        raise DicomError(f"{path}: cannot parse the DICOM file, it may be truncated or corrupt "
                         f"({type(e).__name__}: {e})") from e


def _read_header(path: Path) -> tuple[Dataset, str | None, int | None]:
    """(the data set up to its pixel data, the keyword of its pixel data element or None when it has none, the
    offset of the deflated data set or None when it is not deflated).

    Reads no more than the header: values over `_DEFER` bytes stay in the file until used, and a deflated file
    (Deflated Explicit VR Little Endian, which pydicom inflates whole) is inflated only as far as its pixel data.
    """
    found: list[str] = []

    def at_pixels(tag: int, vr: str | None, length: int) -> bool:
        if tag in _PIXEL_TAGS:
            found.append(_PIXEL_TAGS[tag])
        return bool(found)

    with open(path, "rb") as f:
        read_preamble(f, False)
        meta = read_dataset(f, False, True, stop_when=lambda tag, vr, length: tag.group != 2)
        if meta.get("TransferSyntaxUID") != pydicom.uid.DeflatedExplicitVRLittleEndian:
            f.seek(0)
            return read_partial(f, at_pixels, defer_size=_DEFER), (found or [None])[0], None
        start = f.tell()
        ds = read_dataset(_Inflated(f, path), False, True, stop_when=at_pixels)
    ds.file_meta = FileMetaDataset(meta)
    return ds, (found or [None])[0], start


def _inflate(f: BinaryIO) -> Iterator[bytes]:
    """The bytes inflated from the raw deflate stream (RFC 1951, as DICOM stores it) that `f` holds from its
    position on, at most `_CHUNK` at a time, so that memory stays bounded whatever the ratio."""
    z = zlib.decompressobj(-zlib.MAX_WBITS)
    while not z.eof:
        data = z.unconsumed_tail or f.read(_CHUNK)
        if not data:
            return
        yield z.decompress(data, _CHUNK)


class _Inflated:
    """A deflated data set as a file `pydicom.filereader.read_dataset` can read: inflated only as far as it is
    read, and never beyond `MAX_OTHER_BYTES` (`DicomTooLargeError`), since only a header is read this way."""

    def __init__(self, f: BinaryIO, path: Path):
        self._chunks, self._data, self._pos, self._path = _inflate(f), bytearray(), 0, path

    def read(self, size: int | None = -1) -> bytes:
        end = None if size is None or size < 0 else self._pos + size
        while end is None or len(self._data) < end:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._data += chunk
            if len(self._data) > MAX_OTHER_BYTES:
                raise DicomTooLargeError(f"{self._path}: too large: its header inflates to more than "
                                         f"{MAX_OTHER_BYTES:,} bytes, the limit for all but the pixel data")
        out = bytes(self._data[self._pos:end])
        self._pos += len(out)
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = offset + (self._pos if whence == 1 else 0)
        return self._pos

    def tell(self) -> int:
        return self._pos


def _check_header(path: Path, ds: Dataset, pixels: str | None) -> None:
    """Refuse, before any pixel is read, a header declaring pixels that cannot be used: more of them than
    ``PIL.Image.MAX_IMAGE_PIXELS`` (`DicomTooLargeError`), float pixel data, or an unusable rescale."""
    if pixels is None:
        return
    if pixels != "PixelData":
        raise DicomError(f"{path}: float pixel data ({pixels}) is not supported: the enhanced image could not be "
                         "written back in its type; store the image as integers with a RescaleSlope/Intercept")
    rows, cols, frames, samples = _declared(ds, path)
    limit = Image.MAX_IMAGE_PIXELS
    if limit and rows * cols * frames * samples > limit:
        raise DicomTooLargeError(
            f"{path}: too large: {rows}×{cols} pixels × {frames} frame(s) × {samples} samples per pixel = "
            f"{rows * cols * frames * samples:,} values, more than the limit of {limit:,} (PIL.Image.MAX_IMAGE_PIXELS; "
            "raise it to read larger files)")
    rescale_of(ds, path)


def _check_stored(path: Path, ds: Dataset, deflated_at: int | None) -> None:
    """`DicomTooLargeError` when the file holds more than its declared pixels' bytes plus `MAX_OTHER_BYTES`:
    its size on disk, or for a deflated file its inflated size, counted without keeping the bytes."""
    pixel_bytes = math.prod(_declared(ds, path)) * -(-_integer(ds, path, "BitsAllocated", 64) // 8)
    limit = pixel_bytes + MAX_OTHER_BYTES
    if deflated_at is None:
        size = path.stat().st_size
    else:
        size = 0
        with open(path, "rb") as f:
            f.seek(deflated_at)
            for chunk in _inflate(f):
                size += len(chunk)
                if size > limit:
                    break
    if size > limit:
        raise DicomTooLargeError(f"{path}: too large: it holds {'more than ' * (deflated_at is not None)}{size:,} "
                                 f"bytes{' inflated' * (deflated_at is not None)}, more than its {pixel_bytes:,} bytes "
                                 f"of pixels plus {MAX_OTHER_BYTES:,} for the rest of the file")


def _declared(ds: Dataset, path: Path) -> tuple[int, int, int, int]:
    """(Rows, Columns, NumberOfFrames, SamplesPerPixel) as the header declares them, 1 for each one absent."""
    return tuple(_integer(ds, path, k, 1) for k in ("Rows", "Columns", "NumberOfFrames", "SamplesPerPixel"))


def _integer(ds: Dataset, path: Path, keyword: str, default: int | None = None) -> int | None:
    """A tag's value as a whole number >= 0, `default` when absent; `DicomError` naming the file and the tag when
    it is not one."""
    try:
        value = ds.get(keyword)
        number = default if value in (None, "") else int(value)
    except (TypeError, ValueError) as e:
        raise DicomError(f"{path}: {keyword} is not a whole number ({e}); the file may be corrupt") from None
    if number is not None and number < 0:
        raise DicomError(f"{path}: {keyword} {number} is negative; the file may be corrupt")
    return number


def _install_hint(ts: UID) -> str:
    """What to install to decode a compressed transfer syntax."""
    if ts in pydicom.uid.JPEG2000TransferSyntaxes:      # JPEG 2000 and HTJ2K
        return "pip install pylibjpeg pylibjpeg-openjpeg (or python-gdcm)"
    if ts in pydicom.uid.JPEGLSTransferSyntaxes:
        return "pip install pylibjpeg pylibjpeg-libjpeg (or pyjpegls, or python-gdcm)"
    if ts in pydicom.uid.JPEGTransferSyntaxes:
        return "pip install pylibjpeg pylibjpeg-libjpeg (or python-gdcm)"
    return "pip install python-gdcm"


def _decode(path: Path, ds: Dataset) -> np.ndarray:
    """Stored values as pydicom decodes them (YBR converted to RGB); errors name the file and the fix."""
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", pydicom.uid.ExplicitVRLittleEndian)))
    try:
        return np.asarray(ds.pixel_array)
    except Exception as e:
        msg = str(e)
        if ts.is_compressed and ("plugin" in msg or "missing dependencies" in msg or "support" in msg):
            raise DicomError(f"{path}: cannot decode '{ts.name}' ({ts}) pixel data: no installed decoder "
                             f"handles it; {_install_hint(ts)} (if one is installed, the data may be damaged). "
                             f"pydicom said: {msg}") from e
        raise DicomError(f"{path}: cannot decode the pixel data, the file may be truncated or corrupt "
                         f"({type(e).__name__}: {msg})") from e


def _grayscale(arr: np.ndarray, ds: Dataset, photometric: str, path: Path) -> np.ndarray:
    """(n, H, W) stored values; colour is refused unless its three channels are identical."""
    frames = _integer(ds, path, "NumberOfFrames", 1) or 1
    if photometric == "PALETTE COLOR":
        raise DicomError(f"{path}: colour image (PALETTE COLOR): only grayscale is supported")
    if _integer(ds, path, "SamplesPerPixel", 1) > 1:
        if arr.ndim < 3 or arr.shape[-1] != 3 or not (np.array_equal(arr[..., 0], arr[..., 1])
                                                       and np.array_equal(arr[..., 0], arr[..., 2])):
            raise DicomError(f"{path}: colour image ({photometric}): only grayscale is supported")
        arr = arr[..., 0]
    if arr.ndim < 2 or arr.size != frames * arr.shape[-2] * arr.shape[-1]:
        raise DicomError(f"{path}: the pixel data ({arr.shape}) does not hold the {frames} frame(s) the header "
                         "declares; the file may be truncated or corrupt")
    return arr.reshape(frames, *arr.shape[-2:])


def _functional(ds: Dataset, sequence: str, keyword: str) -> Any:
    """A tag from the top level, else from the shared functional groups (enhanced multi-frame files)."""
    if keyword in ds:
        return ds.get(keyword)
    for group in ds.get("SharedFunctionalGroupsSequence", []):
        for item in group.get(sequence, []):
            if keyword in item:
                return item.get(keyword)
    return None


def kind_problem(ds: Dataset) -> str | None:
    """Why a DICOM image of a modality the models know is still not what they were trained on, or None.

    CT: a localizer (scout view: ImageType value 3 LOCALIZER), or values that are not Hounsfield units
    (RescaleType other than HU, e.g. the "US" of a perfusion map in ml/100ml/s). X-ray (CR, DX): raw detector
    data (PresentationIntentType FOR PROCESSING; the models learnt from display images). MR: none known.
    """
    modality = str(ds.get("Modality", ""))
    kind = [str(v).strip().upper() for v in (ds.get("ImageType") or [])]
    if modality == "CT":
        if len(kind) > 2 and kind[2] == "LOCALIZER":
            return "a CT localizer (scout view), not a cross-sectional image"
        units = _functional(ds, "PixelValueTransformationSequence", "RescaleType")
        if units not in (None, "") and str(units).strip().upper() != "HU":
            return (f"its values are not Hounsfield units (RescaleType {str(units).strip()!r}; ImageType "
                    f"{'/'.join(kind)})")
    if modality in ("CR", "DX") and str(ds.get("PresentationIntentType", "")).upper() == "FOR PROCESSING":
        return "raw detector data (PresentationIntentType FOR PROCESSING), not an image for display"
    return None


def rescale_of(ds: Dataset, path: Path) -> tuple[float, float]:
    """(slope, intercept) of the modality rescale; (1, 0) when absent. A rescale given only frame by
    frame is refused rather than ignored (ignoring it would give wrong HU without a word), and so is a value
    that is not one finite number, or a slope of 0 (`DicomError` naming the file and the tag)."""
    slope, intercept = (_rescale_value(ds, path, k) for k in ("RescaleSlope", "RescaleIntercept"))
    if slope is None and any("PixelValueTransformationSequence" in frame
                             for frame in ds.get("PerFrameFunctionalGroupsSequence", [])):
        raise DicomError(f"{path}: a rescale per frame (PerFrameFunctionalGroupsSequence) is not supported yet")
    return (1.0 if slope is None else slope), (0.0 if intercept is None else intercept)


def _rescale_value(ds: Dataset, path: Path, keyword: str) -> float | None:
    """RescaleSlope or RescaleIntercept (top level or shared functional groups) as a finite float, None when
    absent; `DicomError` naming the file and the tag when it is text, several values, NaN, infinite or a 0 slope."""
    try:
        value = _functional(ds, "PixelValueTransformationSequence", keyword)
        number = None if value in (None, "") else float(value)
    except (TypeError, ValueError) as e:
        raise DicomError(f"{path}: {keyword} is not one number ({e}); the file may be corrupt") from None
    if number is not None and (not math.isfinite(number) or (keyword == "RescaleSlope" and number == 0)):
        raise DicomError(f"{path}: {keyword} {value} cannot be used: it must be a finite number"
                         f"{' other than 0' if keyword == 'RescaleSlope' else ''}; the file may be corrupt")
    return number


def _physical_range(ds: Dataset, stored: np.ndarray, slope: float, intercept: float) -> tuple[float, float]:
    """Smallest and largest physical value the stored bits can hold (the data's own for float pixels)."""
    bits = ds.get("BitsStored")
    if bits is None or stored.dtype.kind == "f":
        return float(stored.min()) * slope + intercept, float(stored.max()) * slope + intercept
    bits = int(bits)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if ds.get("PixelRepresentation", 0) == 1 else (0, 2**bits - 1)
    ends = sorted((lo * slope + intercept, hi * slope + intercept))
    return ends[0], ends[1]


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    """A multi-valued tag as n floats, or None when absent or malformed."""
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _image(path: Path, ds: Dataset, slices: np.ndarray, photometric: str, bits: int) -> DicomImage:
    """The `DicomImage` of a decoded file; the header keeps no pixel data."""
    spacing = _floats(_functional(ds, "PixelMeasuresSequence", "PixelSpacing"), 2)
    spacing = spacing or _floats(ds.get("ImagerPixelSpacing"), 2)
    for keyword in PIXEL_KEYWORDS:
        if keyword in ds:
            del ds[keyword]
    try:
        number = _integer(ds, path, "InstanceNumber")
    except DicomError:                          # only used to sort a series: a malformed one sorts by path instead
        number = None
    return DicomImage(
        slices=np.ascontiguousarray(slices), modality=str(ds.get("Modality", "")), pixel_spacing=spacing,
        photometric=photometric, bits_stored=bits, path=path,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")), series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        dataset=ds, position=_floats(_functional(ds, "PlanePositionSequence", "ImagePositionPatient"), 3),
        orientation=_floats(_functional(ds, "PlaneOrientationSequence", "ImageOrientationPatient"), 6),
        instance_number=number)


_linear = window     # `to_unit_range`'s argument named `window` shadows the function


def to_unit_range(image: DicomImage, window: str | tuple[float, float] = "auto") -> np.ndarray:
    """(n, H, W) float32 in [0, 1]: "auto" (soft_tissue for CT, percentiles otherwise), "percentile",
    a name in `WINDOWS` (HU), or a (center, width) tuple in the image's physical units."""
    if isinstance(window, str):
        if window == "auto":
            window = "soft_tissue" if image.modality == "CT" else "percentile"
        if window == "percentile":
            return percentile_window(image.slices)
        if window not in WINDOWS:
            raise ValueError(f"unknown window {window!r}: use 'auto', 'percentile', one of {sorted(WINDOWS)} "
                             "or a (center, width) tuple")
        window = WINDOWS[window]
    center, width = window
    return _linear(image.slices, center, width)

