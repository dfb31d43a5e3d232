"""Clean images for training and evaluation.

Every dataset here yields ``(image, key)``: a float tensor (3, S, S) in [-1, 1]
and a string that names the image stably (its relative path, or the patch or
frame it is). Keys decide the train/val/test split and seed the evaluation's
degradations, so the same image is always in the same split and always
degraded the same way.

- `ImageFolderDataset`: your own images (jpg, png, tif, bmp; any bit depth or
  colour mode), e.g. Kvasir-SEG after ``python -m medgan_nb data download kvasir-seg``.
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
import logging
import warnings
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
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


# ------------------------------------------------------------------- splits
def split_of(key: str, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> Split:
    """The split of an item, from a hash of its key: stable when other items are added or removed."""
    u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") / 2**64
    if u < ratios[0]:
        return "train"
    return "val" if u < ratios[0] + ratios[1] else "test"


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")


# ---------------------------------------------------------------- decoding
def load_image(path: str | Path, min_side: int = MIN_SIDE, at_least: int | None = None) -> np.ndarray:
    """Decode any supported image to float32 RGB (H, W, 3) in [0, 1].

    Grayscale is repeated over three channels; 16-bit and 32-bit images keep
    their precision; transparency is composited on black (the background of an
    endoscopy frame); EXIF rotation is applied. Pillow's decompression-bomb
    limit stays on and is an error here, not a warning.

    at_least: the caller will shrink the image to this side anyway, so a JPEG
    may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, Pillow's
    ``draft``) as long as both sides stay >= at_least (1.7× faster loading of
    622×530 JPEGs to 256² in `make bench`).
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if at_least and img.format == "JPEG":
                    side = max(at_least, min_side)
                    img.draft(img.mode, (side, side))
                img.load()
                img = ImageOps.exif_transpose(img)
                arr = _to_rgb_float(img)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise ImageLoadError(f"{path}: refused, too many pixels for a safe decode ({e})") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(f"{path}: cannot decode ({e}); the file may be truncated or corrupt") from None
    if min(arr.shape[:2]) < min_side:
        raise ImageLoadError(f"{path}: {arr.shape[1]}×{arr.shape[0]} pixels is too small "
                             f"(need at least {min_side} on each side)")
    return arr


def _to_rgb_float(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        gray = np.asarray(img, dtype=np.float32) / 65535
    elif img.mode == "I":                              # 32-bit int; 16-bit PNGs with old Pillow
        a = np.asarray(img, dtype=np.float64)
        gray = (a / (255 if a.max() <= 255 else 65535)).clip(0, 1).astype(np.float32)
    elif img.mode == "F":
        a = np.asarray(img, dtype=np.float32)
        gray = a.clip(0, 1) if a.max() <= 1 else a / a.max()
    else:
        if img.mode == "P":
            img = img.convert("RGBA")
        if img.mode in ("RGBA", "LA", "PA"):
            rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255
            return np.ascontiguousarray(rgba[..., :3] * rgba[..., 3:])
        return np.asarray(img.convert("RGB"), dtype=np.float32) / 255
    return np.repeat(gray[..., None], 3, axis=2)


def to_tensor(arr: np.ndarray, size: int, resize: str = "crop") -> torch.Tensor:
    """(H, W, 3) in [0, 1] -> (3, size, size) in [-1, 1], resized with antialiasing.

    resize="crop" scales the shorter side to `size` and cuts the centre (keeps
    shapes round); "squash" scales both sides to `size` (the original's way).
    """
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].float()
    h, w = x.shape[-2:]
    if resize == "crop":
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    else:
        nh, nw = size, size
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[0, :, top:top + size, left:left + size]
    return (x.clamp(0, 1) * 2 - 1).contiguous()


# ------------------------------------------------------------- your images
def list_images(root: str | Path) -> list[Path]:
    """Image files under `root`, recursively, sorted by relative path."""
    root = Path(root)
    return sorted((p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                  key=lambda p: p.relative_to(root).as_posix())


class ImageFolderDataset(Dataset):
    """Every image under a folder (recursively), optionally one split of them.

    on_error="raise" (default): a bad file raises `ImageLoadError` naming it when it is read.
    on_error="skip": every file is decoded once up front; bad ones are left out,
    counted and logged, and listed in ``self.skipped`` as (path, reason).
    A bad file never turns into a blank image.
    """

    def __init__(self, root: str | Path, image_size: int, split: Split | None = None,
                 ratios: Sequence[float] = (0.8, 0.1, 0.1), resize: str = "crop",
                 on_error: Literal["raise", "skip"] = "raise"):
        _check_split(split)
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.root, self.image_size, self.resize = Path(root), image_size, resize
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"image folder {self.root} does not exist. Point data_dir at a folder of images, or fetch "
                f"Kvasir-SEG with: python -m medgan_nb data download kvasir-seg --to data/")
        files = list_images(self.root)
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
        self.keys = [p.relative_to(self.root).as_posix() for p in files]
        if split is not None:
            kept = [(p, k) for p, k in zip(files, self.keys) if split_of(k, ratios) == split]
            files, self.keys = [p for p, _ in kept], [k for _, k in kept]
            if not files:
                raise ValueError(f"none of the images under {self.root} falls in the {split!r} split "
                                 f"(ratios {tuple(ratios)}); add images or change the ratios")
        self.files = files

    def _usable(self, path: Path) -> bool:
        try:
            load_image(path)
            return True
        except ImageLoadError as e:
            self.skipped.append((path, str(e)))
            return False

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return to_tensor(load_image(self.files[i], at_least=self.image_size), self.image_size, self.resize), self.keys[i]


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
        self.patches = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2) * 2 - 1

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
        return torch.from_numpy(frame).permute(2, 0, 1) * 2 - 1, f"synthetic/{self.first + i}"

    @property
    def keys(self) -> list[str]:
        return [f"synthetic/{self.first + i}" for i in range(self.n)]


def dataset_keys(dataset: Dataset) -> list[str]:
    """The keys of a dataset in order, without decoding images where its parts list them."""
    if isinstance(dataset, Subset):
        keys = dataset_keys(dataset.dataset)
        return [keys[i] for i in dataset.indices]
    if hasattr(dataset, "keys"):
        return list(dataset.keys)
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


def default_dataset(split: Split, cfg: Config, on_error: Literal["raise", "skip"] = "raise") -> Dataset:
    """The images of one split: ``cfg.data_dir`` if set, else embedded patches + synthetic endoscopy frames.

    With ``cfg.max_images`` set, an evenly spread subset of at most that many
    images; with ``cfg.cache_images``, kept in memory after the first load.
    """
    dataset = _split_dataset(split, cfg, on_error)
    if 0 < cfg.max_images < len(dataset):
        dataset = Subset(dataset, torch.linspace(0, len(dataset) - 1, cfg.max_images).round().long().tolist())
    return CachedDataset(dataset) if cfg.cache_images else dataset


def _split_dataset(split: Split, cfg: Config, on_error: Literal["raise", "skip"]) -> Dataset:
    _check_split(split)
    if cfg.data_dir:
        return ImageFolderDataset(cfg.data_dir, cfg.image_size, split, cfg.split_ratios, cfg.resize, on_error)
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
