"""A noise guard: leave images that show no noise as they are.

A blind restorer trained on blur σ 0-2 and noise 0-0.2 cannot tell a clean frame from a lightly
degraded one, so it changes every input a little: the shipped models return clean Kvasir frames at
~37.5 dB, a visible loss on an image that needed nothing. The guard measures the input's noise and
blends the model's correction in only where there is noise to remove:

    output = input + strength(sigma) * (model(input) - input)

    strength = 0 for sigma <= below, 1 for sigma >= full, linear in between

sigma is estimated per image from the input alone (Immerkaer's 3x3 Laplacian mask, with the median of
its absolute values instead of the mean so that edges and texture do not count as noise; Donoho's
MAD idea). On the 256² Kvasir-SEG frames the estimate is 0.0006-0.0067 for clean frames (the
validation split), falls with blur, and reads 0.017-0.022 at noise std 0.02: the guard thresholds
sit in that gap, so every input with visible noise gets the whole model and clean ones pass unchanged.

What it costs: noise-free blurred frames also pass unchanged, so a model's deblurring of them is not
used (``guard=False`` in `medgan_nb.enhance.enhance` or ``enhance --no-guard`` turns it off). Noise
that was smoothed before it reached you (JPEG at low quality, strong video denoising) reads lower than
its true strength. Shipped models carry their thresholds in their card (``guard``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SAMPLES = 2 ** 15        # about this many mask responses per image are enough for a stable median
MAD_TO_STD = 0.6745      # the median of |N(0, 1)|
MASK_NORM = 6.0          # the L2 norm of the mask [[1,-2,1],[-2,4,-2],[1,-2,1]]


def noise_level(x: torch.Tensor) -> torch.Tensor:
    """Estimated Gaussian noise std (in [0, 1] units) of each image of a batch (N, C, H, W) in [-1, 1]; (N,).

    The mask is the outer product of [1, -2, 1] with itself, so it cancels constant and linear image
    content; it is evaluated at every s-th pixel (s chosen to give about `SAMPLES` values) because the
    median needs no more, which keeps the guard under 1 ms at 256².
    """
    if x.ndim != 4 or min(x.shape[-2:]) < 3:
        raise ValueError(f"expected a batch (N, C, H, W) with H, W >= 3, got shape {tuple(x.shape)}")
    u = (x.float() + 1) / 2
    c, h, w = u.shape[1:]
    s = max(1, math.ceil(math.sqrt(c * h * w / SAMPLES)))
    rows, cols = (h - 3) // s + 1, (w - 3) // s + 1

    def second_difference(col: int) -> torch.Tensor:          # [1, -2, 1] down the rows, at column offset col
        at = [u[..., a:a + s * rows:s, col:col + s * cols:s] for a in range(3)]
        return at[0] - 2 * at[1] + at[2]

    r = (second_difference(0) - 2 * second_difference(1) + second_difference(2)).flatten(1).abs()
    return r.kthvalue(r.shape[1] // 2 + 1, dim=1).values / (MAD_TO_STD * MASK_NORM)


@dataclass(frozen=True)
class Guard:
    """Blend a model's output into its input by the input's noise level (see the module docstring)."""
    below: float = 0.008     # at or below this estimated noise std: the input is returned unchanged
    full: float = 0.014      # at or above it: the model's output, unchanged

    def __post_init__(self):
        if not 0 <= self.below < self.full:
            raise ValueError(f"need 0 <= below < full, got below={self.below}, full={self.full}")

    def ramp(self, sigma: torch.Tensor) -> torch.Tensor:
        """The strength for estimated noise levels `sigma`: 0 at or below `below`, 1 from `full`, linear between."""
        return ((sigma - self.below) / (self.full - self.below)).clamp(0, 1)

    def strength(self, x: torch.Tensor) -> torch.Tensor:
        """How much of the model's correction each image of a batch gets, in [0, 1]; (N,)."""
        return self.ramp(noise_level(x))

    def __call__(self, x: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
        """input + strength * (restored - input), per image."""
        a = self.strength(x).to(restored.dtype).view(-1, *([1] * (restored.ndim - 1)))
        return torch.lerp(x.to(restored.dtype), restored, a)

    def to_dict(self) -> dict[str, float]:
        return {"below": self.below, "full": self.full}
