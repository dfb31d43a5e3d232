"""The figures of an evaluation, written as PNG files next to report.md.

Each ``plot_*`` function saves its figure to `path` and returns that path:

- `plot_bars(metrics, path)`: mean PSNR and SSIM (± std) per method and condition, with the reference
  levels as lines.
- `plot_cases`, `plot_error_maps`, `plot_lesions`: the best, median and worst images of a method,
  per-pixel absolute error maps (one colour scale for all panels, ending at `ERROR_QUANTILE`), and crops
  around the lesion masks (`scoring.lesion_box`; ValueError for an empty mask). They restore the images again
  from the dataset and the condition's `Degradation`, so they need the generator.
- `plot_grid(grid, path)`: heatmaps of the noise σ × blur σ grid, model − input and model − the best
  classic, in dB (colours end at ± `GRID_COLOUR_DB`; `draw_grid_panel` draws one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import Dataset

from ..data.datasets import dataset_keys
from ..degrade.pipeline import Degradation
from ..metrics import psnr, psnr_masked
from ..utils.images import to_numpy_images
from .scoring import lesion_box
from ..utils.plots import image_grid
from .methods import LABELS, _restore
from .report import ERROR_QUANTILE, REFERENCE_PSNR, REFERENCE_SSIM

GRID_COLOUR_DB = 3.0    # the grid heatmaps' colour scale ends at ± this (the cells are annotated with exact values)


# ------------------------------------------------------------------ figures
def plot_bars(metrics: dict, path: str | Path) -> Path:
    """Grouped bars of mean PSNR and SSIM (± std) per method and condition, with the reference levels as lines."""
    results = metrics["results"]
    conds = list(results)
    methods = list(next(iter(results.values())))
    fig = Figure(figsize=(max(6.0, 0.35 * len(conds) * (len(methods) + 1)) + 2.5, 7.0))
    axes = fig.subplots(2, 1)
    width = 0.8 / len(methods)
    x = np.arange(len(conds))
    for ax, metric, refs, unit in ((axes[0], "psnr", REFERENCE_PSNR, " (dB)"), (axes[1], "ssim", REFERENCE_SSIM, "")):
        for i, m in enumerate(methods):
            means = [results[c][m][f"{metric}_mean"] for c in conds]
            stds = [results[c][m][f"{metric}_std"] for c in conds]
            ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=m)
        for (name, level), style in zip(refs.items(), ("--", ":")):
            ax.axhline(level, color="0.3", linestyle=style, linewidth=1, label=f"{level:g}: \"{name}\" (reference)")
        ax.set_xticks(x, conds)
        ax.set_ylabel(metric.upper() + unit)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[1].set_ylim(top=max(1.0, axes[1].get_ylim()[1]))
    axes[0].set_title("Mean over images (± std); grey lines: the original notebook's reference levels, not pass/fail",
                      fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_cases(dataset: Dataset, rows: list, method: str, degrade: Degradation, generator: nn.Module | None,
               device: str, path: str | Path, condition: str = "all") -> Path:
    """Best, median and worst images of `method` on `condition` by PSNR: degraded | output | clean."""
    scored = sorted(((r[3], r[2]) for r in rows if r[0] == condition and r[1] == method), reverse=True)
    picks = {"best": 0, "median": len(scored) // 2, "worst": len(scored) - 1}
    seen, chosen = set(), []
    for label, i in picks.items():
        if i not in seen:
            seen.add(i)
            chosen.append((label, scored[i][1], scored[i][0]))
    index = {k: i for i, k in enumerate(dataset_keys(dataset))}
    clean = torch.stack([dataset[index[key]][0] for _, key, _ in chosen])
    d = degrade(clean, keys=[key for _, key, _ in chosen])
    out = _restore(method, d.image, d.params, generator, device)
    labels = [f"{label}: {_short(key)}\n{method} {p:.2f} dB (input {float(q):.2f})"
              for (label, key, p), q in zip(chosen, psnr(d.image, clean))]
    fig = image_grid({"degraded": d.image, method: out, "clean": clean}, row_labels=labels)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _short(key: str, width: int = 24) -> str:
    """A key short enough for a figure label: long file names keep their start and end."""
    return key if len(key) <= width else f"{key[:width // 2 - 1]}…{key[-(width // 2 - 1):]}"


def plot_error_maps(dataset: Dataset, method: str, degrade: Degradation, generator: nn.Module | None,
                    device: str, path: str | Path, n: int = 3) -> Path:
    """Per-pixel absolute error ([0, 1] units, mean over colour) of the input and of `method`, first n images.

    One colour scale for all panels, ending at the 99th percentile of all their errors (`ERROR_QUANTILE`):
    a few salt-and-pepper specks near 1 would otherwise make every other error look black.
    """
    n = min(n, len(dataset))
    items = [dataset[i] for i in range(n)]
    clean = torch.stack([x for x, _ in items])
    d = degrade(clean, keys=[k for _, k in items])
    out = _restore(method, d.image, d.params, generator, device)
    truth = to_numpy_images(clean)
    err_in = np.abs(to_numpy_images(d.image) - truth).mean(axis=-1)
    err_out = np.abs(to_numpy_images(out) - truth).mean(axis=-1)
    vmax = max(float(np.quantile(np.stack([err_in, err_out]), ERROR_QUANTILE)), 1e-6)
    fig = Figure(figsize=(2.4 * 4 + 0.6, 2.4 * n))
    axes = fig.subplots(n, 4, squeeze=False)
    for r in range(n):
        panels = [(to_numpy_images(d.image[r]), "degraded"), (err_in[r], "|degraded − clean|"),
                  (to_numpy_images(out[r]), method), (err_out[r], f"|{method} − clean|")]
        for c, (img, title) in enumerate(panels):
            ax = axes[r, c]
            if img.ndim == 3:
                ax.imshow(img)
            else:
                im = ax.imshow(img, cmap="magma", vmin=0, vmax=vmax)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
        axes[r, 0].set_ylabel(_short(items[r][1]), fontsize=7)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8,
                 label="absolute error (scale ends at the 99th percentile; brighter pixels clipped)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return Path(path)


def plot_lesions(dataset: Dataset, masks: Sequence[torch.Tensor | None], method: str, degrade: Degradation,
                 generator: nn.Module | None, device: str, path: str | Path, n: int = 4) -> Path:
    """Crops around the lesions of the first n images with a non-empty mask: degraded | output | clean, the
    mask's outline on each, PSNR inside the mask in the label, so a reader sees whether a lesion was kept."""
    picks = [i for i, m in enumerate(masks) if m is not None and bool(torch.as_tensor(m).any())][:n]
    if not picks:
        raise ValueError("no image has a non-empty lesion mask")
    items = [dataset[i] for i in picks]
    clean = torch.stack([x for x, _ in items])
    d = degrade(clean, keys=[k for _, k in items])
    out = _restore(method, d.image, d.params, generator, device)
    fig = Figure(figsize=(2.6 * 3, 2.6 * len(picks)))
    axes = fig.subplots(len(picks), 3, squeeze=False)
    for r, i in enumerate(picks):
        mask = torch.as_tensor(masks[i], dtype=torch.bool)
        t, b, le, ri = lesion_box(mask)
        for c, (batch, title) in enumerate(((d.image, "degraded"), (out, LABELS.get(method, method)), (clean, "clean"))):
            ax = axes[r, c]
            ax.imshow(to_numpy_images(batch[r])[t:b, le:ri])
            ax.contour(mask[t:b, le:ri].numpy().astype(float), levels=[0.5], colors="yellow", linewidths=0.8)
            ax.set_xticks([]), ax.set_yticks([])
            inside = psnr_masked(batch[r:r + 1], clean[r:r + 1], mask)[0]
            ax.set_title(f"{title}" + (f": {inside:.1f} dB in mask" if c < 2 else ""), fontsize=8)
        axes[r, 0].set_ylabel(_short(items[r][1]), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


GRID_PANELS = {"model_minus_identity": "model − input (dB); outlined: harms (< %g dB)",
               "model_minus_best_classic": "model − best classic (dB), the classic named"}


def plot_grid(grid: dict, path: str | Path) -> Path:
    """Two annotated heatmaps, noise σ down, blur σ across: model − identity (harmful cells outlined) and
    model − the best classic (named in each cell); diverging colours centred at 0, ending at ± GRID_COLOUR_DB.
    A grid without classics (only identity scored) gets the first panel only."""
    panels = [name for name in GRID_PANELS if any(v is not None for row in grid.get(name) or [] for v in row)]
    fig = Figure(figsize=(6.5 * len(panels), 0.6 * len(grid["noise_stds"]) + 2.5))
    for ax, name in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels):
        draw_grid_panel(ax, grid, name, fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def draw_grid_panel(ax, grid: dict, name: str, fig) -> None:
    """One of `plot_grid`'s heatmaps (`GRID_PANELS`) on `ax`, with its colour bar on `fig`."""
    values = np.array([[np.nan if v is None else v for v in row] for row in grid[name]], dtype=float)
    im = ax.imshow(values, cmap="RdBu", vmin=-GRID_COLOUR_DB, vmax=GRID_COLOUR_DB)
    for (r, c), v in np.ndenumerate(values):
        label = "–" if np.isnan(v) else f"{v:+.2f}"
        if name == "model_minus_best_classic" and grid["best_classic"][r][c]:
            label += "\n" + LABELS.get(grid["best_classic"][r][c], grid["best_classic"][r][c])
        ax.text(c, r, label, ha="center", va="center", fontsize=7,
                color="white" if abs(np.nan_to_num(v)) > 0.6 * GRID_COLOUR_DB else "black")
        if name == "model_minus_identity" and v < grid["no_harm_db"]:
            ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2))
    ax.set_xticks(range(len(grid["blur_sigmas"])), [f"{b:g}" for b in grid["blur_sigmas"]])
    ax.set_yticks(range(len(grid["noise_stds"])), [f"{n:g}" for n in grid["noise_stds"]])
    ax.set_xlabel("blur σ (pixels)")
    ax.set_ylabel("noise σ")
    ax.set_title(GRID_PANELS[name] % grid["no_harm_db"] if "%" in GRID_PANELS[name] else GRID_PANELS[name],
                 fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8, label=f"dB (colours end at ±{GRID_COLOUR_DB:g})")
