"""Figures of what a GAN adds and what it costs: the perception–distortion plane and lesion crops.

- `perception_distortion_figure(points, curve)`: each method as a point, PSNR across (distortion: right is
  closer to the truth on average) and the naturalness score up (`medgan_nb.naturalness`; drawn so that *up is
  more natural*), with the points of `curve` (e.g. the L1 model, interpolations, the GAN model) joined in order.
  Blau & Michaeli (CVPR 2018) prove that no method can reach the top right corner: past some point, looking
  more natural costs PSNR. The clean frames' own naturalness is drawn as a line where known; a second panel
  zooms in on the curve.
- `lesion_comparison_figure(clean, outputs, masks, keys)`: crops around polyps, one row per image, one column per
  output and the clean frame last, the mask outlined, PSNR and gradient energy (clean = 1) inside the mask in
  each title: whether a model invented or removed texture on a lesion.
- `gan_weight_figure(clean, degraded, model, weights)`: one frame restored by a GAN model at several gan weights
  (0 = its L1 parent), zoomed, each with PSNR, gradient energy (clean = 1) and naturalness; `show_gan_weight`
  is the notebook cell: a slider over the weight, or this figure without ipywidgets.
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ..evaluation.methods import run_gan
from ..evaluation.scoring import lesion_box
from ..metrics import psnr, psnr_masked
from ..models.zoo import load_model
from ..naturalness import load_naturalness
from ..sharpness import gradient_energy_ratio
from ..utils.images import to_numpy_images
from .explorer import show_sliders

GAN_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def perception_distortion_figure(points: dict[str, dict[str, float]], curve: Sequence[str] = (),
                                 clean_naturalness: float | None = None, title: str = "") -> Figure:
    """points: name -> {"psnr_mean", "naturalness_mean"}; curve: names to join in order (drawn in colour).
    With a curve of two or more points a second panel zooms in on it (its points lie close together)."""
    zoom = len(curve) > 1
    fig = Figure(figsize=(11.5 if zoom else 6.4, 4.6))
    axes = fig.subplots(1, 2 if zoom else 1, squeeze=False)[0]
    _draw_plane(axes[0], points, curve, clean_naturalness)
    axes[0].set_title(title or "perception–distortion plane", fontsize=10)
    if zoom:
        _draw_plane(axes[1], {n: points[n] for n in curve}, curve, None)
        axes[1].set_title("zoom on the red points", fontsize=10)
    fig.tight_layout()
    return fig


def _draw_plane(ax: Any, points: dict[str, dict[str, float]], curve: Sequence[str],
                clean_naturalness: float | None) -> None:
    for name, p in points.items():
        on_curve = name in curve
        ax.scatter(p["psnr_mean"], p["naturalness_mean"], s=36 if on_curve else 24,
                   color="tab:red" if on_curve else "tab:blue", zorder=3)
        ax.annotate(name, (p["psnr_mean"], p["naturalness_mean"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    if len(curve) > 1:
        ax.plot([points[n]["psnr_mean"] for n in curve], [points[n]["naturalness_mean"] for n in curve], "-",
                color="tab:red", alpha=0.6, zorder=2)
    if clean_naturalness is not None:
        ax.axhline(clean_naturalness, color="grey", ls="--", lw=0.8)
        ax.annotate("clean frames", (ax.get_xlim()[0], clean_naturalness), textcoords="offset points",
                    xytext=(2, 3), fontsize=7, color="grey")
    ax.margins(0.15)
    ax.invert_yaxis()                                    # lower score = more natural: up is better
    ax.set_xlabel("PSNR (dB): distortion, right is closer to the truth")
    ax.set_ylabel("naturalness score (up: more natural)")
    ax.grid(alpha=0.3)


def lesion_comparison_figure(clean: torch.Tensor, outputs: dict[str, torch.Tensor],
                             masks: Sequence[torch.Tensor], keys: Sequence[str]) -> Figure:
    """clean: (N, C, H, W) in [-1, 1]; outputs: name -> a batch like `clean`; masks: N boolean (H, W) masks."""
    columns = [*outputs.items(), ("clean", clean)]
    fig = Figure(figsize=(2.6 * len(columns), 2.6 * len(clean)))
    axes = fig.subplots(len(clean), len(columns), squeeze=False)
    for r, mask in enumerate(masks):
        mask = torch.as_tensor(mask, dtype=torch.bool)
        t, b, le, ri = lesion_box(mask)
        for c, (name, batch) in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(to_numpy_images(batch[r])[t:b, le:ri])
            ax.contour(mask[t:b, le:ri].numpy().astype(float), levels=[0.5], colors="yellow", linewidths=0.8)
            ax.set_xticks([]), ax.set_yticks([])
            if name != "clean":
                inside = psnr_masked(batch[r:r + 1], clean[r:r + 1], mask)[0]
                sharp = gradient_energy_ratio(batch[r:r + 1], clean[r:r + 1], mask.numpy())[0]
                ax.set_title(f"{name}: {inside:.1f} dB, detail {sharp:.2f}", fontsize=8)
            else:
                ax.set_title("clean (detail 1.00)", fontsize=8)
        axes[r, 0].set_ylabel(str(keys[r])[-24:], fontsize=7)
    fig.tight_layout()
    return fig



def restore_at(clean: torch.Tensor, degraded: torch.Tensor, model: str, gan_weight: float,
               folder: str | None = None) -> tuple[torch.Tensor, str]:
    """(restored (1, C, H, W), a label with PSNR, gradient energy against the clean frame and naturalness) of one
    frame by GAN model `model` at `gan_weight`, with its guard, as `enhance` runs it."""
    generator = load_model(model, gan_weight=gan_weight, folder=folder)[0]
    y = run_gan(generator, degraded, "cpu")[0]
    nat = load_naturalness().score(y)[0]
    return y, (f"gan weight {gan_weight:g}: {psnr(y, clean)[0]:.2f} dB, detail "
               f"{gradient_energy_ratio(y, clean)[0]:.2f}" + ("" if np.isnan(nat) else f", natural. {nat:.2f}"))


def _zoom(x: torch.Tensor, zoom: int) -> np.ndarray:
    """The centre `zoom` × `zoom` pixels of (1, C, H, W) as an image."""
    img = to_numpy_images(x[0])
    top, left = (img.shape[0] - zoom) // 2, (img.shape[1] - zoom) // 2
    return img[top:top + zoom, left:left + zoom]


def gan_weight_figure(clean: torch.Tensor, degraded: torch.Tensor, model: str = "sharp",
                      weights: Sequence[float] = GAN_WEIGHTS, zoom: int = 96, folder: str | None = None) -> Figure:
    """clean, degraded: one frame (1, C, H, W) in [-1, 1]; the centre `zoom`² of the input, each weight's
    restoration and the clean frame, side by side."""
    panels = [(degraded, "degraded input"), *(restore_at(clean, degraded, model, a, folder) for a in weights),
              (clean, "clean")]
    fig = Figure(figsize=(2.6 * len(panels), 3.0))
    for ax, (x, title) in zip(fig.subplots(1, len(panels)), panels):
        ax.imshow(_zoom(x, zoom))
        ax.set_title(title.replace(": ", ":\n", 1), fontsize=7)
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig


def show_gan_weight(clean: torch.Tensor, degraded: torch.Tensor, model: str = "sharp", zoom: int = 96) -> Any:
    """Notebook cell: a slider over the gan weight (0 = the L1 parent, 1 = the GAN model) redrawing the restored
    frame beside the clean one, or `gan_weight_figure` without ipywidgets."""
    def make_widget():
        import ipywidgets as w

        def show(gan_weight: float) -> None:
            y, label = restore_at(clean, degraded, model, gan_weight)
            _, axes = plt.subplots(1, 2, figsize=(6, 3.2))
            for ax, img, title in zip(axes, (y, clean), (label, "clean")):
                ax.imshow(_zoom(img, zoom))
                ax.set_title(title.replace(": ", ":\n", 1), fontsize=8)
                ax.set_xticks([]), ax.set_yticks([])
            plt.show()
        return w.interactive(show, gan_weight=w.FloatSlider(value=0.5, min=0, max=1, step=0.25,
                                                              description="gan weight"))
    return show_sliders(make_widget, lambda: gan_weight_figure(clean, degraded, model, zoom=zoom))
