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
- `SyntheticEndoscopyDataset`: procedural endoscopy-like frames (see `medgan_nb.data.synthetic`).
- `default_dataset(split, cfg)`: the folder in ``cfg.data_dir`` or, with none,
  the embedded patches plus synthetic frames: works offline, out of the box.

Degradation is not done here: the training loop degrades whole batches on its
device (see `medgan_nb.degrade`), the original did it image by image on the CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin  # noqa: F401 (registers PIL_FORMATS)
from torch.utils.data import ConcatDataset, Dataset, Subset
from tqdm.auto import tqdm

from ..config.config import Config
from ..utils.images import from_numpy_images
from .decode import IMAGE_EXTENSIONS, ImageLoadError, decode_image, find_layout, list_images, load_image
from .splits import SPLITS, Split, _check_split, duplicate_groups, split_of, thumbnail_signature
from .transforms import _shrink, random_crop, to_tensor

log = logging.getLogger(__name__)


class ImageFolderDataset(Dataset):
    """Every image under a folder (recursively), optionally one split of them; Kvasir-SEG's masks too.

    Splits follow scenes, not files: near-identical frames (`duplicate_groups`) share a split, so a test
    frame never has a twin in training. on_error="raise" (default): a bad file raises `ImageLoadError`
    naming it when it is read. on_error="skip": every file is decoded once up front; bad ones are left
    out, counted and logged, and listed in ``self.skipped`` as (path, reason). A bad file never turns
    into a blank image.

    random_crop: each read returns a new `random_crop` of the frame (training), `crops_per_frame` per frame
    and epoch (at `scale`, a share `soft_p` made soft, colours changed by `white_balance`: see `random_crop`);
    else the frame scaled to `frame_size` and its centre `image_size` crop (`to_tensor`). cache: keep decoded
    frames in memory (uint8, at most twice frame_size on the shorter side).
    """

    def __init__(self, root: str | Path, image_size: int, split: Split | None = None,
                 ratios: Sequence[float] = (0.8, 0.1, 0.1), resize: str = "crop",
                 on_error: Literal["raise", "skip"] = "raise", frame_size: int = 0, random_crop: bool = False,
                 cache: bool = False, crops_per_frame: int = 1, scale: tuple[float, float] = (1.0, 2.0),
                 soft_p: float = 0.0, soft_factor: tuple[float, float] = (1.5, 3.0), white_balance: float = 0.0):
        _check_split(split)
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.root, self.image_size, self.resize = Path(root), image_size, resize
        self.frame_size, self.random_crop, self.cache = frame_size or image_size, random_crop, cache
        self.repeats = crops_per_frame if random_crop else 1
        self.crop_options = dict(scale=scale, soft_p=soft_p, soft_factor=soft_factor, white_balance=white_balance)
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
            if not files:
                raise ImageLoadError(f"none of the {len(self.skipped)} image files under {self.root} can be read "
                                     f"(the first: {self.skipped[0][1]}); put readable images there")
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
            return random_crop(frame, self.image_size, self.frame_size, **self.crop_options), self.keys[i]
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

    Decoding a JPEG or drawing a synthetic frame can cost more than a small
    generator's training step on it, so from the second epoch on it reads from
    memory. Memory: 0.4 MB per 256² image. With ``num_workers`` > 0
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


PACKAGE_ROOT = Path(__file__).resolve().parents[2]     # the repository, for an editable install
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
    and X-ray configs, (clean, degraded, key) patches of scans (`medgan_nb.data.scans.modality_dataset`).

    Training images are random crops when ``cfg.train_crop == "random"``. With ``cfg.max_images`` set, an
    evenly spread subset of at most that many images; with ``cfg.cache_images``, kept in memory after the
    first load (decoded frames for random crops, whose every read differs).
    """
    _check_split(split)
    if cfg.modality != "endoscopy":
        from .scans import modality_dataset  # only CT, MRI and X-ray configs need the scans
        return _evenly_spread(modality_dataset(split, cfg, on_error), cfg.max_images)
    source = data_source(cfg)
    random_crop = split == "train" and cfg.train_crop == "random"
    if source == SYNTHETIC:
        dataset = _synthetic_split(split, cfg)
    else:
        dataset = ImageFolderDataset(source, cfg.image_size, split, cfg.split_ratios, cfg.resize, on_error,
                                     cfg.frame_size, random_crop, cfg.cache_images and random_crop, cfg.crops_per_frame,
                                     cfg.train_scale, cfg.soft_p, cfg.soft_factor, cfg.white_balance)
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
