"""Enhance your own images with a trained generator, labelled and audited.

The original notebook's ethics section asked for "clear labelling of
AI-enhanced content" and "audit trails". Here both are real:

- every output PNG carries text metadata saying it is AI-enhanced, with the
  SHA-256 of the checkpoint or weights bytes that were loaded (and the name of
  the shipped model, `medgan_nb.models.zoo`, when one was used) and of the
  source file's bytes that were decoded (and, with ``label=True``, a visible "AI-enhanced"
  mark burned into a corner). The source's file name goes into the PNG only with
  ``record_source_name=True``: names often hold patient identifiers, and the
  hash links output to input without them;
- every output gets one JSON line in ``out_dir/audit.jsonl`` (appended, never
  truncated): when, from which file, with which checkpoint or model, to which file.
  This local log keeps the paths; names that are not valid UTF-8 are written
  with ``\\xNN`` escapes for their bad bytes, so every line is valid JSON.

Outputs keep the input's channels and depth: grayscale stays grayscale (8- or
16-bit), colour stays RGB, and inputs with more than 8 bits per sample (16-bit,
float) give 16-bit PNGs.

Images of any size work: `enhance_array` reflect-pads each image to a multiple
of the generator's ``size_multiple`` (2**depth for the UNet, which halves it
`depth` times) and processes large images in overlapping tiles blended with
cosine ramps, so memory stays bounded and no seams appear.

Speed: on a CPU, folders of `ONNX_MIN_IMAGES` images or more run on the fastest
backend measured on this machine (`medgan_nb.inference.backends.fast_generator`; README
"Performance" has each backend's time); the ONNX export the engines need costs
a few seconds once, so smaller jobs stay in PyTorch (BatchNorm folded into the
convolutions).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..data.decode import IMAGE_EXTENSIONS, ImageLoadError, decode_image, list_images
from ..data.dicom import DicomError, DicomImage, is_dicom, kind_problem, list_dicom, read_dicom, read_header
from ..data.dicom_write import DerivedSeries, derived_series, write_derived
from ..models.build import resolve_device
from ..models.checkpoint import checkpoint_path, load_generator
from ..models.guard import Guard
from ..models.zoo import load_model
from ..utils.files import atomic_write, file_sha256, refuse_existing
from ..utils.images import WINDOWS, from_numpy_images, to_numpy_images, window
from .backends import fast_generator
from .fold import fold_batchnorm
from .outputs import burn_label, path_text, png_metadata, save_png
from ..models.runner import enhance_array

log = logging.getLogger(__name__)

AUDIT_LOG = "audit.jsonl"
ONNX_MIN_IMAGES = 32          # backend="auto": from this many images on, the one-off export and timing pay off


# ---------------------------------------------------------- files & folders
def _jobs(inputs: Path, out_dir: Path) -> list[tuple[Path, str, Path]]:
    """(source file, its path relative to the input root, output file) for every image to enhance."""
    if inputs.is_file():
        files, root = [inputs], inputs.parent
    elif inputs.is_dir():
        root = inputs
        out_resolved = out_dir.resolve()
        found = sorted(set(list_images(inputs)) | set(list_dicom(inputs)))
        files = [p for p in found if not p.resolve().is_relative_to(out_resolved)]
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) or DICOM files under {inputs}")
    else:
        raise FileNotFoundError(f"input {inputs} does not exist")
    jobs, seen = [], {}
    for src in files:
        rel = src.relative_to(root)
        dst = out_dir / rel.with_suffix(".dcm" if is_dicom(src) else ".png")
        for target in _outputs(src, dst):
            if target.resolve() == src.resolve():
                raise ValueError(f"{src} would be overwritten by its own enhanced version; choose another output "
                                 "folder")
            if target in seen:
                raise ValueError(f"{seen[target]} and {src} would both be written to {target}; rename one of them")
            seen[target] = src
        jobs.append((src, rel.as_posix(), dst))
    return jobs


def _outputs(src: Path, dst: Path) -> list[Path]:
    """The files one job writes: the PNG; for a DICOM source the derived DICOM and a PNG beside it."""
    return [dst, dst.with_suffix(".png")] if dst.suffix == ".dcm" else [dst]


# ------------------------------------------------------------------ DICOM
def enhance_dicom(generator: torch.nn.Module, image: DicomImage, modality: str, *, tile: int = 512,
                  device: str | torch.device | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Restore every slice of a DICOM image with a 1-channel CT, MRI or X-ray model.

    Returns (enhanced slices in the image's physical units, (n, H, W) float32; the same in [0, 1] for
    pictures (CT in the soft-tissue window); a record for the audit log). Values go through the units the
    model was trained in (`medgan_nb.data.scans.to_model`); pixels outside that window (CT beyond -1000 ...
    +1000 HU, MR/X-ray outside their 0.5-99.5 percentiles) are passed through unchanged.
    """
    from ..data.scans import from_model, to_model, window_of
    lo, hi = window_of(modality, image.slices)
    inside = (image.slices >= lo) & (image.slices <= hi)
    out = np.empty_like(image.slices)
    for i, values in enumerate(image.slices):
        x = to_model(values, modality, lo, hi)
        restored = enhance_array(generator, ((x + 1) / 2)[..., None], tile=tile, device=device)[..., 0]
        out[i] = np.where(inside[i], from_model(restored * 2 - 1, modality, lo, hi), values)
    pictures = (window(out, *WINDOWS["soft_tissue"]) if modality == "ct"
                else np.clip((out - lo) / (hi - lo), 0, 1).astype(np.float32))
    return out, pictures, {"modality": image.modality, "window": [lo, hi], "slices": len(out),
                           "pixels_passed_through": int((~inside).sum())}


class UnsuitableDicomError(DicomError):
    """A DICOM file the model cannot be applied to: another modality than the model's (or one no model here
    handles), or not the kind of image it was trained on (`medgan_nb.data.dicom.kind_problem`)."""


def _check_dicom(src: Path, header: Any, model_modality: str) -> None:
    """`UnsuitableDicomError` unless the DICOM file's Modality is the one the model was trained on and the image
    is of the kind it learnt from (`kind_problem`)."""
    from ..data.scans import MODALITY_OF_DICOM
    dicom_modality = str(header.get("Modality", ""))
    modality = MODALITY_OF_DICOM.get(dicom_modality)
    if modality is None:
        raise UnsuitableDicomError(f"{src}: DICOM modality {dicom_modality!r} has no model here (CT, MR, CR, DX only)")
    if modality != model_modality:
        raise UnsuitableDicomError(f"{src} is a {dicom_modality} image but the model was trained on {model_modality}; "
                                   f"use a {modality} model: python -m medgan_nb train --preset {modality}, then "
                                   f"enhance --checkpoint output/runs/<run>")
    problem = kind_problem(header)
    if problem:
        raise UnsuitableDicomError(f"{src}: {problem}; the model would treat it as an ordinary {model_modality} image")


def _check_dicom_inputs(jobs: list[tuple[Path, str, Path]], model_modality: str,
                        on_error: str) -> list[tuple[Path, str, Path]]:
    """Every DICOM input's header (`_check_dicom`), before anything is written: the first bad one raises
    (``on_error="raise"``), or each is logged and left out (``"skip"``); returns the jobs to run."""
    kept = []
    for job in jobs:
        src, _, dst = job
        if dst.suffix == ".dcm":
            try:
                _check_dicom(src, read_header(src), model_modality)
            except DicomError as e:
                if on_error == "raise":
                    raise
                log.warning("skipped: %s", e)
                continue
        kept.append(job)
    return kept


def _write_dicom_job(generator: torch.nn.Module, dst: Path, image: DicomImage, model_modality: str,
                     source_sha256: str, sha256: str, model_name: str | None, tile: int, device: torch.device,
                     label: bool, series: DerivedSeries) -> dict:
    """Enhance one DICOM file, already checked by `_check_dicom_inputs`: the derived DICOM at `dst` in `series`, a
    16-bit PNG of its first slice beside it; returns the audit log's record of both."""
    import pydicom
    enhanced, pictures, record = enhance_dicom(generator, image, model_modality, tile=tile, device=device)
    write_derived(image, enhanced, dst, weights_sha256=sha256, model_name=model_name, series=series,
                  overwrite=True)
    png = dst.with_suffix(".png")
    pixels = pictures[0][..., None]
    with atomic_write(png) as f:
        save_png(f, burn_label(pixels) if label else pixels, 16,
                 png_metadata(None, source_sha256, sha256, model_name))
    derived = pydicom.dcmread(dst, stop_before_pixels=True)
    record.update(source_sop_instance_uid=image.sop_instance_uid, sop_instance_uid=str(derived.SOPInstanceUID),
                  series_instance_uid=str(derived.SeriesInstanceUID), png=path_text(png.resolve()),
                  png_sha256=file_sha256(png))
    return record


def _guarded(guard: Guard | None, rgb: np.ndarray, restored: np.ndarray) -> tuple[np.ndarray, dict | None]:
    """The guard's blend of the whole image, and what it measured for the audit log (None: no guard)."""
    if guard is None:
        return restored, None
    x, y = (from_numpy_images(a.astype(np.float32, copy=False))[None] for a in (rgb, restored))
    measured = {k: float(v[0]) for k, v in guard.measure(x, y).items()}
    record = {**guard.to_dict(), **{k: round(v, 5) for k, v in measured.items() if k != "strength"},
              "strength": measured["strength"]}
    if measured["strength"] == 0:
        return rgb.astype(np.float32), record          # exactly the input
    return to_numpy_images(torch.lerp(x[0], y[0], measured["strength"])), record


def load_weights(checkpoint: str | Path | None = None, model: str | None = None,
                 generator: torch.nn.Module | None = None, device: str | torch.device = "cpu",
                 gan_weight: float | None = None) -> tuple[torch.nn.Module, str | None, Path | None]:
    """(generator on `device`, shipped model name or None, checkpoint file or None) from at most one source.

    checkpoint: a checkpoint file or run folder; model: a shipped model's name; generator: one already
    loaded (it must carry ``checkpoint_sha256``, as `load_generator`/`load_model` set, so outputs name
    their weights). With none of them: the default shipped model. gan_weight: with a shipped GAN model,
    interpolate it with its L1 parent (`medgan_nb.models.zoo.load_model`); ValueError with any other source.
    """
    if gan_weight is not None and (checkpoint is not None or generator is not None):
        raise ValueError("gan_weight needs a shipped GAN model (model='sharp'), not a checkpoint or a generator")
    given = [k for k, v in (("checkpoint", checkpoint), ("model", model), ("generator", generator)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give one of checkpoint, model and generator, not {' and '.join(given)}")
    if checkpoint is not None:
        return load_generator(checkpoint, device)[0], None, checkpoint_path(checkpoint)
    if generator is None:
        generator = load_model(model, device, gan_weight=gan_weight)[0]     # model None: the default shipped one
    elif not getattr(generator, "checkpoint_sha256", None):
        raise ValueError("the generator has no checkpoint_sha256, so its outputs could not name their weights; "
                         "load it with medgan_nb.models.zoo.load_model or medgan_nb.models.checkpoint.load_generator")
    return generator.to(device), getattr(generator, "model_name", None), None


def enhance(inputs: str | Path, out_dir: str | Path, checkpoint: str | Path | None = None, *,
            model: str | None = None, generator: torch.nn.Module | None = None, device: str = "auto",
            label: bool = False, overwrite: bool = False, tile: int = 512, on_error: str = "raise",
            backend: str = "auto", record_source_name: bool = False, quiet: bool = False,
            guard: bool = True, gan_weight: float | None = None) -> list[Path]:
    """Enhance one image or DICOM file, or every one under a folder; returns the files written (PNG or DICOM).

    DICOM files (found by content, any extension) need a CT, MRI or X-ray model of their modality (a
    ``ct``/``mri``/``xray`` preset run): each becomes a derived DICOM ``out_dir/<rel>.dcm`` (see
    `medgan_nb.data.dicom_write.write_derived`: new UIDs, the weights' SHA-256 in DerivationDescription, the stored
    bit depth and rescale) plus a 16-bit PNG of its first slice beside it; the audit line records both.

    Outputs keep each file's relative path and stem, as PNGs under `out_dir`
    (``a/b/x.jpg`` -> ``out_dir/a/b/x.png``) with the input's channels and depth
    (grayscale or RGB; 16-bit for inputs with more than 8 bits per sample),
    labelled as AI-enhanced in their metadata (and visibly with ``label=True``).
    The metadata holds the input's SHA-256, and its relative path only with
    ``record_source_name=True``. Each output is written atomically and then
    logged in ``out_dir/audit.jsonl``.

    Existing outputs raise `FileExistsError` before any work unless ``overwrite=True``. An unreadable input
    raises `ImageLoadError` (``on_error="raise"``) or is logged, counted and left out (``"skip"``); so does a
    DICOM file of another modality than the model's or of another kind (a CT localizer, a parametric map, raw
    X-ray data: `UnsuitableDicomError`), and every DICOM header is checked before the first output is written.
    A checkpoint that is not ours raises `CheckpointError`.

    The weights: `checkpoint` (a file or run folder), `model` (a shipped model's name,
    `medgan_nb.models.zoo`) or `generator` (already loaded), at most one of them; with none, the
    default shipped model. Outputs and the audit log record the weights' SHA-256 and the model's name.
    gan_weight: with a shipped GAN model (``model="sharp"``), a in [0, 1] interpolates its weights with its
    L1 parent's, 0 = the smooth L1 model, 1 = the GAN model (`medgan_nb.models.zoo.load_model`); the name
    recorded is then ``"sharp@gan_weight=<a>"``. The guard applies as to any shipped model.

    backend: one of `medgan_nb.config.INFERENCE_BACKENDS`, or "auto": for `ONNX_MIN_IMAGES` images or more
    on the CPU the fastest of them measured here, else "torch".

    guard: apply the weights' guard (shipped models carry one, `medgan_nb.models.guard`): an image that shows no
    noise and that the model would change only a little is written unchanged. Each audit line records the
    guard's measurements and the strength used.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    inputs, out_dir = Path(inputs), Path(out_dir)
    jobs = _jobs(inputs, out_dir)
    if not overwrite:
        refuse_existing([target for src, _, dst in jobs for target in _outputs(src, dst)],
                        "pass overwrite=True or choose another output folder")
    run = _open_weights(checkpoint, model, generator, resolve_device(device), guard, backend, len(jobs),
                        gan_weight, tile=tile, label=label, record_source_name=record_source_name)
    log.info("enhancing %d image(s) with %s (sha256 %s…) on %s (%s)", len(jobs),
             run.checkpoint_file or f"model {run.model_name}", run.checkpoint_sha256[:12], run.device, run.backend)
    checked = _check_dicom_inputs(jobs, run.modality, on_error)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for src, rel, dst in tqdm(checked, desc="enhancing", unit="img", disable=quiet):
        source = _read(src, dst, on_error)
        if source is not None:
            record = _enhance_file(run, src, rel, dst, source)
            with open(out_dir / AUDIT_LOG, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            written.append(dst)

    if len(written) < len(jobs):
        log.warning("skipped %d of %d input file(s) that cannot be read or do not fit the model",
                    len(jobs) - len(written), len(jobs))
    log.info("wrote %d image(s) to %s; audit log %s", len(written), out_dir, out_dir / AUDIT_LOG)
    return written


def _read(src: Path, dst: Path, on_error: str) -> Any:
    """The decoded input (a `DicomImage` for a ``.dcm`` target), or None for an unreadable one with
    ``on_error="skip"`` (logged); ImageLoadError with ``"raise"``."""
    try:
        return read_dicom(src) if dst.suffix == ".dcm" else decode_image(src)
    except ImageLoadError as e:
        if on_error == "raise":
            raise
        log.warning("skipped: %s", e)
        return None


@dataclass
class _Weights:
    """The loaded generator of an `enhance` call, what identifies it, the call's output settings, and the derived
    DICOM series it has started."""
    generator: Any                      # the generator or its fast backend (`fast_generator`)
    model_name: str | None
    checkpoint_file: Path | None
    checkpoint_sha256: str              # of the bytes loaded: a run may replace the file at any time
    guard: Any                          # the weights' `Guard`, or None (none shipped, or guard=False)
    modality: str
    device: torch.device
    backend: str
    tile: int = 512
    label: bool = False
    record_source_name: bool = False
    series: dict[str, DerivedSeries] = field(default_factory=dict)   # source SeriesInstanceUID -> its derived series


def _open_weights(checkpoint: str | Path | None, model: str | None, generator: torch.nn.Module | None,
                  device: torch.device, guard: bool, backend: str, n_images: int, gan_weight: float | None = None,
                  **outputs: Any) -> _Weights:
    """Load the weights (see `enhance`), fold BatchNorm if loaded here, and pick the backend; `outputs` are the
    call's output settings (`_Weights`' tile, label, record_source_name)."""
    owned = generator is None                          # loaded here: nobody else runs or trains these weights
    generator, model_name, checkpoint_file = load_weights(checkpoint, model, generator, device, gan_weight)
    if owned:                                          # so fold in place: the fast copies share them, none doubles them
        fold_batchnorm(generator, inplace=True)
    sha256 = generator.checkpoint_sha256
    noise_guard = getattr(generator, "guard", None) if guard else None
    modality = getattr(generator, "modality", "endoscopy")
    if backend == "auto" and n_images < ONNX_MIN_IMAGES:
        backend = "torch"
    fast = fast_generator(generator, backend)
    return _Weights(fast, model_name, checkpoint_file, sha256, noise_guard, modality, device, fast.backend,
                    **outputs)


def _enhance_file(run: _Weights, src: Path, rel: str, dst: Path, source: Any) -> dict[str, Any]:
    """Enhance one decoded file (a `DicomImage` for a ``.dcm`` target, else a `DecodedImage`) to `dst`, written
    atomically; returns its audit record."""
    if dst.suffix == ".dcm":
        input_sha256 = file_sha256(src)
        if source.series_instance_uid not in run.series:          # one derived series per source series and call
            run.series[source.series_instance_uid] = derived_series(source)
        series = run.series[source.series_instance_uid]
        details = {"dicom": _write_dicom_job(run.generator, dst, source, run.modality, input_sha256,
                                             run.checkpoint_sha256, run.model_name, run.tile, run.device,
                                             run.label, series), "guard": None}
        (height, width), channels, bits = source.slices.shape[1:], 1, source.bits_stored
    else:
        rgb = source.rgb()                             # a decoded image's sha256 is of its bytes
        restored = enhance_array(run.generator, rgb, tile=run.tile, device=run.device)
        restored, guarded = _guarded(run.guard, rgb, restored)
        pixels = restored.mean(axis=2, keepdims=True) if source.grayscale else restored
        if run.label:
            pixels = burn_label(pixels)
        bits = 16 if source.bits > 8 else 8
        info = png_metadata(rel if run.record_source_name else None, source.sha256, run.checkpoint_sha256,
                            run.model_name)
        with atomic_write(dst) as f:                    # never a half-written output
            save_png(f, pixels, bits, info)
        input_sha256, (height, width, channels), details = source.sha256, pixels.shape, {"guard": guarded}
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": path_text(src.resolve()),
        "input_sha256": input_sha256,
        "output": path_text(dst.resolve()),
        "output_sha256": file_sha256(dst),
        "checkpoint": path_text(run.checkpoint_file.resolve()) if run.checkpoint_file is not None else None,
        "model": run.model_name,
        "checkpoint_sha256": run.checkpoint_sha256,
        "medgan_nb_version": __version__,
        "device": str(run.device),
        "backend": run.backend,
        "width": width,
        "height": height,
        "channels": channels,
        "bits": bits,
        "label": run.label,
        "source_name_in_png": run.record_source_name,
        **details,
    }
