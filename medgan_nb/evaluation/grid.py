"""Where a model helps and where it harms: a grid of fixed noise and blur strengths.

`evaluate_grid(checkpoint, out_dir)` scores the model, the degraded input and the classics on every cell of a
noise σ × blur σ grid (the same images and per-image seeds in every cell) and draws model − input (where the
model does harm) and model − best classic (where a classic beats it) in dB as ``grid.png``; `grid_table` is the
same as numbers.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..config.config import Config
from ..models.guard import Guard
from .conditions import (
    GRID_BASELINES,
    GRID_BLUR_KERNEL,
    GRID_BLUR_SIGMAS,
    GRID_NOISE_STDS,
    NO_HARM_DB,
    _cell,
    build_degraders,
    grid_conditions,
)
from .core import CSV_COLUMNS, _evaluation_set, _metadata, _set_up, _write_csv
from .plots import plot_grid
from .scoring import aggregate, score


# --------------------------------------------------------------------- grid
def evaluate_grid(checkpoint: str | Path, out_dir: str | Path, *, cfg: Config | None = None,
                  data_dir: str | Path | None = None, split: str = "test",
                  baselines: Sequence[str] = GRID_BASELINES, noise_stds: Sequence[float] = GRID_NOISE_STDS,
                  blur_sigmas: Sequence[float] = GRID_BLUR_SIGMAS, max_images: int | None = None,
                  device: str = "auto", quiet: bool = False, model: str | None = None, guard: bool | Guard = True,
                  gan_weight: float | None = None, half: str = "all") -> dict:
    """Score the model, identity and classical baselines on every cell of a noise σ × blur σ grid.

    Each cell degrades the evaluation images (see `evaluate`) with fixed strengths, physical order, 9×9 blur
    kernel, per-image seeds (`grid_conditions`). Writes grid.json (the returned dict), per_image.csv and
    grid.png: model − identity per cell ("does no harm" where >= `NO_HARM_DB`) and model − the best classic.
    baselines: the classics to compare with (identity is always scored); "cbm3d" costs seconds per image.
    Cost: cells × images × (model + classics). gan_weight, half: as for `evaluate`.
    """
    if checkpoint is None and model is None:
        raise ValueError("evaluate_grid compares a model with its input and the classics: give a checkpoint "
                         "or a shipped model")
    cells = grid_conditions(noise_stds, blur_sigmas)
    out_dir, model, runnable, skipped = _set_up(checkpoint, out_dir, baselines, device, model, guard, gan_weight)
    cfg, dataset, source = _evaluation_set(model, cfg, data_dir, split, max_images, half)
    methods = ["gan", "identity", *(b for b in runnable if b != "identity")]
    scores = score(dataset, build_degraders(cfg, cells), methods, model.generator, model.device, cfg.batch_size,
                   cfg.num_workers, quiet)
    results = aggregate(scores.rows, scores.seconds)
    grid = {"metadata": _metadata(model, cfg, dataset, source, data_dir, split, methods, skipped,
                                  scores.inputs_sha256),
            "cells": f"physical order, {GRID_BLUR_KERNEL}×{GRID_BLUR_KERNEL} blur kernel, fixed strengths, every "
                     "degradation applied; a strength of 0 leaves that degradation out",
            **grid_table(results, noise_stds, blur_sigmas), "results": results}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "grid.json").write_text(json.dumps(grid, indent=2) + "\n")
    _write_csv(out_dir / "per_image.csv", CSV_COLUMNS, scores.rows)
    plot_grid(grid, out_dir / "grid.png")
    if not quiet:
        print(f"grid written to {out_dir}: " + ("the model does no harm in any cell" if grid["does_no_harm"] else
                                                f"the model harms {grid['harmful_cells']} of {len(cells)} cells"))
    return grid


def grid_table(results: dict, noise_stds: Sequence[float], blur_sigmas: Sequence[float]) -> dict:
    """The grid's numbers, rows = noise σ, columns = blur σ: model − identity and model − best classic (dB),
    the best classic's name per cell, and whether the model does no harm (>= `NO_HARM_DB`) everywhere."""
    gain, versus, best = [], [], []
    for n in noise_stds:
        cells = [results[_cell(n, b)] for b in blur_sigmas]
        gain.append([c["gan"]["psnr_mean"] - c["identity"]["psnr_mean"] for c in cells])
        rivals = [{m: s["psnr_mean"] for m, s in c.items() if m not in ("gan", "identity")} for c in cells]
        best.append([max(r, key=r.get) if r else None for r in rivals])
        versus.append([c["gan"]["psnr_mean"] - r[m] if m else None for c, r, m in zip(cells, rivals, best[-1])])
    flat = [(g, n, b) for row, n in zip(gain, noise_stds) for g, b in zip(row, blur_sigmas)]
    worst = min(flat)
    return {"noise_stds": list(noise_stds), "blur_sigmas": list(blur_sigmas), "no_harm_db": NO_HARM_DB,
            "model_minus_identity": gain, "best_classic": best, "model_minus_best_classic": versus,
            "does_no_harm": worst[0] >= NO_HARM_DB, "harmful_cells": sum(g < NO_HARM_DB for g, _, _ in flat),
            "worst_cell": {"noise_std": worst[1], "blur_sigma": worst[2], "model_minus_identity": worst[0]}}
