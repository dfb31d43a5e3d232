"""Peak memory and time of `enhance_array` on one large image: ``python -m benchmarks.tile_memory [H W]``.

One random RGB image (default 3000 × 4000) through the shipped default model at tile 512 on the CPU; prints the
wall and CPU seconds and the peak resident memory above the loaded input and model (Linux: /proc), in MiB and in
bytes per pixel, with the load average. The tiles are streamed, so the bytes per pixel should not grow with the
image (`medgan_nb.models.runner`).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from medgan_nb.models.runner import enhance_array
from medgan_nb.models.zoo import load_model


def _status(key: str) -> int:
    """A /proc/self/status value in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))


def main() -> None:
    h, w = (int(v) for v in sys.argv[1:3]) if len(sys.argv) >= 3 else (3000, 4000)
    generator, _, card = load_model()
    img = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
    enhance_array(generator, img[:64, :64])                      # warm-up: kernels, thread pools
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                             # VmHWM back to the current RSS
    base = _status("VmRSS")
    t, c = time.perf_counter(), time.process_time()
    enhance_array(generator, img, tile=512, progress=False)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    peak = _status("VmHWM") - base
    print(f"{card['name']}: {w}x{h}, tile 512: wall {wall:.1f} s, CPU {cpu:.1f} s, peak above input and model "
          f"{peak / 2**20:.0f} MiB = {peak / (h * w):.1f} bytes per pixel; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
