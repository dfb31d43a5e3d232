"""What share of a training step goes to data (loading, cropping, degrading) and what share to the model.

``python -m benchmarks.data_share [PRESET ...]``: for each preset (default demo and lite), the first epoch
warms the caches (decoded frames are kept in memory by ``cache_images``), then `steps` batches are timed
as the training loop runs them: the loader's next batch, the degradation on the batch, one `Trainer`.
The issue's goal is data ≤ 20 % of the step.
"""
from __future__ import annotations

import itertools
import statistics
import sys
import tempfile
import time

import torch
from torch.utils.data import DataLoader

from medgan_nb.config import Config
from medgan_nb.data import default_dataset
from medgan_nb.degrade import Degradation
from medgan_nb.training import make_trainer


def data_share(preset: str, steps: int = 20, noise_reuse: int | None = None) -> dict:
    """Median seconds per step spent on data and on the model, and the data's share, for one preset
    (noise_reuse: instead of the preset's)."""
    cfg = Config.from_preset(preset, output_dir=tempfile.mkdtemp(prefix="medgan-bench-"))
    cfg = cfg if noise_reuse is None else cfg.replace(noise_reuse=noise_reuse)
    dataset = default_dataset("train", cfg)
    loader = DataLoader(dataset, cfg.batch_size, shuffle=True, drop_last=True, num_workers=cfg.num_workers)
    for _ in loader:                                   # one epoch: decodes (and caches) every frame
        pass
    degrade, step = Degradation(cfg), make_trainer(cfg)
    g = torch.Generator().manual_seed(0)
    data_s, model_s = [], []
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    for _ in range(steps + 2):                        # the first two steps warm up the allocator
        t0 = time.perf_counter()
        clean = next(batches)[0]
        degraded = degrade(clean, generator=g).image
        t1 = time.perf_counter()
        step(clean, degraded)
        data_s.append(t1 - t0)
        model_s.append(time.perf_counter() - t1)
    data, model = statistics.median(data_s[2:]), statistics.median(model_s[2:])
    return {"preset": preset, "noise_reuse": cfg.noise_reuse, "batch": cfg.batch_size, "image_size": cfg.image_size,
            "data_s": round(data, 4), "model_s": round(model, 4), "data_share": round(data / (data + model), 3),
            "num_workers": cfg.num_workers, "torch_threads": torch.get_num_threads(), "target": "data <= 20 %"}


if __name__ == "__main__":
    for name in sys.argv[1:] or ["demo", "lite"]:
        print(data_share(name))
