"""Enhance your own images with a trained generator, labelled and audited.

The original notebook's ethics section asked for "clear labelling of
AI-enhanced content" and "audit trails". Here both are real:

- every output PNG carries text metadata saying it is AI-enhanced, with the
  SHA-256 of the checkpoint or weights bytes that were loaded (and the name of
  the shipped model, `medgan_nb.pretrained`, when one was used) and of the
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
backend measured on this machine (`medgan_nb.export.fast_generator`; README
"Performance" has each backend's time); the ONNX export the engines need costs
a few seconds once, so smaller jobs stay in PyTorch (BatchNorm folded into the
convolutions).
"""
from __future__ import annotations

import json
import logging
import math
import os
import struct
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo
from tqdm.auto import tqdm

from . import __version__
from .checkpoint import atomic_write, checkpoint_path, file_sha256, load_generator
from .pretrained import load_model
from .data import IMAGE_EXTENSIONS, ImageLoadError, decode_image, from_numpy_images, list_images, to_numpy_images
from .dicom import WINDOWS, DicomImage, is_dicom, list_dicom, read_dicom, window, write_derived
from .export import fast_generator, fold_batchnorm
from .guard import Guard
from .models import resolve_device

log = logging.getLogger(__name__)

AUDIT_LOG = "audit.jsonl"
ONNX_MIN_IMAGES = 32          # backend="auto": from this many images on, the one-off export and timing pay off
LABEL_TEXT = "AI-enhanced"
DESCRIPTION = ("AI-enhanced image (generative model, medgan_nb). Not the original acquisition: "
               "details may have been smoothed, removed or invented. Do not use for diagnosis "
               "without the original image.")


# ------------------------------------------------------------ one array
def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _tile_starts(size: int, tile: int, step: int) -> list[int]:
    """Start offsets of tiles of side `tile` covering [0, size); the last one ends exactly at `size`."""
    if size <= tile:
        return [0]
    return list(range(0, size - tile, step)) + [size - tile]


def _ramp(length: int, overlap: int, fade_in: bool, fade_out: bool) -> torch.Tensor:
    """1-D blending weights of one tile: cosine ramps over `overlap` pixels on the sides that meet another tile.

    Where two tiles overlap by exactly `overlap`, their ramps sum to 1 (sin² + cos²).
    Values never reach 0, so every pixel keeps some weight.
    """
    w = torch.ones(length)
    if overlap:
        t = (torch.arange(overlap) + 0.5) / overlap
        up = torch.sin(t * math.pi / 2) ** 2
        if fade_in:
            w[:overlap] = up
        if fade_out:
            w[-overlap:] = up.flip(0)
    return w


def _module_device(module: torch.nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def enhance_array(generator: torch.nn.Module, img: np.ndarray, *, tile: int = 512, overlap: int = 32,
                  device: str | torch.device | None = None, guard: Guard | None = None) -> np.ndarray:
    """Restore one image (H, W, C) float in [0, 1] of any size, C the generator's channels (3, or 1 for the CT,
    MRI and X-ray models); returns float32 (H, W, C) in [0, 1].

    guard: a `medgan_nb.guard.Guard` (shipped models carry one as ``generator.guard``), applied to the
    whole image after the tiles are put together, so that every tile gets the same strength.

    The image is reflect-padded to a multiple of ``generator.size_multiple``. Images
    larger than `tile` go through the generator in tiles of `tile` pixels that
    overlap by `overlap` (both rounded up to multiples of it); the
    tiles are blended with cosine ramps in the overlaps. Runs in eval mode
    under ``torch.inference_mode`` on `device` (default: the generator's),
    and restores the generator's train/eval mode afterwards.
    """
    img = np.asarray(img)
    channels = getattr(generator, "in_channels", None)         # backends' wrappers may not say; the model would
    if img.ndim != 3 or img.shape[2] not in (1, 3) or img.shape[2] != (channels or img.shape[2]):
        raise ValueError(f"expected an (H, W, {channels or '1 or 3'}) image for this generator, got shape {img.shape}")
    channels = img.shape[2]
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"expected floats in [0, 1], got {img.dtype}; divide 8-bit images by 255")
    if tile < 1 or overlap < 0:
        raise ValueError(f"tile must be >= 1 and overlap >= 0, got tile={tile}, overlap={overlap}")
    m = generator.size_multiple
    overlap = _round_up(overlap, m)
    tile = max(_round_up(tile, m), 2 * overlap, m)
    device = torch.device(device) if device is not None else _module_device(generator)
    generator.to(device)

    h, w = img.shape[:2]
    hp, wp = _round_up(h, m), _round_up(w, m)
    padded = np.pad(img.astype(np.float32, copy=False), ((0, hp - h), (0, wp - w), (0, 0)), mode="reflect")
    x = from_numpy_images(padded)                                                   # (C, hp, wp) in [-1, 1]

    out = torch.zeros(channels, hp, wp)
    weight = torch.zeros(1, hp, wp)
    rows, cols = _tile_starts(hp, tile, tile - overlap), _tile_starts(wp, tile, tile - overlap)
    was_training = generator.training
    generator.eval()
    try:
        with torch.inference_mode():
            for i, top in enumerate(rows):
                th = min(tile, hp)
                wy = _ramp(th, overlap, fade_in=i > 0, fade_out=i < len(rows) - 1)
                for j, left in enumerate(cols):
                    tw = min(tile, wp)
                    wx = _ramp(tw, overlap, fade_in=j > 0, fade_out=j < len(cols) - 1)
                    patch = x[:, top:top + th, left:left + tw][None].to(device)
                    y = generator(patch)[0].float().cpu()
                    wt = wy[:, None] * wx[None, :]
                    out[:, top:top + th, left:left + tw] += y * wt
                    weight[:, top:top + th, left:left + tw] += wt
    finally:
        generator.train(was_training)
    out = (out / weight)[:, :h, :w]
    if guard is not None:
        out = guard(x[None, :, :h, :w], out[None])[0]
    return to_numpy_images(out)


# ------------------------------------------------------------- labelling
def burn_label(pixels: np.ndarray, text: str = LABEL_TEXT) -> np.ndarray:
    """A copy of float `pixels` (H, W, C) in [0, 1] with `text` in white on a black box in the top-left corner,
    sized to the image; works for any channel count and bit depth."""
    h, w = pixels.shape[:2]
    size = max(6, round(min(h, w) / 24))
    try:
        font = ImageFont.load_default(size=size)
    except (TypeError, ValueError, OSError, ImportError):   # Pillow without FreeType: fixed bitmap font
        font = ImageFont.load_default()
    box, ink = Image.new("L", (w, h)), Image.new("L", (w, h))
    left, top, right, bottom = ImageDraw.Draw(ink).textbbox((0, 0), text, font=font)
    pad = max(1, size // 4)
    ImageDraw.Draw(box).rectangle((0, 0, right - left + 2 * pad, bottom - top + 2 * pad), fill=255)
    ImageDraw.Draw(ink).text((pad - left, pad - top), text, fill=255, font=font)
    box_a, ink_a = (np.asarray(m, dtype=np.float32)[..., None] / 255 for m in (box, ink))
    return pixels * (1 - box_a) * (1 - ink_a) + ink_a


def png_metadata(source: str | None, source_sha256: str, checkpoint_sha256: str,
                 model: str | None = None) -> PngInfo:
    """The PNG text chunks that mark an output as AI-enhanced and link it to its input and weights.

    source: the input's relative path, or None to leave it out (the default of `enhance`).
    checkpoint_sha256: of the checkpoint or shipped weights file; model: the shipped model's name, if one.
    """
    info = PngInfo()
    info.add_text("Software", f"medgan_nb {__version__}")
    info.add_text("Description", DESCRIPTION)
    info.add_text("medgan_nb:ai_enhanced", "true")
    if source is not None:
        info.add_text("medgan_nb:source", path_text(source))
    info.add_text("medgan_nb:source_sha256", source_sha256)
    info.add_text("medgan_nb:checkpoint_sha256", checkpoint_sha256)
    if model is not None:
        info.add_text("medgan_nb:model", model)
    return info


def path_text(path: str | Path) -> str:
    """A path as valid Unicode text: the bytes of a name that is not valid UTF-8 become ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def save_png(f: BinaryIO, pixels: np.ndarray, bits: int, info: PngInfo) -> None:
    """Write float `pixels` (H, W, 1 or 3) in [0, 1] as an 8- or 16-bit grayscale or RGB PNG with `info`'s text."""
    top = 65535 if bits == 16 else 255
    q = np.round(np.clip(pixels, 0, 1) * top).astype(np.uint16 if bits == 16 else np.uint8)
    if q.shape[2] == 3 and bits == 16:
        f.write(_png_rgb16(q, info))
    else:                                                    # Pillow: L, I;16 or RGB
        Image.fromarray(q[..., 0] if q.shape[2] == 1 else q).save(f, format="PNG", pnginfo=info)


def _png_rgb16(q: np.ndarray, info: PngInfo) -> bytes:
    """A 16-bit RGB PNG (Pillow writes colour at 8 bits only): header, `info`'s text chunks, pixel rows, end."""
    h, w, _ = q.shape
    rows = q.astype(">u2").view(np.uint8).reshape(h, w * 6)
    rows = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1)      # filter type 0 ("none") per row
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)),   # 16 bits, colour type 2: RGB
              *((kind, data) for kind, data, *_ in info.chunks),
              (b"IDAT", zlib.compress(rows.tobytes(), 6)),
              (b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(struct.pack(">I", len(data)) + kind + data +
                                          struct.pack(">I", zlib.crc32(kind + data)) for kind, data in chunks)


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
    model was trained in (`medgan_nb.scans.to_model`); pixels outside that window (CT beyond -1000 ...
    +1000 HU, MR/X-ray outside their 0.5-99.5 percentiles) are passed through unchanged.
    """
    from .scans import from_model, to_model, window_of
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


def _check_modality(src: Path, image: DicomImage, model_modality: str) -> str:
    """The medgan_nb modality of a DICOM image, which must be the one the model was trained on."""
    from .scans import MODALITY_OF_DICOM
    modality = MODALITY_OF_DICOM.get(image.modality)
    if modality is None:
        raise ValueError(f"{src}: DICOM modality {image.modality!r} has no model here (CT, MR, CR, DX only)")
    if modality != model_modality:
        raise ValueError(f"{src} is a {image.modality} image but the model was trained on {model_modality}; "
                         f"use a {modality} model: python -m medgan_nb train --preset {modality}, then "
                         f"enhance --checkpoint output/runs/<run>")
    return modality


def _write_dicom_job(generator: torch.nn.Module, src: Path, dst: Path, image: DicomImage, model_modality: str,
                     source_sha256: str, sha256: str, model_name: str | None, tile: int, device: torch.device,
                     label: bool) -> dict:
    """Enhance one DICOM file: the derived DICOM at `dst`, a 16-bit PNG of its first slice beside it; returns
    the audit log's record of both."""
    import pydicom
    modality = _check_modality(src, image, model_modality)
    enhanced, pictures, record = enhance_dicom(generator, image, modality, tile=tile, device=device)
    write_derived(image, enhanced, dst, weights_sha256=sha256, model_name=model_name, overwrite=True)
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
                 generator: torch.nn.Module | None = None,
                 device: str | torch.device = "cpu") -> tuple[torch.nn.Module, str | None, Path | None]:
    """(generator on `device`, shipped model name or None, checkpoint file or None) from at most one source.

    checkpoint: a checkpoint file or run folder; model: a shipped model's name; generator: one already
    loaded (it must carry ``checkpoint_sha256``, as `load_generator`/`load_model` set, so outputs name
    their weights). With none of them: the default shipped model.
    """
    given = [k for k, v in (("checkpoint", checkpoint), ("model", model), ("generator", generator)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give one of checkpoint, model and generator, not {' and '.join(given)}")
    if checkpoint is not None:
        return load_generator(checkpoint, device)[0], None, checkpoint_path(checkpoint)
    if generator is None:
        generator = load_model(model, device)[0]                  # model None: the default shipped one
    elif not getattr(generator, "checkpoint_sha256", None):
        raise ValueError("the generator has no checkpoint_sha256, so its outputs could not name their weights; "
                         "load it with medgan_nb.pretrained.load_model or medgan_nb.checkpoint.load_generator")
    return generator.to(device), getattr(generator, "model_name", None), None


def enhance(inputs: str | Path, out_dir: str | Path, checkpoint: str | Path | None = None, *,
            model: str | None = None, generator: torch.nn.Module | None = None, device: str = "auto",
            label: bool = False, overwrite: bool = False, tile: int = 512, on_error: str = "raise",
            backend: str = "auto", record_source_name: bool = False, quiet: bool = False,
            guard: bool = True) -> list[Path]:
    """Enhance one image or DICOM file, or every one under a folder; returns the files written (PNG or DICOM).

    DICOM files (found by content, any extension) need a CT, MRI or X-ray model of their modality (a
    ``ct``/``mri``/``xray`` preset run): each becomes a derived DICOM ``out_dir/<rel>.dcm`` (see
    `medgan_nb.dicom.write_derived`: new UIDs, the weights' SHA-256 in DerivationDescription, the stored
    bit depth and rescale) plus a 16-bit PNG of its first slice beside it; the audit line records both.

    Outputs keep each file's relative path and stem, as PNGs under `out_dir`
    (``a/b/x.jpg`` -> ``out_dir/a/b/x.png``) with the input's channels and depth
    (grayscale or RGB; 16-bit for inputs with more than 8 bits per sample),
    labelled as AI-enhanced in their metadata (and visibly with ``label=True``).
    The metadata holds the input's SHA-256, and its relative path only with
    ``record_source_name=True``. Each output is written atomically and then
    logged in ``out_dir/audit.jsonl``.

    Existing outputs raise `FileExistsError` before any work unless
    ``overwrite=True``. An unreadable input raises `ImageLoadError`
    (``on_error="raise"``) or is logged, counted and left out (``"skip"``).
    A checkpoint that is not ours raises `CheckpointError`.

    The weights: `checkpoint` (a file or run folder), `model` (a shipped model's name,
    `medgan_nb.pretrained`) or `generator` (already loaded), at most one of them; with none, the
    default shipped model. Outputs and the audit log record the weights' SHA-256 and the model's name.

    backend: one of `medgan_nb.config.INFERENCE_BACKENDS` ("torch", ... "openvino-bf16"), or "auto": for
    `ONNX_MIN_IMAGES` images or more on the CPU the fastest of them measured
    here, else "torch".

    guard: apply the weights' guard (shipped models carry one, `medgan_nb.guard`): an image that shows no
    noise and that the model would change only a little is written unchanged. Each audit line records the
    guard's measurements and the strength used.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    inputs, out_dir = Path(inputs), Path(out_dir)
    jobs = _jobs(inputs, out_dir)
    if not overwrite:
        existing = [target for src, _, dst in jobs for target in _outputs(src, dst) if target.exists()]
        if existing:
            raise FileExistsError(f"{existing[0]} already exists ({len(existing)} of {len(jobs)} outputs do); "
                                  f"pass overwrite=True or choose another output folder")

    device = resolve_device(device)
    owned = generator is None                          # loaded here: nobody else runs or trains these weights
    generator, model_name, checkpoint_file = load_weights(checkpoint, model, generator, device)
    if owned:                                          # so fold in place: the fast copies share them, none doubles them
        fold_batchnorm(generator, inplace=True)
    checkpoint_sha256 = generator.checkpoint_sha256      # of the bytes loaded: a run may replace the file any time
    noise_guard = getattr(generator, "guard", None) if guard else None
    model_modality = getattr(generator, "modality", "endoscopy")
    if backend == "auto" and len(jobs) < ONNX_MIN_IMAGES:
        backend = "torch"
    generator = fast_generator(generator, backend)
    backend = generator.backend
    log.info("enhancing %d image(s) with %s (sha256 %s…) on %s (%s)", len(jobs),
             checkpoint_file or f"model {model_name}", checkpoint_sha256[:12], device, backend)

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    skipped = 0
    for src, rel, dst in tqdm(jobs, desc="enhancing", unit="img", disable=quiet):
        dicom = dst.suffix == ".dcm"
        try:
            source = read_dicom(src) if dicom else decode_image(src)     # a decoded image's sha256 is of its bytes
        except ImageLoadError as e:
            if on_error == "raise":
                raise
            log.warning("skipped: %s", e)
            skipped += 1
            continue
        if dicom:
            input_sha256 = file_sha256(src)
            details = {"dicom": _write_dicom_job(generator, src, dst, source, model_modality, input_sha256,
                                                 checkpoint_sha256, model_name, tile, device, label), "guard": None}
            (height, width), channels, bits = source.slices.shape[1:], 1, source.bits_stored
        else:
            rgb = source.rgb()
            restored = enhance_array(generator, rgb, tile=tile, device=device)
            restored, guarded = _guarded(noise_guard, rgb, restored)
            pixels = restored.mean(axis=2, keepdims=True) if source.grayscale else restored
            if label:
                pixels = burn_label(pixels)
            bits = 16 if source.bits > 8 else 8
            info = png_metadata(rel if record_source_name else None, source.sha256, checkpoint_sha256, model_name)
            with atomic_write(dst) as f:                    # never a half-written output
                save_png(f, pixels, bits, info)
            input_sha256, (height, width, channels), details = source.sha256, pixels.shape, {"guard": guarded}

        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "input": path_text(src.resolve()),
            "input_sha256": input_sha256,
            "output": path_text(dst.resolve()),
            "output_sha256": file_sha256(dst),
            "checkpoint": path_text(checkpoint_file.resolve()) if checkpoint_file is not None else None,
            "model": model_name,
            "checkpoint_sha256": checkpoint_sha256,
            "medgan_nb_version": __version__,
            "device": str(device),
            "backend": backend,
            "width": width,
            "height": height,
            "channels": channels,
            "bits": bits,
            "label": label,
            "source_name_in_png": record_source_name,
            **details,
        }
        with open(out_dir / AUDIT_LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        written.append(dst)

    if skipped:
        log.warning("skipped %d of %d input file(s) that cannot be read", skipped, len(jobs))
    log.info("wrote %d image(s) to %s; audit log %s", len(written), out_dir, out_dir / AUDIT_LOG)
    return written
