"""Reading image files into float arrays, and finding them on disk.

- `decode_image(path, min_side, at_least)`: a BMP, GIF, JPEG, PNG, TIFF or WebP file (recognised by its content) ->
  `DecodedImage`: ``pixels`` float32 (H, W, C) in [0, 1] with C = 1 or 3, the file's bits per sample and
  the SHA-256 of the file. Samples are scaled by their type (8-bit /255, 16-bit /65535, floats
  as they are), never by their values; 16-bit colour keeps its precision.
- `load_image(...)`: the same as RGB (H, W, 3).
- `list_images(root)`: image files under a folder, sorted (`files_under`: every file, symbolic links to folders
  followed once); `find_layout(root)`: its images folder and, for Kvasir-SEG's ``images/`` + ``masks/`` layout,
  its masks folder.

Every unusable file (unreadable, truncated, too many pixels, a file too large for any image within that limit,
signed or 32-bit integers, NaN, smaller than `MIN_SIDE`) raises `ImageLoadError`, whose message names the file
and the reason. A file is never read whole: its size is checked first (`max_file_bytes`), Pillow and tifffile read
what they decode, and the SHA-256 is computed in chunks.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import (BmpImagePlugin, GifImagePlugin, Image, JpegImagePlugin, PngImagePlugin,  # noqa: F401 (registers
                 TiffImagePlugin, UnidentifiedImageError, WebPImagePlugin)                # PIL_FORMATS)

from ..utils.files import file_sha256

log = logging.getLogger(__name__)

# every extension Pillow registers for PIL_FORMATS (tests check it): GIF and animated PNG/WebP give their first frame
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".jpe", ".jfif", ".gif", ".webp", ".apng")
MIN_SIDE = 16        # smaller images carry no usable detail; they are refused
BYTES_PER_PIXEL = 32   # the widest pixel a supported file can store: four 64-bit float samples, uncompressed


class ImageLoadError(ValueError):
    """An image file that cannot be used; the message names the file and the reason."""


# ---------------------------------------------------------------- decoding
PIL_FORMATS = ("BMP", "GIF", "JPEG", "PNG", "TIFF", "WEBP")  # what IMAGE_EXTENSIONS name (JPEG includes MPO); others
                                                              # are refused
_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


@dataclass(frozen=True)
class DecodedImage:
    """An image file as stored: ``pixels`` float32 (H, W, C) in [0, 1] with C = 1 (grayscale) or 3 (colour),
    ``bits`` per sample in the file (1, 8, 16; 32 or 64 for floats), ``sha256`` of the file (hashed in chunks)."""
    pixels: np.ndarray
    bits: int
    sha256: str

    @property
    def grayscale(self) -> bool:
        return self.pixels.shape[2] == 1

    def rgb(self) -> np.ndarray:
        """(H, W, 3): grayscale repeated over three channels."""
        return np.repeat(self.pixels, 3, axis=2) if self.grayscale else self.pixels


class _Unusable(Exception):
    """A decoded file that cannot be used; the message says why (the caller adds the file name)."""


def load_image(path: str | Path, min_side: int = MIN_SIDE, at_least: int | None = None) -> np.ndarray:
    """Decode any supported image to float32 RGB (H, W, 3) in [0, 1]; see `decode_image` for the rules."""
    return decode_image(path, min_side, at_least).rgb()


def max_file_bytes() -> int | None:
    """The largest image file read: `BYTES_PER_PIXEL` times Pillow's pixel limit ``PIL.Image.MAX_IMAGE_PIXELS``
    (2.9 GB by default), so that no image within the limit is refused for its size; None when the limit is off."""
    return Image.MAX_IMAGE_PIXELS * BYTES_PER_PIXEL if Image.MAX_IMAGE_PIXELS else None


def decode_image(path: str | Path, min_side: int = MIN_SIDE, at_least: int | None = None) -> DecodedImage:
    """Decode a BMP, GIF, JPEG, PNG, TIFF or WebP file (by its content), keeping its channels and bit depth.

    Samples are scaled by their type, never by their values: 8-bit /255, 16-bit /65535,
    floats are taken as already in [0, 1] (values outside are clipped, with a
    warning; NaN or infinity is an error). Signed and 32-bit integers have no
    standard white level and are refused. 16-bit colour keeps its precision
    (Pillow reads 16-bit colour as 8 bits: such PNGs are decoded twice, high and
    low bytes, and such TIFFs are read with tifffile). Transparency is composited
    on black (the background of an endoscopy frame), CMYK becomes RGB, EXIF
    orientation is applied, and of a multi-frame file the first frame is used
    (logged). Pillow's decompression-bomb limit is an error here, not a warning,
    and so is a truncated file (``ImageFile.LOAD_TRUNCATED_IMAGES`` must stay off), and so is a file larger
    than `max_file_bytes` (checked before anything is read: the file is never read whole).

    Every failure is an `ImageLoadError` that names the file and the reason, whatever
    the decoder raised; the decoders' warnings never raise (whatever the caller's
    warning filters) but are logged with the file name when the image is used.

    at_least: the caller will shrink the image to this side anyway, so a JPEG
    may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, Pillow's
    ``draft``) as long as both sides stay >= at_least, which makes loading
    large JPEGs for small models faster.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size, magic = os.fstat(f.fileno()).st_size, f.read(4)
    except OSError as e:
        raise ImageLoadError(f"{path}: cannot read the file ({e.strerror or e})") from None
    limit = max_file_bytes()
    if limit and size > limit:
        raise ImageLoadError(f"{path}: too large: {size:,} bytes, more than any image within Pillow's limit of "
                             f"{Image.MAX_IMAGE_PIXELS:,} pixels can take ({limit:,} bytes; "
                             "PIL.Image.MAX_IMAGE_PIXELS)")
    try:
        with warnings.catch_warnings(record=True) as complaints:     # the same outcome whatever the caller's filters
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            samples, orientation = _decode(path, magic, size, at_least and max(at_least, min_side))
            pixels = _orient(_to_unit(samples, path), orientation)
    except _Unusable as e:
        raise ImageLoadError(f"{path}: {e}") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise ImageLoadError(f"{path}: refused, too many pixels for a safe decode ({e})") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path}: not an image Pillow can read as {', '.join(PIL_FORMATS)}") from None
    except Exception as e:          # decoders raise many types on damaged files: OSError, SyntaxError, struct.error
        raise ImageLoadError(f"{path}: cannot decode ({type(e).__name__}: {e}); "
                             f"the file may be truncated or corrupt") from None
    if min(pixels.shape[:2]) < min_side:
        raise ImageLoadError(f"{path}: {pixels.shape[1]}×{pixels.shape[0]} pixels is too small "
                             f"(need at least {min_side} on each side)")
    try:
        sha256 = file_sha256(path)
    except OSError as e:
        raise ImageLoadError(f"{path}: cannot read the file ({e.strerror or e})") from None
    for complaint in complaints:
        log.warning("%s: decoded, but the decoder warned: %s", path, complaint.message)
    return DecodedImage(pixels, _bits(samples), sha256)


def _decode(path: Path, magic: bytes, size: int, draft: int | None) -> tuple[np.ndarray, int]:
    """The first frame's stored samples, (H, W) or (H, W, C), and its EXIF orientation (1-8), of a file of `size`
    bytes starting with `magic`."""
    if magic in _TIFF_MAGIC:
        decoded = _wide_tiff(path, size)
        if decoded is not None:
            return decoded
    with Image.open(path, formats=PIL_FORMATS) as img:
        if draft and isinstance(img, JpegImagePlugin.JpegImageFile):
            img.draft(img.mode, (draft, draft))
        if img.format == "PNG" and len(img.tile) == 1 and img.tile[0][3] in ("RGB;16B", "RGBA;16B"):
            samples = _png16_colour(img, path)
        else:
            img.load()
            samples = _pil_samples(img)
        orientation = _exif_orientation(img.getexif().get(0x0112))
        _note_frames(path, lambda: getattr(img, "n_frames", 1))
    return samples, orientation


def _png16_colour(img: Image.Image, path: Path) -> np.ndarray:
    """A 16-bit RGB(A) PNG's samples as uint16.

    Pillow has no 16-bit colour mode: its raw mode for this data keeps each
    sample's first (high) byte. Its raw mode for little-endian 16-bit colour keeps
    the second byte, the low one in a PNG, so a second decode gives the low bytes.
    """
    codec, extents, offset, rawmode = img.tile[0]
    img.load()
    high = np.asarray(img)
    with Image.open(path, formats=("PNG",)) as again:
        again.tile = [(codec, extents, offset, rawmode.replace(";16B", ";16L"))]
        again.load()
        low = np.asarray(again)
    return (high.astype(np.uint16) << 8) | low


def _pil_samples(img: Image.Image) -> np.ndarray:
    """A loaded Pillow image as an array of grayscale, gray+alpha, RGB or RGBA samples in their stored type."""
    if img.mode in ("1", "L", "LA", "RGB", "RGBA", "F") or img.mode.startswith("I;16"):
        return np.asarray(img)
    if img.mode == "I":
        raise _Unusable("32-bit or signed integer samples have no standard white level; "
                        "save the image as 8- or 16-bit unsigned integers or as floats in [0, 1]")
    if img.mode in ("P", "PA", "La", "RGBa"):
        return np.asarray(img.convert("RGBA"))
    return np.asarray(img.convert("RGB"))              # CMYK (R = (1 - C)(1 - K)), YCbCr, ...


def _wide_tiff(path: Path, size: int) -> tuple[np.ndarray, int] | None:
    """A grayscale or RGB(A) TIFF with more than 8 bits per sample, read with tifffile; None for any other TIFF.

    Pillow reads such colour TIFFs as 8 bits, and floats wider than 32 bits not at
    all. tifffile needs the imagecodecs package for some compressions (LZW among
    them); without it such a file is left to Pillow, with a warning where that
    loses precision.
    """
    import tifffile
    try:
        tif = tifffile.TiffFile(path)
    except Exception:                         # not a TIFF tifffile can parse: Pillow decides
        return None
    with tif:
        try:
            page = tif.pages.first
        except Exception:                     # no readable first page: Pillow decides
            return None
        bits, photometric = page.bitspersample, page.photometric
        if not isinstance(bits, int) or bits <= 8 or photometric not in (tifffile.PHOTOMETRIC.MINISBLACK,
                                                                         tifffile.PHOTOMETRIC.RGB):
            return None
        if page.compression not in tifffile.TIFF.DECOMPRESSORS:
            if photometric == tifffile.PHOTOMETRIC.RGB:
                log.warning("%s: read at 8 bits per sample by Pillow: tifffile needs the imagecodecs package "
                            "for its %s compression (pip install imagecodecs)", path, page.compression.name)
            return None
        _check_tiff_size(page, size)
        samples = page.asarray()
        if page.axes.startswith("S") and samples.ndim == 3:             # planar: one plane per sample
            samples = np.moveaxis(samples, 0, -1)
        if samples.ndim not in (2, 3):
            raise _Unusable(f"a TIFF of shape {page.shape} ({page.axes}) is not one image")
        _note_frames(path, lambda: len(tif.pages))
        return samples, _exif_orientation(page.tags.valueof(0x0112))


def _check_tiff_size(page, file_size: int) -> None:
    """Refuse what Pillow would refuse: too many pixels, or strips/tiles beyond the end of the file."""
    pixels = page.imagewidth * page.imagelength
    if Image.MAX_IMAGE_PIXELS and pixels > Image.MAX_IMAGE_PIXELS:
        raise Image.DecompressionBombError(f"{pixels} pixels, more than the limit of {Image.MAX_IMAGE_PIXELS}")
    if not page.dataoffsets or any(not n or o + n > file_size for o, n in zip(page.dataoffsets, page.databytecounts)):
        raise _Unusable("its image data runs past the end of the file; the file is truncated or corrupt")


def _note_frames(path: Path, count: Callable[[], int]) -> None:
    """Log that only the first frame of a multi-frame file is used (once it is decoded: counting reads the
    later frames, and a damaged one must not cost the first)."""
    try:
        frames = count()
    except Exception:
        log.info("%s: only the first frame is used (the later ones are unreadable)", path)
        return
    if frames > 1:
        log.info("%s has %d frames; only the first is used", path, frames)


def _exif_orientation(value: object) -> int:
    """The EXIF orientation tag's value if it is a valid one (1-8), else 1 (as stored)."""
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


_ORIENT = {                                  # EXIF orientation -> how to show the stored rows and columns upright
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1), 8: lambda a: np.rot90(a),
}


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    return np.ascontiguousarray(_ORIENT[orientation](pixels)) if orientation in _ORIENT else pixels


def _bits(samples: np.ndarray) -> int:
    return 1 if samples.dtype == bool else samples.dtype.itemsize * 8


def _to_unit(samples: np.ndarray, path: Path) -> np.ndarray:
    """Stored samples -> float32 (H, W, 1 or 3) in [0, 1], scaled by their type; alpha composited on black."""
    a = samples if samples.ndim == 3 else samples[..., None]
    if a.dtype == bool or (a.dtype.kind == "u" and a.dtype.itemsize <= 2):
        x = a.astype(np.float32) / (1 if a.dtype == bool else np.iinfo(a.dtype).max)
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise _Unusable("float samples hold NaN or infinite values")
        if a.min() < 0 or a.max() > 1:
            log.warning("%s: float samples outside [0, 1] (%.4g to %.4g) clipped; floats are taken as "
                        "already in [0, 1]", path, a.min(), a.max())
        x = np.clip(a, 0, 1).astype(np.float32)
    else:
        raise _Unusable(f"{a.dtype} samples have no standard white level (signed or 32-bit integers); save the "
                        f"image as 8- or 16-bit unsigned integers or as floats in [0, 1]")
    if x.shape[2] in (2, 4):                                           # gray + alpha, RGBA
        x = x[..., :-1] * x[..., -1:]
    if x.shape[2] not in (1, 3):
        raise _Unusable(f"{x.shape[2]} channels per pixel; expected grayscale, RGB, or either with alpha")
    return x


# ------------------------------------------------------------- your images
def list_images(root: str | Path) -> list[Path]:
    """Image files (by extension, `IMAGE_EXTENSIONS`) under `root`, as `files_under`, sorted by relative path."""
    return [p for p in files_under(root) if p.suffix.lower() in IMAGE_EXTENSIONS]


def files_under(root: str | Path) -> list[Path]:
    """Every file under `root`, recursively, sorted by its path relative to `root` (through the links).

    Symbolic links to folders are followed, each folder once: a folder already walked (a loop back to a parent,
    or a second link to the same folder) is not walked again, so the walk ends and lists no file twice.
    """
    root, seen, found = Path(root), set(), []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders.sort()
        found += [Path(folder, name) for name in files]
    return sorted((p for p in found if p.is_file()), key=lambda p: p.relative_to(root).as_posix())


def find_layout(root: str | Path) -> tuple[Path, Path | None]:
    """(images folder, masks folder or None) of a data folder.

    Kvasir-SEG's layout is ``images/`` + ``masks/`` with the same file names; `root` may be the folder
    that holds both, its ``images/`` itself, or (the official zip) a folder with one such folder inside.
    Anything else is a plain folder of images, without masks.
    """
    root = Path(root)
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return root / "images", root / "masks"
    if root.name == "images" and (root.parent / "masks").is_dir():
        return root, root.parent / "masks"
    inner = [d for d in root.iterdir() if d.is_dir()] if root.is_dir() else []
    if len(inner) == 1 and (inner[0] / "images").is_dir() and (inner[0] / "masks").is_dir():
        return inner[0] / "images", inner[0] / "masks"
    return root, None
