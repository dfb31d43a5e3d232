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
    from .metrics import psnr, ssim
    x = clean[None] if clean.ndim == 3 else clean
    y = explorer_degrade(x, noise_std, sp_amount, blur_sigma, brightness, contrast, saturation, hue, jpeg_quality,
                         seed, blur_kernel)
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
    from .reports import read_log
    run = Path(run)

    def read(name: str) -> dict[str, list[float]]:
        return read_log(run, name, columns=True) if (run / name).exists() else {}

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


# ------------------------------------------------------------ notebook 01: the imaging chain
# Where each degradation of `medgan_nb.degrade` happens in a real endoscope, stage by stage (issue 11).
# (stage, what happens there, [(degradation, what it stands for), ...])
IMAGING_CHAIN: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("scene", "light source, wet mucosa,\ndistance to the tissue",
     (("glare", "specular reflections"), ("low_light", "tissue far from the light"))),
    ("optics", "lens, fibre or chip-on-tip;\ndeep depth of field",
     (("blur", "defocus (very close range)"), ("motion_blur", "scope moves during exposure"),
      ("vignetting", "light fall-off to the rim"))),
    ("sensor", "Bayer photosites count photons;\nread-out electronics",
     (("noise", "shot + read noise (ours: Gaussian)"), ("salt_pepper", "defective pixels, bit errors"))),
    ("processing", "demosaicing, white balance,\ngain, denoising, sharpening",
     (("color_jitter", "white balance, colour settings"),)),
    ("codec", "video / JPEG compression\nfor storage and streaming",
     (("jpeg", "block artefacts, ringing"),)),
)


def imaging_chain_figure(chain: Sequence[tuple[str, str, Sequence[tuple[str, str]]]] = IMAGING_CHAIN,
                         order: Sequence[str] | None = None) -> plt.Figure:
    """The imaging chain scene → optics → sensor → processing → codec as boxes and arrows, with the
    package's degradations (`medgan_nb.degrade`) listed under the stage where each one happens.

    `order`: the order the package applies them in (default ``DEGRADATION_ORDERS["physical"]``), shown as
    each degradation's step number, so a reader sees where the package's order departs from the chain
    (colour jitter and low light run before the noise). Drawn with matplotlib patches only; returns the
    figure (one box per stage, one arrow between neighbours).
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from .config import DEGRADATION_ORDERS
    order = list(DEGRADATION_ORDERS["physical"] if order is None else order)
    n = len(chain)
    fig, ax = plt.subplots(figsize=(2.75 * n, 3.6))
    ax.set_xlim(0, n), ax.set_ylim(0, 1)
    ax.axis("off")
    width, top, bottom = 0.8, 0.95, 0.62
    for i, (stage, what, degradations) in enumerate(chain):
        x0 = i + (1 - width) / 2
        ax.add_patch(FancyBboxPatch((x0, bottom), width, top - bottom, boxstyle="round,pad=0.01,rounding_size=0.04",
                                    facecolor="#dbe9f6", edgecolor="#2c5d8a", linewidth=1.5, gid=f"stage:{stage}"))
        ax.text(i + 0.5, top - 0.07, stage, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(i + 0.5, bottom + 0.11, what, ha="center", va="center", fontsize=7.5)
        if i + 1 < n:
            ax.add_patch(FancyArrowPatch((x0 + width + 0.01, (top + bottom) / 2),
                                         (i + 1 + (1 - width) / 2 - 0.01, (top + bottom) / 2),
                                         arrowstyle="-|>", mutation_scale=16, color="#2c5d8a", gid="arrow"))
        for k, (name, meaning) in enumerate(degradations):
            step = f"{order.index(name) + 1}. " if name in order else ""
            y = bottom - 0.1 - 0.16 * k
            ax.text(i + 0.5, y, f"{step}{name}", ha="center", va="center", fontsize=9, family="monospace",
                    color="#a0301e", gid=f"degradation:{name}")
            ax.text(i + 0.5, y - 0.06, meaning, ha="center", va="center", fontsize=7, color="#444444")
    ax.set_title("the imaging chain, and where each degradation of medgan_nb.degrade happens "
                 "(number: its step in degradation_order='physical')", fontsize=9)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------ notebook 01: sliders, or a fixed set without ipywidgets
NO_IPYWIDGETS = ("ipywidgets is not installed: pip install ipywidgets for the sliders; "
                 "showing a fixed set of strengths instead")
# The fixed strengths shown without sliders: one row per setting of `degradation_explorer`.
STATIC_SETTINGS: tuple[dict[str, float], ...] = (
    dict(noise_std=0.05), dict(noise_std=0.15), dict(noise_std=0.3),
    dict(noise_std=0.0, sp_amount=0.02), dict(noise_std=0.0, blur_sigma=1.0), dict(noise_std=0.0, blur_sigma=2.0),
    dict(noise_std=0.0, brightness=0.7), dict(noise_std=0.0, hue=0.05), dict(noise_std=0.0, jpeg_quality=15),
)


def explorer_degrade(clean: torch.Tensor, noise_std: float = 0.1, sp_amount: float = 0.0, blur_sigma: float = 0.0,
                     brightness: float = 1.0, contrast: float = 1.0, saturation: float = 1.0, hue: float = 0.0,
                     jpeg_quality: int = 100, seed: int = 0, blur_kernel: int | None = None) -> torch.Tensor:
    """The degraded image (1, 3, H, W) that `degradation_explorer` shows for these settings (same order,
    same random numbers): blur, colour, noise, salt-and-pepper, JPEG."""
    from . import degrade as d
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
    return y


def _setting_label(setting: dict[str, float]) -> str:
    shown = {k: v for k, v in setting.items() if not (k == "noise_std" and v == 0)}
    return ", ".join(f"{k} {v:g}" for k, v in shown.items()) or "clean"


def degradation_strengths_figure(clean: torch.Tensor, settings: Sequence[dict[str, float]] = STATIC_SETTINGS,
                                 columns: int = 3, size: float = 2.6) -> tuple[plt.Figure, list[dict[str, float]]]:
    """One panel per setting of `degradation_explorer` (the sliders' fixed stand-in): the degraded image,
    titled with its setting, PSNR and SSIM. Returns the figure and the scores, one dict per setting."""
    from .metrics import psnr, ssim
    x = clean[None] if clean.ndim == 3 else clean
    rows = -(-len(settings) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, (size + 0.3) * rows), squeeze=False)
    scores = []
    for ax, setting in zip(axes.flat, settings):
        y = explorer_degrade(x, **setting)
        s = {"psnr": float(psnr(y, x)[0]), "ssim": float(ssim(y, x)[0])}
        scores.append(s)
        ax.imshow(to_image(y[0]))
        ax.set_title(f"{_setting_label(setting)}\n{s['psnr']:.2f} dB, SSIM {s['ssim']:.3f}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    for ax in list(axes.flat)[len(settings):]:
        ax.axis("off")
    fig.tight_layout()
    return fig, scores


def show_degradation_explorer(clean: torch.Tensor, settle_s: float = 2.0):
    """Notebook 01's slider cell: display the `degradation_widget` sliders; without ipywidgets, print one
    line (`NO_IPYWIDGETS`) and show `degradation_strengths_figure` instead. Returns the widget or the figure.

    settle_s: seconds to wait after displaying the widget, so that ``jupyter nbconvert --execute`` takes in
    its first picture before the cell ends (nbclient can otherwise miss the kernel's reply, nbclient #312).
    """
    import time
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        print(NO_IPYWIDGETS)
        fig, _ = degradation_strengths_figure(clean)
        plt.show()
        return fig
    from IPython.display import display
    widget = degradation_widget(clean)
    display(widget)
    time.sleep(settle_s)
    return widget


# ------------------------------------------------------------ notebook 02: what one PatchGAN logit sees
def logit_footprint(discriminator: torch.nn.Module, size: int, row: int, col: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), inclusive, of the input pixels of a size² image that logit (row, col) of
    the (conditional) discriminator depends on, measured with a gradient in eval mode: its receptive field
    clipped to the image."""
    was_training = discriminator.training
    discriminator.eval()
    try:
        probe = torch.zeros(1, 3, size, size, requires_grad=True)
        discriminator(probe, probe)[0, 0, row, col].backward()
    finally:
        discriminator.train(was_training)
        discriminator.zero_grad(set_to_none=True)
    ys, xs = probe.grad.abs().sum(dim=(0, 1)).nonzero(as_tuple=True)
    return int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())


def receptive_field_figure(discriminator: torch.nn.Module, sizes: Sequence[int] = (64, 256),
                           panel: float = 3.6) -> plt.Figure:
    """For each input size, the image square with the footprints (`logit_footprint`) of the corner logit
    and a centre logit drawn on it, titled with the logit grid and how much of the image one logit sees."""
    from matplotlib.patches import Rectangle
    fig, axes = plt.subplots(1, len(sizes), figsize=(panel * len(sizes), panel + 0.4), squeeze=False)
    was_training = discriminator.training
    for ax, size in zip(axes[0], sizes):
        with torch.no_grad():
            grid = discriminator.eval()(torch.zeros(1, 3, size, size), torch.zeros(1, 3, size, size)).shape[-1]
        discriminator.train(was_training)
        ax.add_patch(Rectangle((0, 0), size, size, facecolor="#eeeeee", edgecolor="black"))
        shares = []
        for (r, c), colour in [((0, 0), "tab:red"), ((grid // 2, grid // 2), "tab:blue")]:
            top, bottom, left, right = logit_footprint(discriminator, size, r, c)
            ax.add_patch(Rectangle((left, top), right - left + 1, bottom - top + 1, facecolor=colour, alpha=0.35,
                                   edgecolor=colour, label=f"logit ({r}, {c})"))
            shares.append((bottom - top + 1) * (right - left + 1) / size**2)
        ax.set_xlim(0, size), ax.set_ylim(size, 0)
        ax.set_aspect("equal")
        ax.set_title(f"{size}x{size} input: {grid}x{grid} logits;\none logit sees {min(shares):.0%}-"
                     f"{max(shares):.0%} of the image", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
