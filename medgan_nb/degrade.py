"""Degradations that turn clean images into the model's inputs.

Each degradation is a plain function on a batch ``x`` of shape (N, 3, H, W) with
values in [-1, 1] (the models' range), on whatever device ``x`` lives on. Its
strength is given per image (a tensor of shape (N,)), so one call degrades a
whole batch with different settings per image: far faster than the original
notebook, which degraded one image at a time on the CPU inside the Dataset.
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
easier than it is on real frames; ``degradation_order="seed"`` keeps that order
(noise, salt-and-pepper, blur, colour jitter) to reproduce the original.

Reproducibility. Pass ``generator=`` for a seeded batch, or ``keys=`` (one
string or int per image, e.g. its file path) for per-image seeds: image
"a.png" is then degraded identically in every run, whatever batch it is in and
whether the model runs on the CPU or a GPU (the random numbers are drawn on the
CPU). Evaluation uses this mode.
"""
from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image

from .config import DEGRADATION_ORDERS, Config
from .data import from_unit, to_unit

Params = dict[str, torch.Tensor]

# ------------------------------------------------------------------ helpers
def _per_image(v: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """A scalar or (N,) tensor as an (N, 1, 1, 1) tensor on x's device."""
    v = torch.as_tensor(v, dtype=x.dtype, device=x.device)
    return v.reshape(-1, 1, 1, 1).expand(x.shape[0], 1, 1, 1)


def _draw(fn: Callable, shape: Sequence[int], generator: torch.Generator | None,
          like: torch.Tensor) -> torch.Tensor:
    """torch.rand/randn drawn on the generator's device, moved to like's device."""
    device = generator.device if generator is not None else like.device
    return fn(tuple(shape), generator=generator, device=device).to(like.device, like.dtype)


def _uniform(lo: float, hi: float, n: int, generator: torch.Generator | None,
             like: torch.Tensor) -> torch.Tensor:
    return lo + (hi - lo) * _draw(torch.rand, (n,), generator, like)


def _depthwise(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve image i with kernels[i] (N, kh, kw), all channels, reflect padding."""
    n, c, h, w = x.shape
    kh, kw = kernels.shape[-2:]
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0).unsqueeze(1)  # (N*C, 1, kh, kw)
    padded = F.pad(x.reshape(1, n * c, h, w), (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    return F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


# ------------------------------------------------------------ degradations
def gaussian_noise(x: torch.Tensor, std: torch.Tensor | float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Add zero-mean Gaussian noise of standard deviation `std` (in [0, 1] units): sensor noise."""
    noise = _draw(torch.randn, x.shape, generator, x)
    return noise.mul_(2 * _per_image(std, x)).add_(x).clamp_(-1, 1)     # in place: one pass less per op


def salt_and_pepper(x: torch.Tensor, amount: torch.Tensor | float, salt_ratio: float = 0.5,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Set a fraction `amount` of pixels to white (salt) or black (pepper): classical impulse noise
    (transmission bit errors, saturated or dead pixels after processing).

    A whole pixel (all three channels) is hit, at new random positions in every image. This is not a
    model of a dead photosite behind a Bayer filter, which gives a *coloured* speck at a *fixed* position,
    spread by demosaicing (notebook 01). The original picked flat tensor values with ``randperm``, so
    `amount` was not the fraction of pixels hit, and it sorted all N*3*H*W values to do so.
    """
    n, _, h, w = x.shape
    u = _draw(torch.rand, (n, 1, h, w), generator, x)          # one draw decides hit and colour
    amount = _per_image(amount, x)
    value = torch.where(u < amount * salt_ratio, 1.0, -1.0).to(x.dtype)
    return torch.where(u < amount, value, x)


def gaussian_kernels(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """One normalised 2-D Gaussian kernel (size, size) per sigma: (N, size, size)."""
    r = torch.arange(size, dtype=torch.float32, device=sigma.device) - size // 2
    sigma = sigma.float().clamp(min=1e-3)              # sigma 0 means no blur: a unit impulse, not 0/0 = NaN
    g = torch.exp(-(r[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    g = g / g.sum(dim=1, keepdim=True)
    return g[:, :, None] * g[:, None, :]


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor | float, kernel_size: int = 5) -> torch.Tensor:
    """Blur image i with a Gaussian of standard deviation sigma[i] pixels: defocus.

    torchvision's ``gaussian_blur`` takes one sigma per call; this builds one
    kernel per image and runs a single grouped convolution for the whole batch.
    """
    sigma = torch.as_tensor(sigma, device=x.device).float().reshape(-1).expand(x.shape[0])
    return _depthwise(x, gaussian_kernels(sigma, kernel_size))


def motion_blur(x: torch.Tensor, length: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Average along a line of `length` pixels at `angle` radians: the scope moving during exposure."""
    n = x.shape[0]
    size = int(2 * math.ceil(float(length.max()) / 2) + 1)
    r = torch.arange(size, dtype=torch.float32, device=x.device) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    along = xx[None] * torch.cos(angle)[:, None, None] + yy[None] * torch.sin(angle)[:, None, None]
    across = -xx[None] * torch.sin(angle)[:, None, None] + yy[None] * torch.cos(angle)[:, None, None]
    half = (length.float() / 2)[:, None, None]
    k = (1 - across.abs()).clamp(min=0) * ((half + 0.5 - along.abs()).clamp(0, 1))
    k = k / k.sum(dim=(1, 2), keepdim=True)
    return _depthwise(x, k.reshape(n, size, size))


def color_jitter(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor,
                 saturation: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """Scale brightness, contrast and saturation by per-image factors, then shift hue: light source, white balance.

    The same maths as torchvision's ``adjust_brightness/contrast/saturation/hue``
    (the tests compare them image by image), but one factor per image in a single
    vectorised pass: torchvision takes one factor per call, and its hue shift
    alone costs ~4 ms per 256² image. The order is fixed; torchvision's
    ``ColorJitter`` shuffles it per call, which would make the reported
    parameters ambiguous.
    """
    u = to_unit(x).mul_(_per_image(brightness, x)).clamp_(0, 1)      # in place: these passes are memory-bound
    c = _per_image(contrast, x)
    mean = TF.rgb_to_grayscale(u).mean(dim=(-3, -2, -1), keepdim=True)
    u.mul_(c).add_((1 - c) * mean).clamp_(0, 1)
    s = _per_image(saturation, x)
    gray = TF.rgb_to_grayscale(u)
    u.mul_(s).add_((1 - s) * gray).clamp_(0, 1)
    return from_unit(shift_hue(u, hue))


def shift_hue(u: torch.Tensor, shift: torch.Tensor | float) -> torch.Tensor:
    """Rotate the HSV hue of [0, 1] images by `shift` (fraction of a turn, per image); value and chroma stay."""
    r, g, b = u.unbind(1)
    v = torch.maximum(torch.maximum(r, g), b)          # elementwise: faster than a max over dim 1
    chroma = v - torch.minimum(torch.minimum(r, g), b)
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    rc, gc, bc = (v - r) / safe, (v - g) / safe, (v - b) / safe
    h = torch.where(v == r, bc - gc, torch.where(v == g, 2 + rc - bc, 4 + gc - rc))
    h = (h / 6 + _per_image(shift, u)[:, 0]) % 1.0                      # (N, H, W)
    k = (torch.tensor([5.0, 3.0, 1.0], device=u.device, dtype=u.dtype).view(1, 3, 1, 1) + 6 * h[:, None]) % 6
    return v[:, None] - chroma[:, None] * torch.minimum(k, 4 - k).clamp(0, 1)


def low_light(x: torch.Tensor, gain: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Under-exposure: intensities scaled by `gain` (< 1) after a gamma curve; the noise that follows then hurts more."""
    return from_unit(to_unit(x).clamp(0, 1) ** _per_image(gamma, x) * _per_image(gain, x))


def vignetting(x: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """Darken towards the corners by up to `strength`: light fall-off of the endoscope's optics."""
    h, w = x.shape[-2:]
    yy = torch.linspace(-1, 1, h, device=x.device)[:, None]
    xx = torch.linspace(-1, 1, w, device=x.device)[None, :]
    r2 = ((xx ** 2 + yy ** 2) / 2).to(x.dtype)
    return from_unit(to_unit(x) * (1 - _per_image(strength, x) * r2))


def specular_glare(x: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor,
                   active: torch.Tensor) -> torch.Tensor:
    """Add bright, saturated spots (centres (N, K, 2) in [0, 1], radii (N, K) as image fractions): reflections off wet mucosa.

    `active` (N, K) switches spots on/off, so a batch can hold a different number of spots per image.
    """
    h, w = x.shape[-2:]
    yy = torch.linspace(0, 1, h, device=x.device)[None, None, :, None]
    xx = torch.linspace(0, 1, w, device=x.device)[None, None, None, :]
    d2 = (yy - centres[..., 0, None, None]) ** 2 + (xx - centres[..., 1, None, None]) ** 2
    spots = torch.exp(-d2 / (2 * radii[..., None, None] ** 2)) * active[..., None, None]
    light = (3 * spots.sum(dim=1, keepdim=True)).clamp(0, 1).to(x.dtype)   # (N, 1, H, W)
    return from_unit(to_unit(x) * (1 - light) + light)


def jpeg_compression(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Encode and decode as JPEG at the given quality (1-100) per image: lossy storage/streaming.

    Uses Pillow's encoder on the CPU (torchvision's JPEG codec is deprecated), then returns to x's device.
    """
    u8 = (to_unit(x).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for img, q in zip(u8, quality.tolist()):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(q))
        out.append(torch.from_numpy(np.asarray(Image.open(buf).convert("RGB")).copy()))
    return from_unit(torch.stack(out).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255)


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
        if not cfg.sp_amount_range:             # the seed preset: a fixed amount, no random numbers drawn
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


def _apply(name: str, cfg: Config, x: torch.Tensor, p: Params, g: torch.Generator | None) -> torch.Tensor:
    if name == "noise":
        return gaussian_noise(x, p["noise_std"], g)
    if name == "salt_pepper":
        return salt_and_pepper(x, p["sp_amount"], cfg.sp_salt_ratio, g)
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


def seed_for(key: str | int, base_seed: int = 0) -> int:
    """A stable 63-bit seed for one image, from its key (file path or index) and a base seed."""
    digest = hashlib.sha256(f"{base_seed}:{key}".encode("utf-8", "surrogateescape")).digest()   # any file name
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class Degraded:
    """Degraded images (same shape, device and range as the input) and the parameters drawn per image."""
    image: torch.Tensor
    params: Params


class Degradation:
    """The configured chain of degradations. ``Degradation(cfg)(x)`` -> `Degraded`."""

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

    def __repr__(self) -> str:
        return f"Degradation({' -> '.join(self.steps) or 'identity'})"

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 keys: Sequence[str | int] | None = None) -> Degraded:
        """Degrade a batch (N, 3, H, W) in [-1, 1].

        generator: draws all random numbers (on its device) for a reproducible batch.
        keys: one key per image; each image then gets its own CPU generator seeded by
        ``seed_for(key, cfg.seed)``, independent of batch and device.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a batch of RGB images (N, 3, H, W), got shape {tuple(x.shape)}")
        if keys is None:
            return self._run(x, generator)
        if len(keys) != x.shape[0]:
            raise ValueError(f"got {len(keys)} keys for {x.shape[0]} images")
        parts = [self._run(x[i:i + 1], torch.Generator().manual_seed(seed_for(k, self.cfg.seed)))
                 for i, k in enumerate(keys)]
        params = {name: torch.cat([p.params[name] for p in parts]) for name in parts[0].params} if parts else {}
        return Degraded(torch.cat([p.image for p in parts]), params)

    def _run(self, x: torch.Tensor, g: torch.Generator | None) -> Degraded:
        if self.other_steps is None:
            return self._apply_steps(x, g, self.steps)
        physical = _draw(torch.rand, (x.shape[0],), g, x) < 0.5       # "mixed": half get the physical order
        a = self._apply_steps(x, g, self.other_steps) if physical.any() else None
        b = self._apply_steps(x, g, self.steps) if not physical.all() else None
        return _merge(physical, a or b, b or a)

    def _apply_steps(self, x: torch.Tensor, g: torch.Generator | None, steps: Sequence[str]) -> Degraded:
        params: Params = {}
        for name in steps:
            p = _sample(name, self.cfg, x, g)
            out = _apply(name, self.cfg, x, p, g)
            if self.cfg.degradation_p < 1:       # each step hits an image with this probability
                hit = _draw(torch.rand, (x.shape[0],), g, x) < self.cfg.degradation_p
                out = torch.where(hit.view(-1, 1, 1, 1), out, x)
                p = {**_without(name, p, hit), f"{name}_applied": hit.to(x.dtype)}
            x = out
            params.update(p)
        return Degraded(x, params)


def _merge(pick: torch.Tensor, a: Degraded, b: Degraded) -> Degraded:
    """Images (and parameters) from `a` where pick is true, else from `b`."""
    image = torch.where(pick.view(-1, 1, 1, 1), a.image, b.image)
    params = {k: torch.where(pick.view(-1, *[1] * (v.ndim - 1)), v, b.params[k]) for k, v in a.params.items()}
    return Degraded(image, {**params, "physical_order": pick.to(a.image.dtype)})


def _without(name: str, params: Params, hit: torch.Tensor) -> Params:
    """The parameters of a step as they act: noise std and s&p amount 0 where the step did not hit (so
    the classical filters get the true noise level)."""
    return {k: torch.where(hit, v, torch.zeros_like(v)) if k in ("noise_std", "sp_amount") else v
            for k, v in params.items()}
