"""Notebook 01's degradation explorer: one clean frame degraded by sliders, with PSNR and SSIM beside it.

- `explorer_degrade(clean, ...)`: the degraded frame (1, 3, H, W) in [-1, 1] for one setting of the sliders,
  in the physical order (blur, colour, noise, salt-and-pepper, JPEG), the same random numbers for a fixed seed.
- `degradation_explorer(clean, ...)`: that frame beside the clean one, with its PSNR (dB) and SSIM.
- `degradation_widget(clean)`: ipywidgets sliders that redraw `degradation_explorer` (needs ipywidgets).
- `show_degradation_explorer(clean)`: the slider cell; without ipywidgets one line (`NO_IPYWIDGETS`) and
  `degradation_strengths_figure` (a fixed set of strengths, `STATIC_SETTINGS`) instead, so that a static run of
  the notebook still shows what the sliders do.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import matplotlib.pyplot as plt
import torch

from ..config.config import Config
from ..utils.plots import to_image


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
    from ..metrics import psnr, ssim
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
    from ..degrade import ops as d
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
    from ..metrics import psnr, ssim
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


def show_sliders(make_widget: Callable[[], Any], static_figure: Callable[[], plt.Figure]) -> Any:
    """A notebook's slider cell: display ``make_widget()``; where it raises ImportError (no ipywidgets), print
    one line (`NO_IPYWIDGETS`) and show ``static_figure()`` instead. Returns the widget or the figure."""
    try:
        widget = make_widget()
    except ImportError:
        print(NO_IPYWIDGETS)
        fig = static_figure()
        plt.show()
        return fig
    from IPython.display import display
    display(widget)
    return widget


def show_degradation_explorer(clean: torch.Tensor) -> Any:
    """Notebook 01's slider cell: the `degradation_widget` sliders, or `degradation_strengths_figure`."""
    return show_sliders(lambda: degradation_widget(clean), lambda: degradation_strengths_figure(clean)[0])
