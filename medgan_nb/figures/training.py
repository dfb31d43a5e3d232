"""Figures about training: a run's curves, and where each step's gradients go.

- `plot_training(run)`: a run folder -> a figure of its loss curves (metrics.csv) and its validation
  PSNR/SSIM (val.csv); a missing file leaves its panels empty.
- `plot_gradient_flow()`: a diagram of the two steps of one iteration: D's step (its loss reaches D only,
  the restoration is detached) and G's step (the loss flows back through the frozen D into G, and through
  the L1 term straight into G).

Both return a matplotlib figure; the caller shows, saves or closes it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def plot_training(run: str | Path) -> plt.Figure:
    """Loss curves (metrics.csv) and validation PSNR/SSIM (val.csv) of a run folder."""
    from ..training.logs import read_log
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


# ------------------------------------------------------------------ figures
def plot_gradient_flow() -> Figure:
    """Two panels: the D step (its loss reaches D only: the restoration is detached) and the G step (the
    loss flows back through the frozen D into G, and through the L1 term straight into G).
    Black arrows: the forward pass; red arrows: where the gradient of the step's loss goes."""
    fig = Figure(figsize=(12, 3.8))
    forward = dict(arrowstyle="->", color="black", shrinkA=2, shrinkB=2)
    grad = dict(arrowstyle="->", color="crimson", lw=2, shrinkA=4, shrinkB=4, connectionstyle="arc3,rad=-0.5")
    for ax, g_step in zip(fig.subplots(1, 2), (False, True)):
        ax.set(xlim=(0, 1), ylim=(0, 1)), ax.axis("off")
        ax.set_title("G step: loss → through D (frozen) → G, and L1 → G" if g_step
                     else "D step: loss → D only (the fake is detached)", fontsize=10)

        def box(x: float, y: float, text: str, colour: str = "white"):
            return ax.text(x, y, text, ha="center", va="center", fontsize=9,
                           bbox=dict(boxstyle="round", fc=colour, ec="black"))

        x = box(0.07, 0.5, "x (degraded)")
        g = box(0.27, 0.5, "G" + (": updated" if g_step else ""), "#9ecae1" if g_step else "#eeeeee")
        fake = box(0.48, 0.5, "G(x)" if g_step else "G(x).detach()")
        d = box(0.7, 0.5, "D: frozen" if g_step else "D: updated", "#eeeeee" if g_step else "#fdae6b")
        loss = box(0.92, 0.5, "adv + λ·L1" if g_step else "D loss")
        cond = box(0.48, 0.85, "x (condition)" if g_step else "x, y: the real pair")
        for a, b in ((x, g), (g, fake), (fake, d), (d, loss)):
            ax.annotate("", xy=(0, 0.5), xycoords=b, xytext=(1, 0.5), textcoords=a, arrowprops=forward)
        ax.annotate("", xy=(0.5, 1), xycoords=d, xytext=(1, 0.5), textcoords=cond, arrowprops=forward)
        back = [(loss, d), (d, fake), (fake, g)] if g_step else [(loss, d)]
        for a, b in back:
            ax.annotate("", xy=(0.5, 0), xycoords=b, xytext=(0.5, 0), textcoords=a, arrowprops=grad)
        if g_step:
            ax.annotate("", xy=(0.5, 1), xycoords=fake, xytext=(0.5, 1), textcoords=loss,
                        arrowprops={**grad, "connectionstyle": "arc3,rad=0.35", "ls": "--"})
            ax.text(0.7, 0.76, "L1(G(x), y)", color="crimson", fontsize=8, ha="center")
            note = "D's weights get no gradient (requires_grad False) and are not stepped"
        else:
            ax.text(0.48, 0.3, "✕ stop", color="crimson", fontsize=14, ha="center", va="center")
            note = "the gradient stops at detach(): G is untouched"
        ax.text(0.5, 0.08, note, color="crimson", fontsize=8, ha="center")
    return fig
