"""The degradation functions themselves, one per effect, on whole batches with one strength per image.

Each function takes images ``x`` (N, 3, H, W) in [-1, 1] on any device and a strength per image (a number
or an (N,) tensor; intensities in units of the [0, 1] range) and returns a new batch of the same shape,
range and device: `gaussian_noise`, `salt_and_pepper`, `gaussian_blur`, `motion_blur`, `color_jitter`
(with `shift_hue`), `low_light`, `vignetting`, `specular_glare`, `jpeg_compression`. The random ones take
a ``generator=``. `gaussian_taps` and `gaussian_kernels` give the blur kernels, (N, k) and (N, k, k).

`medgan_nb.degrade.pipeline` samples the strengths and applies these in order; `ct`, `mri` and `xray`
share the private helpers at the end (per-image generators from ``keys=``, checked per-image values,
1-channel batch checks that raise ValueError).
"""

from __future__ import annotations

import io
import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..utils.images import from_unit, to_unit
from ..utils.seeding import seed_for

_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


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


def _less(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a < b as 0/1 in a's dtype: 0/1 arithmetic (lerp, addcmul) is vectorised on the CPU, torch.where and
    bool-to-float casts are not (several times slower)."""
    return torch.lt(a, b, out=a.new_empty(torch.broadcast_shapes(a.shape, b.shape)))


def _equal(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a == b as 0/1 in a's dtype (see `_less`)."""
    return torch.eq(a, b, out=a.new_empty(torch.broadcast_shapes(a.shape, b.shape)))


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
    return _add_noise(x, noise, std, out=noise)                         # into the noise: no new buffer


def _add_noise(x: torch.Tensor, noise: torch.Tensor, std: torch.Tensor | float,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """x + 2 * std * noise, clipped (into `out`, which may be `noise`)."""
    return torch.addcmul(x, noise, 2 * _per_image(std, x), out=out).clamp_(-1, 1)


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
    return _speckle(x, _draw(torch.rand, (n, 1, h, w), generator, x), amount, salt_ratio)


def _speckle(x: torch.Tensor, u: torch.Tensor, amount: torch.Tensor | float, salt_ratio: float,
             normals: bool = False) -> torch.Tensor:
    """Salt and pepper from uniforms u (N, 1, H, W): one draw decides hit (u < amount) and colour.

    normals: u holds standard normals z instead; z < ndtri(a) exactly when the uniform ndtr(z) < a, so the
    thresholds move to z's scale instead of every value to [0, 1] (ndtr costs as much as a fresh draw)."""
    amount = _per_image(amount, x)
    hit, salt = amount, amount * salt_ratio
    if normals:
        hit, salt = torch.special.ndtri(hit), torch.special.ndtri(salt)
    value = _less(u, salt).mul_(2).sub_(1)                         # salt +1, pepper -1
    return torch.lerp(x, value, _less(u, hit))                     # weight 0 or 1: exactly x or value


def gaussian_taps(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """One normalised 1-D Gaussian kernel of `size` taps per sigma: (N, size)."""
    r = torch.arange(size, dtype=torch.float32, device=sigma.device) - size // 2
    sigma = sigma.float().clamp(min=1e-3)              # sigma 0 means no blur: a unit impulse, not 0/0 = NaN
    g = torch.exp(-(r[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    return g / g.sum(dim=1, keepdim=True)


def gaussian_kernels(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """One normalised 2-D Gaussian kernel (size, size) per sigma: (N, size, size), the outer product of its taps."""
    g = gaussian_taps(sigma, size)
    return g[:, :, None] * g[:, None, :]


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor | float, kernel_size: int = 5) -> torch.Tensor:
    """Blur image i with a Gaussian of standard deviation sigma[i] pixels (reflect padding): defocus.

    torchvision's ``gaussian_blur`` takes one sigma per call; this takes one per image. A Gaussian is
    separable: a pass along the rows, then one along the columns, 2k multiply-adds per pixel instead of k².
    The row pass runs on the padding rows too: they are reflected rows, so its result is the padded input
    of the column pass, and one padding serves both.
    """
    sigma = torch.as_tensor(sigma, device=x.device).float().reshape(-1).expand(x.shape[0])
    taps = gaussian_taps(sigma, kernel_size).to(x.dtype)
    p = kernel_size // 2
    rows = _taps_along(F.pad(x, (p, p, p, p), mode="reflect"), taps, dim=3)
    return _taps_along(rows, taps, dim=2)


def _taps_along(padded: torch.Tensor, taps: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum of the k shifted copies of `padded` along dim, weighted by taps[i] (N, k) for image i: a 1-D convolution."""
    k = taps.shape[1]
    length = padded.shape[dim] - k + 1
    weights = taps.t().reshape(k, -1, 1, 1, 1)
    out = padded.narrow(dim, 0, length) * weights[0]
    for j in range(1, k):
        out.addcmul_(padded.narrow(dim, j, length), weights[j])
    return out


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
    vectorised pass: torchvision takes one factor per call, which would mean one
    call per image. The order is fixed; torchvision's
    ``ColorJitter`` shuffles it per call, which would make the reported
    parameters ambiguous. Each step is affine in [0, 1], so it runs on the
    [-1, 1] images as they are, without converting there and back.
    """
    # one per-image factor per op: addcmul with two broadcast factors misses the vectorised loop on the CPU
    b, c, s = (_per_image(v, x) for v in (brightness, contrast, saturation))
    y = (x * b).add_(b - 1).clamp_(-1, 1)                                # (x + 1) / 2 * b, in [-1, 1] units
    mean = _gray(y.mean(dim=(2, 3), keepdim=True), 1 - c)               # mean grey = grey of the channel means
    y.mul_(c).add_(mean).clamp_(-1, 1)
    gray = _gray(y, 1 - s)
    y.mul_(s).add_(gray).clamp_(-1, 1)
    return shift_hue(y, hue)


def _gray(y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """scale * torchvision's grey level (0.2989 R + 0.587 G + 0.114 B) of [-1, 1] images y, in [-1, 1] units.

    The weights sum to 0.9999, not 1, hence the offset: 2 * grey((y + 1) / 2) - 1 = weights · y + 0.9999 - 1.
    """
    out = y[:, :1] * (_GRAY[0] * scale)
    out.addcmul_(y[:, 1:2], _GRAY[1] * scale).addcmul_(y[:, 2:3], _GRAY[2] * scale)
    return out.add_((sum(_GRAY) - 1) * scale)


def shift_hue(u: torch.Tensor, shift: torch.Tensor | float) -> torch.Tensor:
    """Rotate the HSV hue of images by `shift` (fraction of a turn, per image); value and chroma stay.

    Works on [0, 1] and [-1, 1] images alike: scaling and offsetting all channels leaves the hue as it is.
    Each output channel is v - chroma * (a clipped triangle wave of the hue, centred on the channel's own hue).
    """
    r, g, b = u.unbind(1)
    v = torch.maximum(torch.maximum(r, g), b)          # elementwise: faster than a max over dim 1
    chroma = v - torch.minimum(torch.minimum(r, g), b)
    turn = _hue(r, g, b, v, chroma, _per_image(shift, u)[:, 0])
    turn.sub_(turn.floor())                                              # mod 1
    # per channel: 0 at the hues where it is the maximum, 1 where it is the minimum, linear in between
    wave = (turn[:, None] - _channels(u, 1 / 2, 1 / 3, 2 / 3)).abs_()
    wave.mul_(_channels(u, -6, 6, 6)).add_(_channels(u, 2, -1, -1)).clamp_(0, 1)
    return torch.addcmul(v[:, None], chroma[:, None], wave, value=-1, out=wave)


def _channels(like: torch.Tensor, r: float, g: float, b: float) -> torch.Tensor:
    """Three per-channel constants as a (1, 3, 1, 1) tensor."""
    return torch.tensor([r, g, b], device=like.device, dtype=like.dtype).view(1, 3, 1, 1)


def _hue(r: torch.Tensor, g: torch.Tensor, b: torch.Tensor, v: torch.Tensor, chroma: torch.Tensor,
         shift: torch.Tensor) -> torch.Tensor:
    """HSV hue in turns, in [-1/6, 5/6), plus `shift`; by which channel is the maximum (at a tie either: the hue
    is continuous there)."""
    h = (r - g).add_(chroma, alpha=4)                  # 6 * hue * chroma where blue is the maximum
    green = (b - r).add_(chroma, alpha=2).sub_(h)
    h.addcmul_(_equal(g, v), green)
    red = (g - b).sub_(h)
    h.addcmul_(_equal(r, v), red)
    return torch.addcdiv(shift, h, chroma.clamp(min=torch.finfo(h.dtype).tiny), value=1 / 6)   # grey (chroma 0): hue 0


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
Keys = Sequence[str | int] | None


# ------------------------------------------------------------------ helpers
def _generators(n: int, generator: torch.Generator | None, keys: Keys, seed: int) -> list[torch.Generator | None]:
    """One generator per image: CPU generators seeded by key if `keys` is given, else `generator` for all."""
    if keys is None:
        return [generator] * n
    if len(keys) != n:
        raise ValueError(f"got {len(keys)} keys for {n} images")
    return [torch.Generator().manual_seed(seed_for(k, seed)) for k in keys]


def _values(v: float | Sequence[float] | torch.Tensor, n: int, name: str, low: float = 0.0,
            strict: bool = False) -> torch.Tensor:
    """A scalar or per-image value as a float64 (N,) tensor, checked to be >= low (> low if strict)."""
    t = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"{name}: got {t.numel()} values for {n} images")
    bad = (t <= low) if strict else (t < low)
    if bool(bad.any()) or bool(t.isnan().any()):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {t.tolist()}")
    return t.clone()


def _check_batch(x: torch.Tensor, square: bool = False) -> None:
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"expected a batch of 1-channel images (N, 1, H, W), got shape {tuple(x.shape)}")
    if square and x.shape[-1] != x.shape[-2]:
        raise ValueError(f"CT needs square images (radon/iradon), got {tuple(x.shape[-2:])}; crop or pad first")
