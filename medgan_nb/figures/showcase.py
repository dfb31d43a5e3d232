"""Results first: shipped models restore real test frames beside the best classical filter.

    from medgan_nb.figures.showcase import compare, hero_figure
    result = compare(model="quality", n=3)            # degraded | classic | model | clean, with PSNRs
    result.figure                                      # a matplotlib Figure
    hero_figure("docs/hero.png")                       # README's figure: the comparison + the card's grid

The frames are the shipped Kvasir-SEG sample's test split (data/kvasir-sample: never trained on), degraded
exactly as `medgan_nb.evaluation` degrades them (a goal condition, per-image seeds), so the PSNRs shown are
the ones an evaluation of those frames reports. The classic is CBM3D when the optional bm3d package is
installed, else non-local means, both given the true noise level (an advantage the model does not get).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..data.datasets import default_dataset
from ..degrade.pipeline import Degradation
from ..evaluation.baselines import missing_reason
from ..evaluation.conditions import GOAL_CONDITIONS, evaluation_config
from ..evaluation.methods import LABELS, run_baseline, run_gan
from ..evaluation.plots import draw_grid_panel
from ..metrics import psnr
from ..models.zoo import load_model, model_card
from ..utils.images import to_numpy_images


@dataclass
class Comparison:
    """Images (N, 3, H, W) in [-1, 1] per column, PSNRs (dB) per column and image, and the figure."""
    keys: list[str]
    images: dict[str, torch.Tensor]
    psnr: dict[str, np.ndarray]
    classic: str
    figure: Figure


def best_available_classic() -> str:
    """CBM3D when the bm3d package is installed, else NLM (the strongest classics here; see evaluate)."""
    return "cbm3d" if missing_reason("cbm3d") is None else "nlm"


def compare(model: str = "quality", n: int = 3, condition: str = "blur_noise", size: int = 256,
            classic: str | None = None) -> Comparison:
    """Restore `n` evenly spread shipped test frames, degraded by `condition` (`GOAL_CONDITIONS`), with the
    shipped `model` (its guard on, as `enhance` runs it) and with `classic` (None: the best available)."""
    generator, trained, _ = load_model(model)
    cfg = evaluation_config(trained.replace(image_size=size, frame_size=size, data_dir=None))
    cfg = cfg.replace(**GOAL_CONDITIONS[condition])
    dataset = default_dataset("test", cfg)
    picks = np.linspace(0, len(dataset) - 1, min(n, len(dataset))).round().astype(int).tolist()
    clean, keys = zip(*(dataset[i] for i in picks))
    clean, keys = torch.stack(clean), list(keys)
    degraded = Degradation(cfg)(clean, keys=keys)             # seeded per key: the evaluation's inputs
    classic = classic or best_available_classic()
    images = {"degraded": degraded.image,
              classic: run_baseline(classic, degraded.image, degraded.params.get("noise_std"))[0],
              model: run_gan(generator, degraded.image, "cpu")[0], "clean": clean}
    scores = {k: psnr(v, clean) for k, v in images.items() if k != "clean"}
    return Comparison(keys, images, scores, classic, _figure(images, scores, condition))


def _figure(images: dict[str, torch.Tensor], scores: dict[str, np.ndarray], condition: str) -> Figure:
    fig = Figure(figsize=(2.6 * len(images), 2.6 * len(images["clean"]) + 0.4))
    _draw(fig, images, scores, condition)
    fig.tight_layout()
    return fig


def _draw(fig, images: dict[str, torch.Tensor], scores: dict[str, np.ndarray], condition: str) -> None:
    """One row per frame, one column per method, the PSNR in each title; on a Figure or SubFigure."""
    n = len(images["clean"])
    axes = fig.subplots(n, len(images), squeeze=False)
    for c, (name, batch) in enumerate(images.items()):
        for r, picture in enumerate(to_numpy_images(batch)):
            axes[r, c].imshow(picture)
            axes[r, c].set_axis_off()
            label = name if name in ("degraded", "clean") else LABELS.get(name, f"model {name!r}")
            axes[r, c].set_title(f"{label}\n{scores[name][r]:.2f} dB" if name in scores else label, fontsize=9)
    what = ("blur σ 0.5-1.5 + noise 0.075" if condition == "blur_noise" else f"condition {condition!r}")
    fig.suptitle(f"{n} Kvasir-SEG test frames, {what}: PSNR against the clean frame", fontsize=10)


def hero_figure(path: str | Path, model: str = "quality", n: int = 3, condition: str = "blur_noise") -> Path:
    """README's opening figure: `compare` beside the model card's noise × blur grid (model − input)."""
    result = compare(model, n, condition)
    grid = model_card(model)["scores"].get("grid")
    fig = Figure(figsize=(16, 2.7 * n + 0.6))
    left, right = fig.subfigures(1, 2, width_ratios=[2.2, 1])
    _draw(left, result.images, result.psnr, condition)
    if grid:
        ax = right.subplots()
        draw_grid_panel(ax, grid, "model_minus_identity", right)
        right.suptitle(f"{model!r}: gain over its input on a noise × blur grid "
                       f"({grid.get('images', '?')} test frames)", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
