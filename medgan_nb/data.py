"""Clean images for training and evaluation.

Every dataset here yields ``(image, key)``: a float tensor (3, S, S) in [-1, 1]
and a string that names the image stably (its relative path, or the patch or
frame it is). Keys decide the train/val/test split and seed the evaluation's
degradations, so the same image is always in the same split and always
degraded the same way.

- `ImageFolderDataset`: your own images (jpg, png, tif, bmp; 8- or 16-bit or
  float, grayscale or colour: see `decode_image`), e.g. Kvasir-SEG after
  ``python -m medgan_nb data download kvasir-seg``.
- `EmbeddedPatchDataset`: real medical images that ship with scikit-image (a
  colour fundus photograph and an immunohistochemistry slide), cut into patches.
- `SyntheticEndoscopyDataset`: procedural endoscopy-like frames (see `medgan_nb.synthetic`).
- `default_dataset(split, cfg)`: the folder in ``cfg.data_dir`` or, with none,
  the embedded patches plus synthetic frames: works offline, out of the box.

Degradation is not done here: the training loop degrades whole batches on its
device (see `medgan_nb.degrade`), the original did it image by image on the CPU.
"""
from __future__ import annotations

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin  # noqa: F401 (registers PIL_FORMATS)
from torch.utils.data import ConcatDataset, Dataset, Subset
from tqdm.auto import tqdm

from .config import Config

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
SPLITS = ("train", "val", "test")
MIN_SIDE = 16        # smaller images carry no usable detail; they are refused
Split = Literal["train", "val", "test"]


class ImageLoadError(ValueError):
    """An image file that cannot be used; the message names the file and the reason."""


# ------------------------------------------------------------------- ranges
# Images are floats in [0, 1] on disk and for the classical filters, in [-1, 1] for the models.
def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] (no clamp: callers that may hold values outside the range clamp themselves)."""
    return (x + 1) / 2


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], clamped."""
    return x.clamp(0, 1) * 2 - 1


def to_numpy_images(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) or (C, H, W) tensor in [-1, 1] -> float32 numpy (N, H, W, C) or (H, W, C) in [0, 1]."""
    x = to_unit(x.detach().float().cpu().clamp(-1, 1))
    return x.movedim(-3, -1).contiguous().numpy()


def from_numpy_images(a: np.ndarray) -> torch.Tensor:
    """Float numpy (N, H, W, C) or (H, W, C) in [0, 1] -> float32 tensor (N, C, H, W) or (C, H, W) in [-1, 1]."""
    return from_unit(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).movedim(-1, -3)).contiguous()


# ------------------------------------------------------------------- splits
def split_of(key: str, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> Split:
    """The split of an item, from a hash of its key: stable when other items are added or removed.

    A key from a file name that is not valid UTF-8 (Python holds its bad bytes as surrogates) hashes its
    original bytes; every other key hashes as it always did.
    """
    u = int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()[:8], "little") / 2**64
    if u < ratios[0]:
        return "train"
    return "val" if u < ratios[0] + ratios[1] else "test"


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")


# ---------------------------------------------------------------- decoding
PIL_FORMATS = ("BMP", "JPEG", "PNG", "TIFF")     # what IMAGE_EXTENSIONS name (JPEG includes MPO); others are refused
_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


@dataclass(frozen=True)
class DecodedImage:
    """An image file as stored: ``pixels`` float32 (H, W, C) in [0, 1] with C = 1 (grayscale) or 3 (colour),
    ``bits`` per sample in the file (1, 8, 16; 32 or 64 for floats), ``sha256`` of the bytes decoded."""
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


def decode_image(path: str | Path, min_side: int = MIN_SIDE, at_least: int | None = None) -> DecodedImage:
    """Decode a BMP, JPEG, PNG or TIFF file (by its content), keeping its channels and bit depth.

    Samples are scaled by their type, never by their values: 8-bit /255, 16-bit /65535,
    floats are taken as already in [0, 1] (values outside are clipped, with a
    warning; NaN or infinity is an error). Signed and 32-bit integers have no
    standard white level and are refused. 16-bit colour keeps its precision
    (Pillow reads 16-bit colour as 8 bits: such PNGs are decoded twice, high and
    low bytes, and such TIFFs are read with tifffile). Transparency is composited
    on black (the background of an endoscopy frame), CMYK becomes RGB, EXIF
    orientation is applied, and of a multi-frame file the first frame is used
    (logged). Pillow's decompression-bomb limit is an error here, not a warning,
    and so is a truncated file (``ImageFile.LOAD_TRUNCATED_IMAGES`` must stay off).

    Every failure is an `ImageLoadError` that names the file and the reason, whatever
    the decoder raised; the decoders' warnings never raise (whatever the caller's
    warning filters) but are logged with the file name when the image is used.

    at_least: the caller will shrink the image to this side anyway, so a JPEG
    may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, Pillow's
    ``draft``) as long as both sides stay >= at_least (1.7× faster loading of
    622×530 JPEGs to 256² in `make bench`).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImageLoadError(f"{path}: cannot read the file ({e.strerror or e})") from None
    try:
        with warnings.catch_warnings(record=True) as complaints:     # the same outcome whatever the caller's filters
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            samples, orientation = _decode(path, data, at_least and max(at_least, min_side))
            pixels = _orient(_to_unit(samples, path), orientation)
    except _Unusable as e:
        raise ImageLoadError(f"{path}: {e}") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise ImageLoadError(f"{path}: refused, too many pixels for a safe decode ({e})") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path}: not an image Pillow can read as {', '.join(PIL_FORMATS)}") from None
    except Exception as e:          # decoders raise many types on damaged files: OSError, SyntaxError, struct.error, ...
        raise ImageLoadError(f"{path}: cannot decode ({type(e).__name__}: {e}); "
                             f"the file may be truncated or corrupt") from None
    if min(pixels.shape[:2]) < min_side:
        raise ImageLoadError(f"{path}: {pixels.shape[1]}×{pixels.shape[0]} pixels is too small "
                             f"(need at least {min_side} on each side)")
    for complaint in complaints:
        log.warning("%s: decoded, but the decoder warned: %s", path, complaint.message)
    return DecodedImage(pixels, _bits(samples), hashlib.sha256(data).hexdigest())


def _decode(path: Path, data: bytes, draft: int | None) -> tuple[np.ndarray, int]:
    """The first frame's stored samples, (H, W) or (H, W, C), and its EXIF orientation (1-8)."""
    if data[:4] in _TIFF_MAGIC:
        decoded = _wide_tiff(path, data)
        if decoded is not None:
            return decoded
    with Image.open(io.BytesIO(data), formats=PIL_FORMATS) as img:
        if draft and isinstance(img, JpegImagePlugin.JpegImageFile):
            img.draft(img.mode, (draft, draft))
        if img.format == "PNG" and len(img.tile) == 1 and img.tile[0][3] in ("RGB;16B", "RGBA;16B"):
            samples = _png16_colour(img, data)
        else:
            img.load()
            samples = _pil_samples(img)
        orientation = _exif_orientation(img.getexif().get(0x0112))
        _note_frames(path, lambda: getattr(img, "n_frames", 1))
    return samples, orientation


def _png16_colour(img: Image.Image, data: bytes) -> np.ndarray:
    """A 16-bit RGB(A) PNG's samples as uint16.

    Pillow has no 16-bit colour mode: its raw mode for this data keeps each
    sample's first (high) byte. Its raw mode for little-endian 16-bit colour keeps
    the second byte, the low one in a PNG, so a second decode gives the low bytes.
    """
    codec, extents, offset, rawmode = img.tile[0]
    img.load()
    high = np.asarray(img)
    with Image.open(io.BytesIO(data), formats=("PNG",)) as again:
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


def _wide_tiff(path: Path, data: bytes) -> tuple[np.ndarray, int] | None:
    """A grayscale or RGB(A) TIFF with more than 8 bits per sample, read with tifffile; None for any other TIFF.

    Pillow reads such colour TIFFs as 8 bits, and floats wider than 32 bits not at
    all. tifffile needs the imagecodecs package for some compressions (LZW among
    them); without it such a file is left to Pillow, with a warning where that
    loses precision.
    """
    import tifffile
    try:
        tif = tifffile.TiffFile(io.BytesIO(data))
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
        _check_tiff_size(page, len(data))
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


def to_tensor(arr: np.ndarray, size: int, resize: str = "crop", frame_size: int = 0) -> torch.Tensor:
    """(H, W, C) in [0, 1] (or uint8) -> (C, size, size) in [-1, 1], resized with antialiasing.

    resize="crop" scales the shorter side to `frame_size` (default: `size`) and cuts the centre
    `size` × `size` (keeps shapes round); "squash" scales both sides to `size` (the original's way).
    """
    h, w = arr.shape[:2]
    if resize == "crop":
        side = frame_size or size
        scale = side / min(h, w)
        nh, nw = max(side, round(h * scale)), max(side, round(w * scale))
    else:
        nh, nw = size, size
    x = _resized(arr, (nh, nw))
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[0, :, top:top + size, left:left + size]
    return from_unit(x).contiguous()


def _resized(arr: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(H, W, C) numpy in [0, 1] (or uint8, /255) -> float tensor (1, C, *size) in [0, 1], bilinear with
    antialiasing (unchanged when already that size)."""
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].float()
    if arr.dtype == np.uint8:
        x = x.div_(255)                          # the same float32 values as arr.astype(np.float32) / 255
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x


def random_crop(frame: np.ndarray, size: int, frame_size: int, generator: torch.Generator | None = None
                ) -> torch.Tensor:
    """A random `size`² crop of a frame (H, W, 3) in [0, 1] (or uint8) at a random scale, flipped and rotated at random.

    The scale puts the frame's shorter side between `frame_size` (the scale that val/test see) and twice
    that, never above the stored resolution: the model sees detail at the test scale and a little finer,
    and every rotation/mirror of it (an endoscope has no up). Returns (3, size, size) in [-1, 1].
    """
    h, w = frame.shape[:2]
    u = torch.rand(5, generator=generator).tolist()
    low = min(1.0, frame_size / min(h, w))
    scale = max(low + (min(1.0, 2 * low) - low) * u[0], size / min(h, w))   # stored pixels -> crop pixels
    side = min(h, w, round(size / scale))                                   # crop side in stored pixels
    top, left = int(u[1] * (h - side + 1)), int(u[2] * (w - side + 1))
    x = _resized(frame[top:top + side, left:left + side], (size, size))[0]
    x = x.clamp(0, 1).mul_(2).sub_(1)                                       # from_unit, one new buffer
    x = torch.rot90(x, int(u[3] * 4), dims=(1, 2))
    return (x.flip(2) if u[4] < 0.5 else x).contiguous()


# ------------------------------------------------------------- near-duplicates
DUPLICATE_CORRELATION = 0.945   # thumbnails this similar are one scene (measured on Kvasir-SEG, see duplicate_groups)


def thumbnail_signature(path: str | Path) -> np.ndarray:
    """A 12×12 grey thumbnail of the central 60 % of an image, zero mean and unit norm (144 floats).

    The centre leaves out the black border, the endoscope's text and the ScopeGuide box, which many
    unrelated frames share.
    """
    with Image.open(path) as img:
        img.draft("L", (64, 64))
        grey = img.convert("L")
    w, h = grey.size
    a = np.asarray(grey.crop((0.2 * w, 0.2 * h, 0.8 * w, 0.8 * h)).resize((12, 12), Image.BOX), np.float32).ravel()
    a = a - a.mean()
    return a / max(float(np.linalg.norm(a)), 1e-6)


def duplicate_groups(signatures: np.ndarray, keys: Sequence[str],
                     threshold: float = DUPLICATE_CORRELATION) -> list[str]:
    """For each key, the name of its group: the smallest key among the frames linked to it by chains of
    thumbnail correlations >= threshold (near-identical frames of one video).

    The threshold was set by eye on the 991 Kvasir-SEG frames: of the most similar pairs, those
    at >= 0.948 showed one scene (consecutive frames of a video), those at <= 0.941 different scenes; 0.945
    joins 8 pairs there, and splits them 780 / 103 / 108 (train / val / test) frames.
    """
    n = len(keys)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n > 1:
        close = np.argwhere(np.triu(signatures @ signatures.T, 1) >= threshold)
        for i, j in close:
            parent[root(int(i))] = root(int(j))
    smallest: dict[int, str] = {}
    for i in range(n):
        r = root(i)
        smallest[r] = min(smallest.get(r, keys[i]), keys[i])
    return [smallest[root(i)] for i in range(n)]


# ------------------------------------------------------------- your images
def list_images(root: str | Path) -> list[Path]:
    """Image files under `root`, recursively, sorted by relative path."""
    root = Path(root)
    return sorted((p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                  key=lambda p: p.relative_to(root).as_posix())


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


class ImageFolderDataset(Dataset):
    """Every image under a folder (recursively), optionally one split of them; Kvasir-SEG's masks too.

    Splits follow scenes, not files: near-identical frames (`duplicate_groups`) share a split, so a test
    frame never has a twin in training. on_error="raise" (default): a bad file raises `ImageLoadError`
    naming it when it is read. on_error="skip": every file is decoded once up front; bad ones are left
    out, counted and logged, and listed in ``self.skipped`` as (path, reason). A bad file never turns
    into a blank image.

    random_crop: each read returns a new `random_crop` of the frame (training), `crops_per_frame` per frame
    and epoch; else the frame scaled to `frame_size` and its centre `image_size` crop (`to_tensor`). cache: keep decoded frames in memory
    (uint8, at most twice frame_size on the shorter side).
    """

    def __init__(self, root: str | Path, image_size: int, split: Split | None = None,
                 ratios: Sequence[float] = (0.8, 0.1, 0.1), resize: str = "crop",
                 on_error: Literal["raise", "skip"] = "raise", frame_size: int = 0, random_crop: bool = False,
                 cache: bool = False, crops_per_frame: int = 1):
        _check_split(split)
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.root, self.image_size, self.resize = Path(root), image_size, resize
        self.frame_size, self.random_crop, self.cache = frame_size or image_size, random_crop, cache
        self.repeats = crops_per_frame if random_crop else 1
        self._frames: dict[int, np.ndarray] = {}
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"image folder {self.root} does not exist. Point data_dir at a folder of images, or fetch "
                f"Kvasir-SEG with: python -m medgan_nb data download kvasir-seg --to data/")
        self.image_root, self.mask_root = find_layout(self.root)
        files = list_images(self.image_root)
        if not files:
            raise FileNotFoundError(
                f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {self.root}. Put images there, or fetch "
                f"Kvasir-SEG with: python -m medgan_nb data download kvasir-seg --to data/")
        self.skipped: list[tuple[Path, str]] = []
        if on_error == "skip":
            files = [p for p in tqdm(files, desc=f"checking {self.root.name}", unit="img",
                                     disable=len(files) < 200, leave=False) if self._usable(p)]
            if self.skipped:
                log.warning("skipped %d of %d files under %s that cannot be used (see .skipped)",
                            len(self.skipped), len(files) + len(self.skipped), self.root)
        self.keys = [p.relative_to(self.image_root).as_posix() for p in files]
        self.groups = duplicate_groups(np.stack([self._signature(p) for p in files]), self.keys)
        if split is not None:
            kept = [i for i, g in enumerate(self.groups) if split_of(g, ratios) == split]
            files, self.keys, self.groups = ([seq[i] for i in kept] for seq in (files, self.keys, self.groups))
            if not files:
                raise ValueError(f"none of the images under {self.root} falls in the {split!r} split "
                                 f"(ratios {tuple(ratios)}); add images or change the ratios")
        self.files = files

    def _signature(self, path: Path) -> np.ndarray:
        try:
            return thumbnail_signature(path)
        except Exception:            # unreadable here: its own group; reading it later raises with the reason
            return np.zeros(144, np.float32)

    def _usable(self, path: Path) -> bool:
        try:
            decode_image(path)
            return True
        except ImageLoadError as e:
            self.skipped.append((path, str(e)))
            return False

    def __len__(self) -> int:
        return len(self.files) * self.repeats          # item i is a crop of frame i % len(files)

    def _frame(self, i: int) -> np.ndarray:
        """Image i as (H, W, 3): float32 in [0, 1], or from memory when cached as uint8 (converted after
        cropping: converting the whole frame for every crop cost a third of the crop's time)."""
        if i in self._frames:
            return self._frames[i]
        frame = load_image(self.files[i], at_least=self.frame_size * (2 if self.random_crop else 1))
        if self.cache:
            small = _shrink(frame, 2 * self.frame_size)
            self._frames[i] = (small * 255).round().astype(np.uint8)
            return self._frames[i]
        return frame

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        i %= len(self.files)
        frame = self._frame(i)
        if self.random_crop:
            return random_crop(frame, self.image_size, self.frame_size), self.keys[i]
        return to_tensor(frame, self.image_size, self.resize, self.frame_size), self.keys[i]

    def mask_file(self, i: int) -> Path | None:
        """The mask file of image i (same name, any image extension, under the masks folder), or None."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        if self.mask_root is None:
            return None
        stem = self.mask_root / Path(self.keys[i % len(self.files)]).with_suffix("")    # item i: frame i % len
        return next((m for m in (stem.with_suffix(e) for e in IMAGE_EXTENSIONS) if m.is_file()), None)

    def mask(self, i: int) -> torch.Tensor | None:
        """Image i's polyp mask as a bool tensor (image_size, image_size), cropped as the image; None if none.

        Only for centre crops (val/test): a random crop has no fixed geometry.
        """
        path = self.mask_file(i)
        if path is None or self.random_crop:
            return None
        grey = load_image(path, at_least=self.frame_size)[..., :1]          # masks are grey JPEGs or PNGs
        return to_tensor(grey, self.image_size, self.resize, self.frame_size)[0] > 0


def _shrink(frame: np.ndarray, side: int) -> np.ndarray:
    """The frame scaled down so its shorter side is at most `side` (antialiased)."""
    h, w = frame.shape[:2]
    if min(h, w) <= side:
        return frame
    size = (round(h * side / min(h, w)), round(w * side / min(h, w)))
    return _resized(frame, size)[0].permute(1, 2, 0).numpy()


def mask_of(dataset: Dataset, i: int) -> torch.Tensor | None:
    """The mask of item i of a dataset, looking through Subset, ConcatDataset and CachedDataset; None if none."""
    if isinstance(dataset, Subset):
        return mask_of(dataset.dataset, dataset.indices[i])
    if isinstance(dataset, ConcatDataset):
        part = int(np.searchsorted(dataset.cumulative_sizes, i, side="right"))
        return mask_of(dataset.datasets[part], i - (dataset.cumulative_sizes[part - 1] if part else 0))
    if isinstance(dataset, CachedDataset):
        return mask_of(dataset.dataset, i)
    return dataset.mask(i) if hasattr(dataset, "mask") else None


# ------------------------------------------------------------ embedded data
def _embedded_sources() -> dict[str, np.ndarray]:
    """Real medical images shipped with scikit-image (no download), float32 in [0, 1]."""
    from skimage import data as skdata
    return {"retina": skdata.retina()[..., :3].astype(np.float32) / 255,
            "ihc": skdata.immunohistochemistry().astype(np.float32) / 255}


class EmbeddedPatchDataset(Dataset):
    """Non-overlapping patches of scikit-image's fundus and histology images, one split of them.

    A patch's split comes from its position (key "retina/r3c4"), so a test
    patch never overlaps a training patch. Patches that are mostly the black
    border around the fundus are dropped.
    """

    def __init__(self, image_size: int, split: Split | None = None,
                 ratios: Sequence[float] = (0.8, 0.1, 0.1), sources: Sequence[str] = ("retina", "ihc")):
        _check_split(split)
        images = _embedded_sources()
        patches, self.keys = [], []
        for name in sources:
            img = images[name]
            for r in range(img.shape[0] // image_size):
                for c in range(img.shape[1] // image_size):
                    patch = img[r * image_size:(r + 1) * image_size, c * image_size:(c + 1) * image_size]
                    key = f"{name}/r{r}c{c}"
                    if (patch.max(axis=2) < 0.08).mean() > 0.5:
                        continue
                    if split is None or split_of(key, ratios) == split:
                        patches.append(patch)
                        self.keys.append(key)
        if not patches:
            raise ValueError(f"no embedded patches of size {image_size} in split {split!r}; use a smaller image_size")
        self.patches = from_numpy_images(np.stack(patches))

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return self.patches[i], self.keys[i]


class SyntheticEndoscopyDataset(Dataset):
    """`n` procedural endoscopy frames; each split uses its own seeds, so frames never repeat across splits."""

    SPLIT_OFFSET = {"train": 0, "val": 1_000_000, "test": 2_000_000, None: 3_000_000}

    def __init__(self, n: int, image_size: int, split: Split | None = None, seed: int = 0):
        _check_split(split)
        if n < 1:
            raise ValueError("n must be >= 1")
        self.n, self.image_size = n, image_size
        self.first = seed + self.SPLIT_OFFSET[split]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        from .synthetic import endoscopy_frame
        if not 0 <= i < self.n:
            raise IndexError(i)
        frame = endoscopy_frame(self.image_size, self.first + i)
        return from_numpy_images(frame), f"synthetic/{self.first + i}"

    @property
    def keys(self) -> list[str]:
        return [f"synthetic/{self.first + i}" for i in range(self.n)]


def dataset_keys(dataset: Dataset) -> list[str]:
    """The keys of a dataset in order, without decoding images where its parts list them."""
    if isinstance(dataset, Subset):
        keys = dataset_keys(dataset.dataset)
        return [keys[i] for i in dataset.indices]
    if hasattr(dataset, "keys"):
        return list(dataset.keys) * getattr(dataset, "repeats", 1)
    if isinstance(dataset, ConcatDataset):
        return [k for part in dataset.datasets for k in dataset_keys(part)]
    return [dataset[i][1] for i in range(len(dataset))]


class CachedDataset(Dataset):
    """Keeps each image after its first load, as float16 (half the memory; its error, < 0.0005, is below 8-bit steps).

    Decoding a JPEG or drawing a synthetic frame at 256² costs 5-30 ms; a small
    generator trains on a batch faster than that, so from the second epoch on
    it reads from memory. Memory: 0.4 MB per 256² image. With ``num_workers`` > 0
    each worker process fills its own copy.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.cache: dict[int, tuple[torch.Tensor, str]] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        if i not in self.cache:
            image, key = self.dataset[i]
            self.cache[i] = (image.to(torch.float16), key)
        image, key = self.cache[i]
        return image.float(), key

    @property
    def keys(self) -> list[str]:
        return dataset_keys(self.dataset)


PACKAGE_ROOT = Path(__file__).resolve().parent.parent      # the repository, for an editable install
SHIPPED_DATA = PACKAGE_ROOT / "data" / "kvasir-sample"      # see data/README.md
SYNTHETIC = "synthetic"          # data_dir value: scikit-image's patches + procedural frames


def data_source(cfg: Config) -> str:
    """The folder a config reads, or "synthetic": data_dir, else the shipped Kvasir-SEG sample when the
    repository holds it (an install without the repository falls back to the synthetic data, logged)."""
    if cfg.data_dir:
        return cfg.data_dir
    if SHIPPED_DATA.is_dir():
        return str(SHIPPED_DATA)
    log.warning("the shipped Kvasir-SEG sample (%s) is missing; using the synthetic data", SHIPPED_DATA)
    return SYNTHETIC


def default_dataset(split: Split, cfg: Config, on_error: Literal["raise", "skip"] = "raise") -> Dataset:
    """The images of one split: ``cfg.data_dir``, else the shipped real frames (see `data_source`); for CT, MRI
    and X-ray configs, (clean, degraded, key) patches of scans (`medgan_nb.scans.modality_dataset`).

    Training images are random crops when ``cfg.train_crop == "random"``. With ``cfg.max_images`` set, an
    evenly spread subset of at most that many images; with ``cfg.cache_images``, kept in memory after the
    first load (decoded frames for random crops, whose every read differs).
    """
    _check_split(split)
    if cfg.modality != "endoscopy":
        from .scans import modality_dataset            # imports medgan_nb.modality, which imports this module
        return _evenly_spread(modality_dataset(split, cfg), cfg.max_images)
    source = data_source(cfg)
    random_crop = split == "train" and cfg.train_crop == "random"
    if source == SYNTHETIC:
        dataset = _synthetic_split(split, cfg)
    else:
        dataset = ImageFolderDataset(source, cfg.image_size, split, cfg.split_ratios, cfg.resize, on_error,
                                     cfg.frame_size, random_crop, cfg.cache_images and random_crop, cfg.crops_per_frame)
    dataset = _evenly_spread(dataset, cfg.max_images)
    return CachedDataset(dataset) if cfg.cache_images and not random_crop else dataset


def _evenly_spread(dataset: Dataset, n: int) -> Dataset:
    """At most `n` items of `dataset`, evenly spread over it (n = 0: all)."""
    if 0 < n < len(dataset):
        return Subset(dataset, torch.linspace(0, len(dataset) - 1, n).round().long().tolist())
    return dataset


def _synthetic_split(split: Split, cfg: Config) -> Dataset:
    share = cfg.split_ratios[SPLITS.index(split)]
    parts: list[Dataset] = []
    try:
        parts.append(EmbeddedPatchDataset(cfg.image_size, split, cfg.split_ratios))
    except ValueError:
        log.info("no embedded patches of size %d in split %s", cfg.image_size, split)
    n_synthetic = round(cfg.synthetic_frames * share)
    if n_synthetic:
        parts.append(SyntheticEndoscopyDataset(n_synthetic, cfg.image_size, split, cfg.seed))
    if not parts:
        raise ValueError(f"the {split!r} split is empty: raise synthetic_frames or change split_ratios")
    return ConcatDataset(parts)
