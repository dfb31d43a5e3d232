"""Enhanced images written back as derived DICOM files that carry their source's header and name it.

`write_derived` saves an image restored from a `medgan_nb.data.dicom.DicomImage` (`enhance` calls it, through
`medgan_nb.inference.files`): the result is a new, derived instance of the source's SOP class,
uncompressed (Explicit VR Little Endian), with every header tag of the source kept (patient,
study, frame of reference, geometry, spacing, modality, rescale, bit depth, BurnedInAnnotation,
LossyImageCompression) except:
- A source decoded from a lossy (or possibly lossy) transfer syntax gets LossyImageCompression 01 and its
  method added (`LOSSY_SYNTAXES`), unless it says 00 itself: the uncompressed copy keeps that history.
- ImageType value 1 becomes DERIVED. A classic image (one frame per file, or a plain multi-frame) gets
  ``DERIVED\\SECONDARY`` followed by the source's values 3 and up (e.g. CT keeps AXIAL, which the CT Image IOD
  requires as value 3). An enhanced multi-frame image (`ENHANCED_CLASSES`: functional groups) keeps its value 2
  (PRIMARY is the only one these IODs allow), every FrameType of its functional groups becomes DERIVED too, and
  the attributes that these IODs allow only in ORIGINAL or MIXED images are dropped (`ORIGINAL_ONLY`: the MR
  Pulse Sequence and Bulk Motion Synchronization modules, as dciodvfy checks them). No private value is added.
- A new SOPInstanceUID (the file meta follows); the SeriesInstanceUID and SeriesNumber of a new derived
  series (`derived_series`: the source's number plus `SERIES_NUMBER_OFFSET`), shared by every file of one
  source series that one `enhance` call writes, so a series stays one series with its slices' order and geometry;
  InstanceCreationDate/Time of now, SeriesDescription marked "AI-enhanced".
- The derivation: a DerivationDescription naming medgan_nb and its version, the model and the weights' SHA-256
  (`derivation_text`); a DerivationCodeSequence of `DERIVATION_CODE` alone (a source's own codes describe how the
  source was made, not this step); and a SourceImageSequence that starts with the source instance, purpose
  `SOURCE_PURPOSE`, followed by the source's own items, so the chain of sources is extended, not replaced. A
  classic image carries them at the top level; an enhanced image in a Derivation Image functional group item
  (DerivationImageSequence), placed before the source's own items: in the per-frame groups, frame by frame,
  where the source keeps its derivations there, else in the shared group.
- Pixel data: ``stored = round((value - intercept) / slope)``, clipped (not wrapped) to what BitsStored
  and PixelRepresentation allow, in the source's BitsAllocated. A MONOCHROME1 source stays MONOCHROME1:
  `read_dicom`'s inversion is undone first, so the file displays like the source and reads back to the
  same values. Grey stored as colour (which `read_dicom` reads as one channel) is written as one
  MONOCHROME2 channel. Smallest/LargestImagePixelValue (no longer true) are dropped.

`tests/test_dicom_write.py` runs dciodvfy (dicom3tools) on sources and derived files of every modality the
presets write: a derived file adds no error to its source's. Not supported: the equipment tags are kept as they
were (they describe the acquisition); float pixel data is refused.
"""

from __future__ import annotations

import copy
import datetime
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (EnhancedCTImageStorage, EnhancedMRColorImageStorage, EnhancedMRImageStorage,
                         EnhancedPETImageStorage, EnhancedXAImageStorage, EnhancedXRFImageStorage,
                         ExplicitVRLittleEndian, LegacyConvertedEnhancedCTImageStorage,
                         LegacyConvertedEnhancedMRImageStorage, LegacyConvertedEnhancedPETImageStorage, generate_uid)

from .. import __version__
from ..utils.files import atomic_write, refuse_existing
from .dicom import DicomImage, rescale_of

AI_MARK = "AI-enhanced"
SERIES_NUMBER_OFFSET = 1000     # a derived series is numbered as its source plus this
# Transfer syntaxes that are or may be lossy -> their LossyImageCompressionMethod (PS3.3 C.7.6.1.1.5.1)
LOSSY_SYNTAXES = {"1.2.840.10008.1.2.4.50": "ISO_10918_1", "1.2.840.10008.1.2.4.51": "ISO_10918_1",
                  "1.2.840.10008.1.2.4.81": "ISO_14495_1", "1.2.840.10008.1.2.4.91": "ISO_15444_1",
                  "1.2.840.10008.1.2.4.93": "ISO_15444_2", "1.2.840.10008.1.2.4.203": "ISO_15444_15"}
SOURCE_PURPOSE = ("121322", "DCM", "Source image for image processing operation")   # CID 7202
# CID 7203 (Image Derivation, extensible) has no code for a restoration by a neural network; its nearest codes
# (Smoothing, Edge enhancement) each name half of what the model does, so the general DCM concept is used.
DERIVATION_CODE = ("110001", "DCM", "Image Processing")
# Multi-frame classes with functional groups, whose ImageType value 2 and FrameType follow other rules
ENHANCED_CLASSES = frozenset({EnhancedCTImageStorage, EnhancedMRImageStorage, EnhancedMRColorImageStorage,
                              EnhancedPETImageStorage, EnhancedXAImageStorage, EnhancedXRFImageStorage,
                              LegacyConvertedEnhancedCTImageStorage, LegacyConvertedEnhancedMRImageStorage,
                              LegacyConvertedEnhancedPETImageStorage})
# Type 1C "required if Image Type value 1 is ORIGINAL or MIXED", which dciodvfy refuses in a DERIVED image: the
# MR Pulse Sequence module and the Bulk Motion Synchronization module of the enhanced MR IODs
ORIGINAL_ONLY = ("PulseSequenceName", "MRAcquisitionType", "EchoPulseSequence", "MultipleSpinEcho",
                 "MultiPlanarExcitation", "PhaseContrast", "TimeOfFlightContrast", "SteadyStatePulseSequence",
                 "EchoPlanarPulseSequence", "SaturationRecovery", "SpectrallySelectedSuppression", "OversamplingPhase",
                 "GeometryOfKSpaceTraversal", "RectilinearPhaseEncodeReordering", "SegmentedKSpaceTraversal",
                 "CoverageOfKSpace", "NumberOfKSpaceTrajectories", "BulkMotionCompensationTechnique",
                 "BulkMotionSignalSource")
_STALE = ("LargestImagePixelValue", "SmallestImagePixelValue", "LargestPixelValueInSeries",
          "SmallestPixelValueInSeries", "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
          "PixelDataProviderURL", "DataSetTrailingPadding")       # no longer true of the new pixels


@dataclass(frozen=True)
class DerivedSeries:
    """The series a derived file joins: its SeriesInstanceUID and SeriesNumber (`derived_series`)."""
    uid: str
    number: int


def derived_series(image: DicomImage) -> DerivedSeries:
    """A new series for the derived files of `image`'s series: a new UID, and the source's SeriesNumber plus
    `SERIES_NUMBER_OFFSET` (the offset alone when the source has none), so a viewer lists it beside its source.
    Every file of one source series enhanced in one run must share it (`medgan_nb.inference.files` keeps one
    per source series and call)."""
    number = image.dataset.get("SeriesNumber")
    return DerivedSeries(generate_uid(), SERIES_NUMBER_OFFSET + (int(number) if number not in (None, "") else 0))


def write_derived(image: DicomImage, enhanced: np.ndarray, path: str | Path, *, weights_sha256: str,
                  model_name: str | None = None, description: str | None = None,
                  series: DerivedSeries | None = None, overwrite: bool = False) -> Path:
    """Write `enhanced` ((n, H, W), in the physical units of `image.slices`) as a new derived DICOM file.

    The header is the source's, marked as derived with new UIDs and provenance (see the module);
    `description` is free text appended to the DerivationDescription; `series`: the derived series the file joins
    (default: a new one of its own, `derived_series`). The file is encoded in memory
    first and written atomically, so a refusal (ValueError for shape, non-finite values, a bad
    SHA-256 or float pixel data; FileExistsError for an existing `path` without `overwrite`) leaves
    no file behind. Returns `path`.
    """
    path = Path(path)
    if not overwrite:
        refuse_existing([path])
    ds = derived_dataset(image, weights_sha256=weights_sha256, model_name=model_name, description=description,
                         series=series)
    _set_pixels(ds, _stored_values(image, enhanced, ds))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    with atomic_write(path) as f:
        f.write(buffer.getvalue())
    return path


def derived_dataset(image: DicomImage, *, weights_sha256: str, model_name: str | None = None,
                    description: str | None = None, series: DerivedSeries | None = None) -> Dataset:
    """A copy of the source header marked as a derived image (no pixel data yet), in `series` (default: a new
    one, `derived_series`); the source is untouched."""
    if not re.fullmatch(r"[0-9a-fA-F]{64}", weights_sha256 or ""):
        raise ValueError(f"weights_sha256 must be 64 hex digits (a SHA-256), got {weights_sha256!r}")
    ds = _plain_copy(image.dataset)
    for keyword in _STALE:
        if keyword in ds:
            del ds[keyword]
    enhanced = ds.get("SOPClassUID") in ENHANCED_CLASSES
    _mark_derived(ds, enhanced)
    _keep_lossy_history(ds, image.dataset)
    series = series or derived_series(image)
    ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.SeriesNumber = generate_uid(), series.uid, series.number
    now = datetime.datetime.now()
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SeriesDescription = _series_description(str(ds.get("SeriesDescription", "") or ""))
    earlier = str(ds.get("DerivationDescription", "") or "").strip()     # an already derived source keeps its history
    text = derivation_text(weights_sha256.lower(), model_name,
                           "; ".join(filter(None, [description, earlier and f"source: {earlier}"])))
    if enhanced and _functional_groups(ds):
        _add_frame_derivation(ds, image, text)
        ds.SourceImageEvidenceSequence = [_evidence_item(image), *ds.get("SourceImageEvidenceSequence", [])]
    else:                                               # a classic image, or an enhanced one without its groups
        ds.DerivationDescription = text
        ds.DerivationCodeSequence = [_code(DERIVATION_CODE)]
        ds.SourceImageSequence = [_source_reference(image), *ds.get("SourceImageSequence", [])]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _mark_derived(ds: Dataset, enhanced: bool) -> None:
    """ImageType value 1 DERIVED; a classic image's value 2 SECONDARY; an enhanced image's FrameTypes DERIVED and
    its `ORIGINAL_ONLY` attributes dropped (see the module)."""
    values = list(_values(ds.get("ImageType")))
    if not enhanced:
        ds.ImageType = ["DERIVED", "SECONDARY", *values[2:]]
        return
    ds.ImageType = ["DERIVED", *(values[1:] or ["PRIMARY"])]
    for keyword in ORIGINAL_ONLY:
        if keyword in ds:
            del ds[keyword]
    for group in _functional_groups(ds):
        for elem in group:
            for item in elem.value if elem.VR == "SQ" else ():
                if "FrameType" in item:                  # e.g. MRImageFrameTypeSequence, CTImageFrameTypeSequence
                    item.FrameType = ["DERIVED", *list(_values(item.FrameType))[1:]]


def _functional_groups(ds: Dataset) -> list[Dataset]:
    """The shared functional group item (if any) and every per-frame item of an enhanced image."""
    return [*ds.get("SharedFunctionalGroupsSequence", []), *ds.get("PerFrameFunctionalGroupsSequence", [])]


def _add_frame_derivation(ds: Dataset, image: DicomImage, text: str) -> None:
    """An enhanced image's derivation as a Derivation Image functional group item, before the source's own: per
    frame (each frame referencing the source's frame of the same number) where the source keeps its derivations
    per frame, else in the shared group (created if missing), referencing the whole source."""
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence", []))
    if per_frame and any("DerivationImageSequence" in item for item in per_frame):
        for number, item in enumerate(per_frame, 1):
            item.DerivationImageSequence = [_derivation_item(image, text, number),
                                            *item.get("DerivationImageSequence", [])]
        return
    if not ds.get("SharedFunctionalGroupsSequence"):
        ds.SharedFunctionalGroupsSequence = [Dataset()]   # per-frame groups without a shared item
    shared = ds.SharedFunctionalGroupsSequence[0]
    shared.DerivationImageSequence = [_derivation_item(image, text), *shared.get("DerivationImageSequence", [])]


def _evidence_item(image: DicomImage) -> Dataset:
    """A SourceImageEvidenceSequence item (enhanced IODs require one for each instance that a Derivation Image
    functional group references): the source's study, series and instance."""
    source, instance, series, item = image.dataset, Dataset(), Dataset(), Dataset()
    instance.ReferencedSOPClassUID, instance.ReferencedSOPInstanceUID = source.SOPClassUID, image.sop_instance_uid
    series.SeriesInstanceUID, series.ReferencedSOPSequence = source.SeriesInstanceUID, [instance]
    item.StudyInstanceUID, item.ReferencedSeriesSequence = source.StudyInstanceUID, [series]
    return item


def _derivation_item(image: DicomImage, text: str, frame: int | None = None) -> Dataset:
    """A DerivationImageSequence item: the description, `DERIVATION_CODE`, and the source (its frame `frame`)."""
    item = Dataset()
    item.DerivationDescription = text
    item.DerivationCodeSequence = [_code(DERIVATION_CODE)]
    item.SourceImageSequence = [_source_reference(image, frame)]
    return item


def _keep_lossy_history(ds: Dataset, source: Dataset) -> None:
    """The derived file is stored uncompressed, so a source decoded from a lossy transfer syntax would lose the
    record that its pixels went through lossy compression: mark LossyImageCompression 01 and add the method,
    unless the source itself says 00 (JPEG 2000 and HTJ2K syntaxes may also carry reversible streams)."""
    syntax = str(getattr(source, "file_meta", Dataset()).get("TransferSyntaxUID", ""))
    method = LOSSY_SYNTAXES.get(syntax)
    if method is None or str(source.get("LossyImageCompression", "")) == "00":
        return
    ds.LossyImageCompression = "01"
    methods = list(_values(ds.get("LossyImageCompressionMethod")))
    ds.LossyImageCompressionMethod = methods if method in methods else [*methods, method]


_SWAP = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}      # byte-order-dependent binary VRs: item size


def _plain_copy(source: Dataset) -> Dataset:
    """A deep copy of the header as a plain Dataset, so that pydicom encodes it afresh (little endian);
    binary values of a big-endian source (OW, OF, ... outside sequences) are byte-swapped to match."""
    big_endian = source.original_encoding[1] is False
    ds = Dataset()
    for elem in copy.deepcopy(source):               # iterating converts raw elements
        if big_endian and elem.VR in _SWAP and isinstance(elem.value, bytes):
            elem.value = np.frombuffer(elem.value, dtype=f">u{_SWAP[elem.VR]}").astype(f"<u{_SWAP[elem.VR]}").tobytes()
        ds.add(elem)
    return ds


def derivation_text(weights_sha256: str, model_name: str | None, description: str | None) -> str:
    """The DerivationDescription (ST, at most 1024 characters): tool, version, model, weights, note."""
    text = f"{AI_MARK} by medgan_nb {__version__} (restoration by a neural network)"
    if model_name:
        text += f"; model {model_name}"
    text += f"; weights SHA-256 {weights_sha256}"
    if description:
        text += f"; {description}"
    return text[:1024]


def _values(value: Any) -> tuple[str, ...]:
    """A multi-valued string tag as a tuple (empty when absent)."""
    if value in (None, ""):
        return ()
    return (str(value),) if isinstance(value, str) else tuple(str(v) for v in value)


def _series_description(old: str) -> str:
    """The source's SeriesDescription marked as AI-enhanced, within LO's 64 characters."""
    suffix = f" ({AI_MARK})"
    return (old[:64 - len(suffix)].rstrip() + suffix) if old else AI_MARK


def _source_reference(image: DicomImage, frame: int | None = None) -> Dataset:
    """A SourceImageSequence item naming the source instance (and its frame `frame`, 1-based) and why."""
    item = Dataset()
    item.ReferencedSOPClassUID = image.dataset.SOPClassUID
    item.ReferencedSOPInstanceUID = image.sop_instance_uid
    if frame is not None:
        item.ReferencedFrameNumber = frame
    item.PurposeOfReferenceCodeSequence = [_code(SOURCE_PURPOSE)]
    return item


def _code(value: tuple[str, str, str]) -> Dataset:
    """A code sequence item from (CodeValue, CodingSchemeDesignator, CodeMeaning)."""
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value
    return code


def _stored_range(ds: Dataset) -> tuple[int, int]:
    """Smallest and largest stored integer that BitsStored and PixelRepresentation allow."""
    bits = int(ds.BitsStored)
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if int(ds.PixelRepresentation) == 1 else (0, 2**bits - 1)


def _stored_values(image: DicomImage, enhanced: np.ndarray, ds: Dataset) -> np.ndarray:
    """Physical values back to stored integers of the source's type: MONOCHROME1 inverted back, rescale
    undone, rounded and clipped to the stored range (clipping, not the wrap-around of a bare cast)."""
    values = np.asarray(enhanced, dtype=np.float64)
    if values.shape != image.slices.shape:
        raise ValueError(f"enhanced has shape {values.shape}, the source {image.path} has {image.slices.shape} "
                         "(n_frames, rows, columns)")
    if not np.isfinite(values).all():
        raise ValueError(f"enhanced holds {int((~np.isfinite(values)).sum())} non-finite value(s) (NaN or inf)")
    if "BitsStored" not in ds or "PixelRepresentation" not in ds or int(ds.BitsAllocated) not in (8, 16, 32):
        raise ValueError(f"{image.path}: only integer pixel data of 8, 16 or 32 bits can be written")
    slope, intercept = rescale_of(ds, image.path)
    lo, hi = _stored_range(ds)
    if image.photometric == "MONOCHROME1":           # undo read_dicom's lo + hi - value
        ends = sorted((lo * slope + intercept, hi * slope + intercept))
        values = ends[0] + ends[1] - values
    stored = np.clip(np.rint((values - intercept) / slope), lo, hi)
    kind = "i" if int(ds.PixelRepresentation) == 1 else "u"
    return stored.astype(f"<{kind}{int(ds.BitsAllocated) // 8}")


def _set_pixels(ds: Dataset, stored: np.ndarray) -> None:
    """Native (uncompressed) PixelData from (n, H, W) stored values; grey-as-colour becomes MONOCHROME2."""
    if int(ds.get("SamplesPerPixel", 1)) > 1:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        if "PlanarConfiguration" in ds:
            del ds.PlanarConfiguration
    data = stored.tobytes()
    ds.PixelData = data + b"\0" * (len(data) % 2)      # values have even length (PS3.5 7.1.1)
    ds["PixelData"].VR = "OB" if stored.dtype.itemsize == 1 else "OW"
