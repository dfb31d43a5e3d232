"""Evaluate a trained generator on held-out images, next to classical baselines, and write an honest report.

`evaluate(checkpoint, out_dir)` reads top to bottom in five phases:

1. set-up: refuse a non-empty ``out_dir``, load the generator of a checkpoint
   (or none: baselines only) and hash the very bytes loaded.
2. the data (`evaluation_config`, `evaluation_data`): the held-out test split
   by default (the original notebook scored its own training images, which
   flatters any model). The evaluation set is fixed: only the task (image size,
   resize, data folder, split ratios, degradations, their strengths and order)
   comes from the config; the synthetic test frames and every image's
   degradation seed come from `EVAL_SEED`, never from the model's training
   seed, ``max_images``, ``synthetic_frames`` or ``cache_images``. So two
   models of one task are scored on the very same degraded inputs; the
   fingerprint ``inputs_sha256`` in metrics.json lets you check it.
3. scoring (`score`): condition "all" applies all of ``cfg.degradations``
   together; with ``breakdown=True`` each one is also applied alone, to show
   where the GAN helps and where it does not. Named conditions (``conditions=``,
   e.g. `GOAL_CONDITIONS`: `evaluate_goals`) replace these: each is the task
   with some degradation settings overridden. Each degraded image is restored
   with the GAN and each baseline (`medgan_nb.baselines`) and scored against the
   clean image with PSNR and SSIM (`medgan_nb.metrics`), timing every method.
   Where the data has lesion masks (`medgan_nb.data.mask_of`: Kvasir-SEG's
   polyps), PSNR and SSIM are also scored inside and outside the masks.
4. aggregation (`aggregate`, `aggregate_lesions`): mean, std and ms/image per
   condition and method.
5. writing (`write_results`): ``metrics.json`` (results, metadata),
   ``per_image.csv``, figures and ``report.md``, which says, from the numbers
   alone, where the GAN wins and where a baseline beats it (`summarize`).

`evaluate_grid` scores a grid of fixed noise and blur strengths instead and
draws where the model does harm (model − input) and where a classic beats it.

The reference levels of the original notebook (PSNR 25 dB "good", 30 dB
"excellent"; SSIM 0.85 / 0.90) are drawn and quoted as context, never as
pass/fail: what is reachable depends on the images and the degradation strength.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from . import __version__
from .baselines import BASELINES, FAST_BASELINES, NEEDS_BM3D, missing_reason
from .checkpoint import checkpoint_path, load_generator
from .config import DEGRADATION_SETS, Config
from .data import (PACKAGE_ROOT, SYNTHETIC, ImageFolderDataset, SyntheticEndoscopyDataset, data_source, dataset_keys,
                   default_dataset, from_numpy_images, load_image, mask_of, to_numpy_images, to_tensor)
from .degrade import Degradation
from .guard import Guard
from .metrics import PSNR_CAP, SSIM_DESCRIPTION, psnr, psnr_masked, ssim, ssim_masked
from .models import resolve_device
from .pretrained import load_model
from .viz import image_grid

log = logging.getLogger(__name__)

EVAL_SEED = 0                   # seeds the synthetic test frames and every image's degradation
EVAL_SYNTHETIC_FRAMES = 1000    # synthetic frames of all splits together, as the seed preset: 100 test frames
REFERENCE_PSNR = {"good": 25.0, "excellent": 30.0}     # dB, the original notebook's levels
REFERENCE_SSIM = {"good": 0.85, "excellent": 0.90}
LABELS = {"gan": "the model", "identity": "identity", "median": "median", "gaussian": "Gaussian",
          "nlm": "NLM", "tv": "TV", "bilateral": "bilateral", "cbm3d": "CBM3D", "median_cbm3d": "median + CBM3D"}
CSV_COLUMNS = ("condition", "method", "key", "psnr", "ssim")
LESION_COLUMNS = ("condition", "method", "key", "psnr_in", "ssim_in", "psnr_out", "ssim_out")
ERROR_QUANTILE = 0.99   # the error maps' colour scale ends at this quantile: a few salt-and-pepper specks aside

# The issue's goal conditions: Config overrides of the task's degradation settings. Every setting that
# decides the degraded inputs is given, so a checkpoint's own (e.g. its sp_amount_range) never leaks in.
GOAL_CONDITIONS: dict[str, dict] = {
    "blur_noise": dict(degradations=("blur", "noise"), degradation_order="physical", blur_sigma=(0.5, 1.5),
                       blur_kernel=9, noise_std=0.075, noise_std_range=0.0, degradation_p=1.0),
    "seed": dict(degradations=("noise", "salt_pepper", "blur"), degradation_order="seed", noise_std=0.15,
                 noise_std_range=0.05, blur_kernel=5, blur_sigma=(0.1, 2.0), sp_amount=0.01, sp_amount_range=0.0,
                 sp_salt_ratio=0.5, degradation_p=1.0),
    "light": dict(degradations=("blur", "noise"), degradation_order="physical", blur_sigma=(0.3, 0.8),
                  blur_kernel=5, noise_std=0.02, noise_std_range=0.0, degradation_p=1.0),
}
GOAL_BASELINES: tuple[str, ...] = (*FAST_BASELINES, *NEEDS_BM3D)    # the goals are stated against CBM3D
# Fields a condition may not override: they choose the evaluation images, not how they are degraded.
NOT_CONDITION_FIELDS = ("seed", "image_size", "data_dir", "split_ratios", "resize", "frame_size",
                        "synthetic_frames", "max_images", "cache_images")
GRID_NOISE_STDS: tuple[float, ...] = (0.0, 0.02, 0.05, 0.075, 0.1, 0.15, 0.2)
GRID_BLUR_SIGMAS: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
GRID_BLUR_KERNEL = 9
GRID_BASELINES: tuple[str, ...] = ("nlm", "tv", "bilateral", "median")     # milliseconds each; CBM3D on request
NO_HARM_DB = -0.1       # the grid's goal: the model's PSNR never more than 0.1 dB below its input's
GRID_COLOUR_DB = 3.0    # the grid heatmaps' colour scale ends at ± this (the cells are annotated with exact values)

Row = tuple[str, str, str, float, float]      # condition, method, key, PSNR, SSIM
LesionRow = tuple[str, str, str, float, float, float, float]    # ..., PSNR and SSIM inside, then outside the mask


def cpu_model() -> str:
    """The CPU's name: "model name" of /proc/cpuinfo (Linux), else platform.processor(), else "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(device: str) -> dict[str, str | int]:
    """Where the timings were measured: the device, torch's CPU threads and the CPU model."""
    return {"device": device, "torch_threads": torch.get_num_threads(), "cpu": cpu_model()}


def conditions_of(cfg: Config, breakdown: bool = True) -> dict[str, tuple[str, ...]]:
    """Condition name -> degradations applied: "all" of cfg.degradations, then (breakdown) each one alone,
    plus each of the original's four (noise, salt-and-pepper, blur, colour jitter) that training left out."""
    conditions = {"all": tuple(cfg.degradations)}
    if breakdown:
        for name in dict.fromkeys([*cfg.degradations, *DEGRADATION_SETS["seed"]]):
            if len(cfg.degradations) > 1 or name not in cfg.degradations:
                conditions[name] = (name,)
    return conditions


def build_degraders(cfg: Config, conditions: dict[str, dict] | None = None,
                    breakdown: bool = True) -> dict[str, Degradation]:
    """Condition name -> its Degradation: `conditions_of` the task, or, given named conditions (name -> Config
    overrides of the degradation settings, e.g. `GOAL_CONDITIONS`), each of them with all its degradations."""
    if conditions is None:
        return {c: Degradation(cfg, names) for c, names in conditions_of(cfg, breakdown).items()}
    if not conditions:
        raise ValueError("no conditions to evaluate: give at least one name -> Config overrides")
    for name, overrides in conditions.items():
        wrong = [k for k in overrides if k in NOT_CONDITION_FIELDS]
        if wrong:
            raise ValueError(f"condition {name!r} overrides {wrong}, which choose the evaluation images, not "
                             f"their degradation; set them in cfg instead")
    return {name: Degradation(cfg.replace(**overrides)) for name, overrides in conditions.items()}


def grid_conditions(noise_stds: Sequence[float] = GRID_NOISE_STDS, blur_sigmas: Sequence[float] = GRID_BLUR_SIGMAS,
                    blur_kernel: int = GRID_BLUR_KERNEL) -> dict[str, dict]:
    """One named condition per (noise σ, blur σ) cell, noise rows first: fixed strengths, physical order,
    every degradation applied. A strength of 0 leaves that degradation out (0, 0: the clean image)."""
    for name, values in (("noise_stds", noise_stds), ("blur_sigmas", blur_sigmas)):
        if not values or len(set(values)) != len(values) or min(values) < 0:
            raise ValueError(f"{name} must be distinct values >= 0, at least one; got {list(values)}")
    return {_cell(n, b): dict(degradations=("blur",) * (b > 0) + ("noise",) * (n > 0), degradation_order="physical",
                              noise_std=float(n), noise_std_range=0.0, blur_sigma=(float(b), float(b)),
                              blur_kernel=blur_kernel, degradation_p=1.0)
            for n in noise_stds for b in blur_sigmas}


def _cell(noise_std: float, blur_sigma: float) -> str:
    return f"noise {noise_std:g}, blur {blur_sigma:g}"


# ------------------------------------------------------------------ restoring
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def run_gan(generator: nn.Module, degraded: torch.Tensor, device: str) -> tuple[torch.Tensor, float]:
    """Restore a batch (N, 3, H, W) in [-1, 1] with the generator and its ``guard`` if it has one
    (`medgan_nb.guard`; shipped models do); (output on the CPU, seconds for the batch, guard included)."""
    x = degraded.to(device)
    guard = getattr(generator, "guard", None)
    with torch.inference_mode():
        _sync(device)
        start = time.perf_counter()
        y = generator(x)
        if guard is not None:
            y = guard(x, y)
        _sync(device)
        seconds = time.perf_counter() - start
    return y.float().cpu(), seconds


def run_baseline(name: str, degraded: torch.Tensor, noise_std: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, list[float]]:
    """Restore a batch (N, 3, H, W) in [-1, 1] image by image with a baseline; (output, seconds per image)."""
    fn = BASELINES[name]
    outs, seconds = [], []
    for i, img in enumerate(to_numpy_images(degraded)):
        sigma = None if noise_std is None else float(noise_std[i])
        start = time.perf_counter()
        outs.append(fn(img, sigma))
        seconds.append(time.perf_counter() - start)
    return from_numpy_images(np.stack(outs)), seconds


def run_method(method: str, degraded: torch.Tensor, params: dict, generator: nn.Module | None,
               device: str) -> tuple[torch.Tensor, float]:
    """One method's output for a batch and the seconds it took; baselines get the true per-image noise std."""
    if method == "gan":
        return run_gan(generator, degraded, device)
    y, seconds = run_baseline(method, degraded, params.get("noise_std"))
    return y, sum(seconds)


def _restore(method: str, degraded: torch.Tensor, params: dict, generator: nn.Module | None,
             device: str) -> torch.Tensor:
    """One method's output for a batch, untimed (for the figures)."""
    return run_method(method, degraded, params, generator, device)[0]


@dataclass
class Model:
    """The model under evaluation: its generator (None: baselines only), its training config, where it runs."""
    checkpoint: str | Path | None
    generator: nn.Module | None
    trained_cfg: Config | None
    device: str


def _set_up(checkpoint: str | Path | None, out_dir: str | Path, baselines: Sequence[str],
            device: str, model: str | None = None, guard: bool | Guard = True) -> tuple[Path, Model, list[str], dict[str, str]]:
    """Check the arguments before any slow work, then load the model (``guard=False``: without its guard; a
    `Guard`: with that one instead, e.g. on a training checkpoint, which carries none).

    Returns the output folder, the model, the baselines that can run here and the skipped ones with the
    reason (an optional package such as bm3d missing: skipped and said so, never a crash).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; evaluation never overwrites results. "
                              f"Choose another folder, e.g. medgan_nb.checkpoint.make_run_dir(base, name).")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    skipped = {b: reason for b in baselines if (reason := missing_reason(b))}
    for reason in dict.fromkeys(skipped.values()):
        log.warning("%s", reason)
    device = str(resolve_device(device))
    if model is not None and checkpoint is not None:
        raise ValueError("give a checkpoint or a shipped model, not both")
    if model is not None:
        generator, trained_cfg, _ = load_model(model, device)
    else:
        generator, trained_cfg = load_generator(checkpoint, device) if checkpoint is not None else (None, None)
    if generator is not None and not isinstance(guard, bool):
        generator.guard = guard
    elif generator is not None and not guard:
        generator.guard = None
    return out_dir, Model(checkpoint, generator, trained_cfg, device), \
        [b for b in baselines if b not in skipped], skipped


def _metadata(model: Model, cfg: Config, dataset: Dataset, source: str, data_dir: str | Path | None,
              split: str, methods: Sequence[str], skipped: dict[str, str], inputs_sha256: str) -> dict:
    """What a reader needs to know of an evaluation: model, data, task, methods, machine, versions."""
    generator, trained = model.generator, model.trained_cfg
    return {
        "checkpoint": str(checkpoint_path(model.checkpoint).resolve()) if model.checkpoint is not None else None,
        "model": getattr(generator, "model_name", None),
        "checkpoint_sha256": generator.checkpoint_sha256 if generator is not None else None,
        "guard": g.to_dict() if (g := getattr(generator, "guard", None)) is not None else None,
        "trained_degradations": list(trained.degradations) if trained is not None else None,
        "data": source, "split": None if data_dir is not None else split,
        "data_dir": str(data_dir) if data_dir is not None else cfg.data_dir,
        "n_images": len(dataset), "image_size": cfg.image_size,
        "degradations": list(cfg.degradations), "degradation_order": cfg.degradation_order,
        "inputs_sha256": inputs_sha256,
        "methods": list(methods), "skipped": skipped,
        "nlm_noise_std": "oracle (the noise std drawn for each image) when noise is applied; also for CBM3D",
        "ssim": SSIM_DESCRIPTION,
        **machine(model.device), "medgan_nb_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": cfg.to_dict(),
    }


# ----------------------------------------------------------------- evaluate
def evaluate(checkpoint: str | Path | None, out_dir: str | Path, *, cfg: Config | None = None,
             data_dir: str | Path | None = None, split: str = "test",
             baselines: Sequence[str] = FAST_BASELINES, breakdown: bool = True,
             conditions: dict[str, dict] | None = None,
             max_images: int | None = None, device: str = "auto", quiet: bool = False,
             model: str | None = None, guard: bool | Guard = True) -> dict:
    """Score the checkpoint's generator (method "gan") and the baselines on degraded held-out images.

    checkpoint: a medgan_nb checkpoint (file or run folder), or None to evaluate the baselines only
        (or the shipped `model`, a name from ``python -m medgan_nb models``).
    out_dir: a new or empty folder for the results (use `medgan_nb.checkpoint.make_run_dir`).
    cfg: the task to score on (image size, data, degradations; see `evaluation_config`) instead of the
        checkpoint's; with neither, `Config()`'s (the seed preset: 256², the original's four degradations).
    data_dir: score every image of this folder instead of a split of the default data.
    split: which split of the default data; "test" unless you really mean otherwise.
    baselines: names in `medgan_nb.baselines.BASELINES`; by default the fast ones. "cbm3d" and
        "median_cbm3d" cost seconds per image; without the optional bm3d package they are skipped,
        and metrics.json and report.md say so.
    conditions: named conditions (name -> Config overrides of the degradation settings, e.g.
        `GOAL_CONDITIONS`) to score instead of "all" and the breakdown; the first one is shown in the figures.
    max_images: score an evenly spread subset of at most this many images (None: all).
    guard: apply the model's guard (`medgan_nb.guard`; shipped models have one), as `enhance` does; a `Guard`
        applies that one instead (training checkpoints carry none).
    Returns the dict written to metrics.json.
    """
    out_dir, model, runnable, skipped = _set_up(checkpoint, out_dir, baselines, device, model, guard)
    cfg, dataset, source = _evaluation_set(model, cfg, data_dir, split, max_images)
    methods = (["gan"] if model.generator is not None else []) + runnable
    degraders = build_degraders(cfg, conditions, breakdown)
    masks = dataset_masks(dataset)
    scores = score(dataset, degraders, methods, model.generator, model.device, cfg.batch_size, cfg.num_workers,
                   quiet, masks)
    metrics = {
        "metadata": _metadata(model, cfg, dataset, source, data_dir, split, methods, skipped, scores.inputs_sha256),
        "conditions": {c: list(d.steps) for c, d in degraders.items()},
        "condition_overrides": conditions,
        "results": aggregate(scores.rows, scores.seconds),
        "lesions": aggregate_lesions(scores.lesion_rows) if masks is not None else None,
    }
    write_results(out_dir, metrics, scores, dataset, degraders, model, masks)
    if not quiet:
        print(f"evaluation written to {out_dir}")
    return metrics


def evaluate_goals(checkpoint: str | Path | None, out_dir: str | Path, *, cfg: Config | None = None,
                   data_dir: str | Path | None = None, split: str = "test",
                   baselines: Sequence[str] = GOAL_BASELINES, max_images: int | None = None,
                   device: str = "auto", quiet: bool = False, model: str | None = None, guard: bool | Guard = True) -> dict:
    """`evaluate` on the issue's three goal conditions (`GOAL_CONDITIONS`: blur_noise, seed, light), against
    every classic including CBM3D (seconds per image; skipped, and said so, without bm3d)."""
    return evaluate(checkpoint, out_dir, cfg=cfg, data_dir=data_dir, split=split, baselines=baselines,
                    conditions=GOAL_CONDITIONS, max_images=max_images, device=device, quiet=quiet, model=model,
                    guard=guard)


def _evaluation_set(model: Model, cfg: Config | None, data_dir: str | Path | None, split: str,
                    max_images: int | None) -> tuple[Config, Dataset, str]:
    """The task's evaluation config, the images to score and a sentence saying what they are."""
    cfg = evaluation_config(cfg or model.trained_cfg)
    dataset, source = evaluation_data(cfg, data_dir, split, max_images)
    if model.trained_cfg is not None and data_dir is None:
        _warn_if_trained_on(dataset_keys(dataset), model.trained_cfg)
    return cfg, dataset, source


def dataset_masks(dataset: Dataset) -> list[torch.Tensor | None] | None:
    """The lesion mask of every image (`medgan_nb.data.mask_of`; None for an image without one), or None
    when no image has a mask."""
    masks = [mask_of(dataset, i) for i in range(len(dataset))]
    return masks if any(m is not None for m in masks) else None


def evaluation_config(cfg: Config | None = None) -> Config:
    """The config the evaluation set is built from: the task of `cfg` (or of `Config()`) on fixed evaluation data.

    What the evaluation uses of `cfg` is the task: image_size, resize, data_dir, split_ratios, the degradations
    with their strengths and order (and batch_size, num_workers, which change no score). The fields that belong
    to a training run and would otherwise change the test images or their degradations are replaced: ``seed``
    (synthetic test frames, per-image degradation seeds) by `EVAL_SEED`, ``synthetic_frames`` by
    `EVAL_SYNTHETIC_FRAMES`, ``max_images`` by 0 (all; `evaluate` has its own) and ``cache_images`` by False.
    """
    return (cfg or Config()).replace(seed=EVAL_SEED, synthetic_frames=EVAL_SYNTHETIC_FRAMES, max_images=0,
                                     cache_images=False)


def evaluation_data(cfg: Config, data_dir: str | Path | None = None, split: str = "test",
                    max_images: int | None = None) -> tuple[Dataset, str]:
    """The clean images to score and a sentence saying what they are.

    cfg: from `evaluation_config`. data_dir: every image of that folder instead of a split.
    max_images: an evenly spread subset of at most that many, so that every part of the
    data (embedded patches, synthetic frames) stays represented; None: all.
    """
    if data_dir is not None:
        dataset: Dataset = ImageFolderDataset(data_dir, cfg.image_size, split=None, resize=cfg.resize)
        source = f"every image under {Path(data_dir)}"
    else:
        dataset = default_dataset(split, cfg)
        origin = ("the synthetic data (scikit-image fundus/histology patches + synthetic endoscopy frames)"
                  if data_source(cfg) == SYNTHETIC else f"the folder {data_source(cfg)}")
        source = f"the {split!r} split of {origin}"
        if split != "test":
            log.warning("evaluating on the %r split, not the held-out test split: scores on images the model "
                        "may have trained on are inflated", split)
    if max_images is not None:
        if max_images < 1:
            raise ValueError(f"no images to evaluate: max_images must be >= 1, got {max_images}")
        if max_images < len(dataset):
            dataset = Subset(dataset, torch.linspace(0, len(dataset) - 1, max_images).round().long().tolist())
    return dataset, source


def _warn_if_trained_on(keys: Sequence[str], trained: Config) -> None:
    """Warn if synthetic frames of the evaluation were among the model's training or validation frames.

    Test frames are seeded from `EVAL_SEED`, training frames from the model's seed; they meet only for
    training seeds near 1 or 2 million (the seed offsets of the splits).
    """
    if data_source(trained) != SYNTHETIC:
        return
    seen = set()
    for split, share in zip(("train", "val"), trained.split_ratios):
        first = trained.seed + SyntheticEndoscopyDataset.SPLIT_OFFSET[split]
        seen.update(f"synthetic/{first + i}" for i in range(round(trained.synthetic_frames * share)))
    overlap = [k for k in keys if k in seen]
    if overlap:
        log.warning("%d evaluation frames (e.g. %s) are among the training or validation frames of this "
                    "model (its seed %d): its scores on them may be inflated", len(overlap), overlap[0], trained.seed)


@dataclass
class Scores:
    """What `score` measured: per-image rows, seconds per (condition, method), the inputs' fingerprint, and
    per-image rows inside/outside the lesion masks (empty without masks)."""
    rows: list[Row] = field(default_factory=list)
    seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    inputs_sha256: str = ""
    lesion_rows: list[LesionRow] = field(default_factory=list)


def score(dataset: Dataset, degraders: dict[str, Degradation], methods: Sequence[str],
          generator: nn.Module | None, device: str, batch_size: int = 4, num_workers: int = 0,
          quiet: bool = False, masks: Sequence[torch.Tensor | None] | None = None) -> Scores:
    """Degrade, restore and score every image under every condition with every method.

    masks: one lesion mask (H, W) or None per image of the dataset (`dataset_masks`): PSNR and SSIM are then
    also scored inside and outside them. ``inputs_sha256`` is a SHA-256 of the keys and the float32 bytes of
    the clean and degraded images of the first condition ("all", or the first named one), in order. Equal
    fingerprints mean two evaluations scored the very same inputs.
    """
    scores = Scores(seconds={(c, m): 0.0 for c in degraders for m in methods})
    inputs = hashlib.sha256()
    first = next(iter(degraders))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    warmed, start = False, 0
    for clean, keys in tqdm(loader, desc="evaluating", unit="batch", disable=quiet):
        keys = list(keys)
        batch_masks = masks[start:start + len(keys)] if masks is not None else None
        start += len(keys)
        for cond, degrade in degraders.items():
            d = degrade(clean, keys=keys)          # on the CPU, seeded per key: identical in every run
            if cond == first:
                _fingerprint(inputs, keys, clean, d.image)
            for method in methods:
                if method == "gan" and not warmed:     # the first call pays for allocation/cuDNN set-up
                    run_gan(generator, d.image, device)
                    warmed = True
                y, dt = run_method(method, d.image, d.params, generator, device)
                scores.seconds[cond, method] += dt
                scores.rows += [(cond, method, key, min(float(p), PSNR_CAP), float(s))
                                for key, p, s in zip(keys, psnr(y, clean), ssim(y, clean))]
                if batch_masks is not None:
                    scores.lesion_rows += lesion_rows(cond, method, keys, y, clean, batch_masks)
    scores.inputs_sha256 = inputs.hexdigest()
    return scores


def _fingerprint(h: "hashlib._Hash", keys: Sequence[str], clean: torch.Tensor, degraded: torch.Tensor) -> None:
    for key, x, y in zip(keys, clean, degraded):
        h.update(key.encode("utf-8", "surrogateescape") + b"\0")
        h.update(x.float().contiguous().numpy().tobytes())
        h.update(y.float().contiguous().numpy().tobytes())


def lesion_rows(cond: str, method: str, keys: Sequence[str], restored: torch.Tensor, clean: torch.Tensor,
                masks: Sequence[torch.Tensor | None]) -> list[LesionRow]:
    """PSNR (capped) and SSIM inside and outside each image's mask; images without a mask give no row."""
    rows = []
    for key, y, x, m in zip(keys, restored, clean, masks):
        if m is None:
            continue
        m = torch.as_tensor(m, dtype=torch.bool)
        rows.append((cond, method, key, *_masked_scores(y, x, m), *_masked_scores(y, x, ~m)))
    return rows


def _masked_scores(restored: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """PSNR (capped at PSNR_CAP; NaN for an empty mask) and SSIM of one image (3, H, W) within a mask."""
    p = float(psnr_masked(restored[None], clean[None], mask)[0])
    return (p if np.isnan(p) else min(p, PSNR_CAP)), float(ssim_masked(restored[None], clean[None], mask)[0])


def aggregate(rows: Sequence[Row], seconds: dict[tuple[str, str], float]) -> dict[str, dict[str, dict[str, float]]]:
    """condition -> method -> mean and std of PSNR and SSIM over images, ms per image and n."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    for cond, method in seconds:               # in the order of the conditions and methods scored
        p = np.array([r[3] for r in rows if r[0] == cond and r[1] == method])
        s = np.array([r[4] for r in rows if r[0] == cond and r[1] == method])
        results.setdefault(cond, {})[method] = {
            "psnr_mean": float(p.mean()), "psnr_std": float(p.std()),
            "ssim_mean": float(s.mean()), "ssim_std": float(s.std()),
            "ms_per_image": 1000 * seconds[cond, method] / max(len(p), 1), "n": int(len(p))}
    return results


def aggregate_lesions(rows: Sequence[LesionRow]) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """condition -> method -> mean PSNR/SSIM inside and outside the masks, over the images where that region
    is not empty (n_in, n_out); None where no image has such a region."""
    results: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for cond, method in dict.fromkeys((r[0], r[1]) for r in rows):
        values = np.array([r[3:] for r in rows if r[0] == cond and r[1] == method], dtype=np.float64)
        stats: dict[str, float | int | None] = {}
        for j, name in enumerate(("psnr_in", "ssim_in", "psnr_out", "ssim_out")):
            v = values[:, j][~np.isnan(values[:, j])]
            stats[f"{name}_mean"] = float(v.mean()) if len(v) else None
        stats["n_in"] = int((~np.isnan(values[:, 0])).sum())
        stats["n_out"] = int((~np.isnan(values[:, 2])).sum())
        results.setdefault(cond, {})[method] = stats
    return results


def write_results(out_dir: Path, metrics: dict, scores: Scores, dataset: Dataset,
                  degraders: dict[str, Degradation], model: Model,
                  masks: Sequence[torch.Tensor | None] | None = None) -> None:
    """Write metrics.json, per_image.csv (and lesions.csv with masks), the figures and report.md into out_dir.

    The figures show the first condition and the GAN, or without one the baseline with the highest mean
    PSNR there.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _write_csv(out_dir / "per_image.csv", CSV_COLUMNS, scores.rows)
    if masks is not None:
        _write_csv(out_dir / "lesions.csv", LESION_COLUMNS, scores.lesion_rows)
    plot_bars(metrics, out_dir / "psnr_ssim_bars.png")
    first = next(iter(degraders))
    generator, device = model.generator, model.device
    shown = "gan" if generator is not None else _best_baseline(metrics["results"][first])
    if shown is not None:
        plot_cases(dataset, scores.rows, shown, degraders[first], generator, device, out_dir / "cases.png", first)
        plot_error_maps(dataset, shown, degraders[first], generator, device, out_dir / "error_maps.png")
        if masks is not None:
            plot_lesions(dataset, masks, shown, degraders[first], generator, device, out_dir / "lesions.png")
    (out_dir / "report.md").write_text(report_markdown(metrics, shown))


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)


def _best_baseline(methods: dict[str, dict[str, float]]) -> str | None:
    """The baseline (not the GAN) with the highest mean PSNR; identity only if it is the only one."""
    candidates = [m for m in methods if m not in ("gan", "identity")] or [m for m in methods if m == "identity"]
    return max(candidates, key=lambda m: methods[m]["psnr_mean"]) if candidates else None


# ------------------------------------------------------------------ summary
def _where(cond: str, names: Sequence[str] | None) -> str:
    if cond == "all":
        return f"On all degradations together ({' + '.join(names)})" if names else "On all (no degradation)"
    if names is not None and list(names) == [cond]:
        return f"On {cond} alone"
    return f"On {cond} ({' + '.join(names) or 'no degradation'})" if names is not None else f"On {cond}"


def _versus(diff: float, what: str) -> str:
    """"2.10 dB above the degraded input", "0.30 dB below ...", or "level with ..."."""
    if abs(diff) < 0.005:
        return f"level with {what}"
    return f"{abs(diff):.2f} dB {'above' if diff > 0 else 'below'} {what}"


def summarize(metrics: dict) -> list[str]:
    """Plain sentences, computed from the numbers only: per condition, does the GAN beat the degraded
    input (identity) and the best baseline, by how many dB; a baseline that wins is named as the winner.
    A condition outside ``metadata["trained_degradations"]`` (the checkpoint's) is marked as such."""
    lines = []
    conditions = metrics.get("conditions", {})
    trained = metrics.get("metadata", {}).get("trained_degradations")     # the model's; None: no model
    for cond, methods in metrics["results"].items():
        where = _where(cond, conditions.get(cond))
        if trained is not None and cond != "all" and set(conditions.get(cond) or [cond]) - set(trained):
            where += " (not part of this model's training degradations)"
        p = {m: s["psnr_mean"] for m, s in methods.items()}
        best = _best_baseline({m: s for m, s in methods.items() if m != "gan"})
        best = best if best != "identity" else None
        ident = f"the degraded input ({p['identity']:.2f} dB)" if "identity" in p else None
        if "gan" in p:
            line = f"{where}, the model reaches {p['gan']:.2f} dB"
            if ident:
                line += ", " + _versus(p["gan"] - p["identity"], ident)
                if p["gan"] - p["identity"] <= -0.005:
                    line += ": it makes the images worse"
            if best:
                diff = p["gan"] - p[best]
                if diff >= 0.005:
                    line += (f"; it beats the best baseline, {LABELS.get(best, best)} ({p[best]:.2f} dB), "
                             f"by {diff:.2f} dB")
                elif diff <= -0.005:
                    line += (f"; {LABELS.get(best, best)} beats the model by {-diff:.2f} dB "
                             f"({p[best]:.2f} vs {p['gan']:.2f} dB)")
                else:
                    line += f"; it ties with the best baseline, {LABELS.get(best, best)} ({p[best]:.2f} dB)"
                if "identity" in p and p[best] - p["identity"] < 0.005:
                    line += "; no baseline improves on the degraded input"
        elif best:
            line = f"{where}, the best baseline is {LABELS.get(best, best)} at {p[best]:.2f} dB"
            if ident:
                line += ", " + _versus(p[best] - p["identity"], ident)
        else:
            continue
        top_psnr = max(p, key=p.get)
        top_ssim = max(methods, key=lambda m: methods[m]["ssim_mean"])
        if top_ssim != top_psnr:
            line += (f". By SSIM, {LABELS.get(top_ssim, top_ssim)} is best there "
                     f"({methods[top_ssim]['ssim_mean']:.3f} vs {methods[top_psnr]['ssim_mean']:.3f} "
                     f"for {LABELS.get(top_psnr, top_psnr)})")
        lines.append(line + ".")
    if any("color_jitter" in names for names in conditions.values()):
        note = ("Colour jitter changes global brightness, contrast, saturation and hue, which the clean target "
                "does not determine from the degraded image alone, so the PSNR of any method on it is bounded")
        alone = metrics["results"].get("color_jitter", {}).get("identity")
        if alone:
            note += (f"; evidence: on colour jitter alone the degraded input scores only "
                     f"{alone['psnr_mean']:.2f} dB, with every structure of the image still in place")
        lines.append(note + ".")
    return lines


def summarize_lesions(metrics: dict) -> list[str]:
    """Per condition with lesion masks: the GAN's (else the best baseline's) PSNR inside the masks against the
    input's and the best baseline's there, so a reader sees whether the lesions were restored or erased."""
    lines = []
    for cond, methods in (metrics.get("lesions") or {}).items():
        inside = {m: s["psnr_in_mean"] for m, s in methods.items() if s["psnr_in_mean"] is not None}
        rivals = {m: v for m, v in inside.items() if m not in ("gan", "identity")}
        if not inside:
            continue
        line = f"Inside the lesion masks ({cond})"
        if "gan" in inside:
            line += f", the model reaches {inside['gan']:.2f} dB"
            if "identity" in inside:
                line += ", " + _versus(inside["gan"] - inside["identity"], f"the input ({inside['identity']:.2f} dB)")
        if rivals:
            best = max(rivals, key=rivals.get)
            line += ("; " if "gan" in inside else ", ") + \
                f"the best baseline there is {LABELS.get(best, best)} at {rivals[best]:.2f} dB"
        lines.append(line + ".")
    return lines


# ------------------------------------------------------------------ report
def _methods_note(meta: dict) -> str:
    """Which methods were given the true noise std, which were skipped and why, whether CBM3D ran."""
    oracle = [LABELS[m] for m in ("nlm", "cbm3d", "median_cbm3d") if m in meta["methods"]]
    note = (f" {', '.join(oracle)} {'is' if len(oracle) == 1 else 'are'} given each image's true noise level when "
            "noise is applied (an oracle the GAN does not get)." if oracle else "")
    skipped = meta.get("skipped") or {}
    for reason in dict.fromkeys(skipped.values()):
        note += f" **{reason}** ({', '.join(m for m in skipped if skipped[m] == reason)})."
    if not any(m in meta["methods"] or m in skipped for m in ("cbm3d", "median_cbm3d")):
        note += (" CBM3D, the strongest classical denoiser, was not run (seconds per image): ask for it with "
                 "baselines including \"cbm3d\" (or `evaluate_goals`).")
    return note


def report_markdown(metrics: dict, shown: str | None = None) -> str:
    """The text of report.md: what was evaluated, the summary, a table per condition, lesions, the figures."""
    meta = metrics["metadata"]
    ckpt = (f"`{meta['checkpoint']}` (sha256 `{meta['checkpoint_sha256']}`, the bytes loaded), trained on "
            f"{', '.join(meta['trained_degradations']) or 'no degradation'}" if meta["checkpoint"]
            else "none (classical baselines only)")
    lines = [
        "# Evaluation report", "",
        f"- **Checkpoint:** {ckpt}",
        f"- **Data:** {meta['data']}: {meta['n_images']} images at {meta['image_size']}²",
        f"- **Degradations** ({meta['degradation_order']} order): {', '.join(meta['degradations']) or 'none'}. "
        "Each image is degraded with its own seed, taken from its key and the fixed evaluation seed, so every "
        "run, whatever model, scores identical inputs "
        f"(fingerprint of the clean and degraded images: sha256 `{meta['inputs_sha256']}`).",
        f"- **Methods:** {', '.join(meta['methods'])}." + _methods_note(meta)
        + f" **Metrics:** PSNR on images in [0, 1]; SSIM {meta['ssim']}.",
        f"- **Device:** {meta['device']}; {meta['torch_threads']} torch CPU thread(s) on {meta['cpu']}; "
        f"medgan_nb {meta['medgan_nb_version']}; {meta['created']}", "",
    ]
    for cond, overrides in (metrics.get("condition_overrides") or {}).items():
        lines.insert(-1, f"- **Condition {cond}:** " + ", ".join(f"{k}={v}" for k, v in overrides.items()))
    if meta.get("split") not in (None, "test"):
        lines += [f"> **Warning:** these are {meta['split']!r} images, not the held-out test split; "
                  "scores on images a model trained on are inflated.", ""]
    lines += ["## Summary", ""] + [f"- {s}" for s in summarize(metrics) + summarize_lesions(metrics)] + [
        "",
        f"Reference levels from the original notebook, as context and not as pass/fail (what is reachable depends "
        f"on the images and how strong the degradations are): PSNR {REFERENCE_PSNR['good']:g} dB \"good\", "
        f"{REFERENCE_PSNR['excellent']:g} dB \"excellent\"; SSIM {REFERENCE_SSIM['good']:.2f} / "
        f"{REFERENCE_SSIM['excellent']:.2f}.", "",
        "## Results", "",
        f"Mean ± standard deviation over images; higher is better; PSNR capped at {PSNR_CAP:g} dB (identical "
        "images). ms/image: the GAN timed per batch divided by its size, baselines per image on the CPU.", ""]
    for cond, methods in metrics["results"].items():
        names = metrics["conditions"].get(cond)
        lines += [f"### {_where(cond, names)[3:]}", "",
                  "| method | PSNR (dB) | SSIM | ms/image |", "|---|---|---|---|"]
        for m, s in sorted(methods.items(), key=lambda kv: -kv[1]["psnr_mean"]):
            lines.append(f"| {m} | {s['psnr_mean']:.2f} ± {s['psnr_std']:.2f} | "
                         f"{s['ssim_mean']:.3f} ± {s['ssim_std']:.3f} | {s['ms_per_image']:.2f} |")
        lines.append("")
    lines += _lesion_tables(metrics.get("lesions"))
    first = next(iter(metrics["results"]))
    lines += ["## Figures", "", "![PSNR and SSIM by method and condition](psnr_ssim_bars.png)", ""]
    if shown is not None:
        lines += [f"Best, median and worst images for {shown} on {first} (degraded | {shown} | clean):",
                  "", "![best, median and worst cases](cases.png)", "",
                  f"Absolute error against the clean image, degraded input vs {shown}, for the first "
                  f"{min(3, meta['n_images'])} images; the colour scale ends at the {100 * ERROR_QUANTILE:.0f}th "
                  "percentile of these errors, so the few brighter pixels (salt-and-pepper specks) are clipped:",
                  "",
                  "![error maps](error_maps.png)", ""]
        if metrics.get("lesions"):
            lines += [f"Lesions (bounding box of the mask, padded; its outline drawn) on {first}: degraded | "
                      f"{shown} | clean:", "", "![lesion crops](lesions.png)", ""]
    return "\n".join(lines)


def _lesion_tables(lesions: dict | None) -> list[str]:
    """report.md's section on PSNR/SSIM inside and outside the lesion masks (nothing without masks)."""
    if not lesions:
        return []
    fmt = lambda v, spec: "–" if v is None else format(v, spec)  # noqa: E731
    lines = ["## Inside and outside the lesion masks", "",
             "Mean over the images whose mask (inside) or its complement (outside) is not empty; SSIM leaves "
             "out the 5-pixel border, as for the whole image. Per image: lesions.csv.", ""]
    for cond, methods in lesions.items():
        lines += [f"### {cond}", "", "| method | PSNR inside (dB) | SSIM inside | PSNR outside (dB) | SSIM outside "
                  "| images |", "|---|---|---|---|---|---|"]
        for m, s in methods.items():
            lines.append(f"| {m} | {fmt(s['psnr_in_mean'], '.2f')} | {fmt(s['ssim_in_mean'], '.3f')} | "
                         f"{fmt(s['psnr_out_mean'], '.2f')} | {fmt(s['ssim_out_mean'], '.3f')} | {s['n_in']} |")
        lines.append("")
    return lines


# ------------------------------------------------------------------ figures
def plot_bars(metrics: dict, path: str | Path) -> Path:
    """Grouped bars of mean PSNR and SSIM (± std) per method and condition, with the reference levels as lines."""
    results = metrics["results"]
    conds = list(results)
    methods = list(next(iter(results.values())))
    fig = Figure(figsize=(max(6.0, 0.35 * len(conds) * (len(methods) + 1)) + 2.5, 7.0))
    axes = fig.subplots(2, 1)
    width = 0.8 / len(methods)
    x = np.arange(len(conds))
    for ax, metric, refs, unit in ((axes[0], "psnr", REFERENCE_PSNR, " (dB)"), (axes[1], "ssim", REFERENCE_SSIM, "")):
        for i, m in enumerate(methods):
            means = [results[c][m][f"{metric}_mean"] for c in conds]
            stds = [results[c][m][f"{metric}_std"] for c in conds]
            ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=m)
        for (name, level), style in zip(refs.items(), ("--", ":")):
            ax.axhline(level, color="0.3", linestyle=style, linewidth=1, label=f"{level:g}: \"{name}\" (reference)")
        ax.set_xticks(x, conds)
        ax.set_ylabel(metric.upper() + unit)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[1].set_ylim(top=max(1.0, axes[1].get_ylim()[1]))
    axes[0].set_title("Mean over images (± std); grey lines: the original notebook's reference levels, not pass/fail",
                      fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_cases(dataset: Dataset, rows: list, method: str, degrade: Degradation, generator: nn.Module | None,
               device: str, path: str | Path, condition: str = "all") -> Path:
    """Best, median and worst images of `method` on `condition` by PSNR: degraded | output | clean."""
    scored = sorted(((r[3], r[2]) for r in rows if r[0] == condition and r[1] == method), reverse=True)
    picks = {"best": 0, "median": len(scored) // 2, "worst": len(scored) - 1}
    seen, chosen = set(), []
    for label, i in picks.items():
        if i not in seen:
            seen.add(i)
            chosen.append((label, scored[i][1], scored[i][0]))
    index = {k: i for i, k in enumerate(dataset_keys(dataset))}
    clean = torch.stack([dataset[index[key]][0] for _, key, _ in chosen])
    d = degrade(clean, keys=[key for _, key, _ in chosen])
    out = _restore(method, d.image, d.params, generator, device)
    labels = [f"{label}: {_short(key)}\n{method} {p:.2f} dB (input {float(q):.2f})"
              for (label, key, p), q in zip(chosen, psnr(d.image, clean))]
    fig = image_grid({"degraded": d.image, method: out, "clean": clean}, row_labels=labels)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _short(key: str, width: int = 24) -> str:
    """A key short enough for a figure label: long file names keep their start and end."""
    return key if len(key) <= width else f"{key[:width // 2 - 1]}…{key[-(width // 2 - 1):]}"


def plot_error_maps(dataset: Dataset, method: str, degrade: Degradation, generator: nn.Module | None,
                    device: str, path: str | Path, n: int = 3) -> Path:
    """Per-pixel absolute error ([0, 1] units, mean over colour) of the input and of `method`, first n images.

    One colour scale for all panels, ending at the 99th percentile of all their errors (`ERROR_QUANTILE`):
    a few salt-and-pepper specks near 1 would otherwise make every other error look black.
    """
    n = min(n, len(dataset))
    items = [dataset[i] for i in range(n)]
    clean = torch.stack([x for x, _ in items])
    d = degrade(clean, keys=[k for _, k in items])
    out = _restore(method, d.image, d.params, generator, device)
    truth = to_numpy_images(clean)
    err_in = np.abs(to_numpy_images(d.image) - truth).mean(axis=-1)
    err_out = np.abs(to_numpy_images(out) - truth).mean(axis=-1)
    vmax = max(float(np.quantile(np.stack([err_in, err_out]), ERROR_QUANTILE)), 1e-6)
    fig = Figure(figsize=(2.4 * 4 + 0.6, 2.4 * n))
    axes = fig.subplots(n, 4, squeeze=False)
    for r in range(n):
        panels = [(to_numpy_images(d.image[r]), "degraded"), (err_in[r], "|degraded − clean|"),
                  (to_numpy_images(out[r]), method), (err_out[r], f"|{method} − clean|")]
        for c, (img, title) in enumerate(panels):
            ax = axes[r, c]
            if img.ndim == 3:
                ax.imshow(img)
            else:
                im = ax.imshow(img, cmap="magma", vmin=0, vmax=vmax)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
        axes[r, 0].set_ylabel(_short(items[r][1]), fontsize=7)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8,
                 label="absolute error (scale ends at the 99th percentile; brighter pixels clipped)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return Path(path)


def lesion_box(mask: torch.Tensor, pad: float = 0.25, min_pad: int = 4) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the mask's bounding box, widened by `pad` of its size on each side
    (at least `min_pad` pixels) and kept inside the image; a ValueError for an empty mask."""
    rows, cols = torch.nonzero(torch.as_tensor(mask, dtype=torch.bool), as_tuple=True)
    if len(rows) == 0:
        raise ValueError("the mask is empty: no lesion to crop")
    h, w = mask.shape[-2:]
    (t, b), (l, r) = (int(rows.min()), int(rows.max()) + 1), (int(cols.min()), int(cols.max()) + 1)
    dy, dx = max(min_pad, round(pad * (b - t))), max(min_pad, round(pad * (r - l)))
    return max(0, t - dy), min(h, b + dy), max(0, l - dx), min(w, r + dx)


def plot_lesions(dataset: Dataset, masks: Sequence[torch.Tensor | None], method: str, degrade: Degradation,
                 generator: nn.Module | None, device: str, path: str | Path, n: int = 4) -> Path:
    """Crops around the lesions of the first n images with a non-empty mask: degraded | output | clean, the
    mask's outline on each, PSNR inside the mask in the label, so a reader sees whether a lesion was kept."""
    picks = [i for i, m in enumerate(masks) if m is not None and bool(torch.as_tensor(m).any())][:n]
    if not picks:
        raise ValueError("no image has a non-empty lesion mask")
    items = [dataset[i] for i in picks]
    clean = torch.stack([x for x, _ in items])
    d = degrade(clean, keys=[k for _, k in items])
    out = _restore(method, d.image, d.params, generator, device)
    fig = Figure(figsize=(2.6 * 3, 2.6 * len(picks)))
    axes = fig.subplots(len(picks), 3, squeeze=False)
    for r, i in enumerate(picks):
        mask = torch.as_tensor(masks[i], dtype=torch.bool)
        t, b, le, ri = lesion_box(mask)
        for c, (batch, title) in enumerate(((d.image, "degraded"), (out, LABELS.get(method, method)), (clean, "clean"))):
            ax = axes[r, c]
            ax.imshow(to_numpy_images(batch[r])[t:b, le:ri])
            ax.contour(mask[t:b, le:ri].numpy().astype(float), levels=[0.5], colors="yellow", linewidths=0.8)
            ax.set_xticks([]), ax.set_yticks([])
            inside = psnr_masked(batch[r:r + 1], clean[r:r + 1], mask)[0]
            ax.set_title(f"{title}" + (f": {inside:.1f} dB in mask" if c < 2 else ""), fontsize=8)
        axes[r, 0].set_ylabel(_short(items[r][1]), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


# --------------------------------------------------------------------- grid
def evaluate_grid(checkpoint: str | Path, out_dir: str | Path, *, cfg: Config | None = None,
                  data_dir: str | Path | None = None, split: str = "test",
                  baselines: Sequence[str] = GRID_BASELINES, noise_stds: Sequence[float] = GRID_NOISE_STDS,
                  blur_sigmas: Sequence[float] = GRID_BLUR_SIGMAS, max_images: int | None = None,
                  device: str = "auto", quiet: bool = False, model: str | None = None, guard: bool | Guard = True) -> dict:
    """Score the model, identity and classical baselines on every cell of a noise σ × blur σ grid.

    Each cell degrades the evaluation images (see `evaluate`) with fixed strengths, physical order, 9×9 blur
    kernel, per-image seeds (`grid_conditions`). Writes grid.json (the returned dict), per_image.csv and
    grid.png: model − identity per cell ("does no harm" where >= `NO_HARM_DB`) and model − the best classic.
    baselines: the classics to compare with (identity is always scored); "cbm3d" costs seconds per image.
    Cost: cells × images × (model + classics); about 1 s per 256² image and cell for the default classics.
    """
    if checkpoint is None and model is None:
        raise ValueError("evaluate_grid compares a model with its input and the classics: give a checkpoint "
                         "or a shipped model")
    cells = grid_conditions(noise_stds, blur_sigmas)
    out_dir, model, runnable, skipped = _set_up(checkpoint, out_dir, baselines, device, model, guard)
    cfg, dataset, source = _evaluation_set(model, cfg, data_dir, split, max_images)
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


GRID_PANELS = {"model_minus_identity": "model − input (dB); outlined: harms (< %g dB)",
               "model_minus_best_classic": "model − best classic (dB), the classic named"}


def plot_grid(grid: dict, path: str | Path) -> Path:
    """Two annotated heatmaps, noise σ down, blur σ across: model − identity (harmful cells outlined) and
    model − the best classic (named in each cell); diverging colours centred at 0, ending at ± GRID_COLOUR_DB.
    A grid without classics (only identity scored) gets the first panel only."""
    panels = [name for name in GRID_PANELS if any(v is not None for row in grid.get(name) or [] for v in row)]
    fig = Figure(figsize=(6.5 * len(panels), 0.6 * len(grid["noise_stds"]) + 2.5))
    for ax, name in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels):
        draw_grid_panel(ax, grid, name, fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def draw_grid_panel(ax, grid: dict, name: str, fig) -> None:
    """One of `plot_grid`'s heatmaps (`GRID_PANELS`) on `ax`, with its colour bar on `fig`."""
    values = np.array([[np.nan if v is None else v for v in row] for row in grid[name]], dtype=float)
    im = ax.imshow(values, cmap="RdBu", vmin=-GRID_COLOUR_DB, vmax=GRID_COLOUR_DB)
    for (r, c), v in np.ndenumerate(values):
        label = "–" if np.isnan(v) else f"{v:+.2f}"
        if name == "model_minus_best_classic" and grid["best_classic"][r][c]:
            label += "\n" + LABELS.get(grid["best_classic"][r][c], grid["best_classic"][r][c])
        ax.text(c, r, label, ha="center", va="center", fontsize=7,
                color="white" if abs(np.nan_to_num(v)) > 0.6 * GRID_COLOUR_DB else "black")
        if name == "model_minus_identity" and v < grid["no_harm_db"]:
            ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2))
    ax.set_xticks(range(len(grid["blur_sigmas"])), [f"{b:g}" for b in grid["blur_sigmas"]])
    ax.set_yticks(range(len(grid["noise_stds"])), [f"{n:g}" for n in grid["noise_stds"]])
    ax.set_xlabel("blur σ (pixels)")
    ax.set_ylabel("noise σ")
    ax.set_title(GRID_PANELS[name] % grid["no_harm_db"] if "%" in GRID_PANELS[name] else GRID_PANELS[name],
                 fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8, label=f"dB (colours end at ±{GRID_COLOUR_DB:g})")


# ----------------------------------------------------------------- model cards
def reference_psnr(generator: nn.Module, card: dict) -> float:
    """PSNR of `generator` on the card's reference frame (a shipped image, path relative to the repository),
    degraded with the card's goal condition and the evaluation's per-image seed; the card records the
    value, and a test checks that the shipped weights still reach it."""
    ref = card["reference"]
    cfg = evaluation_config(Config.from_dict(card["config"]).replace(image_size=ref.get("image_size", 256),
                                                                     frame_size=ref.get("image_size", 256)))
    cfg = cfg.replace(**GOAL_CONDITIONS[ref["condition"]])
    path = PACKAGE_ROOT / ref["image"]
    clean = to_tensor(load_image(path, at_least=cfg.image_size), cfg.image_size, "crop", cfg.frame_size)[None]
    degraded = Degradation(cfg)(clean, keys=[path.name]).image
    restored, _ = run_gan(generator.eval(), degraded, "cpu")         # with the generator's guard, if any
    return float(psnr(restored, clean)[0])
