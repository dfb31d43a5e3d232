"""TODO docstring (degrade, train)."""

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
