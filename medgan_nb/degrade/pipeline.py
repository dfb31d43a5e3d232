"""Degradations that turn clean images into the model's inputs.

Each degradation is a plain function on a batch ``x`` of shape (N, 3, H, W) with
values in [-1, 1] (the models' range), on whatever device ``x`` lives on. Its
strength is given per image (a tensor of shape (N,)), so one call degrades a
whole batch with different settings per image, where the original notebook
degraded one image at a time on the CPU inside the Dataset.
Intensities are in units of the [0, 1] image range, as in the original.

`Degradation` chains them. It samples the per-image parameters from the
`Config`, applies the steps in a fixed order and returns the parameters with
the images so that notebooks can show what was done.

Order. A camera sees the scene through optics before the sensor adds noise:
glare (scene) -> blur / motion blur / vignetting (optics) -> colour and exposure
(light source) -> Gaussian noise (sensor) -> salt-and-pepper (dead pixels,
transmission) -> JPEG (storage). That is ``degradation_order="physical"``.
The original applied noise first and blurred afterwards, which smooths the
noise into soft blobs that look nothing like sensor noise and makes denoising
easier than it is on real frames; ``degradation_order="original"`` keeps that order
(noise, salt-and-pepper, blur, colour jitter) to reproduce the original.

Reproducibility. Pass ``generator=`` for a seeded batch, or ``keys=`` (one
string or int per image, e.g. its file path) for per-image seeds: image
"a.png" is then degraded identically in every run, whatever batch it is in and
whether the model runs on the CPU or a GPU (the random numbers are drawn on the
CPU). Evaluation uses this mode.

Speed. Drawing the random numbers is a large part of the work on a CPU (PyTorch's generator is serial;
docs/performance.md has the profile). With ``noise_reuse=k`` in the config, a
batch degraded with ``generator=`` (training) takes its Gaussian noise and its salt-and-pepper from a
`NoiseBank` in which each drawn normal serves about k images, at new positions. Each image still gets
independent standard normals; only images of different batches share values. ``keys=`` always draws
fresh numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..config.config import DEGRADATION_ORDERS, Config
from ..utils.seeding import seed_for
from .ops import (
    _add_noise,
    _draw,
    _per_image,
    _speckle,
    _uniform,
    color_jitter,
    gaussian_blur,
    jpeg_compression,
    low_light,
    motion_blur,
    specular_glare,
    vignetting,
)

Params = dict[str, torch.Tensor]

# ------------------------------------------------------------------ helpers
_CHUNK_BYTES = 2 ** 23          # 8 MiB of images per group: its passes mostly hit the caches (fastest on 2 cores)


# ---------------------------------------------------------------- pipeline
def _scaled(size: int, pair: tuple[float, float]) -> tuple[float, float]:
    """Pixel lengths given for 256² images, scaled to this image size."""
    return pair[0] * size / 256, pair[1] * size / 256


# For each degradation: sample its per-image parameters, and apply them.
def _sample(name: str, cfg: Config, x: torch.Tensor, g: torch.Generator | None) -> Params:
    n, size = x.shape[0], x.shape[-1]
    u = lambda lo, hi: _uniform(lo, hi, n, g, x)  # noqa: E731
    if name == "noise":
        return {"noise_std": u(cfg.noise_std - cfg.noise_std_range, cfg.noise_std + cfg.noise_std_range).clamp(min=0)}
    if name == "salt_pepper":
        if not cfg.sp_amount_range:             # the original preset: a fixed amount, no random numbers drawn
            return {"sp_amount": torch.full((n,), cfg.sp_amount, device=x.device)}
        return {"sp_amount": u(cfg.sp_amount - cfg.sp_amount_range, cfg.sp_amount + cfg.sp_amount_range)}
    if name == "blur":
        return {"blur_sigma": u(*cfg.blur_sigma)}
    if name == "color_jitter":
        return {"brightness": u(1 - cfg.brightness, 1 + cfg.brightness),
                "contrast": u(1 - cfg.contrast, 1 + cfg.contrast),
                "saturation": u(1 - cfg.saturation, 1 + cfg.saturation),
                "hue": u(-cfg.hue, cfg.hue)}
    if name == "motion_blur":
        return {"motion_length": u(*_scaled(size, cfg.motion_blur_length)), "motion_angle": u(0, math.pi)}
    if name == "low_light":
        return {"light_gain": u(*cfg.low_light_gain), "light_gamma": u(*cfg.low_light_gamma)}
    if name == "vignetting":
        return {"vignetting": u(*cfg.vignetting)}
    if name == "jpeg":
        return {"jpeg_quality": u(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1).floor().clamp(1, 100)}
    if name == "glare":
        k = max(cfg.glare_spots[1], 1)
        count = u(cfg.glare_spots[0], cfg.glare_spots[1] + 1).floor()
        return {"glare_count": count,
                "glare_centres": 0.15 + 0.7 * _draw(torch.rand, (n, k, 2), g, x),
                "glare_radii": 0.005 + 0.02 * _draw(torch.rand, (n, k), g, x)}
    raise ValueError(f"unknown degradation {name!r}")


class NoiseBank:
    """Standard normals drawn once and lent to many images: ``take`` returns a window of the bank at a random
    offset, after replacing 1/reuse as many values as it lends with new draws, so each drawn value serves
    about `reuse` images at different positions, and draws cost 1/reuse of fresh noise.

    The bank is a ring of twice the largest request (float32, on the generator's device): windows wrap around
    its end, so every value is equally likely to be lent (windows kept inside the ends would lend the middle
    values to every batch). The ring's first half is kept a second time after its end, so that every window
    is a view, never a copy. Within a window the values are independent N(0, 1), as fresh draws; windows of
    later batches overlap earlier ones. The bank starts again from new draws when it is given another
    generator (`medgan_nb.training.loop` seeds one per epoch: a resumed epoch gets the same noise).
    """

    def __init__(self, reuse: int):
        self.reuse = reuse
        self.values: torch.Tensor | None = None     # the ring, then its first half again
        self.size = 0                               # the ring's length
        self.generator: torch.Generator | None = None
        self.ring = 0                               # where the next new draws go: they go round the ring

    def take(self, shape: Sequence[int], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
        """A window of math.prod(shape) normals as a tensor of that shape on like's device and dtype: a view of
        the bank (do not write to it; the next take may replace some of its values)."""
        n = math.prod(shape)
        device = generator.device if generator is not None else like.device
        if self.values is None or generator is not self.generator or self.size < 2 * n or self.values.device != device:
            self.size, self.generator, self.ring = 2 * n, generator, 0
            self.values = torch.empty(3 * n, device=device)
            self._draw(0, 2 * n)
        else:
            self._refresh(-(-n // self.reuse))
        start = int(torch.randint(self.size, (1,), generator=generator, device=device))
        return self.values[start:start + n].view(tuple(shape)).to(like.device, like.dtype)

    def _refresh(self, count: int) -> None:
        """New draws for the next `count` values of the ring."""
        while count > 0:
            part = min(count, self.size - self.ring)
            self._draw(self.ring, self.ring + part)
            self.ring, count = (self.ring + part) % self.size, count - part

    def _draw(self, a: int, b: int) -> None:
        """New draws for ring values a to b, and for their copies after the ring's end."""
        self.values[a:b].normal_(generator=self.generator)
        copies = self.values[self.size:]
        if a < copies.numel():
            copies[a:b].copy_(self.values[a:min(b, copies.numel())])


def _field(name: str, x: torch.Tensor, g: torch.Generator | None, bank: NoiseBank | None) -> torch.Tensor | None:
    """The random numbers a step draws per pixel, for the whole batch at once: without a bank, the same numbers
    as always (uniforms for salt-and-pepper); from a bank, normals for both."""
    shape = {"noise": x.shape, "salt_pepper": (x.shape[0], 1, *x.shape[2:])}.get(name)
    if shape is None:
        return None
    if bank is not None:
        return bank.take(shape, g, x)
    return _draw(torch.randn if name == "noise" else torch.rand, shape, g, x)


def _apply(name: str, cfg: Config, x: torch.Tensor, p: Params, field: torch.Tensor | None,
           normals: bool = False) -> torch.Tensor:
    if name == "noise":
        return _add_noise(x, field, p["noise_std"])
    if name == "salt_pepper":
        return _speckle(x, field, p["sp_amount"], cfg.sp_salt_ratio, normals)
    if name == "blur":
        return gaussian_blur(x, p["blur_sigma"], cfg.blur_kernel)
    if name == "color_jitter":
        return color_jitter(x, p["brightness"], p["contrast"], p["saturation"], p["hue"])
    if name == "motion_blur":
        return motion_blur(x, p["motion_length"], p["motion_angle"])
    if name == "low_light":
        return low_light(x, p["light_gain"], p["light_gamma"])
    if name == "vignetting":
        return vignetting(x, p["vignetting"])
    if name == "jpeg":
        return jpeg_compression(x, p["jpeg_quality"])
    if name == "glare":
        k = p["glare_centres"].shape[1]
        active = (torch.arange(k, device=x.device)[None, :] < p["glare_count"][:, None]).to(x.dtype)
        return specular_glare(x, p["glare_centres"], p["glare_radii"], active)
    raise ValueError(f"unknown degradation {name!r}")


@dataclass
class _Step:
    """One step's random draws for a set of images: parameters, per-pixel field (or None), hit mask (or None);
    normals: the field came from a NoiseBank (standard normals, also for salt-and-pepper)."""
    name: str
    params: Params
    field: torch.Tensor | None
    hit: torch.Tensor | None
    normals: bool = False

    def rows(self, index: torch.Tensor | slice) -> _Step:
        """The draws of images `index` only."""
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return _Step(self.name, {k: v[index] for k, v in self.params.items()}, pick(self.field), pick(self.hit),
                     self.normals)

    def apply(self, cfg: Config, x: torch.Tensor) -> torch.Tensor:
        if self.hit is None or self.hit.all():
            return _apply(self.name, cfg, x, self.params, self.field, self.normals)
        if self.field is not None:          # a cheap step: run on all, keep x where it did not hit
            return _apply(self.name, cfg, x, self.params, self.field, self.normals).lerp_(x, _per_image(~self.hit, x))
        # a step without a per-pixel field costs many passes (a blur: two per tap): run it on the images it hits
        hit = self.hit.nonzero().squeeze(1)
        if not len(hit):
            return x
        part = self.rows(hit)
        return x.index_copy(0, hit, _apply(self.name, cfg, x.index_select(0, hit), part.params, None))


_Job = tuple[torch.Tensor | None, list[_Step]]    # the images (None: all, in order) and their steps' draws


def _cat(steps: Sequence[_Step]) -> _Step:
    """The draws of several sets of images, one after the other."""
    cat = lambda ts: None if ts[0] is None else torch.cat(ts)  # noqa: E731
    s = steps[0]
    return _Step(s.name, {k: torch.cat([t.params[k] for t in steps]) for k in s.params},
                 cat([t.field for t in steps]), cat([t.hit for t in steps]), s.normals)


@dataclass
class Degraded:
    """Degraded images (same shape, device and range as the input) and the parameters drawn per image."""
    image: torch.Tensor
    params: Params


class Degradation:
    """The configured chain of degradations. ``Degradation(cfg)(x)`` -> `Degraded`.

    All random numbers of a batch are drawn first, in the order the steps have always drawn them (with
    ``keys``, image by image); then the steps run on one group of images after another, each group
    through all of them while it is in the cache (on a GPU: the whole batch at once). In the "mixed"
    order each image runs only the order it was dealt.
    """

    def __init__(self, cfg: Config, names: Sequence[str] | None = None):
        self.cfg = cfg
        enabled = tuple(cfg.degradations if names is None else names)
        order = DEGRADATION_ORDERS[cfg.degradation_order]
        missing = [d for d in enabled if d not in order]
        if missing:
            raise ValueError(f"degradation(s) {missing} have no place in the {cfg.degradation_order!r} order "
                             f"{order}; use degradation_order='physical'")
        self.steps = tuple(d for d in order if d in enabled)
        physical = DEGRADATION_ORDERS["physical"]
        self.other_steps = tuple(d for d in physical if d in enabled) if cfg.degradation_order == "mixed" else None
        self.bank = NoiseBank(cfg.noise_reuse) if cfg.noise_reuse > 1 else None     # for generator= calls

    def __repr__(self) -> str:
        return f"Degradation({' -> '.join(self.steps) or 'identity'})"

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 keys: Sequence[str | int] | None = None) -> Degraded:
        """Degrade a batch (N, 3, H, W) in [-1, 1].

        generator: draws all random numbers (on its device) for a reproducible batch; with cfg.noise_reuse > 1,
        for a reproducible sequence of batches (the bank starts from this generator's draws).
        keys: one key per image; each image then gets its own CPU generator seeded by
        ``seed_for(key, cfg.seed)``, independent of batch and device.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a batch of RGB images (N, 3, H, W), got shape {tuple(x.shape)}")
        if keys is None:
            jobs, params = self._draws(x, generator, self.bank)
        else:
            if len(keys) != x.shape[0]:
                raise ValueError(f"got {len(keys)} keys for {x.shape[0]} images")
            jobs, params = self._keyed_draws(x, keys)
        if not any(steps for _, steps in jobs):
            return Degraded(x, params)
        out = _spare(jobs, x)
        for index, steps in jobs:
            self._run(x, index, steps, out)
        return Degraded(out, params)

    def _draws(self, x: torch.Tensor, g: torch.Generator | None,
               bank: NoiseBank | None = None) -> tuple[list[_Job], Params]:
        """The batch's random draws, as jobs, and the parameters to report."""
        if self.other_steps is None:
            steps, params = self._draw_steps(x, g, self.steps, bank)
            return [(None, steps)], params
        # "mixed": about half of the images get the physical order; each order draws for its own images only
        physical = _draw(torch.rand, (x.shape[0],), g, x) < 0.5
        everyone = torch.arange(x.shape[0], device=x.device)
        jobs, parts = [], []
        for pick, names in ((physical, self.other_steps), (~physical, self.steps)):
            if pick.any():
                shape_only = x.new_empty((int(pick.sum()), *x.shape[1:]))     # its values are never read
                steps, params = self._draw_steps(shape_only, g, names, bank)
                jobs.append((everyone[pick], steps))
                parts.append((pick, params))
        return jobs, _merge(physical, parts, x.dtype)

    def _draw_steps(self, x: torch.Tensor, g: torch.Generator | None, names: Sequence[str],
                    bank: NoiseBank | None) -> tuple[list[_Step], Params]:
        """Each step's draws in the order the steps have always made them: parameters, per-pixel field, hits."""
        steps, params = [], {}
        for name in names:
            p = _sample(name, self.cfg, x, g)
            field = _field(name, x, g, bank)
            hit = None
            if self.cfg.degradation_p < 1:       # each step hits an image with this probability
                hit = _draw(torch.rand, (x.shape[0],), g, x) < self.cfg.degradation_p
                params.update(_without(name, p, hit), **{f"{name}_applied": hit.to(x.dtype)})
            else:
                params.update(p)
            steps.append(_Step(name, p, field, hit, bank is not None))
        return steps, params

    def _keyed_draws(self, x: torch.Tensor, keys: Sequence[str | int]) -> tuple[list[_Job], Params]:
        """Each image's draws from its own generator, gathered into one job per order of steps."""
        parts = [self._draws(x[i:i + 1], torch.Generator().manual_seed(seed_for(k, self.cfg.seed)))
                 for i, k in enumerate(keys)]
        params = {name: torch.cat([p[name] for _, p in parts]) for name in parts[0][1]} if parts else {}
        groups: dict[tuple[str, ...], list[tuple[int, list[_Step]]]] = {}
        for i, (jobs, _) in enumerate(parts):
            for index, steps in jobs:
                if index is None or len(index):
                    groups.setdefault(tuple(s.name for s in steps), []).append((i, steps))
        jobs = [(torch.tensor([i for i, _ in members], device=x.device),
                 [_cat(column) for column in zip(*(steps for _, steps in members))]) for members in groups.values()]
        return jobs, params

    def _run(self, x: torch.Tensor, index: torch.Tensor | None, steps: list[_Step], out: torch.Tensor) -> None:
        """out[index] = the steps applied to x[index] (index None: all images), a group of images at a time."""
        group = _group_size(x)
        for i in range(0, x.shape[0] if index is None else len(index), group):
            rows = slice(i, i + group)
            y = x[rows] if index is None else x.index_select(0, index[rows])
            for step in steps:
                y = step.rows(rows).apply(self.cfg, y)
            if index is None:
                out[rows] = y
            else:
                out.index_copy_(0, index[rows], y)


def _group_size(x: torch.Tensor) -> int:
    """Images per group: equal groups of at most about _CHUNK_BYTES on the CPU, so that the many passes over
    a group hit the cache; all images on a GPU, where each op is a kernel launch."""
    n = x.shape[0]
    if x.device.type != "cpu" or n == 0:
        return max(1, n)
    groups = math.ceil(x.numel() * x.element_size() / _CHUNK_BYTES)
    return math.ceil(n / groups)


def _spare(jobs: list[_Job], x: torch.Tensor) -> torch.Tensor:
    """A buffer for the result: the noise drawn for all images in order, if any (each group of images has used
    its noise before its result is written there), else a new one. A new 25 MB buffer costs more in page faults
    than a pass over it. Noise lent by a NoiseBank is never spare: later batches take it again."""
    for index, steps in jobs:
        for s in steps:
            if index is None and s.field is not None and not s.normals and s.field.shape == x.shape:
                return s.field
    return torch.empty_like(x)


def _merge(physical: torch.Tensor, parts: list[tuple[torch.Tensor, Params]], dtype: torch.dtype) -> Params:
    """The parameters of the whole batch from those of each order's images (pick, params), and the order."""
    params = {}
    for key, first in parts[0][1].items():
        params[key] = first.new_zeros((len(physical), *first.shape[1:]))
        for pick, p in parts:
            params[key][pick] = p[key]
    return {**params, "physical_order": physical.to(dtype)}


def _without(name: str, params: Params, hit: torch.Tensor) -> Params:
    """The parameters of a step as they act: noise std and s&p amount 0 where the step did not hit (so
    the classical filters get the true noise level)."""
    return {k: torch.where(hit, v, torch.zeros_like(v)) if k in ("noise_std", "sp_amount") else v
            for k, v in params.items()}
