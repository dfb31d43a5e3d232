"""Procedural endoscopy-like colour frames (colonoscopy look, as in Kvasir-SEG / HyperKvasir).

Why: the restoration GAN is trained offline (no dataset download), and a model that only ever saw
fundus or histology patches does badly on endoscopy. These frames give it the content statistics of
colonoscopy instead: colour, lighting, folds, vessels, highlights and the black border.

A frame is a tiny, physically flavoured scene, rendered top to bottom in this file:

- smooth_noise: band-limited random fields (a small random grid blurred up to the image size with
  one matrix product per axis). Every texture below is made of these at a few scales.
- field_of_view: the endoscope's image circle, a circle or a chamfered rectangle (octagon, as in
  Kvasir frames); black outside.
- folds: haustral folds are rings around the lumen; seen down the tube they are arcs whose spacing
  shrinks towards the lumen (image radius ~ 1 / depth). A crest hides the wall just behind it, so
  the light steps down there and recovers towards the next fold: a lit rim, a soft shadow.
- polyp_dome: a raised, lobulated, elliptical dome, slightly different colour, lit from one side
  (bright flank, dark flank), with a shadow crescent at its base and highlights on top.
- lighting: the light sits next to the lens, so brightness falls off with depth (dark lumen, bright
  near wall), times Lambertian shading of the height field and vignetting towards the rim, then an
  auto exposure (as the endoscope's) and a soft shoulder where the red channel saturates.
- mucosa_albedo: orange-red / pink base colour, yellowish patches, mottling, a fine capillary mesh
  and larger meandering vessels. Blood absorbs green and blue much more than red, so vessels are
  darker red, not grey. Shadows turn red-brown: green and blue fall faster than red with less light.
- debris: in some frames, ragged yellow clumps (stool, bile) lying on the mucosa.
- specular_highlights: wet mucus mirrors the light as clusters of tiny near-white spots on crests,
  bumps, surfaces facing the lens and the polyp top, with a faint warm halo.
- A mild luma blur and a stronger chroma blur imitate the smoothness of JPEG video frames.

Only numpy and scipy.ndimage; all randomness from np.random.default_rng(seed), drawn in a fixed
order, so a frame is a pure function of (size, seed, polyp), and polyp=True / False give the same
scene with and without the polyp. Features are defined relative to the frame, so they scale with size.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter


@lru_cache(maxsize=64)
def _blur_matrix(size: int, cells: int) -> np.ndarray:
    """(size, cells + 4) matrix that blurs a random grid of `cells` per side up to `size` pixels."""
    x = (np.arange(size) + 0.5) * cells / size  # pixel centres in grid units
    j = np.arange(-2, cells + 2) + 0.5  # grid points, with a margin so the edges are not special
    sigma = max(0.7, 0.5 * cells / size)  # at least half a pixel: finer grids are averaged away, not aliased
    w = np.exp(-0.5 * ((x[:, None] - j[None, :]) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    w *= np.sqrt(2 * 0.7 * np.sqrt(np.pi))  # unit variance when sigma = 0.7
    return np.round(w * 4096) / 4096  # 12-bit weights: see smooth_noise


def smooth_noise(rng: np.random.Generator, size: int, cells: float) -> np.ndarray:
    """Smooth Gaussian random field (size, size), unit variance, with about `cells` blobs across.

    Weights and grid values are rounded to a few bits, so every product and partial sum is exact in
    float64: the result does not depend on how BLAS orders the sums (threads, CPU), only on the seed.
    """
    cells = max(2, int(round(cells)))
    u = _blur_matrix(size, cells)
    grid = np.round(np.clip(rng.standard_normal((cells + 4, cells + 4)), -8, 8) * 256) / 256
    return (u @ grid @ u.T).astype(np.float32)


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) * (1.0 / (hi - lo)), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def rgb(r: float, g: float, b: float) -> np.ndarray:
    """A colour as a (3, 1, 1) array: images are built channels-first (3, size, size), fast in numpy."""
    return np.array([r, g, b], np.float32)[:, None, None]


def field_of_view(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, px: float) -> np.ndarray:
    """Mask of the endoscope's image circle: a circle or a chamfered rectangle, with a 1-pixel soft edge."""
    cx, cy = (float(v) for v in rng.uniform(-0.03, 0.03, 2))
    xs, ys = np.abs(x - cx), np.abs(y - cy)
    if rng.random() < 0.35:
        dist = np.sqrt(xs * xs + ys * ys) - rng.uniform(0.98, 1.12)
    else:  # as in Kvasir frames: a wide box with cut corners
        half_w, half_h = rng.uniform(0.96, 1.12), rng.uniform(0.92, 1.0)
        chamfer = rng.uniform(1.35, 1.55)
        dist = np.maximum(np.maximum(xs - half_w, ys - half_h), (xs + ys - chamfer) * np.float32(0.7071))
    return np.clip(0.5 - dist * (1 / px), 0.0, 1.0)


def folds(rng: np.random.Generator, size: int, r: np.ndarray):
    """Haustral folds around the lumen (r: distance to it), evenly spaced in depth.

    Returns (height, occlusion, crest). A crest hides the wall just behind it, so past the crest the
    light drops in one step and recovers slowly towards the next fold: a lit rim and a soft shadow.
    """
    depth = 1.0 / np.maximum(r, 0.05)  # a tube seen along its axis: image radius ~ 1 / depth
    phase = depth * rng.uniform(0.25, 0.55) + rng.random() + 0.1 * smooth_noise(rng, size, 3)
    u = phase - np.floor(phase)  # 0..1 across one fold, increasing towards the lumen; crest at u = 1
    # folds are not full rings: arcs fade in and out; none deep in the lumen where they would crowd
    presence = smoothstep(smooth_noise(rng, size, 3), -0.8, 0.4) * smoothstep(r, 0.2, 0.55)
    presence *= rng.uniform(0.6, 1.0)
    crest = presence * smoothstep(u, 0.8, 0.97) * smoothstep(u, 1.0, 0.97)
    bulge = np.sin(np.float32(np.pi) * u)
    height = presence * bulge * bulge * (0.06 / np.maximum(depth * 0.5, 1.0))
    limb = smoothstep(u, 0.8, 1.0)  # the near face turns away from the light right at the crest
    behind = np.exp(-3.0 * u)  # the wall just behind the crest is hidden: a step down in light
    occlusion = gaussian_filter(presence * (0.3 * limb + behind), size / 400, truncate=2.0)  # anti-aliased
    return height, occlusion, crest


def polyp_dome(rng: np.random.Generator, size: int, x: np.ndarray, y: np.ndarray):
    """A raised, lobulated, elliptical dome: (height, footprint, shadow crescent at its base, shadow side)."""
    px, py = (float(v) for v in rng.uniform(-0.5, 0.5, 2))
    radius = rng.uniform(0.2, 0.45)
    aspect = rng.uniform(0.7, 1.0)
    angle = rng.uniform(0, np.pi)
    c, s = float(np.cos(angle)), float(np.sin(angle))
    scale = 1.0 / (radius * (1 + 0.08 * smooth_noise(rng, size, 4)))  # lobulated outline

    def rho(dx: float, dy: float) -> np.ndarray:
        a, b = x - px - dx, y - py - dy
        u, v = a * c + b * s, (b * c - a * s) * (1 / aspect)
        return np.sqrt(u * u + v * v) * scale

    r = rho(0.0, 0.0)
    t = np.clip(1 - r * r, 0, None)
    height = 0.45 * radius * t  # a paraboloid: steepest, so darkest, at the rim
    mask = smoothstep(r, 1.03, 0.7)
    side = rng.uniform(0.2, 0.8) * np.pi  # shadow falls downwards-ish: lit from above reads as raised
    sx, sy = float(np.cos(side)), float(np.sin(side))
    shift = rng.uniform(0.06, 0.14) * radius
    shadow = np.clip(smoothstep(rho(shift * sx, shift * sy), 1.06, 0.9) - mask, 0, 1)
    return height, mask, shadow, (sx, sy)


def lines(rng: np.random.Generator, size: int, cells: float, width: float, layers: int = 1) -> np.ndarray:
    """Thin wiggly lines, 0..1: zero contours of noise fields (two layers cross into an irregular mesh)."""
    n = np.abs(smooth_noise(rng, size, cells) + 0.25 * smooth_noise(rng, size, 2 * cells))
    for _ in range(layers - 1):
        n = np.minimum(n, np.abs(smooth_noise(rng, size, 1.3 * cells)))
    w = width * np.exp(0.3 * smooth_noise(rng, size, max(2, cells / 3)))  # thicker and thinner stretches
    w_eff = np.maximum(w, cells / size)  # about a pixel at least, so small frames are not aliased
    return (w / w_eff) * np.exp(-((n / w_eff) ** 2))


def mucosa_albedo(rng: np.random.Generator, size: int) -> np.ndarray:
    """Surface colour (3, size, size): orange-red / pink base, yellowish patches, mottling, vessels."""
    red = rng.uniform(0.85, 1.0)
    blue = rng.uniform(0.26, 0.4)  # blue / red: low is deep orange-red, high is pink
    green = blue + rng.uniform(15, 22) / 60 * (1 - blue)  # green / red for a hue of 15..22 degrees
    hue = smooth_noise(rng, size, 3)  # + towards yellow-orange, - towards pink
    yellow = smoothstep(smooth_noise(rng, size, 4), 1.2, 2.4) * rng.uniform(0, 0.2)
    mottle = 0.4 * smooth_noise(rng, size, 8) + 0.6 * smooth_noise(rng, size, 30)
    mesh = lines(rng, size, rng.uniform(35, 50), 0.12, layers=2)  # capillaries around the crypts
    mesh *= smoothstep(smooth_noise(rng, size, 3), -1.5, 1.0)  # seen in patches
    vessels = lines(rng, size, rng.uniform(6, 10), 0.05) + 0.7 * lines(rng, size, rng.uniform(14, 22), 0.09)
    vessels *= smoothstep(smooth_noise(rng, size, 3), -1.0, 1.0)  # visible in some parts only
    blood = np.clip(rng.uniform(0.1, 0.45) * mesh + rng.uniform(0.1, 0.4) * vessels, 0, 1)
    shade = 1 + rng.uniform(0.02, 0.05) * mottle
    return np.stack([
        red * shade * (1 - 0.1 * blood),
        red * green * shade * (1 + 0.04 * hue + 0.03 * mottle + yellow) * (1 - 0.45 * blood),
        red * blue * shade * (1 - 0.04 * hue + 0.05 * mottle) * (1 - 0.35 * blood),
    ])


def debris(rng: np.random.Generator, size: int) -> np.ndarray:
    """Coverage 0..1 of a few ragged yellow clumps (stool, bile); in about a third of the frames."""
    where = smooth_noise(rng, size, 3) - rng.uniform(1.8, 2.6) - 9.0 * (rng.random() > 0.3)
    ragged = 0.4 * smooth_noise(rng, size, 12) + 0.25 * smooth_noise(rng, size, 40)
    return smoothstep(where + ragged, 0.0, 0.4)


def specular_highlights(rng: np.random.Generator, size: int, sites: np.ndarray) -> np.ndarray:
    """Clusters of tiny spots (coverage 0..1) where `sites` (0..1: crests, bumps, dome top) is high."""
    clusters = smoothstep(smooth_noise(rng, size, 5) + 0.6 * smooth_noise(rng, size, 14), 0.3, 1.5)
    density = (clusters * (0.5 + 0.5 * sites) + 0.2 * sites**3) * rng.uniform(0.6, 1.0)
    spots = smooth_noise(rng, size, 110) + 0.4 * smooth_noise(rng, size, 40)
    threshold = 4.3 - 3.0 * density
    return np.clip((spots - threshold) * 2.5, 0, 1)


def screen_overlays(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """The video system's on-screen graphics, drawn over the frame (3, size, size) in place:
    the teal ScopeGuide box with its dark line drawing (bottom left) and white text (left side).

    A model that never saw them maps their colours to something else (the teal box to black),
    which costs several dB on every real Kvasir frame.
    """
    size = img.shape[-1]
    if rng.random() < 0.6:                               # ScopeGuide box
        w = int(size * rng.uniform(0.2, 0.3))
        h = int(w * rng.uniform(0.85, 1.05))
        top = size - h - int(size * rng.uniform(0.0, 0.04))
        img[:, top:top + h, :w] = rgb(rng.uniform(0.04, 0.1), rng.uniform(0.55, 0.66), rng.uniform(0.5, 0.6))
        t = np.linspace(0, 1, 4 * size)                  # the scope's shape: a wobbly curve
        cx = 0.5 + 0.25 * np.sin(2 * np.pi * (t * rng.uniform(0.6, 1.2) + rng.random()))
        cy = 0.15 + 0.75 * t
        xs = np.clip((cx * w).astype(int), 0, w - 1)
        ys = np.clip((top + cy * h).astype(int), top, top + h - 1)
        thick = max(1, size // 200)
        for dy in range(thick):
            img[:, np.clip(ys + dy, 0, size - 1), xs] = 0.08
    if rng.random() < 0.6:                               # text: lines of 3×5-pixel glyphs
        scale = max(1, size // 200)
        for line in range(rng.integers(2, 7)):
            y0 = int(size * (0.08 + 0.07 * line + rng.uniform(0, 0.02)))
            for k in range(rng.integers(3, 9)):
                glyph = rng.random((5, 3)) < 0.5
                x0 = int(size * 0.01) + k * 4 * scale
                block = np.kron(glyph, np.ones((scale, scale), bool))
                region = img[:, y0:y0 + block.shape[0], x0:x0 + block.shape[1]]
                region[:, block[:region.shape[1], :region.shape[2]]] = 0.92
    return img


def endoscopy_frame(size: int, seed: int, *, polyp: bool | None = None, overlays: bool | None = None) -> np.ndarray:
    """One frame, float32 array (size, size, 3) in [0, 1]; deterministic for (size, seed).

    polyp=None: random (about half the frames); True / False: the same scene with / without a polyp.
    overlays=None: on-screen graphics (box, text) in most frames; True / False: always / never.
    """
    rng = np.random.default_rng(seed)
    coin = rng.random() < 0.5  # drawn either way, so polyp=True / False show the same scene
    has_polyp = coin if polyp is None else bool(polyp)
    px = 2.0 / size
    coords = (np.arange(size, dtype=np.float32) + 0.5) * np.float32(px) - 1
    y, x = np.meshgrid(coords, coords, indexing="ij")
    fov = field_of_view(rng, x, y, px)

    # the lumen (far end of the tube): in view, near the rim, or off to the side when facing the wall
    r = _lumen_distance(rng, size, x, y)
    lx_dir, ly_dir = (float(v) for v in rng.uniform(-0.3, 0.3, 2))  # light beside the lens, slightly oblique

    # relief: folds + large undulations + micro-relief (+ polyp); the polyp is drawn either way
    height, occlusion, crest = folds(rng, size, r)
    micro = smooth_noise(rng, size, rng.uniform(90, 130))
    height += rng.uniform(0.1, 0.3) * smooth_noise(rng, size, 3) + rng.uniform(0.0, 0.0008) * micro
    dome, dome_mask, dome_shadow, (sx, sy) = polyp_dome(rng, size, x, y)
    fine_texture = smooth_noise(rng, size, 40)
    polyp_tint = rgb(1.0, rng.uniform(0.85, 1.05), rng.uniform(0.85, 1.1))
    if has_polyp:
        height += dome + 0.001 * dome_mask * fine_texture

    # shading: Lambert with the light at the lens, light falling off with depth, vignetting
    lambert, gx, gy = _lambert(height, px, lx_dir, ly_dir)
    falloff, light = _illumination(rng, size, x, y, r, fov)
    fold_shadow = rng.uniform(0.4, 0.7) * occlusion * (1 - dome_mask * has_polyp)  # the polyp stands in front
    light *= (0.2 + 0.8 * lambert * lambert) * (1 - fold_shadow) * (1 + 0.12 * crest)
    if has_polyp:  # the dome is closer to the lens and lit from one side: bright flank, dark flank, shadow
        closer = 0.3 * dome / (dome.max() + 1e-6)
        light *= (1 - 0.5 * dome_shadow) * (1 + closer + 0.5 * dome_mask * (gx * sx + gy * sy))
    light = np.clip(light, 1e-3, 1.25)  # over 1: red saturates first, as in real frames

    albedo = mucosa_albedo(rng, size)
    if has_polyp:
        albedo *= 1 + dome_mask * (polyp_tint - 1)
    img, dirt = _lit_surface(rng, size, albedo, light, fine_texture)
    img = _jpeg_smoothness(img, size)

    # wet highlights: on fold crests and bumps, where facing the lens, on the dome top and on debris
    l4 = (lambert * lambert) ** 2
    sites = crest + 0.4 * np.clip(micro - 1, 0, 1) + 0.6 * l4 * falloff + 0.3 * dirt
    if has_polyp:
        sites += dome_mask * l4
    img = _wet_highlights(rng, size, img, np.clip(sites, 0, 1))
    img = img * fov
    extras = np.random.default_rng([seed, 1])            # its own stream: the scene does not change
    if overlays or (overlays is None and extras.random() < 0.75):
        img = screen_overlays(extras, img)
    return np.ascontiguousarray(img.transpose(1, 2, 0), dtype=np.float32)


def _lumen_distance(rng: np.random.Generator, size: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(size, size) distance to the lumen, elliptical and wobbly; the lumen's centre may lie outside the view."""
    lx, ly = (float(v * rng.choice([0.5, 0.9, 1.6])) for v in rng.uniform(-1.0, 1.0, 2))
    squash = rng.uniform(0.6, 1.0)
    return np.sqrt((x - lx) ** 2 + ((y - ly) * squash) ** 2) * np.exp(0.25 * smooth_noise(rng, size, 3))


def _lambert(height: np.ndarray, px: float, lx_dir: float, ly_dir: float):
    """(lambert, gx, gy): Lambertian shading in [0, 1] of the height field lit from direction (lx_dir, ly_dir, 1),
    and the height's gradients (per unit of the frame's [-1, 1] coordinates; `px` is one pixel there)."""
    gy, gx = np.gradient(height, px)
    lambert = (1 - gx * lx_dir - gy * ly_dir) / np.sqrt((1 + gx * gx + gy * gy) * (1 + lx_dir**2 + ly_dir**2))
    return np.clip(lambert, 0, 1), gx, gy


def _illumination(rng: np.random.Generator, size: int, x: np.ndarray, y: np.ndarray, r: np.ndarray,
                  fov: np.ndarray):
    """(falloff, light): the fall-off with depth (a dark lumen, `r` its distance), and the light on the wall:
    that fall-off times vignetting and a slow unevenness, scaled by the endoscope's auto exposure over `fov`."""
    falloff = 1 - rng.uniform(0.6, 0.9) * np.exp(-((r * (1 / rng.uniform(0.25, 0.6))) ** 2))  # dark lumen
    rim = np.clip((x * x + y * y) * (1 / 1.44), 0, 1)
    vignette = 1 - rng.uniform(0.25, 0.55) * rim * np.sqrt(rim)
    light = falloff * vignette * (1 + 0.2 * smooth_noise(rng, size, 2))
    light *= rng.uniform(0.9, 1.2) * fov.sum() / (light * fov).sum()  # the endoscope's auto exposure
    return falloff, light


def _lit_surface(rng: np.random.Generator, size: int, albedo: np.ndarray, light: np.ndarray,
                 fine_texture: np.ndarray):
    """(img, dirt): the surface colour (3, size, size) under `light` with a camera's soft shoulder, and debris
    (coverage `dirt`, 0..1) lying on top of it."""
    img = albedo * np.exp(np.log(light) * rgb(1.0, 1.28, 1.47))  # shadows go red-brown
    bright = img > 0.8
    img[bright] = 0.8 + 0.2 * np.tanh((img[bright] - 0.8) * 5)  # soft shoulder, like a camera's
    dirt = debris(rng, size)  # lies on top, closer to the light: less darkened
    dirt_colour = rgb(0.85, rng.uniform(0.5, 0.6), rng.uniform(0.18, 0.26)) * (1 + 0.12 * fine_texture)
    img += dirt * (dirt_colour * np.sqrt(light) - img)
    return img, dirt


def _jpeg_smoothness(img: np.ndarray, size: int) -> np.ndarray:
    """JPEG-like smoothness of a video frame (3, size, size): a little luma blur, more chroma blur."""
    luma = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
    cr, cb = (gaussian_filter(img[c] - luma, size / 256, truncate=2.0) for c in (0, 2))
    luma = gaussian_filter(luma, 0.3 * size / 256, truncate=2.5)
    return np.stack([luma + cr, luma - (0.299 * cr + 0.114 * cb) / 0.587, luma + cb])


def _wet_highlights(rng: np.random.Generator, size: int, img: np.ndarray, sites: np.ndarray) -> np.ndarray:
    """`img` with specular highlights where `sites` (0..1) is high, clipped to [0, 1]: added last because they
    saturate the sensor, near-white cores with a faint warm halo."""
    spec = specular_highlights(rng, size, sites)
    halo = gaussian_filter(spec, max(0.7, size / 200), truncate=2.5)
    img = np.clip(img + 0.3 * halo * rgb(1.0, 0.8, 0.55), 0, 1)
    img += (1 - img) * np.clip(spec * 1.5, 0, 1)
    return img


def endoscopy_frames(n: int, size: int, seed: int = 0) -> np.ndarray:
    """n frames stacked (n, size, size, 3), frame i uses seed + i."""
    return np.stack([endoscopy_frame(size, seed + i) for i in range(n)])
