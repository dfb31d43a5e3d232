"""Running a generator: a batch of equal-sized images (`restore`), or one image of any size with padding and
tiles (`enhance_array`).

`restore(generator, degraded, device, batch_size, guard)`: a CPU batch (N, C, H, W) in [-1, 1] through the
generator in eval mode, in chunks of `batch_size`, without gradients, each chunk's output passed through `guard`
(a `medgan_nb.models.guard.Guard`, or None) -> float32 on the CPU. Training validates with it and evaluation
scores with it (`medgan_nb.evaluation.methods.run_gan`); the generator's train/eval mode is restored after.

`enhance_array(generator, img, tile, overlap, device, guard)`: an image (H, W, C) float in [0, 1], C the
generator's channels (3, or 1 for the CT, MRI and X-ray models) -> float32 (H, W, C) in [0, 1]. The image
is reflect-padded to a multiple of ``generator.size_multiple``; images larger than `tile` go through the
generator in overlapping tiles blended with cosine ramps whose weights sum to 1, so memory stays bounded
and no seams appear. A guard (`medgan_nb.models.guard.Guard`) is applied to the whole image after the
tiles are joined, so that every tile gets the same strength. Runs under ``torch.inference_mode`` in eval
mode and restores the generator's mode afterwards. Raises ValueError for a wrong shape or channel count,
integer pixels, or a tile below 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .build import eval_mode
from .guard import Guard
from ..utils.images import from_numpy_images, to_numpy_images


# ------------------------------------------------------------ a batch
@torch.no_grad()
def restore(generator: torch.nn.Module, degraded: torch.Tensor, device: torch.device | str,
            batch_size: int = 32, guard: Guard | None = None) -> torch.Tensor:
    """`degraded` (N, C, H, W) in [-1, 1] restored by `generator` (and `guard`), in chunks; float32 on the CPU."""
    outputs = []
    with eval_mode(generator):
        for i in range(0, len(degraded), batch_size):
            x = degraded[i:i + batch_size].to(device)
            y = generator(x)
            outputs.append((guard(x, y) if guard is not None else y).float().cpu())
    return torch.cat(outputs)


# ------------------------------------------------------------ one array
def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _tile_starts(size: int, tile: int, step: int) -> list[int]:
    """Start offsets of tiles of side `tile` covering [0, size); the last one ends exactly at `size`."""
    if size <= tile:
        return [0]
    return list(range(0, size - tile, step)) + [size - tile]


def _ramp(length: int, overlap: int, fade_in: bool, fade_out: bool) -> torch.Tensor:
    """1-D blending weights of one tile: cosine ramps over `overlap` pixels on the sides that meet another tile.

    Where two tiles overlap by exactly `overlap`, their ramps sum to 1 (sin² + cos²).
    Values never reach 0, so every pixel keeps some weight.
    """
    w = torch.ones(length)
    if overlap:
        t = (torch.arange(overlap) + 0.5) / overlap
        up = torch.sin(t * math.pi / 2) ** 2
        if fade_in:
            w[:overlap] = up
        if fade_out:
            w[-overlap:] = up.flip(0)
    return w


def _module_device(module: torch.nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def enhance_array(generator: torch.nn.Module, img: np.ndarray, *, tile: int = 512, overlap: int = 32,
                  device: str | torch.device | None = None, guard: Guard | None = None) -> np.ndarray:
    """Restore one image (H, W, C) float in [0, 1] of any size, C the generator's channels (3, or 1 for the CT,
    MRI and X-ray models); returns float32 (H, W, C) in [0, 1].

    guard: a `medgan_nb.models.guard.Guard` (shipped models carry one as ``generator.guard``), applied to the
    whole image after the tiles are put together, so that every tile gets the same strength.

    The image is reflect-padded to a multiple of ``generator.size_multiple``. Images
    larger than `tile` go through the generator in tiles of `tile` pixels that
    overlap by `overlap` (both rounded up to multiples of it); the
    tiles are blended with cosine ramps in the overlaps. Runs in eval mode
    under ``torch.inference_mode`` on `device` (default: the generator's),
    and restores the generator's train/eval mode afterwards.
    """
    img = np.asarray(img)
    channels = getattr(generator, "in_channels", None)         # backends' wrappers may not say; the model would
    if img.ndim != 3 or img.shape[2] not in (1, 3) or img.shape[2] != (channels or img.shape[2]):
        raise ValueError(f"expected an (H, W, {channels or '1 or 3'}) image for this generator, got shape {img.shape}")
    channels = img.shape[2]
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"expected floats in [0, 1], got {img.dtype}; divide 8-bit images by 255")
    if tile < 1 or overlap < 0:
        raise ValueError(f"tile must be >= 1 and overlap >= 0, got tile={tile}, overlap={overlap}")
    m = getattr(generator, "size_multiple", 1)            # 1: a module without a size constraint
    overlap = _round_up(overlap, m)
    tile = max(_round_up(tile, m), 2 * overlap, m)
    device = torch.device(device) if device is not None else _module_device(generator)
    generator.to(device)

    h, w = img.shape[:2]
    hp, wp = _round_up(h, m), _round_up(w, m)
    padded = np.pad(img.astype(np.float32, copy=False), ((0, hp - h), (0, wp - w), (0, 0)), mode="reflect")
    x = from_numpy_images(padded)                                                   # (C, hp, wp) in [-1, 1]

    out = torch.zeros(channels, hp, wp)
    weight = torch.zeros(1, hp, wp)
    rows, cols = _tile_starts(hp, tile, tile - overlap), _tile_starts(wp, tile, tile - overlap)
    with eval_mode(generator), torch.inference_mode():
        for i, top in enumerate(rows):
            th = min(tile, hp)
            wy = _ramp(th, overlap, fade_in=i > 0, fade_out=i < len(rows) - 1)
            for j, left in enumerate(cols):
                tw = min(tile, wp)
                wx = _ramp(tw, overlap, fade_in=j > 0, fade_out=j < len(cols) - 1)
                patch = x[:, top:top + th, left:left + tw][None].to(device)
                y = generator(patch)[0].float().cpu()
                wt = wy[:, None] * wx[None, :]
                out[:, top:top + th, left:left + tw] += y * wt
                weight[:, top:top + th, left:left + tw] += wt
    out = (out / weight)[:, :h, :w]
    if guard is not None:
        out = guard(x[None, :, :h, :w], out[None])[0]
    return to_numpy_images(out)
