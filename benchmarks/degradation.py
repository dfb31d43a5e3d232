"""The degradation section of ``python -m benchmarks``: the original's per-image loop vs the batched pipeline.

``degradation()`` times, taking turns, the original (`benchmarks.seed_reference.apply_degradation`, image by
image), the project's `Degradation` on the whole batch, each of its steps alone, and drawing the batch's
Gaussian noise alone (``torch.randn``): no pipeline with the same random numbers can be faster than that
draw, so ``randn_fraction`` says how close to that bound the pipeline is. It also times the pipeline with
``noise_reuse=NOISE_REUSE`` (`medgan_nb.degrade.NoiseBank`: the same distribution per image, each drawn
normal used by about that many images), which is not bound by that draw. ``profile_table()`` is the
torch.profiler view of the pipeline. ``python -m benchmarks.degradation [SIZE ...]`` prints both.
"""
from __future__ import annotations

import json
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from medgan_nb.config import Config
from medgan_nb.degrade import Degradation

from . import seed_reference as ref
from .common import measure

NOISE_REUSE = 8


def _step_inputs(cfg: Config, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The batch each step of the pipeline receives (the output of the steps before it)."""
    steps = Degradation(cfg).steps
    g = torch.Generator().manual_seed(0)
    return {name: Degradation(cfg, names=steps[:i])(x, generator=g).image for i, name in enumerate(steps)}


def degradation(size: int = 256, batch: int = 32, reps: int = 5) -> dict:
    """Images/s: the original's per-image loop vs the batched pipeline, the same four degradations (seed order),
    and ms per batch for each step alone and for drawing the noise alone."""
    torch.manual_seed(0)
    unit = torch.rand(batch, 3, size, size)                  # the original works on [0, 1] images,
    x = unit * 2 - 1                                         # the project on [-1, 1] (as its data sets give them)
    cfg = Config.from_preset("original")                     # noise, salt-and-pepper, blur, colour jitter
    pipeline, reuse = Degradation(cfg), Degradation(cfg.replace(noise_reuse=NOISE_REUSE))
    fns = {"seed": lambda: [ref.apply_degradation(img) for img in unit],
           "project": lambda: pipeline(x),
           "project_reuse": lambda: reuse(x),
           "randn": lambda: torch.randn(batch, 3, size, size)}
    for name, given in _step_inputs(cfg, x).items():
        fns[f"step_{name}"] = lambda step=Degradation(cfg, names=(name,)), given=given: step(given)
    t = measure(fns, reps)
    seed, project, floor, reused = t["seed"], t["project"], t["randn"], t["project_reuse"]
    rate = lambda s: batch / s["median_s"]  # noqa: E731
    return {
        "what": f"images/s at {size}², batch {batch}: noise, salt-and-pepper, blur, colour jitter",
        "seed_images_per_s": round(rate(seed), 1), "project_images_per_s": round(rate(project), 1),
        "ratio": round(seed["median_s"] / project["median_s"], 2), "target": ">= 10x", "seed": seed, "project": project,
        "randn_only_images_per_s": round(rate(floor), 1),
        "ratio_bound_by_randn": round(seed["median_s"] / floor["median_s"], 2),
        "randn_fraction": round(floor["median_s"] / project["median_s"], 3),
        "noise_reuse": NOISE_REUSE, "project_reuse_images_per_s": round(rate(reused), 1),
        "ratio_reuse": round(seed["median_s"] / reused["median_s"], 2), "project_reuse": reused,
        "steps_ms": {k[5:]: round(1000 * v["median_s"], 3) for k, v in t.items() if k.startswith("step_")},
        "torch_threads": torch.get_num_threads(),
        "note": "ratio_bound_by_randn: the ratio if everything but drawing the Gaussian noise were free; "
                "randn_fraction: ratio / ratio_bound_by_randn; *_reuse: the pipeline with noise_reuse (NoiseBank); "
                "steps_ms: each step alone on the batch it receives (fresh draws)",
    }


def profile_table(size: int = 256, batch: int = 32, reps: int = 3, noise_reuse: int = 1) -> str:
    """torch.profiler's top 15 operators (by self CPU time) of `reps` calls of the seed pipeline, after 2 warm-ups."""
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pipeline = Degradation(Config.from_preset("original", noise_reuse=noise_reuse))
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        pipeline(x, generator=g)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(reps):
            pipeline(x, generator=g)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def main(sizes: list[int]) -> None:
    for size in sizes:
        print(json.dumps(degradation(size=size), indent=1))
        for reuse in (1, NOISE_REUSE):
            print(f"profile at {size}², noise_reuse {reuse}:\n{profile_table(size, noise_reuse=reuse)}")


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [256, 64])
