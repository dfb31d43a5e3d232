"""Train/val/test splits that stay put when images are added or removed, and near-duplicate frames.

- `split_of(key, ratios)`: "train", "val" or "test" (`SPLITS`) from a SHA-256 hash of a key, so an
  item's split depends on its key alone, never on which other items exist.
- `thumbnail_signature(path)`: a 12 × 12 grey thumbnail of an image's centre, zero mean and unit norm.
- `duplicate_groups(signatures, keys, threshold)`: for each key, the name of its group: frames joined by
  chains of thumbnail correlations >= `DUPLICATE_CORRELATION` (near-identical frames of one video).

The folder dataset splits by group name instead of by file: consecutive frames of one video in different
splits would put near-copies of the test images into training.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from PIL import BmpImagePlugin, Image, JpegImagePlugin, PngImagePlugin, TiffImagePlugin  # noqa: F401 (registers PIL_FORMATS)
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

SPLITS = ("train", "val", "test")
Split = Literal["train", "val", "test"]


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
    close = np.triu(signatures @ signatures.T, 1) >= threshold          # (n, n): the linked pairs, i < j
    _, labels = connected_components(csr_matrix(close), directed=False)
    smallest: dict[int, str] = {}
    for label, key in zip(labels, keys):
        smallest[label] = min(smallest.get(label, key), key)
    return [smallest[label] for label in labels]
