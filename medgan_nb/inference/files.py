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
- every output gets one JSON line in ``out_dir/audit.jsonl`` (appended; cut back only
  to remove an incomplete last line or a line whose append failed): when, from which file,
  with which checkpoint or model, to which file. An output and its line exist together or not at all.
  This local log keeps the paths; names that are not valid UTF-8 are written
  with ``\\xNN`` escapes for their bad bytes, so every line is valid JSON.

Outputs keep the input's channels and depth: grayscale stays grayscale (8- or
16-bit), colour stays RGB, and inputs with more than 8 bits per sample (16-bit,
float) give 16-bit PNGs.

Images of any size work: `enhance_array` reflect-pads each image to a multiple
of the generator's ``size_multiple`` (2**depth for the UNet, which halves it
`depth` times) and processes large images in overlapping tiles blended with
cosine ramps, so memory stays bounded and no seams appear.

Speed: on a CPU, backend="auto" uses the backend measured fastest for these weights on this machine
(`medgan_nb.inference.backends.fast_generator`, remembered in the user cache by `remember_backend`; README
"Performance" has each backend's time). Measuring (an ONNX export and timed runs) costs seconds to tens of
seconds, so it is done only for inputs of `AUTO_MIN_PIXELS` pixels or more; smaller jobs stay in PyTorch
(BatchNorm folded into the convolutions), or its remembered faster layout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..data.decode import IMAGE_EXTENSIONS, ImageLoadError, decode_image
from ..data.dicom import (DicomError, DicomImage, files_by_kind, is_dicom, kind_problem, read_dicom,
                          read_header)
from ..data.dicom_write import DerivedSeries, derived_series, write_derived
from ..models.build import resolve_device
from ..models.checkpoint import CheckpointError, checkpoint_path, load_generator
from ..models.guard import Guard
from ..models.zoo import load_model
from ..utils.files import atomic_write, file_sha256, refuse_existing
from ..utils.images import WINDOWS, from_numpy_images, to_numpy_images, window
from .audit import append_record, output_record, read_records, repair_log
from .backends import ENGINES, fast_generator, remember_backend, remembered_backend
from .fold import fold_batchnorm
from .outputs import NonFiniteOutputError, burn_label, check_finite, path_text, png_metadata, save_png
from .video import (VIDEO_EXTENSIONS, VideoLoadError, check_video, enhance_video_file, is_video, video_pixels,
                    written_by_us)
from ..models.runner import enhance_array

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:                                    # not on Windows: no output folder lock there
    fcntl = None

AUDIT_LOG = "audit.jsonl"
AUTO_MIN_PIXELS = 2**27       # backend="auto": from this many input pixels on, the one-off export and timing pay off
EXISTING_HINT = ("pass overwrite=True to replace them, resume=True to finish an interrupted run, or choose another "
                 "out_dir")


class OutputBusyError(RuntimeError):
    """Another `enhance` holds the output folder's lock: it is writing there now."""


# ---------------------------------------------------------- files & folders
def _jobs(inputs: Path, out_dir: Path) -> list[tuple[Path, str, Path]]:
    """(source file, its path relative to the input root, output file) for every image to enhance."""
    if inputs.is_file():
        files, root = [inputs], inputs.parent
    elif inputs.is_dir():
        root = inputs
        out_resolved = out_dir.resolve()
        if inputs.resolve().is_relative_to(out_resolved):
            raise ValueError(f"the input folder {path_text(inputs)} is the output folder {path_text(out_dir)} or "
                             "inside it; choose another out_dir")
        images, dicom, others = files_by_kind(inputs)           # one walk of the folder
        videos = [p for p in others if is_video(p)]            # by name, as images are; decoded by FFmpeg (PyAV)
        others = [p for p in others if not is_video(p)]
        files = [p for p in sorted({*images, *dicom, *videos}) if not p.resolve().is_relative_to(out_resolved)]
        _log_ignored(inputs, out_resolved, others)
        named = _outputs_named_in_logs(p for p in others if p.name == AUDIT_LOG)
        ours = [p for p in files if _written_by_us(p, named)]
        if ours:
            log.info("left out %d file(s) written by medgan_nb enhance (named in an audit log, or labelled "
                     "AI-enhanced in their metadata)", len(ours))
            files = [p for p in files if p not in set(ours)]
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}), videos "
                                    f"({', '.join(VIDEO_EXTENSIONS)}) or DICOM files under "
                                    f"{path_text(inputs)}{' other than outputs of medgan_nb enhance' if ours else ''}")
    else:
        raise FileNotFoundError(f"input {path_text(inputs)} does not exist")
    jobs, seen = [], {}
    for src in files:
        rel = src.relative_to(root)
        dst = out_dir / rel.with_suffix(".dcm" if is_dicom(src) else ".mp4" if is_video(src) else ".png")
        for target in _outputs(src, dst):
            if target.resolve() == src.resolve():
                raise ValueError(f"{path_text(src)} would be overwritten by its own enhanced version; choose "
                                 "another out_dir")
            if target in seen:
                raise ValueError(f"{path_text(seen[target])} and {path_text(src)} would both be written to "
                                 f"{path_text(target)}; rename one of them")
            seen[target] = src
        jobs.append((src, rel.as_posix(), dst))
    return jobs


def _log_ignored(inputs: Path, out_resolved: Path, others: list[Path]) -> None:
    """A warning that counts and names (the first 20) of `others`, the files under `inputs` that are neither images
    Pillow reads nor DICOM (`files_by_kind`), outside the output folder; our audit logs are not counted."""
    ignored = [p.relative_to(inputs).as_posix() for p in others
               if p.name != AUDIT_LOG and not p.resolve().is_relative_to(out_resolved)]
    if ignored:
        log.warning("ignored %d file(s) that are not images or DICOM: %s", len(ignored),
                    ", ".join(ignored[:20]) + (", ..." if len(ignored) > 20 else ""))


def _outputs(src: Path, dst: Path) -> list[Path]:
    """The files one job writes: the PNG; for a DICOM source the derived DICOM and a PNG beside it."""
    return [dst, dst.with_suffix(".png")] if dst.suffix == ".dcm" else [dst]


def _targets(jobs: list[tuple[Path, str, Path]]) -> list[Path]:
    """Every file the jobs write."""
    return [target for src, _, dst in jobs for target in _outputs(src, dst)]


def _outputs_named_in_logs(audit_logs: Iterable[Path]) -> set[str]:
    """The outputs (as `path_text` of their resolved paths) that the enhance audit logs `audit_logs` (those under an
    input folder) name: so that an earlier run's outputs inside an input folder are not enhanced again. Lines that
    are not our records count for nothing."""
    named = set()
    for audit_log in audit_logs:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            for line in audit_log.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict) and "medgan_nb_version" in record:
                        named.add(str(record.get("output")))
                        named.add(str((record.get("dicom") or {}).get("png")))
    return named


def _written_by_us(path: Path, named: set[str]) -> bool:
    """Whether `path` is an output of `enhance`: named in an audit log (`_outputs_named_in_logs`), or a PNG whose
    metadata says so (it may have been moved away from its log)."""
    if path_text(path.resolve()) in named:
        return True
    if is_video(path):
        return written_by_us(path)
    if path.suffix.lower() != ".png":
        return False
    try:
        with Image.open(path) as im:                   # reads the chunks before the pixels only
            return im.info.get("medgan_nb:ai_enhanced") == "true"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


# ------------------------------------------------------------------ DICOM
def enhance_dicom(generator: torch.nn.Module, image: DicomImage, modality: str, *, tile: int = 512,
                  device: str | torch.device | None = None, progress: bool | None = None
                  ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Restore every slice of a DICOM image with a 1-channel CT, MRI or X-ray model.

    Returns (enhanced slices in the image's physical units, (n, H, W) float32; the same in [0, 1] for
    pictures (CT in the soft-tissue window); a record for the audit log). Values go through the units the
    model was trained in (`medgan_nb.data.scans.to_model`); pixels outside that window (CT beyond -1000 ...
    +1000 HU, MR/X-ray outside their 0.5-99.5 percentiles) are passed through unchanged. progress: the tile
    progress bar of `enhance_array` (None: only for large slices).
    """
    from ..data.scans import from_model, to_model, window_of
    lo, hi = window_of(modality, image.slices)
    inside = (image.slices >= lo) & (image.slices <= hi)
    out = np.empty_like(image.slices)
    for i, values in enumerate(image.slices):
        x = to_model(values, modality, lo, hi)
        restored = enhance_array(generator, ((x + 1) / 2)[..., None], tile=tile, device=device,
                                 progress=progress)[..., 0]
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


def _write_dicom_job(run: _Weights, src: Path, dst: Path, image: DicomImage, source_sha256: str,
                     series: DerivedSeries) -> dict:
    """Enhance one DICOM file `src`, already checked by `_check_dicom_inputs`: the derived DICOM at `dst` in
    `series`, a 16-bit PNG of its first slice beside it; returns the audit log's record of both.
    `NonFiniteOutputError` before anything is written if the model gave NaN or infinite values."""
    import pydicom
    enhanced, pictures, record = enhance_dicom(run.generator, image, run.modality, tile=run.tile, device=run.device,
                                               progress=run.progress)
    check_finite(enhanced, path_text(src))
    write_derived(image, enhanced, dst, weights_sha256=run.checkpoint_sha256, model_name=run.model_name,
                  series=series, overwrite=True)
    png = dst.with_suffix(".png")
    pixels = pictures[0][..., None]
    with atomic_write(png) as f:
        save_png(f, burn_label(pixels) if run.label else pixels, 16,
                 png_metadata(None, source_sha256, run.checkpoint_sha256, run.model_name))
    derived = pydicom.dcmread(dst, stop_before_pixels=True)
    record.update(source_sop_instance_uid=image.sop_instance_uid, sop_instance_uid=str(derived.SOPInstanceUID),
                  series_instance_uid=str(derived.SeriesInstanceUID), png=path_text(png.resolve()),
                  png_sha256=file_sha256(png))
    return record


def _check_finite_weights(generator: torch.nn.Module, what: str) -> None:
    """`CheckpointError` naming `what` and the count if any weight or buffer of `generator` is NaN or infinite
    (a diverged training): its outputs would be NaN, saved as black images."""
    tensors = [t for t in (*generator.parameters(), *generator.buffers()) if t.is_floating_point()]
    bad = sum(int((~torch.isfinite(t)).sum()) for t in tensors)
    if bad:
        total = sum(t.numel() for t in tensors)
        raise CheckpointError(f"{what}: {bad} of {total} weights are not finite (NaN or infinite), so every output "
                              "would be too; the training diverged: use an earlier checkpoint")


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
    return to_numpy_images(guard.blend(x, y, measured["strength"])[0]), record


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
            label: bool = False, overwrite: bool = False, resume: bool = False, tile: int = 512,
            on_error: str = "raise", backend: str = "auto", record_source_name: bool = False, quiet: bool = False,
            guard: bool = True, gan_weight: float | None = None) -> list[Path]:
    """Enhance one image, video or DICOM file, or every one under a folder; returns the files written (PNG, MP4 or
    DICOM).

    Videos (``.mp4 .mov .avi .mkv .webm .m4v .mpg .mpeg``, needs PyAV: ``pip install av``) become
    ``out_dir/<rel>.mp4``: every frame restored as an image is, the guard's strength smoothed over time, H.264,
    same size, frame rate and timestamps, no audio; written atomically, one audit line per video with its frame
    count, frame rate and guard strengths (`medgan_nb.inference.video`). A video that cannot be decoded is an
    `ImageLoadError` (`VideoLoadError`), skipped and counted with ``on_error="skip"``.

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
    logged in ``out_dir/audit.jsonl`` (`medgan_nb.inference.audit.append_record`); if the record cannot be
    appended (a full disk), the output is removed again and the error goes on, so no output lacks its record
    and the log stays valid JSON lines. A log whose last line a crash left incomplete is cut back first (a
    warning). A symbolic link as the log raises ValueError. Files under the input folder that are outputs of
    `enhance` (named in an audit log there, or PNGs labelled AI-enhanced) are left out of the inputs, logged.

    One run at a time per output folder: `OutputBusyError` at once if another `enhance` is writing there
    (an ``flock`` on the folder itself, held for the run). Weights with NaN or infinite values raise
    `CheckpointError` before any work; an output with such values raises `NonFiniteOutputError` before it
    is written (never a black image).

    Existing outputs raise `FileExistsError` before any work unless ``overwrite=True`` (redo all; each new
    audit record supersedes the output's earlier ones, `verify_audit`) or ``resume=True`` (finish an
    interrupted run: inputs whose outputs exist and match their last audit record's SHA-256 are skipped,
    the rest are redone; returns only the files written now); not both. An unreadable input
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

    backend: one of `medgan_nb.config.INFERENCE_BACKENDS`, or "auto": on the CPU, for inputs of `AUTO_MIN_PIXELS`
    pixels or more the choice remembered for these weights on this machine
    (`medgan_nb.inference.backends.remembered_backend`), else the fastest measured here (then remembered);
    for smaller inputs the remembered choice only if it is a PyTorch one (an engine's ONNX export costs
    seconds), else "torch".

    guard: apply the weights' guard (shipped models carry one, `medgan_nb.models.guard`): an image that shows no
    noise and that the model would change only a little is written unchanged. Each audit line records the
    guard's measurements and the strength used.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if overwrite and resume:
        raise ValueError("give resume or overwrite, not both: resume=True keeps the outputs already recorded, "
                         "overwrite=True redoes every one")
    inputs, out_dir = Path(inputs), Path(out_dir)
    jobs = _jobs(inputs, out_dir)
    if not overwrite and not resume:
        refuse_existing(_targets(jobs), EXISTING_HINT)
    n_pixels = sum(_pixels(src) for src, _, _ in jobs) if backend == "auto" else 0    # only "auto" needs it
    run = _open_weights(checkpoint, model, generator, resolve_device(device), guard, backend, n_pixels, gan_weight,
                        tile=tile, label=label, record_source_name=record_source_name,
                        progress=False if quiet else None)
    log.info("enhancing %d image(s) with %s (sha256 %s…) on %s (%s)", len(jobs),
             path_text(run.checkpoint_file) if run.checkpoint_file else f"model {run.model_name}",
             run.checkpoint_sha256[:12], run.device, run.backend)
    checked = _check_dicom_inputs(jobs, run.modality, on_error)
    out_dir.mkdir(parents=True, exist_ok=True)
    audit_log = out_dir / AUDIT_LOG
    written: list[Path] = []
    done = 0                                                # resume: inputs whose outputs are written and recorded
    with _locked(out_dir):
        repair_log(audit_log)
        if resume:
            checked, done = _unfinished(checked, audit_log)
            log.info("resume: %d output(s) already written and recorded, left as they are", done)
        elif not overwrite:                                 # again, locked: a run may have finished meanwhile
            refuse_existing(_targets(checked), EXISTING_HINT)
        for src, rel, dst in tqdm(checked, desc="enhancing", unit="img", disable=quiet):
            source = _read(src, dst, on_error)
            if source is not None:
                try:
                    _enhance_and_record(run, src, rel, dst, source, audit_log)
                except VideoLoadError as e:                 # a video that fails part-way: nothing of it is kept
                    if on_error == "raise":
                        raise
                    log.warning("skipped: %s", e)
                    continue
                written.append(dst)

    if done + len(written) < len(jobs):
        log.warning("skipped %d of %d input file(s) that cannot be read or do not fit the model",
                    len(jobs) - done - len(written), len(jobs))
    log.info("wrote %d image(s) to %s; audit log %s", len(written), path_text(out_dir), path_text(audit_log))
    return written


@contextlib.contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the output folder itself while the block runs; `OutputBusyError` at once if
    another process holds it. A lock on the folder, not on a lock file: nothing to leave behind or remove."""
    if fcntl is None:
        yield
        return
    fd = os.open(out_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputBusyError(f"another enhance is writing to {path_text(out_dir)}; wait for it or choose "
                                  "another out_dir") from None
        yield
    finally:
        os.close(fd)                                    # closing the folder releases the lock


def _unfinished(jobs: list[tuple[Path, str, Path]], audit_log: Path) -> tuple[list[tuple[Path, str, Path]], int]:
    """For ``resume=True``: (the jobs still to do, how many are done). A job is done when its outputs exist and
    match the SHA-256 of the last audit record that names them."""
    records = {record.get("output"): record for _, record in read_records(audit_log)} if audit_log.exists() else {}
    todo = [job for job in jobs if not _recorded(job[2], records.get(path_text(job[2].resolve())))]
    return todo, len(jobs) - len(todo)


def _recorded(dst: Path, record: dict | None) -> bool:
    """Whether output `dst` (and, for a derived DICOM, the PNG beside it) exists with the SHA-256 `record` holds."""
    if record is None:
        return False
    pairs = [(dst, record.get("output_sha256"))]
    if dst.suffix == ".dcm":
        pairs.append((dst.with_suffix(".png"), (record.get("dicom") or {}).get("png_sha256")))
    return all(path.is_file() and file_sha256(path) == sha256 for path, sha256 in pairs)


def _enhance_and_record(run: _Weights, src: Path, rel: str, dst: Path, source: Any, audit_log: Path) -> None:
    """Enhance one file and append its audit record. If anything fails on the way (a full disk, an interrupt),
    the files written here are removed again: no output without its record, no record without its output."""
    targets = _outputs(src, dst)
    before = {target: _identity(target) for target in targets}
    try:
        record = _enhance_file(run, src, rel, dst, source)
        try:
            append_record(audit_log, record)
        except OSError as e:
            raise OSError(e.errno, f"{e.strerror or e}: could not append to the audit log {path_text(audit_log)}, "
                                   f"so {path_text(dst)} was removed again; free space, then rerun with "
                                   "resume=True") from e
    except BaseException:
        for target in targets:
            if _identity(target) != before[target]:     # written by this job (an os.replace makes a new inode)
                target.unlink(missing_ok=True)
        raise


def _identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime in ns, size) of a file, or None when there is none: tells whether it was written since."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _pixels(src: Path) -> int:
    """The pixel count of an image file from its header (0 where it cannot be read that way: DICOM, broken files);
    for the choice of backend only."""
    if is_video(src):
        return video_pixels(src)
    try:
        with Image.open(src) as im:
            return im.width * im.height
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return 0


def _read(src: Path, dst: Path, on_error: str) -> Any:
    """The decoded input (a `DicomImage` for a ``.dcm`` target, a checked `VideoInfo` for a ``.mp4`` one), or None
    for an unreadable one with ``on_error="skip"`` (logged); ImageLoadError with ``"raise"``."""
    try:
        if dst.suffix == ".mp4":                         # a video: its header and first frame are checked here
            return check_video(src)
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
    progress: bool | None = None        # the tile progress bar of large images (False: quiet)
    series: dict[str, DerivedSeries] = field(default_factory=dict)   # source SeriesInstanceUID -> its derived series


def _open_weights(checkpoint: str | Path | None, model: str | None, generator: torch.nn.Module | None,
                  device: torch.device, guard: bool, backend: str, n_pixels: int, gan_weight: float | None = None,
                  **outputs: Any) -> _Weights:
    """Load the weights (see `enhance`; `CheckpointError` for NaN or infinite ones), fold BatchNorm if loaded here,
    and pick the backend for `n_pixels` of input (`enhance`'s backend); `outputs` are the call's output settings
    (`_Weights`' tile, label, record_source_name, progress)."""
    owned = generator is None                          # loaded here: nobody else runs or trains these weights
    generator, model_name, checkpoint_file = load_weights(checkpoint, model, generator, device, gan_weight)
    _check_finite_weights(generator, path_text(checkpoint_file) if checkpoint_file is not None
                          else f"model {model_name}" if model_name else "the generator")
    if owned:                                          # so fold in place: the fast copies share them, none doubles them
        fold_batchnorm(generator, inplace=True)
    sha256 = generator.checkpoint_sha256
    noise_guard = getattr(generator, "guard", None) if guard else None
    modality = getattr(generator, "modality", "endoscopy")
    measure = backend == "auto" and device.type == "cpu"
    if measure:                                        # small work: no timing, and no engine's ONNX export either
        remembered = remembered_backend(sha256)
        backend = (remembered or "auto" if n_pixels >= AUTO_MIN_PIXELS
                   else remembered if remembered and remembered not in ENGINES else "torch")
        measure = backend == "auto"
    fast = fast_generator(generator, backend)
    if measure:
        remember_backend(sha256, fast.backend)
    return _Weights(fast, model_name, checkpoint_file, sha256, noise_guard, modality, device, fast.backend,
                    **outputs)


def _enhance_file(run: _Weights, src: Path, rel: str, dst: Path, source: Any) -> dict[str, Any]:
    """Enhance one decoded file (a `DicomImage` for a ``.dcm`` target, else a `DecodedImage`) to `dst`, written
    atomically; returns its audit record. A video (``.mp4`` target) is enhanced frame by frame
    (`medgan_nb.inference.video.enhance_video_file`)."""
    if dst.suffix == ".mp4":
        return enhance_video_file(run, src, rel, dst)
    if dst.suffix == ".dcm":
        input_sha256 = file_sha256(src)
        if source.series_instance_uid not in run.series:          # one derived series per source series and call
            run.series[source.series_instance_uid] = derived_series(source)
        series = run.series[source.series_instance_uid]
        details = {"dicom": _write_dicom_job(run, src, dst, source, input_sha256, series), "guard": None}
        (height, width), channels, bits = source.slices.shape[1:], 1, source.bits_stored
    else:
        rgb = source.rgb()                             # a decoded image's sha256 is of its bytes
        restored = enhance_array(run.generator, rgb, tile=run.tile, device=run.device, progress=run.progress)
        check_finite(restored, path_text(src))                    # before the guard, which could hide it
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
    return {**output_record(run, src, dst, input_sha256, width, height, channels, bits), **details}
