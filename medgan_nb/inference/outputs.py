"""What an enhanced image file carries: a visible label, AI-enhanced metadata, and its bit depth.

- `burn_label(pixels, text)`: a copy of float pixels (H, W, C) in [0, 1] with `text` (`LABEL_TEXT`) in
  white on a black box in the top-left corner, sized to the image.
- `png_metadata(source, source_sha256, checkpoint_sha256, model)`: the PNG text chunks that say the image
  is AI-enhanced (`DESCRIPTION`) and link it to the SHA-256 of its input and of the weights; the input's
  name goes in only when given, since file names often hold patient identifiers.
- `save_png(f, pixels, bits, info)`: pixels (H, W, 1 or 3) in [0, 1] as an 8- or 16-bit grayscale or RGB
  PNG with those chunks (16-bit colour is written directly, as Pillow writes colour at 8 bits only).
- `path_text(path)`: a path as valid Unicode text, bad bytes as ``\\xNN`` escapes.
- `check_finite(values, what)`: `NonFiniteOutputError` if the model gave NaN or infinite values; nothing is
  written for that image or frame.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from .. import __version__

LABEL_TEXT = "AI-enhanced"
DESCRIPTION = ("AI-enhanced image (generative model, medgan_nb). Not the original acquisition: "
               "details may have been smoothed, removed or invented. Do not use for diagnosis "
               "without the original image.")


# ------------------------------------------------------------- labelling
class NonFiniteOutputError(ValueError):
    """The model gave NaN or infinite values for an image or a video frame: nothing is written for it."""


def check_finite(values: np.ndarray, what: str) -> None:
    """`NonFiniteOutputError` naming `what` (a file, or a video's frame) if the model gave NaN or infinite values
    (they would be saved as black)."""
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise NonFiniteOutputError(f"{what}: the model gave {bad} of {values.size} values that are not finite (NaN "
                                   "or infinite), so nothing was written for it; check the weights")


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
