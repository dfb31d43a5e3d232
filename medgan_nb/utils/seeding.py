"""Per-key seeds: the same image, or the same epoch, gets the same random numbers in every run.

- `seed_for(key, base_seed)`: a stable 63-bit int from a key (a string such as an image's relative path, or
  an int) and a base seed, through SHA-256; any file name works, even one that is not valid UTF-8. The
  degradations (``keys=``) and the evaluation seed one CPU generator per image with it, so an image is
  degraded the same way whatever batch it lands in.
- `seed_epoch(seed, epoch, rank)`: seeds Python's `random`, NumPy and torch for one epoch of one process,
  so that a resumed run replays that epoch's random numbers exactly.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def seed_for(key: str | int, base_seed: int = 0) -> int:
    """A stable 63-bit seed for one image, from its key (file path or index) and a base seed."""
    digest = hashlib.sha256(f"{base_seed}:{key}".encode("utf-8", "surrogateescape")).digest()   # any file name
    return int.from_bytes(digest[:8], "little") >> 1


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> None:
    """Seed python, numpy and torch for one epoch of one process: resumes replay the same numbers."""
    s = seed_for(f"epoch {epoch} rank {rank}", seed) % 2**32
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
