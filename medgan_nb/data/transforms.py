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


def random_crop(frame: np.ndarray, size: int, frame_size: int, generator: torch.Generator | None = None
                ) -> torch.Tensor:
    """A random `size`² crop of a frame (H, W, 3) in [0, 1] (or uint8) at a random scale, flipped and rotated at random.

    The scale puts the frame's shorter side between `frame_size` (the scale that val/test see) and twice
    that, never above the stored resolution: the model sees detail at the test scale and a little finer,
    and every rotation/mirror of it (an endoscope has no up). Returns (3, size, size) in [-1, 1].
    """
    h, w = frame.shape[:2]
    u = torch.rand(5, generator=generator).tolist()
    low = min(1.0, frame_size / min(h, w))
    scale = max(low + (min(1.0, 2 * low) - low) * u[0], size / min(h, w))   # stored pixels -> crop pixels
    side = min(h, w, round(size / scale))                                   # crop side in stored pixels
    top, left = int(u[1] * (h - side + 1)), int(u[2] * (w - side + 1))
    x = _resized(frame[top:top + side, left:left + side], (size, size))[0]
    x = x.clamp(0, 1).mul_(2).sub_(1)                                       # from_unit, one new buffer
    x = torch.rot90(x, int(u[3] * 4), dims=(1, 2))
    return (x.flip(2) if u[4] < 0.5 else x).contiguous()


def _shrink(frame: np.ndarray, side: int) -> np.ndarray:
    """The frame scaled down so its shorter side is at most `side` (antialiased)."""
    h, w = frame.shape[:2]
    if min(h, w) <= side:
        return frame
    size = (round(h * side / min(h, w)), round(w * side / min(h, w)))
    return _resized(frame, size)[0].permute(1, 2, 0).numpy()
