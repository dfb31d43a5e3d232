"""Real CT, MR and X-ray scans for the 1-channel models: which scans, how they are split,
how their physical values become the models' [-1, 1], and the training data made from them.

The scans are the real, uncompressed images that ship with pydicom and with the PyPI package
``pydicom-data`` (both MIT-licensed; see docs/multimodal.md), plus scikit-image's Shepp-Logan phantom.
That is few slices, so the models train on random patches of them; a user with a real collection
(for example DICOM series from TCIA) points ``data_dir`` at its folder instead (`folder_slices`).

Split by scan, never by slice: no slice of a test scan is trained on. Where a modality has one
training scan, its validation images are a band of rows of that scan that training never sees.

Units (`to_model` / `from_model`):
- CT: HU through the window `medgan_nb.degrade.acquisition.CT_WINDOW` (-1000 ... +1000 HU) onto [-1, 1], the units
  that `medgan_nb.degrade.ModalityDegradation` expects. Values outside the window are clipped for
  the model; `medgan_nb.inference.files` passes such pixels through unchanged.
- MR: [0, 1] between the 0.5th and 99.5th percentiles of the scan (MR values have no fixed scale).
- X-ray: as MR, then inverted so that values rise with exposure (bright bone = few photons):
  `medgan_nb.degrade.xray` takes them as logarithmic in exposure, as CR/DR processing makes them.

Degradations cost too much to run per training batch on a CPU (a low-dose CT reconstruction costs
far more than a training step), and CT noise depends on the whole slice's attenuation, not on a patch. So
`ScanPairs` degrades each whole slice ``cfg.scan_realisations`` times once, at strengths drawn
from the config's ranges, and serves aligned random patches of (clean, degraded) pairs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..config.config import Config
from ..degrade.acquisition import CT_WINDOW, ModalityDegradation
from ..utils.seeding import seed_for
from .dicom import DicomError, DicomImage, NoPixelDataError, kind_problem, list_dicom, read_dicom

log = logging.getLogger(__name__)

MODALITY_OF_DICOM = {"CT": "ct", "MR": "mri", "CR": "xray", "DX": "xray", "RG": "xray", "DR": "xray"}
PERCENTILES = (0.5, 99.5)
PHANTOM = "shepp_logan"
DATA_HINT = "pip install pydicom-data  (the MIT-licensed real scans behind the ct/mri/xray presets)"


@dataclass(frozen=True)
class Scan:
    """One sample scan: `file` is a pydicom test file name (None: the Shepp-Logan phantom); `rows` the band
    of rows (fractions of the height) that this entry uses, so one scan can give training and validation."""
    name: str
    modality: str
    file: str | None
    split: str
    description: str
    rows: tuple[float, float] = (0.0, 1.0)
    compressed: bool = False        # needs a decoder plugin (pylibjpeg-openjpeg / -libjpeg); left out without one


SAMPLE_SCANS: tuple[Scan, ...] = (
    Scan("ct_head", "ct", "693_UNCR.dcm", "train", "head CT, 512², 5 mm slice (pydicom-data)", (0.0, 0.75)),
    Scan("ct_skull_base", "ct", "J2K_pixelrep_mismatch.dcm", "train", "head CT at the skull base, 512² (pydicom)",
         compressed=True),
    Scan("ct_abdomen", "ct", "explicit_VR-UN.dcm", "train", "abdominal CT, 512², from TCIA (pydicom-data)",
         compressed=True),
    Scan("ct_neck", "ct", "bad_sequence.dcm", "train", "CT of a cervical vertebra, 512² (pydicom-data)",
         compressed=True),
    Scan(PHANTOM, "ct", None, "train", "Shepp-Logan phantom, 400² (scikit-image), mapped to HU"),
    Scan("ct_head_val", "ct", "693_UNCR.dcm", "val", "the head CT's bottom quarter of rows", (0.75, 1.0)),
    Scan("ct_spine", "ct", "CT_small.dcm", "test", "CT of a thoracic vertebra, 128² (pydicom)"),
    Scan("mr_shoulder", "mri", "MR2_UNCI.dcm", "train", "MR of a shoulder, 1024² (pydicom-data)", (0.0, 0.75)),
    Scan("mr_head", "mri", "emri_small.dcm", "train", "MR of a head, 10 frames of 64² (pydicom-data)"),
    Scan("mr_shoulder_val", "mri", "MR2_UNCI.dcm", "val", "the shoulder MR's bottom quarter of rows", (0.75, 1.0)),
    Scan("mr_abdomen", "mri", "MR-SIEMENS-DICOM-WithOverlays.dcm", "test", "MR of an abdomen, 484² (pydicom-data)"),
    Scan("xr_chest", "xray", "RG1_UNCI.dcm", "train", "CR of a chest, 1955×1841, 15-bit (pydicom-data)", (0.0, 0.75)),
    Scan("xr_chest_val", "xray", "RG1_UNCI.dcm", "val", "the chest CR's bottom quarter of rows", (0.75, 1.0)),
    Scan("xr_tibia", "xray", "RG3_UNCI.dcm", "test", "CR of a tibia, 1760², 10-bit (pydicom-data)"),
)


@dataclass
class Slice:
    """One 2-D slice ready for a model: `image` (H, W) float32 in [-1, 1], the clean target; `pixel_mm` its
    pixel size after resizing; `key` names it (scan and frame) for per-image seeds; `lo`, `hi`: the
    physical values that map to -1 and +1 (for `from_model`); `source`: what degradations start from
    when it is not `image` (CT: the stored slice, whose noiseless reconstruction is `image`)."""
    key: str
    image: np.ndarray
    pixel_mm: float | None
    lo: float
    hi: float
    source: np.ndarray | None = None


# ------------------------------------------------------------------ units
def window_of(modality: str, values: np.ndarray) -> tuple[float, float]:
    """The physical values (lo, hi) that map to [-1, 1] for this modality (see the module docstring)."""
    if modality == "ct":
        center, width = CT_WINDOW
        return center - width / 2, center + width / 2
    lo, hi = np.percentile(np.asarray(values, dtype=np.float64), PERCENTILES)
    return float(lo), (float(hi) if hi > lo else float(lo) + 1.0)


def to_model(values: np.ndarray, modality: str, lo: float, hi: float) -> np.ndarray:
    """Physical values -> [-1, 1] (clipped); X-ray inverted (see the module docstring)."""
    u = np.clip((np.asarray(values, dtype=np.float64) - lo) / (hi - lo), 0, 1)
    return (2 * (1 - u if modality == "xray" else u) - 1).astype(np.float32)


def from_model(x: np.ndarray, modality: str, lo: float, hi: float) -> np.ndarray:
    """[-1, 1] -> physical values: the inverse of `to_model` inside its window."""
    u = (np.asarray(x, dtype=np.float64) + 1) / 2
    return (lo + (1 - u if modality == "xray" else u) * (hi - lo)).astype(np.float32)


# ------------------------------------------------------------------ reading
def sample_scan_path(file: str) -> Path:
    """The path of a pydicom test file; a clear error naming the package when it is not installed."""
    from pydicom.data import get_testdata_file
    path = get_testdata_file(file, download=False)
    if path is None:
        raise FileNotFoundError(f"sample scan {file} not found: {DATA_HINT}")
    return Path(path)


def phantom_hu() -> np.ndarray:
    """Shepp-Logan phantom (400²) in HU: 0 is air (-1000 HU), the brain's 0.2 is water (0 HU), capped at +1000."""
    from skimage.data import shepp_logan_phantom
    return np.clip(-1000 + shepp_logan_phantom() * 5000, -1000, 1000).astype(np.float32)


def _resize(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area-averaged (antialiased) resize of (n, H, W) float32."""
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[:, None]
    return F.interpolate(t, size=shape, mode="area" if shape[0] <= a.shape[1] else "bilinear")[:, 0].numpy()


def _working_shape(h: int, w: int, scan_size: int) -> tuple[int, int]:
    """The longer side at most scan_size."""
    f = min(1.0, scan_size / max(h, w))
    return max(1, round(h * f)), max(1, round(w * f))


def slices_of(values: np.ndarray, spacing: float | None, modality: str, key: str, scan_size: int,
              rows: tuple[float, float] = (0.0, 1.0)) -> list[Slice]:
    """(n, H, W) physical values -> resized `Slice`s in model units (the window from all n together)."""
    lo, hi = window_of(modality, values)
    h = values.shape[1]
    values = values[:, round(rows[0] * h):round(rows[1] * h)]
    if modality == "ct" and values.shape[1] != values.shape[2]:        # radon needs a square: the centre one
        side = min(values.shape[1:])
        top, left = (values.shape[1] - side) // 2, (values.shape[2] - side) // 2
        values = values[:, top:top + side, left:left + side]
    shape = _working_shape(*values.shape[1:], scan_size)
    pixel = None if spacing is None else spacing * values.shape[2] / shape[1]
    resized = _resize(values, shape)
    return [Slice(f"{key}#{i}", to_model(s, modality, lo, hi), pixel, lo, hi) for i, s in enumerate(resized)]


def _spacing(image: DicomImage) -> float | None:
    s = image.pixel_spacing
    return float(s[1]) if s and s[1] > 0 else None


def sample_slices(modality: str, split: str, scan_size: int) -> list[Slice]:
    """The sample scans' slices of one modality and split (see `SAMPLE_SCANS`)."""
    out: list[Slice] = []
    for scan in SAMPLE_SCANS:
        if scan.modality != modality or scan.split != split:
            continue
        if scan.file is None:
            values, spacing = phantom_hu()[None], 350.0 / 400
        else:
            try:
                image = read_dicom(sample_scan_path(scan.file))
            except DicomError as e:
                if not scan.compressed:
                    raise
                log.warning("sample scan %s left out: %s", scan.name, e)       # the message says what to install
                continue
            values, spacing = image.slices, _spacing(image)
        out += slices_of(values, spacing, modality, scan.name, scan_size, scan.rows)
    if not out:
        raise ValueError(f"no sample scans of modality {modality!r} in split {split!r}")
    return [ct_reference(s) for s in out] if modality == "ct" else out


def split_key(ds: Any) -> str:
    """What a folder of DICOM files is split by: the patient (PatientID), else the study (StudyInstanceUID), else
    the series, so that no patient's scans sit on both sides of a split (series of one patient are alike)."""
    for keyword in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID"):
        value = str(ds.get(keyword, "") or "").strip()
        if value:
            return f"{keyword}={value}"
    return ""


def folder_slices(folder: str | Path, modality: str, split: str, scan_size: int,
                  ratios: tuple[float, float, float], on_error: str = "raise",
                  skipped: list[tuple[Path, str]] | None = None) -> list[Slice]:
    """The slices of one split of a folder of DICOM files (e.g. TCIA series), split by patient (`split_key`).

    Files without an image (DICOMDIR, reports, RT plans) are always left out, as by `read_series`; any other
    unreadable DICOM file raises its `DicomError` with on_error="raise" (the config's ``bad_images``), or is left
    out with "skip". Every file left out is appended to `skipped` as (path, reason) and counted in a log line.
    """
    from .splits import split_of
    out: list[Slice] = []
    left_out = skipped if skipped is not None else []
    before = len(left_out)
    for path in list_dicom(folder):
        try:
            image = read_dicom(path)
        except DicomError as e:
            if on_error != "skip" and not isinstance(e, NoPixelDataError):
                raise
            log.info("skipped: %s", e)
            left_out.append((path, str(e)))
            continue
        found = MODALITY_OF_DICOM.get(image.modality)
        if found != modality:
            log.info("%s: modality %s, not %s: left out", path, image.modality, modality)
            continue
        problem = kind_problem(image.dataset)
        if problem:
            log.warning("%s: %s: left out", path, problem)
            continue
        if split_of(split_key(image.dataset), ratios) == split:
            out += slices_of(image.slices, _spacing(image), modality, path.name, scan_size)
    if len(left_out) > before:
        log.warning("%s: left out %d DICOM file(s) without a usable image (DICOMDIR, reports, unreadable files)",
                    folder, len(left_out) - before)
    if not out:
        raise ValueError(f"{folder}: no {modality} DICOM slices in the {split!r} split (split by patient)")
    return [ct_reference(s) for s in out] if modality == "ct" else out


def modality_slices(split: str, cfg: Config, on_error: str = "raise",
                    skipped: list[tuple[Path, str]] | None = None) -> list[Slice]:
    """``cfg.data_dir``'s DICOM slices if set (`folder_slices`: files left out go to `skipped`), else the
    sample scans."""
    if cfg.data_dir:
        return folder_slices(cfg.data_dir, cfg.modality, split, cfg.scan_size, cfg.split_ratios, on_error, skipped)
    return sample_slices(cfg.modality, split, cfg.scan_size)


# ------------------------------------------------------------------ degradation
def modality_degradation(cfg: Config) -> ModalityDegradation:
    """The config's degradation of its modality (strength ranges from the config)."""
    if cfg.modality == "ct":
        views = None if cfg.ct_views == (0, 0) else cfg.ct_views
        return ModalityDegradation("ct", seed=cfg.seed, dose=cfg.ct_dose, n_views=views)
    if cfg.modality == "mri":
        return ModalityDegradation("mri", seed=cfg.seed, noise_sigma=cfg.mri_noise,
                                   acceleration=cfg.mri_acceleration, max_shift_px=cfg.mri_motion_px)
    return ModalityDegradation("xray", seed=cfg.seed, exposure=cfg.xray_exposure, blur_sigma=cfg.xray_blur)


def ct_degradation(s: Slice, seed: int = 0, **strengths) -> ModalityDegradation:
    """A CT degradation at the slice's own pixel size (when known): attenuation, hence noise, depends on it."""
    return ModalityDegradation("ct", seed, **{**strengths, **({} if s.pixel_mm is None else {"pixel_mm": s.pixel_mm})})


def degrade_slice(s: Slice, degradation: ModalityDegradation, key: str) -> tuple[np.ndarray, dict]:
    """One whole slice degraded (seeded by `key`) -> ((H, W) in [-1, 1], params). CT: the slice's own pixel size."""
    if degradation.modality == "ct":
        degradation = ct_degradation(s, degradation.seed, window=degradation.window, **degradation.strengths)
    d = degradation(torch.from_numpy(s.image if s.source is None else s.source)[None, None], keys=[key])
    return d.image[0, 0].numpy(), {k: float(v[0]) for k, v in d.params.items() if v[0].numel() == 1}


def ct_reference(s: Slice) -> Slice:
    """The slice as a full-dose scan would show it: projected and reconstructed without noise (dose inf, full
    views). Low-dose CT is judged against the full-dose reconstruction, not against the stored image: FBP's
    own discretisation error (and air outside the scanned circle) then belongs to both sides."""
    ideal = ct_degradation(s, dose=float("inf"))
    image = ideal(torch.from_numpy(s.image)[None, None]).image[0, 0].numpy()
    return Slice(s.key, image, s.pixel_mm, s.lo, s.hi, source=s.image)


class ScanPairs(Dataset):
    """Aligned (clean, degraded) patches of whole slices, each degraded `realisations` times once.

    Items are ``(clean, degraded, key)`` with (1, size, size) tensors in [-1, 1]: `medgan_nb.training` uses
    the degraded one as it is. Training (``random=True``): each item a random patch of a random
    realisation, flipped and rotated at random (``crops`` items per slice and realisation and epoch);
    otherwise the centre patch of each realisation, the same every time.
    """

    def __init__(self, slices: list[Slice], degradation: ModalityDegradation, size: int, realisations: int,
                 random: bool, crops: int = 1, base_seed: int = 0, quiet: bool = True):
        self.size, self.random, self.crops = size, random, crops
        small = [s.key for s in slices if min(s.image.shape) < size]
        if small:
            log.warning("left out %d slice(s) smaller than the %d² patch: %s", len(small), size, ", ".join(small))
            slices = [s for s in slices if min(s.image.shape) >= size]
        if not slices:
            raise ValueError(f"every slice is smaller than the {size}² patch: {small}; lower image_size")
        self.pairs: list[tuple[str, np.ndarray, np.ndarray]] = []
        jobs = [(s, r) for s in slices for r in range(realisations)]
        for s, r in tqdm(jobs, desc=f"degrading {degradation.modality} slices", disable=quiet, leave=False):
            key = f"{s.key} realisation {r} seed {base_seed}"
            self.pairs.append((key, s.image, degrade_slice(s, degradation, key)[0]))

    def __len__(self) -> int:
        return len(self.pairs) * (self.crops if self.random else 1)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        key, clean, degraded = self.pairs[i % len(self.pairs)]
        h, w = clean.shape
        both = torch.from_numpy(np.stack([clean, degraded]))
        if self.random:
            u = torch.rand(4).tolist()
            top, left = int(u[0] * (h - self.size + 1)), int(u[1] * (w - self.size + 1))
            both = torch.rot90(both[:, top:top + self.size, left:left + self.size], int(u[2] * 4), dims=(1, 2))
            both = both.flip(2) if u[3] < 0.5 else both
        else:
            top, left = (h - self.size) // 2, (w - self.size) // 2
            both = both[:, top:top + self.size, left:left + self.size]
        both = both.contiguous()
        return both[0:1], both[1:2], key


def modality_dataset(split: str, cfg: Config, on_error: str = "raise") -> ScanPairs:
    """The `ScanPairs` of one split: training items random (``cfg.crops_per_frame`` per slice and realisation),
    validation and test the centre patch of ``max(1, realisations // 4)`` realisations per slice. Its ``skipped``
    lists the (file, reason) pairs of ``cfg.data_dir`` left out (`folder_slices` with `on_error`)."""
    train = split == "train"
    reps = cfg.scan_realisations if train else max(1, cfg.scan_realisations // 4)
    skipped: list[tuple[Path, str]] = []
    dataset = ScanPairs(modality_slices(split, cfg, on_error, skipped), modality_degradation(cfg), cfg.image_size,
                        reps, train, cfg.crops_per_frame, seed_for(split, cfg.seed))
    dataset.skipped = skipped
    return dataset
