"""Tests for the procedural endoscopy frames (medgan_nb/synthetic.py)."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medgan_nb.data import endoscopy_frame, endoscopy_frames

REAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "endoscopy-sample"


def centre(img: np.ndarray, frac: float = 0.5) -> np.ndarray:
    """Central crop (inside the field of view for every frame shape)."""
    s = img.shape[0]
    a, b = int(s * (1 - frac) / 2), int(s * (1 + frac) / 2)
    return img[a:b, a:b]


@pytest.mark.parametrize("size", [32, 64, 256])
def test_shape_dtype_range(size):
    img = endoscopy_frame(size, seed=1)
    assert img.shape == (size, size, 3)
    assert img.dtype == np.float32
    assert np.isfinite(img).all()
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert img.std() > 0.05  # not a flat image


def test_deterministic_whatever_the_call_order():
    a = endoscopy_frame(64, seed=7)
    endoscopy_frame(128, seed=3)  # other calls in between must not matter
    endoscopy_frame(64, seed=8, polyp=True)
    b = endoscopy_frame(64, seed=7)
    assert np.array_equal(a, b)
    assert not np.allclose(a, endoscopy_frame(64, seed=8), atol=0.02)


def test_bit_identical_whatever_the_blas_threads():
    """The noise fields are exact in float64, so BLAS threading cannot change a single bit."""
    code = (
        "import hashlib; from medgan_nb.data.synthetic import endoscopy_frame; "
        "print(hashlib.sha256(endoscopy_frame(96, 11).tobytes()).hexdigest())"
    )
    here = hashlib.sha256(endoscopy_frame(96, 11).tobytes()).hexdigest()
    for threads in ("1", "3"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], env=env,
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == here, f"{threads} BLAS threads gave a different frame"


def test_frames_stack_uses_consecutive_seeds():
    frames = endoscopy_frames(3, 32, seed=5)
    assert frames.shape == (3, 32, 32, 3) and frames.dtype == np.float32
    for i in range(3):
        assert np.array_equal(frames[i], endoscopy_frame(32, seed=5 + i))


@pytest.mark.parametrize("size", [32, 64, 256])
def test_black_border_outside_field_of_view(size):
    for seed in range(6):
        img = endoscopy_frame(size, seed, overlays=False)
        k = max(2, size // 32)
        corners = [img[:k, :k], img[:k, -k:], img[-k:, :k], img[-k:, -k:]]
        assert max(c.max() for c in corners) < 0.02, f"seed {seed}: corner not black"
        assert centre(img).mean() > 0.1, f"seed {seed}: centre too dark"


def test_mucosa_colour_red_over_green_over_blue():
    for seed in range(12):
        r, g, b = centre(endoscopy_frame(64, seed, overlays=False)).reshape(-1, 3).mean(0)
        assert r > g > b, f"seed {seed}: mean RGB {r:.2f} {g:.2f} {b:.2f}"


def test_specular_highlights_in_most_frames():
    has_white = [(endoscopy_frame(128, seed).min(-1) > 0.95).any() for seed in range(20)]
    assert sum(has_white) >= 14, f"only {sum(has_white)} / 20 frames have near-white highlights"


def test_polyp_flag_adds_a_local_blob():
    for seed in range(4):
        with_polyp = endoscopy_frame(128, seed, polyp=True)
        without = endoscopy_frame(128, seed, polyp=False)
        changed = np.abs(with_polyp - without).max(-1) > 0.02
        assert changed.mean() > 0.005, f"seed {seed}: polyp=True changed nothing"
        assert changed.mean() < 0.5, f"seed {seed}: polyp=True changed the whole scene"
        default = endoscopy_frame(128, seed)
        assert np.array_equal(default, with_polyp) or np.array_equal(default, without)
    coins = [np.array_equal(endoscopy_frame(32, s), endoscopy_frame(32, s, polyp=True)) for s in range(40)]
    assert 8 <= sum(coins) <= 32  # polyp=None: about half the frames


def test_colour_statistics_close_to_real_frames():
    files = sorted(REAL_DIR.glob("*.jpg")) if REAL_DIR.is_dir() else []
    if not files:
        pytest.skip(f"no real frames in {REAL_DIR}")
    from PIL import Image

    def stats(pixels):  # G/R, B/R and median brightness of the non-black pixels
        pixels = pixels[pixels.mean(-1) > 0.05]
        r, g, b = pixels.mean(0)
        return np.array([g / r, b / r, np.median(pixels.mean(-1))])

    # 720x576 frames: right of the text overlay and above the green box it is all mucosa
    crops = [np.asarray(Image.open(f).convert("RGB"))[30:540, 260:650] / 255.0 for f in files]
    real = np.mean([stats(crop.reshape(-1, 3)) for crop in crops], 0)
    fake = np.mean([stats(centre(endoscopy_frame(128, seed, overlays=False), 0.7).reshape(-1, 3)) for seed in range(16)], 0)
    assert np.abs(fake - real).max() < 0.1, f"generated {fake.round(3)} vs real {real.round(3)}"


def test_screen_overlays_draw_the_teal_box_and_text_without_changing_the_scene():
    plain = endoscopy_frame(128, 3, overlays=False)
    boxed = [endoscopy_frame(128, s, overlays=True) for s in range(8)]
    teal = [((f[..., 1] > 0.5) & (f[..., 0] < 0.15) & (f[..., 2] > 0.45)).mean() for f in boxed]
    assert sum(t > 0.03 for t in teal) >= 3                      # a box of 20-30 % width in most frames
    changed = np.abs(endoscopy_frame(128, 3, overlays=True) - plain).max(-1) > 0
    assert changed[:, 64:].mean() < 0.02                         # the right half (the scene) is untouched
    with_default = [endoscopy_frame(64, s) for s in range(20)]
    assert any(np.array_equal(f, endoscopy_frame(64, s, overlays=False)) for s, f in enumerate(with_default))
