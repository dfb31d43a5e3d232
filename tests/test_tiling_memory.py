"""`enhance_array` on large images: tiles are streamed, so peak memory is the padded input and the output plus
one tile, whatever the image size; tiling changes nothing a pointwise generator can see; a progress bar counts
the tiles of a large image."""

import numpy as np
import pytest
import torch

from medgan_nb.models import runner
from medgan_nb.models.runner import enhance_array


class Halve(torch.nn.Module):
    """A trivial generator: x / 2 in [-1, 1] units, sizes a multiple of 8."""

    size_multiple = 8

    def forward(self, x):
        return x / 2


class RandomPointwise(torch.nn.Module):
    """A tiny random generator that maps each pixel on its own (a 1x1 convolution), so that tiling is exact."""

    size_multiple = 8

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return torch.tanh(2 * self.conv(x))


def resident_peak(fn) -> int:
    """Bytes by which the process's peak resident memory during fn() exceeds its resident memory before it.

    Counts every allocation (numpy's and torch's alike), read from /proc: writing 5 to clear_refs resets
    VmHWM (the peak) to the current VmRSS. Buffers of this size are mmapped and returned on free, so the
    reading is the live peak, not what the allocator keeps.
    """
    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak resident memory")
    before = status("VmRSS")
    fn()
    return status("VmHWM") - before


def test_peak_memory_is_the_input_and_output_plus_a_tile():
    h, w = 1500, 2000
    img = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
    enhance_array(Halve(), img[:300, :300], tile=256)                  # warm-up: code paths, thread pools
    out = []
    peak = resident_peak(lambda: out.append(enhance_array(Halve(), img, tile=256)))
    per_pixel = peak / (h * w)
    print(f"peak {peak / 2**20:.1f} MiB above the input: {per_pixel:.1f} bytes per pixel")
    assert per_pixel < 40, f"{per_pixel:.1f} bytes per pixel"         # padded input 12 + output 12 + a tile
    np.testing.assert_allclose(out[0], (img * 2 - 1) / 2 / 2 + 0.5, atol=1e-6)


@pytest.mark.parametrize("h, w, tile, overlap", [(300, 260, 64, 24), (130, 77, 48, 16), (97, 203, 40, 8)])
def test_tiled_equals_untiled_for_a_pointwise_generator(h, w, tile, overlap):
    g = RandomPointwise()
    img = np.random.default_rng(1).random((h, w, 3), dtype=np.float32)
    whole = enhance_array(g, img, tile=1024)
    tiled = enhance_array(g, img, tile=tile, overlap=overlap)
    assert tiled.shape == (h, w, 3) and tiled.dtype == np.float32 and tiled.flags.c_contiguous
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    assert np.abs(whole - img).max() > 0.1                            # the generator really changes the image


@pytest.fixture
def bars(monkeypatch):
    """The progress bars `enhance_array` makes (real tqdm bars, recorded; `shown`: enabled when made, as
    closing a bar disables it)."""
    made = []

    class Recorded(runner.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.shown = not self.disable
            made.append(self)

    monkeypatch.setattr(runner, "tqdm", Recorded)
    return made


def test_progress_bar_counts_the_tiles_of_a_large_image(bars, capsys):
    img = np.random.default_rng(2).random((600, 700, 3), dtype=np.float32)
    enhance_array(Halve(), img, tile=256)                    # 3 × 3 tiles of at most 256²
    assert [(b.total, b.n, b.shown) for b in bars] == [(9, 9, True)]
    assert "/9" in capsys.readouterr().err
    enhance_array(Halve(), img, tile=256, progress=False)   # quiet callers
    assert not bars[-1].shown and capsys.readouterr().err == ""


def test_no_progress_bar_for_a_single_tile(bars, capsys):
    img = np.random.default_rng(3).random((200, 240, 3), dtype=np.float32)
    enhance_array(Halve(), img, tile=256)
    assert not any(b.shown for b in bars) and capsys.readouterr().err == ""
    enhance_array(Halve(), img, tile=256, progress=True)
    assert [(b.total, b.n, b.shown) for b in bars[-1:]] == [(1, 1, True)]
