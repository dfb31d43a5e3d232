"""A guard that leaves images needing no restoration as they are.

A blind restorer trained on blur σ 0-2 and noise 0-0.2 cannot tell a clean frame from a lightly
degraded one, so it changes every input a little: the shipped models return clean Kvasir frames
visibly changed, a loss on an image that needed nothing. The guard blends the model's correction in
only where the input shows noise, or where the model wants to change the image by more than it ever
changes a clean frame:

    output = input + strength * (model(input) - input)
    strength = max(ramp(sigma; below, full), ramp(change; change_below, change_full))
    ramp(v; lo, hi) = 0 for v <= lo, 1 for v >= hi, linear in between

- sigma, the input's noise std, is estimated from the input alone (Immerkaer's 3x3 Laplacian mask, with
  the median of its absolute values instead of the mean so that edges and texture do not count as noise;
  Donoho's MAD idea). On the 256² Kvasir-SEG frames it is 0.0006-0.0076 for the clean frames of the
  train and validation splits, falls with blur, and reads 0.017-0.020 at noise std 0.02.
- change is the median over pixels of the model's |correction| (in [0, 1] units). Noise that was blurred
  after it was added (the original notebook's order) reads as a low sigma, but the models then change
  nearly every pixel. On a clean frame the largest corrections sit on a few sharp spots (on-screen text,
  specular highlights, the edges of the black borders); the median ignores them, the RMS does not
  (``change_stat="rms"``), which puts clean frames and blurred noise much closer together.

The thresholds sit in those gaps, chosen on every frame of the training and validation splits (the test
split only scores them; ``python scripts/guard_stats.py --model NAME --split train --crop centre``). With
the shipped weights (their cards record the statistics), the median correction of the two models was
- on clean frames at most 0.0101 at the evaluation's geometry (256², the centre crop of the frame scaled to
  a shorter side of 256; train and val), and at most 0.0122 on random training crops, which see the frame
  at up to twice that resolution;
- on blurred noise at least 0.0145 (random training crops; 0.0155 on centre crops, 0.0165 on val).
So `change_full` is 0.0145 and `change_below` 0.0115, 14 % above every clean frame at the evaluation's
geometry; two random training crops of `realtime` at a finer scale get up to a quarter of the correction.

What it costs: noise-free blurred frames mostly pass unchanged, so a model's deblurring of them is given
up (the cards' ``grid_without_guard`` shows it; ``guard=False`` in
`medgan_nb.inference.files.enhance`, ``enhance --no-guard``, turns the guard off). Noise that was smoothed
before it reached you (strong JPEG, video denoising) reads as weaker than it is.
Shipped models carry their thresholds in their card (``guard``).
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
    median needs no more, which keeps the guard's cost small beside the model's.
    """
    if x.ndim != 4 or min(x.shape[-2:]) < 3:
        raise ValueError(f"expected a batch (N, C, H, W) with H, W >= 3, got shape {tuple(x.shape)}")
    c, h, w = x.shape[1:]
    s = max(1, math.ceil(math.sqrt(c * h * w / SAMPLES)))
    rows, cols = (h - 3) // s + 1, (w - 3) // s + 1

    def second_difference(col: int) -> torch.Tensor:          # [1, -2, 1] down the rows, at column offset col
        at = [x[..., a:a + s * rows:s, col:col + s * cols:s].float() for a in range(3)]   # samples only: no copy
        return at[0] - 2 * at[1] + at[2]                                                 # of the whole image

    # the mask cancels the offset of (x + 1) / 2, so the [0, 1] units are the [-1, 1] differences halved
    r = (second_difference(0) - 2 * second_difference(1) + second_difference(2)).flatten(1).abs() / 2
    return _row_medians(r) / (MAD_TO_STD * MASK_NORM)


def noise_levels(x: torch.Tensor, scales: tuple[int, ...] = (1,)) -> torch.Tensor:
    """`noise_level` of each image of a batch (N, C, H, W) in [-1, 1] at each scale: (N, len(scales)).

    At scale s the image is first averaged over s×s blocks, and the estimate multiplied by s, so that white
    noise of std σ reads σ at every scale. Noise that was blurred after it was added (the original notebook's
    order) has lost its finest frequencies: it reads far lower at scale 1 than at scale 4, where clean content
    reads higher too. On 16 PolypGen frames at 256² under the original's degradations (noise std 0.10-0.20,
    then a 5×5 blur of σ 0.1-2): median 0.0015 at scale 1 and 0.081 at scale 4; the clean frames: 0.0025 and
    0.029 (at most 0.055). The scales together tell the two apart; none alone does.
    """
    if not scales or any(int(s) != s or s < 1 for s in scales):
        raise ValueError(f"scales must be integers >= 1, at least one; got {scales}")
    return torch.stack([noise_level(torch.nn.functional.avg_pool2d(x, s) if s > 1 else x) * s for s in scales], 1)


def _row_medians(v: torch.Tensor) -> torch.Tensor:
    """The median of each row of v (N, K): its (K // 2 + 1)-th smallest value, no interpolation; (N,)."""
    return v.kthvalue(v.shape[1] // 2 + 1, dim=1).values


CHANGE_STATS = ("median", "rms")


def change_of(x: torch.Tensor, restored: torch.Tensor, stat: str = "median") -> torch.Tensor:
    """How much `restored` changes each image of a batch in [-1, 1], in [0, 1] units; (N,).

    stat "median": the median over pixels of the channel-mean |restored - x| (at every s-th pixel, s giving
    about `SAMPLES` values); "rms": the root mean square of restored - x.
    """
    if stat == "rms":
        return ((restored.float() - x.float()) / 2).square().flatten(1).mean(1).sqrt()
    if stat != "median":
        raise ValueError(f"stat must be one of {CHANGE_STATS}, got {stat!r}")
    s = max(1, x.shape[-2] * x.shape[-1] // SAMPLES)           # only the sampled pixels are differenced
    a = ((restored.flatten(2)[..., ::s].float() - x.flatten(2)[..., ::s].float()) / 2).abs().mean(1)
    return _row_medians(a)


def _ramp(v: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return ((v - lo) / (hi - lo)).clamp(0, 1)


@dataclass(frozen=True)
class Guard:
    """Blend a model's output into its input by the input's noise and the size of the correction
    (see the module docstring)."""
    below: float = 0.008          # estimated noise std at or below which noise alone does not call for the model
    full: float = 0.014           # ... and from which it calls for all of it
    change_below: float = 0.0115  # correction (change_stat) at or below which its size alone does not count
    change_full: float = 0.0145   # ... and from which the whole correction is applied
    change_stat: str = "median"   # "median" | "rms": how the correction's size is measured (`change_of`)

    def __post_init__(self):
        if self.change_stat not in CHANGE_STATS:
            raise ValueError(f"change_stat must be one of {CHANGE_STATS}, got {self.change_stat!r}")
        for lo, hi, what in ((self.below, self.full, "below < full"),
                             (self.change_below, self.change_full, "change_below < change_full")):
            if not 0 <= lo < hi:
                raise ValueError(f"need 0 <= {what}, got {lo} and {hi}")

    def measure(self, x: torch.Tensor, restored: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per image (N,): the estimated noise, the correction's size (`change_stat`) and the strength they give."""
        sigma, change = noise_level(x), change_of(x, restored, self.change_stat)
        strength = torch.maximum(_ramp(sigma, self.below, self.full),
                                 _ramp(change, self.change_below, self.change_full))
        return {"noise_level": sigma, "change": change, "strength": strength}

    def strength(self, x: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
        """How much of the model's correction each image of a batch gets, in [0, 1]; (N,)."""
        return self.measure(x, restored)["strength"]

    def __call__(self, x: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
        """input + strength * (restored - input), per image."""
        return self.blend(x, restored, self.strength(x, restored))

    @staticmethod
    def blend(x: torch.Tensor, restored: torch.Tensor, strength: torch.Tensor | float,
              out: torch.Tensor | None = None) -> torch.Tensor:
        """input + strength * (restored - input): `strength` one per image (N,) or one number for all (as
        `measure` reported it); `out` as ``torch.lerp``'s (in place into `restored` saves a copy)."""
        a = torch.as_tensor(strength, dtype=restored.dtype, device=restored.device)
        if a.ndim:
            a = a.view(-1, *([1] * (restored.ndim - 1)))
        return torch.lerp(x.to(restored.dtype), restored, a, out=out)

    def to_dict(self) -> dict[str, float]:
        return {"below": self.below, "full": self.full, "change_below": self.change_below,
                "change_full": self.change_full, "change_stat": self.change_stat}

    @classmethod
    def from_card(cls, fields: dict) -> "Guard":
        """The guard a card's "guard" entry describes; cards written before "change_stat" existed measured RMS."""
        return cls(**{"change_stat": "rms", **fields})
