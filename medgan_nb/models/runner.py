"""Running a generator: a batch of equal-sized images (`restore`), or one image of any size with padding and
tiles (`enhance_array`).

`restore(generator, degraded, device, batch_size, guard)`: a CPU batch (N, C, H, W) in [-1, 1] through the
generator in eval mode, in chunks of `batch_size`, without gradients, each chunk's output passed through `guard`
(a `medgan_nb.models.guard.Guard`, or None) -> float32 on the CPU. Training validates with it and evaluation
scores with it (`medgan_nb.evaluation.methods.run_gan`); the generator's train/eval mode is restored after.

`enhance_array(generator, img, tile, overlap, device, guard, progress)`: an image (H, W, C) float in [0, 1], C
the generator's channels (3, or 1 for the CT, MRI and X-ray models) -> float32 (H, W, C) in [0, 1]. The image
is reflect-padded to a multiple of ``generator.size_multiple``; images larger than `tile` go through the
generator in overlapping tiles blended with cosine ramps whose weights sum to 1, so no seams appear. The
tiles are streamed one at a time into the output, so the call holds the padded input and the output
(float32, 24 bytes per RGB pixel) plus one tile's work, whatever the image size; a progress bar counts the
tiles of large images. A guard (`medgan_nb.models.guard.Guard`) is applied to the whole image after the
tiles are joined, so that every tile gets the same strength. Runs under ``torch.inference_mode`` in eval
mode and restores the generator's mode afterwards. Raises ValueError for a wrong shape or channel count,
integer pixels, or a tile below 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from .build import eval_mode
from .guard import Guard


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


def _tile_layout(size: int, tile: int, overlap: int, m: int) -> tuple[int, list[int]]:
    """(side, starts) of the tiles along one axis of `size` pixels (a multiple of m): as few tiles as sides of at
    most `tile` allow, each overlapping the next by at least `overlap`, all of one side, the smallest multiple of
    m that covers. Evenly sized tiles do little more work than the image itself (a 1280×720 frame in tiles of at
    most 512, overlap 32: 2 × 3 tiles of 384 × 448, 1.12× its pixels, where tiles of 512 would cover 1.71×)."""
    if size <= tile:
        return size, [0]
    n = -(-(size - overlap) // (tile - overlap))
    side = max(_round_up(-(-(size + (n - 1) * overlap) // n), m), 2 * overlap)   # room for both ramps
    return side, _tile_starts(size, side, side - overlap)


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


def _pad_reflect(img: np.ndarray, hp: int, wp: int) -> np.ndarray:
    """`img` (H, W, C) in [0, 1] -> float32 (hp, wp, C) in [-1, 1], reflect-padded at the bottom and right
    (as ``np.pad(mode="reflect")``) and clamped; written into one new array, the only full-size copy of the
    input that `enhance_array` makes (casting and padding separately would make two)."""
    h, w = img.shape[:2]
    padded = np.empty((hp, wp, img.shape[2]), np.float32)
    padded[:h, :w] = img
    rows = np.pad(np.arange(h), (0, hp - h), mode="reflect")        # the source row of each padded row
    cols = np.pad(np.arange(w), (0, wp - w), mode="reflect")
    padded[h:, :w] = padded[rows[h:], :w]
    padded[:, w:] = padded[:, cols[w:]]
    np.clip(padded, 0, 1, out=padded)
    padded *= 2
    padded -= 1
    return padded


def _tile_weights(size: int, tile: int, overlap: int, starts: list[int]) -> list[np.ndarray]:
    """Float32 blending weights along one axis, one array of length ``min(tile, size)`` per tile start,
    divided by the sum of all tiles' ramps at each position so that they sum to 1 everywhere.

    The tiles form a grid, so the 2-D weight of a tile is the product of its row and column weights and
    those products sum to 1 at every pixel as well: no full-size weight map is needed.
    """
    length = min(tile, size)
    ramps = [_ramp(length, overlap, fade_in=i > 0, fade_out=i < len(starts) - 1).numpy() for i in range(len(starts))]
    total = np.zeros(size, np.float32)
    for start, ramp in zip(starts, ramps):
        total[start:start + length] += ramp
    return [ramp / total[start:start + length] for start, ramp in zip(starts, ramps)]


PROGRESS_MIN_TILES = 5      # by default, images needing at least this many tiles show a progress bar


def enhance_array(generator: torch.nn.Module, img: np.ndarray, *, tile: int = 512, overlap: int = 32,
                  device: str | torch.device | None = None, guard: Guard | None = None,
                  progress: bool | None = None) -> np.ndarray:
    """Restore one image (H, W, C) float in [0, 1] of any size, C the generator's channels (3, or 1 for the CT,
    MRI and X-ray models); returns float32 (H, W, C) in [0, 1].

    guard: a `medgan_nb.models.guard.Guard` (shipped models carry one as ``generator.guard``), applied to the
    whole image after the tiles are put together, so that every tile gets the same strength.

    progress: show a progress bar over the tiles (tqdm); None (the default) shows one only for images that
    need `PROGRESS_MIN_TILES` tiles or more. Quiet callers pass False.

    The image is reflect-padded to a multiple of ``generator.size_multiple``. Images
    larger than `tile` go through the generator in tiles of at most `tile` pixels, as
    few as cover it, of equal size and overlapping by at least `overlap` (all rounded up
    to multiples of it); the tiles are blended with cosine ramps in the overlaps. Runs in eval mode
    under ``torch.inference_mode`` on `device` (default: the generator's),
    and restores the generator's train/eval mode afterwards.

    Memory: the tiles are streamed one at a time, so besides one tile's work the call holds the padded input
    and the output, both float32: 8 bytes per pixel and channel (24 for RGB). A guard's statistics add
    transient full-size copies while it measures.
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
    padded = _pad_reflect(img, hp, wp)                                              # (hp, wp, C) in [-1, 1]
    (th, rows), (tw, cols) = _tile_layout(hp, tile, overlap, m), _tile_layout(wp, tile, overlap, m)
    row_weights, col_weights = _tile_weights(hp, th, overlap, rows), _tile_weights(wp, tw, overlap, cols)
    n_tiles = len(rows) * len(cols)
    show = progress if progress is not None else n_tiles >= PROGRESS_MIN_TILES

    out = np.zeros((h, w, channels), np.float32)                       # the blended output, in [-1, 1]
    with eval_mode(generator), torch.inference_mode(), \
            tqdm(total=n_tiles, desc="tiles", unit="tile", disable=not show, leave=False) as bar:
        for top, wy in zip(rows, row_weights):
            for left, wx in zip(cols, col_weights):
                patch = torch.from_numpy(padded[top:top + th, left:left + tw]).permute(2, 0, 1)
                y = generator(patch.contiguous()[None].to(device))[0].float().cpu().permute(1, 2, 0).numpy()
                bh, bw = min(th, h - top), min(tw, w - left)                   # the part inside the image
                out[top:top + bh, left:left + bw] += y[:bh, :bw] * (wy[:bh, None, None] * wx[None, :bw, None])
                bar.update()
    if guard is not None:                                                # blended in place: no third full copy
        x, y = (torch.from_numpy(a).permute(2, 0, 1)[None] for a in (padded[:h, :w], out))
        guard.blend(x, y, guard.strength(x, y), out=y)
    np.clip(out, -1, 1, out=out)
    out += 1
    out /= 2
    return out
