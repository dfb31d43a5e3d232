"""Run folders and checkpoints: folders never reused, files written atomically, read with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts,
so it loads with ``torch.load(..., weights_only=True)``: opening a checkpoint
never runs code from the file. It always holds

    format    "medgan_nb-checkpoint"        (how a foreign file is recognised)
    version   medgan_nb version that wrote it
    config    Config.to_dict()
    generator state_dict of the generator

optionally ``generator_ema`` (an exponential moving average of the generator's
weights, or None; `load_generator` prefers it), and, from training, the
discriminator, both optimizers and schedulers, the AMP grad scalers,
epoch/step counters and metrics.

Provenance: `load_checkpoint` opens the file once, hashes it through that open
file and deserialises the same open file, so the SHA-256 it reports
(``state["sha256"]``, ``generator.checkpoint_sha256``) names the weights that were
used even if a training run replaces the file a moment later (`atomic_write`
replaces files, it never rewrites one in place).

Memory: on Linux the tensors are memory-mapped from that open file, so only the
entries used are read, once: loading the generator of a training checkpoint
(which also holds the EMA, the discriminator and Adam's moments) no longer costs
twice the whole file, and `generator_from_state` builds the network without
weights of its own and adopts the loaded ones (``assign=True``).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..config.config import Config
from ..utils.files import _sha256_of, atomic_write
from .build import build_generator

FORMAT = "medgan_nb-checkpoint"


class CheckpointError(ValueError):
    """A file that is not a readable medgan_nb checkpoint."""


def make_run_dir(base: str | Path, name: str) -> Path:
    """A new folder base/name, or base/name-1, -2, ... if taken: earlier runs are never overwritten.

    ValueError for a name that is not one plain folder name (`check_run_name`): it would put the folder
    elsewhere than under `base`.
    """
    check_run_name(name)
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


def check_run_name(name: str) -> str:
    """`name` if it is one plain folder name; else ValueError: a path ("../x", "/tmp/x", "a/b"), "." or ".."
    or an empty name would put a run outside <output_dir>/runs/."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or Path(name).is_absolute() or "\0" in name:
        raise ValueError(f"run name {name!r} is not a single folder name (--name, e.g. my-run): runs always go to "
                         f"<output_dir>/runs/<name>/; to write elsewhere, set output_dir")
    return name


def remove_if_empty(*folders: Path) -> None:
    """Remove each folder, in order, if it exists and is empty: undoes folders a failed start made, never
    touching one that holds anything."""
    for folder in folders:
        try:
            folder.rmdir()                      # refuses a folder that is not empty
        except OSError:
            pass


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write `state` (plus format and version tags) to `path` atomically."""
    state = {k: v for k, v in state.items() if k != "sha256"}      # added by load_checkpoint, not stored
    with atomic_write(path) as f:
        torch.save({"format": FORMAT, "version": __version__, **state}, f)
    return Path(path)


def copy_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Make `target` hold the same bytes as `source` without writing them again: a hard link where the
    file system allows it, else a copy; atomic either way (a temp name, then ``os.replace``).

    Safe because checkpoints are never modified in place: `atomic_write` always makes a new file, so a
    later write of `source` leaves `target` as it was.
    """
    source, target = Path(source), Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:                              # no hard links here (some network/FAT file systems)
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or a run folder meaning its ``checkpoints/last.pt``."""
    path = Path(path)
    if path.is_dir():
        return path / "checkpoints" / "last.pt" if (path / "checkpoints").is_dir() else path / "last.pt"
    return path


def run_folder_of(path: str | Path) -> Path | None:
    """The run folder that a checkpoint file or run folder belongs to (it holds ``config.json``), or None.

    ``runs/x`` and ``runs/x/checkpoints/best.pt`` both give ``runs/x``; a loose ``model.pt`` gives None.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent.parent if path.parent.name == "checkpoints" else None
    return folder if folder is not None and (folder / "config.json").is_file() else None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely; raise `CheckpointError` for anything that is not one of ours.

    The returned dict also holds ``"sha256"``: the hash of the very bytes that were deserialised.
    """
    path = checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state, sha256 = _read(path, map_location)
    except Exception as e:                       # torch.load raises many types on foreign files
        raise CheckpointError(f"{path} is not a medgan_nb checkpoint (or it is damaged): {_load_problem(e)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "generator" not in state:
        raise CheckpointError(f"{path} is a PyTorch file but not a medgan_nb checkpoint "
                              f"(no 'format': '{FORMAT}' entry)")
    state["sha256"] = sha256
    return state


def _load_problem(e: Exception) -> str:
    """One line on why torch.load failed. Its advice for files holding Python objects (to load them unsafely)
    is replaced: medgan_nb never runs code from a checkpoint."""
    text = str(e)
    if isinstance(e, pickle.UnpicklingError) or "weights_only" in text:
        found = re.search(r"GLOBAL (\S+) was not an allowed global", text)
        if found:
            return (f"it holds Python objects ({found.group(1)}) besides tensors and plain values, and medgan_nb "
                    f"never loads those (opening the file could run code from it); save the weights as a plain "
                    f"dict of tensors")
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)          # torch's reason, without its advice
        return f"unreadable pickle data ({detail.group(1).strip() if detail else 'not a PyTorch file'})"
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def _read(path: Path, map_location: str | torch.device) -> tuple[Any, str]:
    """torch.load of `path` and the SHA-256 of the bytes it read: both from one open file.

    Where the open file has a path of its own (Linux: /proc/self/fd/N) its tensors are memory-mapped,
    so untouched entries cost no memory; elsewhere the bytes are read once, hashed and deserialised.
    """
    with open(path, "rb") as f:
        same_file = Path(f"/proc/self/fd/{f.fileno()}")
        if not same_file.exists() or f.read(4) != b"PK\x03\x04":   # mmap needs torch.save's zip format
            f.seek(0)
            data = f.read()
            return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True), \
                hashlib.sha256(data).hexdigest()
        f.seek(0)
        sha256 = _sha256_of(f)
        return torch.load(same_file, map_location=map_location, weights_only=True, mmap=True), sha256


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Config]:
    """The trained generator of a checkpoint, in eval mode on `device`, and its config.

    ``generator.checkpoint_sha256`` is the SHA-256 of the checkpoint bytes it was built from.
    """
    generator, cfg = generator_from_state(load_checkpoint(path), checkpoint_path(path))
    return generator.to(device).eval(), cfg


def checkpoint_config(state: dict[str, Any], path: str | Path | None = None) -> Config:
    """The `Config` a loaded checkpoint was trained with; `CheckpointError` naming the file (`path`) and what is
    wrong when it holds none, or one this version cannot use (an unknown key, a value of the wrong type)."""
    where = str(path) if path is not None else "the checkpoint"
    config = state.get("config")
    if config is None:
        raise CheckpointError(f"{where} holds no config (the settings that rebuild its networks); it was not "
                              f"written by medgan_nb training, or is damaged")
    if not isinstance(config, dict):
        raise CheckpointError(f"{where}: its config is not a mapping of settings (a {type(config).__name__}); "
                              f"the file is damaged")
    try:
        return Config.from_dict(config)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{where}: its stored config is not valid: {e.args[0] if e.args else e}") from None


def generator_from_state(state: dict[str, Any], path: str | Path | None = None) -> tuple[torch.nn.Module, Config]:
    """The generator of a loaded checkpoint (on the CPU, eval mode) and its config.

    Uses the EMA weights (``state["generator_ema"]``) when the checkpoint holds them: averaged weights
    restore more steadily than those of the last step. ``generator.checkpoint_weights`` says which entry was used.
    `CheckpointError` naming `path` for a bad config (`checkpoint_config`) or weights that do not fit the
    generator the config describes.
    """
    cfg = checkpoint_config(state, path)
    with torch.device("meta"):                   # no weights of its own: it takes the loaded tensors
        generator = build_generator(cfg)
    key = weights_key(state)
    try:
        generator.load_state_dict(state[key], assign=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        detail = lines[min(1, len(lines) - 1)]          # the first mismatch, after torch's heading line
        raise CheckpointError(f"{path if path is not None else 'the checkpoint'}: its {key} weights do not fit the "
                              f"{cfg.generator} generator its config describes ({detail[:200]}); the config or the "
                              f"weights were changed after training") from None
    generator.checkpoint_sha256 = state["sha256"]
    generator.checkpoint_weights = key
    return generator.eval(), cfg


def weights_key(state: dict[str, Any]) -> str:
    """The entry of a checkpoint that holds the generator to use: "generator_ema" when present, else "generator"."""
    return "generator_ema" if state.get("generator_ema") is not None else "generator"
