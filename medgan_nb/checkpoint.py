"""Run folders and checkpoints: folders never reused, files written atomically, read with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts,
so it loads with ``torch.load(..., weights_only=True)``: opening a checkpoint
never runs code from the file. It always holds

    format    "medgan_nb-checkpoint"        (how a foreign file is recognised)
    version   medgan_nb version that wrote it
    config    Config.to_dict()
    generator state_dict of the generator

and, from training, the discriminator, both optimizers and schedulers, the
AMP grad scaler, epoch/step counters, random-number states and metrics.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import random
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np
import torch

from . import __version__
from .config import Config
from .models import UNetGenerator, build_generator

FORMAT = "medgan_nb-checkpoint"


class CheckpointError(ValueError):
    """A file that is not a readable medgan_nb checkpoint."""


def make_run_dir(base: str | Path, name: str) -> Path:
    """A new folder base/name, or base/name-1, -2, ... if taken: earlier runs are never overwritten."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    for i in range(10_000):
        path = base / (name if i == 0 else f"{name}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run folder name under {base}")


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """Open a temp file next to `path` for writing; on success fsync it and ``os.replace`` it onto `path`.

    A crash mid-write leaves the previous file (or none) in place, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write `state` (plus format and version tags) to `path` atomically."""
    with atomic_write(path) as f:
        torch.save({"format": FORMAT, "version": __version__, **state}, f)
    return Path(path)


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or a run folder meaning its ``checkpoints/last.pt``."""
    path = Path(path)
    if path.is_dir():
        return path / "checkpoints" / "last.pt" if (path / "checkpoints").is_dir() else path / "last.pt"
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely; raise `CheckpointError` for anything that is not one of ours."""
    path = checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:                       # torch.load raises many types on foreign files
        raise CheckpointError(f"{path} is not a medgan_nb checkpoint (or it is damaged): "
                              f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "generator" not in state:
        raise CheckpointError(f"{path} is a PyTorch file but not a medgan_nb checkpoint "
                              f"(no 'format': '{FORMAT}' entry)")
    return state


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[UNetGenerator, Config]:
    """The trained generator of a checkpoint, in eval mode on `device`, and its config."""
    state = load_checkpoint(path)
    cfg = Config.from_dict(state["config"])
    generator = build_generator(cfg)
    generator.load_state_dict(state["generator"])
    return generator.to(device).eval(), cfg


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------- random state
def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) random states as weights_only-safe values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    return {"python": [version, list(internal), py_gauss],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, py_gauss = state["python"]
    random.setstate((version, tuple(internal), py_gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
