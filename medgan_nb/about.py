"""What this session runs on: the set-up cell at the top of every notebook.

    from medgan_nb.about import print_setup
    cfg = print_setup()          # versions, device, optional extras, the notebook's preset; returns the Config

A reader who reports a problem pastes this block; a reader who sees different numbers can compare
machines. Optional packages are listed with the command that installs them, never imported eagerly.
"""
from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

import torch

from . import __version__
from .config import Config, notebook_config

CORE = ("torch", "torchvision", "numpy", "scikit-image", "matplotlib", "Pillow")
# optional extra -> (what it adds, how to install it)
OPTIONAL: dict[str, tuple[str, str]] = {
    "ipywidgets": ("sliders in notebook 01", "pip install ipywidgets"),
    "bm3d": ("the CBM3D baseline (non-commercial licence)", "pip install 'medgan-notebooks[bm3d]'"),
    "onnxruntime": ("the fastest CPU inference backend", "pip install onnxruntime"),
    "tensorboard": ("TensorBoard logs of training runs", "pip install tensorboard"),
}


def version_of(package: str) -> str | None:
    """The installed distribution's version, or None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def device_line() -> str:
    """The device the notebooks train on, with the CPU threads or the GPU's name."""
    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)} (torch {torch.version.cuda})"
    from .evaluate import cpu_model
    return f"CPU: {cpu_model()}, {torch.get_num_threads()} torch threads, no GPU"


def setup_lines(cfg: Config) -> list[str]:
    lines = [f"medgan_nb {__version__}, Python {platform.python_version()} on {platform.system()}",
             "  " + ", ".join(f"{p} {version_of(p) or 'missing'}" for p in CORE),
             f"device: {device_line()}",
             f"preset {cfg.preset!r}: {cfg.image_size}² crops, {cfg.epochs} epochs, batch {cfg.batch_size}"
             + (f" (a {cfg.max_minutes:g}-minute safety stop per run)" if cfg.max_minutes else "")]
    for package, (what, how) in OPTIONAL.items():
        version = version_of(package)
        lines.append(f"  {package}: {version}" if version else f"  {package}: not installed ({what}: {how})")
    return lines


def print_setup(**overrides: Any) -> Config:
    """Print versions, device and optional extras; return the notebook's `Config` (`notebook_config`)."""
    cfg = notebook_config(**overrides)
    print("\n".join(setup_lines(cfg)))
    return cfg
