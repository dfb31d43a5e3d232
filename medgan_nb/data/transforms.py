"""From decoded frames (H, W, C) to the models' square tensors (C, S, S) in [-1, 1].

- `to_tensor(arr, size, resize, frame_size)`: the fixed view that validation and evaluation use.
  ``resize="crop"`` scales the shorter side to `frame_size` (default `size`) and cuts the centre
  `size` × `size`, so round things stay round; ``"squash"`` scales both sides to `size`, as the original
  notebook did.
- `random_crop(frame, size, frame_size, generator)`: the training view: a `size`² crop at a random scale
  between the test scale and twice as fine (never finer than the stored pixels), turned by a random
  multiple of 90 degrees and mirrored at random, since an endoscope has no up.

Inputs are floats in [0, 1] or uint8 (divided by 255); resizing is bilinear with antialiasing.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin  # noqa: F401 (registers PIL_FORMATS)

from ..utils.images import from_unit


def to_tensor(arr: np.ndarray, size: int, resize: str = "crop", frame_size: int = 0) -> torch.Tensor:
    """(H, W, C) in [0, 1] (or uint8) -> (C, size, size) in [-1, 1], resized with antialiasing.

    resize="crop" scales the shorter side to `frame_size` (default: `size`) and cuts the centre
    `size` × `size` (keeps shapes round); "squash" scales both sides to `size` (the original's way).
    """
    h, w = arr.shape[:2]
    if resize == "crop":
        side = frame_size or size
        scale = side / min(h, w)
        nh, nw = max(side, round(h * scale)), max(side, round(w * scale))
    else:
        nh, nw = size, size
    x = _resized(arr, (nh, nw))
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[0, :, top:top + size, left:left + size]
    return from_unit(x).contiguous()


def _resized(arr: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(H, W, C) numpy in [0, 1] (or uint8, /255) -> float tensor (1, C, *size) in [0, 1], bilinear with
    antialiasing (unchanged when already that size)."""
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].float()
    if arr.dtype == np.uint8:
        x = x.div_(255)                          # the same float32 values as arr.astype(np.float32) / 255
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x


def random_crop(frame: np.ndarray, size: int, frame_size: int, generator: torch.Generator | None = None,
                scale: tuple[float, float] = (1.0, 2.0), soft_p: float = 0.0,
                soft_factor: tuple[float, float] = (1.5, 3.0), white_balance: float = 0.0) -> torch.Tensor:
    """A random `size`² crop of a frame (H, W, 3) in [0, 1] (or uint8) at a random scale, flipped and rotated at random.

    scale: the range of the crop's scale in multiples of the test scale (the frame's shorter side at
    `frame_size`, as val/test see it), drawn uniformly, never above the stored resolution. The default (1, 2):
    detail at the test scale and a little finer; below 1 the crop holds more of the frame, each pixel coarser
    (antialiased). soft_p: the probability that the crop is made soft as an upscaled standard-definition frame
    is: scaled down by a factor drawn from `soft_factor` (antialiased) and back up (bicubic); the clean target is
    then soft too, so a model learns that soft content is not blur to remove. white_balance: each colour channel
    times a gain drawn uniformly from [1 - white_balance, 1 + white_balance] (clipped to [0, 1]), as another
    camera's white balance and colour processing would render the scene; 0 (the default) draws nothing.
    Returns (3, size, size) in [-1, 1].
    """
    h, w = frame.shape[:2]
    u = torch.rand(5, generator=generator).tolist()
    low = min(1.0, frame_size / min(h, w))
    lo, hi = min(1.0, scale[0] * low), min(1.0, scale[1] * low)
    scale_now = max(lo + (hi - lo) * u[0], size / min(h, w))               # stored pixels -> crop pixels
    side = min(h, w, round(size / scale_now))                              # crop side in stored pixels
    top, left = int(u[1] * (h - side + 1)), int(u[2] * (w - side + 1))
    x = _resized(frame[top:top + side, left:left + side], (size, size))
    if soft_p > 0:
        v = torch.rand(2, generator=generator).tolist()
        if v[0] < soft_p:
            small = max(2, round(size / (soft_factor[0] + (soft_factor[1] - soft_factor[0]) * v[1])))
            x = F.interpolate(x, size=(small, small), mode="bilinear", antialias=True, align_corners=False)
            x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    if white_balance > 0:
        gains = 1 + white_balance * (2 * torch.rand(3, generator=generator) - 1)
        x = x * gains.view(1, 3, 1, 1)
    x = x[0].clamp(0, 1).mul_(2).sub_(1)                                    # from_unit, one new buffer
    x = torch.rot90(x, int(u[3] * 4), dims=(1, 2))
    return (x.flip(2) if u[4] < 0.5 else x).contiguous()


def _shrink(frame: np.ndarray, side: int) -> np.ndarray:
    """The frame scaled down so its shorter side is at most `side` (antialiased)."""
    h, w = frame.shape[:2]
    if min(h, w) <= side:
        return frame
    size = (round(h * side / min(h, w)), round(w * side / min(h, w)))
    return _resized(frame, size)[0].permute(1, 2, 0).numpy()
