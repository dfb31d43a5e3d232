"""ms per 256² frame of each shipped model and inference backend (2 threads, batch 1, median of 30),
its noise guard included (as `enhance` runs it: the frames here are noisy, so the model always runs).

    python scripts/time_models.py

Run it on a quiet machine: the development VM's speed varies 2-4x with load.
"""
from __future__ import annotations

import statistics
import time

import torch

from medgan_nb.inference.backends import _build
from medgan_nb.inference import auto_candidates
from medgan_nb.models import list_models, load_model


def time_backends(name: str, side: int = 256, reps: int = 30) -> dict[str, float]:
    generator = load_model(name)[0]
    guard = generator.guard or (lambda x, y: y)
    x = torch.rand(1, 3, side, side) * 2 - 1
    result = {}
    for backend in auto_candidates(generator):          # the installed backends this CPU runs well
        run = _build(generator, backend)
        with torch.inference_mode():
            for _ in range(5):
                guard(x, run(x))
            times = []
            for _ in range(reps):
                start = time.perf_counter()
                guard(x, run(x))
                times.append((time.perf_counter() - start) * 1000)
        result[backend] = round(statistics.median(times), 1)
    return result


if __name__ == "__main__":
    torch.set_num_threads(2)
    for name in list_models():
        print(name, time_backends(name))
