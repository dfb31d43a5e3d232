"""Figures of the architecture lessons: where each degradation arises, and what one PatchGAN logit sees.

- `imaging_chain_figure(chain, order)`: the imaging chain (scene -> optics -> sensor -> processing -> codec)
  as boxes and arrows, each degradation of `medgan_nb.degrade` under the stage where it happens
  (`IMAGING_CHAIN`).
- `logit_footprint(discriminator, size, row, col)`: (top, bottom, left, right), inclusive, of the input
  pixels that one logit of a conditional discriminator depends on, found with a gradient in eval mode.
- `receptive_field_figure(discriminator, sizes)`: those footprints drawn on images of several sizes.

The figures are returned, not saved; the discriminator's train/eval mode is restored.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import torch

from ..models.build import eval_mode

# ------------------------------------------------------------ notebook 01: the imaging chain
# Where each degradation of `medgan_nb.degrade` happens in a real endoscope, stage by stage.
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

    from ..config.config import DEGRADATION_ORDERS
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


# ------------------------------------------------------------ notebook 02: what one PatchGAN logit sees
def logit_footprint(discriminator: torch.nn.Module, size: int, row: int, col: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), inclusive, of the input pixels of a size² image that logit (row, col) of
    the (conditional) discriminator depends on, measured with a gradient in eval mode: its receptive field
    clipped to the image."""
    try:
        with eval_mode(discriminator):
            probe = torch.zeros(1, 3, size, size, requires_grad=True)
            discriminator(probe, probe)[0, 0, row, col].backward()
    finally:
        discriminator.zero_grad(set_to_none=True)
    ys, xs = probe.grad.abs().sum(dim=(0, 1)).nonzero(as_tuple=True)
    return int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())


def receptive_field_figure(discriminator: torch.nn.Module, sizes: Sequence[int] = (64, 256),
                           panel: float = 3.6) -> plt.Figure:
    """For each input size, the image square with the footprints (`logit_footprint`) of the corner logit
    and a centre logit drawn on it, titled with the logit grid and how much of the image one logit sees."""
    from matplotlib.patches import Rectangle
    fig, axes = plt.subplots(1, len(sizes), figsize=(panel * len(sizes), panel + 0.4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        with eval_mode(discriminator), torch.no_grad():
            grid = discriminator(torch.zeros(1, 3, size, size), torch.zeros(1, 3, size, size)).shape[-1]
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
