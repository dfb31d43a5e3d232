"""Pictures: image grids, the degradation explorer behind the notebook sliders, training curves."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import torch

from .config import Config
from .data import to_numpy_images


def to_image(x: torch.Tensor):
    """(3, H, W) in [-1, 1] -> (H, W, 3) numpy array in [0, 1] for imshow."""
    return to_numpy_images(x)


def image_grid(columns: dict[str, torch.Tensor], row_labels: Sequence[str] | None = None,
               size: float = 2.6) -> plt.Figure:
    """One column per named batch (N, 3, H, W), one row per image; returns the figure."""
    names = list(columns)
    n = columns[names[0]].shape[0]
    fig, axes = plt.subplots(n, len(names), figsize=(size * len(names), size * n), squeeze=False)
    for r in range(n):
        for c, name in enumerate(names):
            ax = axes[r, c]
            ax.imshow(to_image(columns[name][r]))
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(name)
            if c == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[r], fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------ notebooks
def degradation_explorer(clean: torch.Tensor, noise_std: float = 0.1, sp_amount: float = 0.0,
                         blur_sigma: float = 0.0, brightness: float = 1.0, contrast: float = 1.0,
                         saturation: float = 1.0, hue: float = 0.0, jpeg_quality: int = 100,
                         seed: int = 0, blur_kernel: int | None = None) -> tuple[plt.Figure, dict[str, float]]:
    """Degrade one clean image (3, H, W) in [-1, 1] with the given settings, in the physical order.

    The blur uses the kernel that training uses (``Config().blur_kernel``, 5×5, unless `blur_kernel` says
    otherwise), so a sigma on the slider looks exactly as strong as in training: a 5×5 kernel cuts a Gaussian
    of sigma above about 1 short, so sigma 2 blurs less than a full Gaussian of sigma 2 would.

    Returns a figure (clean | degraded | |difference|) and the degraded image's
    PSNR (dB) and SSIM against the clean one. The notebooks wire sliders to this
    function; the tests call it directly.
    """
    from . import degrade as d
    from .metrics import psnr, ssim
    x = clean[None] if clean.ndim == 3 else clean
    g = torch.Generator().manual_seed(seed)
    one = lambda v: torch.tensor([float(v)])  # noqa: E731
    y = x
    if blur_sigma > 0:
        y = d.gaussian_blur(y, one(blur_sigma), kernel_size=blur_kernel or Config().blur_kernel)
    if (brightness, contrast, saturation, hue) != (1.0, 1.0, 1.0, 0.0):
        y = d.color_jitter(y, one(brightness), one(contrast), one(saturation), one(hue))
    if noise_std > 0:
        y = d.gaussian_noise(y, noise_std, g)
    if sp_amount > 0:
        y = d.salt_and_pepper(y, sp_amount, generator=g)
    if jpeg_quality < 100:
        y = d.jpeg_compression(y, one(jpeg_quality))
    scores = {"psnr": float(psnr(y, x)[0]), "ssim": float(ssim(y, x)[0])}
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    diff = ((y - x).abs() / 2).mean(dim=1)[0]
    for ax, img, title in zip(axes, [to_image(x[0]), to_image(y[0]), diff.numpy()],
                              ["clean", f"degraded: {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.3f}",
                               "|degraded - clean|"]):
        ax.imshow(img, cmap="magma" if img.ndim == 2 else None, vmin=0, vmax=None if img.ndim == 3 else 0.5)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig, scores


def degradation_widget(clean: torch.Tensor):
    """Sliders for every setting of `degradation_explorer`, redrawing live (needs ipywidgets)."""
    import ipywidgets as w

    def show(**settings):
        fig, _ = degradation_explorer(clean, **settings)
        plt.show()

    return w.interactive(
        show,
        noise_std=w.FloatSlider(value=0.1, min=0, max=0.4, step=0.01, description="noise std"),
        sp_amount=w.FloatSlider(value=0.0, min=0, max=0.1, step=0.005, description="salt & pepper"),
        blur_sigma=w.FloatSlider(value=0.0, min=0, max=3, step=0.1, description="blur sigma"),
        brightness=w.FloatSlider(value=1.0, min=0.5, max=1.5, step=0.05),
        contrast=w.FloatSlider(value=1.0, min=0.5, max=1.5, step=0.05),
        saturation=w.FloatSlider(value=1.0, min=0.5, max=1.5, step=0.05),
        hue=w.FloatSlider(value=0.0, min=-0.1, max=0.1, step=0.01),
        jpeg_quality=w.IntSlider(value=100, min=5, max=100, step=5, description="JPEG quality"),
        seed=w.fixed(0),
    )


def plot_training(run: str | Path) -> plt.Figure:
    """Loss curves (metrics.csv) and validation PSNR/SSIM (val.csv) of a run folder."""
    import csv
    run = Path(run)

    def read(name: str) -> dict[str, list[float]]:
        path = run / name
        if not path.exists():
            return {}
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        return {k: [float(r[k]) for r in rows] for k in (rows[0] if rows else [])}

    m, v = read("metrics.csv"), read("val.csv")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    if m:
        axes[0].plot(m["step"], m["loss_d"], label="D")
        axes[0].plot(m["step"], m["adv"], label="G adversarial")
        axes[1].plot(m["step"], m["l1"], label="G L1 (weighted)")
        if max(m["perceptual"]) > 0:
            axes[1].plot(m["step"], m["perceptual"], label="G perceptual (weighted)")
    if v:
        axes[2].plot(v["step"], v["psnr"], "o-", label="restored")
        axes[2].plot(v["step"], v["psnr_degraded"], "--", label="degraded input")
    for ax, title in zip(axes, ["adversarial losses", "reconstruction losses", "validation PSNR (dB)"]):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
