"""What this session runs on: the set-up cell at the top of every notebook.

    from medgan_nb.config.notebook import print_setup
    cfg = print_setup()          # versions, device, optional extras, the notebook's preset; returns the Config

A reader who reports a problem pastes this block; a reader who sees different numbers can compare
machines. Optional packages are listed with the command that installs them, never imported eagerly.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from .. import __version__
from ..utils.hardware import device_line, version_of
from .config import OUTPUT_ENV, PRESETS, Config


def repo_root() -> Path:
    """The repository folder (the nearest one up from the working directory that holds pyproject.toml),
    else the working directory: notebooks run from ``notebooks/`` but read and write beside it."""
    here = Path.cwd().resolve()
    return next((p for p in (here, *here.parents) if (p / "pyproject.toml").exists()), here)


def notebook_config(**overrides: Any) -> Config:
    """The preset the notebooks run: ``notebook``, or ``tiny`` when the environment sets MEDGAN_TINY=1 (CI does).

    Runs go to ``$MEDGAN_OUTPUT`` if set (the test suite points it at a temporary folder, so test runs never
    mix with yours), else to the repository's ``output/`` folder even though notebooks run from ``notebooks/``.
    """
    name = "tiny" if os.environ.get("MEDGAN_TINY") == "1" else "notebook"
    return Config.from_preset(name, **{"output_dir": _notebook_output(), **overrides})


def notebook_scan_config(modality: str, **overrides: Any) -> Config:
    """`notebook_config` for a CT, MRI or X-ray model: the modality's preset with 8 degraded copies per slice
    and a 10-minute safety stop, or, under MEDGAN_TINY=1, a tiny 1-channel model on small scans (seconds)."""
    if os.environ.get("MEDGAN_TINY") == "1":
        base = dict(PRESETS["tiny"], channels=1, scan_size=64 if modality == "ct" else 128, image_size=32,
                    scan_realisations=2, crops_per_frame=4, epochs=1)
    else:
        base = dict(PRESETS[modality], max_minutes=10.0, scan_realisations=8)
    return Config.from_dict({**base, "preset": modality, "modality": modality, "output_dir": _notebook_output(),
                             **overrides})


def _notebook_output() -> str:
    """Where notebooks' runs go: ``$MEDGAN_OUTPUT`` if set, else the repository's ``output/`` folder."""
    return os.environ.get(OUTPUT_ENV) or str(repo_root() / "output")

CORE = ("torch", "torchvision", "numpy", "scikit-image", "matplotlib", "Pillow")
# optional extra -> (what it adds, how to install it)
OPTIONAL: dict[str, tuple[str, str]] = {
    "ipywidgets": ("sliders in notebook 01", "pip install ipywidgets"),
    "bm3d": ("the CBM3D baseline (non-commercial licence)", "pip install 'medgan-notebooks[bm3d]'"),
    "onnxruntime": ("the fastest CPU inference backend", "pip install onnxruntime"),
    "tensorboard": ("TensorBoard logs of training runs", "pip install tensorboard"),
}


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
