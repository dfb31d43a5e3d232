"""``python -m benchmarks race``: choose a generator by measurement, at equal CPU time.

Each candidate trains with the same recipe (`medgan_nb.config.RESTORE_RECIPE`: L1 on random 128² crops of
real frames, wide degradations, EMA) for the same CPU time in its own process with one thread, so two run
side by side on two cores without sharing one. Every `eval_every` CPU seconds its EMA restores the same
degraded validation frames (256², blur σ U(0.5, 1.5) + noise 0.075, per-image seeds) and the PSNR is
logged: the result is a curve of PSNR against CPU minutes per candidate (race.json, race.png).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from medgan_nb.config import RESTORE_RECIPE, Config
from medgan_nb.data import dataset_keys, default_dataset
from medgan_nb.degrade import Degradation
from medgan_nb.evaluation import GOAL_CONDITIONS
from medgan_nb.metrics import psnr
from medgan_nb.training import make_trainer, restore

from .common import machine, now

CANDIDATES = {   # name -> generator settings; the rest of the recipe is shared
    "nafnet-s4-w16": dict(generator="nafnet", residual=True, base_channels=16, depth=3, stem=4, blocks=1),
    "unet-d5-w16": dict(generator="unet", residual=True, base_channels=16, max_channels=128, depth=5),
    "nafnet-s2-w24": dict(generator="nafnet", residual=True, base_channels=24, depth=3, stem=2, blocks=1),
    "unet-d5-w32": dict(generator="unet", residual=True, base_channels=32, max_channels=256, depth=5),
    "nafnet-s4-w32": dict(generator="nafnet", residual=True, base_channels=32, depth=3, stem=4, blocks=2),
}
VAL_CONDITION = GOAL_CONDITIONS["blur_noise"]      # blur σ U(0.5, 1.5) + noise 0.075, the first goal condition


def candidate_config(name: str, data_dir: str | None, output_dir: str) -> Config:
    return Config.from_preset("original", **{**RESTORE_RECIPE, **CANDIDATES[name], "data_dir": data_dir,
                                    "output_dir": output_dir, "device": "cpu"})


def run_one(name: str, cpu_seconds: float, eval_every: float, data_dir: str | None, out: Path,
            val_images: int = 24, max_steps: int = 0) -> dict:
    """Train one candidate for `cpu_seconds` of this process's CPU time (or `max_steps` steps first, if not 0:
    the tests' fixed amount of work); its PSNR curve, a point every `eval_every` CPU seconds and at the end."""
    cfg = candidate_config(name, data_dir, str(out))
    val = default_dataset("val", cfg.replace(image_size=256, cache_images=False, max_images=val_images))
    clean = torch.stack([val[i][0] for i in range(len(val))])
    degraded = Degradation(cfg.replace(**VAL_CONDITION))(clean, keys=dataset_keys(val)).image
    torch.manual_seed(cfg.seed)
    step = make_trainer(cfg)
    train_set, degrade = default_dataset("train", cfg), Degradation(cfg)
    loader = torch.utils.data.DataLoader(train_set, cfg.batch_size, shuffle=True, drop_last=True)
    noise = torch.Generator().manual_seed(cfg.seed)
    curve = [(0.0, 0, float(psnr(degraded, clean).mean()))]
    start, steps, next_eval, done = time.process_time(), 0, eval_every, False
    while not done:
        for batch, _ in loader:
            step(batch, degrade(batch, generator=noise).image)
            steps += 1
            used = time.process_time() - start
            done = used >= cpu_seconds or steps == max_steps
            if used >= next_eval or done:
                score = float(psnr(restore(step.shipped, degraded, torch.device("cpu"), 4), clean).mean())
                curve.append((round(used / 60, 2), steps, round(score, 3)))
                print(f"{name}: {used / 60:.1f} CPU min, {steps} steps, val PSNR {score:.2f} dB", flush=True)
                next_eval += eval_every
                start += time.process_time() - start - used       # evaluation time does not count
            if done:
                break
    params = sum(p.numel() for p in step.G.parameters())
    return {"name": name, "settings": CANDIDATES[name], "parameters": params, "val_images": len(val),
            "psnr_input": curve[0][2], "curve": curve, "final_psnr": curve[-1][2], "steps": steps}


def race(names: list[str], cpu_minutes: float, data_dir: str | None, out: Path, parallel: int = 2) -> dict:
    """Run the candidates `parallel` at a time, each in its own process; collect, plot and write race.json."""
    out.mkdir(parents=True, exist_ok=True)
    results, pending = {}, list(names)
    while pending:
        batch, pending = pending[:parallel], pending[parallel:]
        procs = {n: subprocess.Popen([sys.executable, "-m", "benchmarks", "race", "--one", n, "--cpu-minutes",
                                      str(cpu_minutes), "--out", str(out.parent)] + (["--data", data_dir] if data_dir else []))
                 for n in batch}
        for n, p in procs.items():
            if p.wait() != 0:
                raise RuntimeError(f"candidate {n} failed (exit {p.returncode})")
            results[n] = json.loads((out / f"{n}.json").read_text())
    return summarize(results, cpu_minutes, data_dir, out)


def summarize(results: dict, cpu_minutes: float, data_dir: str | None, out: Path) -> dict:
    """race.json and race.png from the candidates' results."""
    summary = {"created": now(), "machine": machine(torch.device("cpu")), "cpu_minutes_each": cpu_minutes, "threads_each": 1,
               "data": data_dir or "shipped sample", "recipe": "medgan_nb.config.RESTORE_RECIPE",
               "validation": VAL_CONDITION, "candidates": results}
    (out / "race.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(summary, out / "race.png")
    return summary


def plot(summary: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in summary["candidates"].items():
        minutes, _, scores = zip(*r["curve"])
        ax.plot(minutes, scores, marker="o", label=f"{name} ({r['parameters'] / 1e6:.2f} M)")
    ax.axhline(next(iter(summary["candidates"].values()))["psnr_input"], color="grey", ls="--", label="input")
    ax.set_xlabel("training CPU minutes (1 thread)")
    ax.set_ylabel("val PSNR (dB), blur + noise 0.075")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
