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
3. scoring (`scoring.score`): condition "all" applies all of ``cfg.degradations``
   together; with ``breakdown=True`` each one is also applied alone, to show
   where the GAN helps and where it does not. Named conditions (``conditions=``,
   e.g. `GOAL_CONDITIONS`: `evaluate_goals`) replace these: each is the task
   with some degradation settings overridden. Each degraded image is restored
   with the GAN and each baseline (`medgan_nb.evaluation.baselines`) and scored against the
   clean image with PSNR and SSIM (`medgan_nb.metrics`), timing every method.
   Where the data has lesion masks (`medgan_nb.data.mask_of`: Kvasir-SEG's
   polyps), PSNR and SSIM are also scored inside and outside the masks.
4. aggregation (`scoring.aggregate`, `aggregate_lesions`): mean, std and ms/image per
   condition and method.
5. writing (`write_results`): ``metrics.json`` (results, metadata),
   ``per_image.csv``, figures and ``report.md``, which says, from the numbers
   alone, where the GAN wins and where a baseline beats it (`summarize`).

`medgan_nb.evaluation.grid.evaluate_grid` scores a grid of fixed noise and blur strengths instead and
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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from .. import __version__
from ..config.config import Config
from ..data.datasets import (
    PACKAGE_ROOT,
    SYNTHETIC,
    ImageFolderDataset,
    SyntheticEndoscopyDataset,
    data_source,
    dataset_keys,
    default_dataset,
    mask_of,
)
from ..data.decode import load_image
from ..data.transforms import to_tensor
from ..degrade.pipeline import Degradation
from ..metrics import SSIM_DESCRIPTION, psnr
from ..models.build import resolve_device
from ..models.checkpoint import checkpoint_path, load_generator
from ..models.guard import Guard
from ..models.zoo import load_model
from ..utils.hardware import machine
from .baselines import BASELINES, FAST_BASELINES, missing_reason
from .conditions import GOAL_BASELINES, GOAL_CONDITIONS, build_degraders, evaluation_config
from .methods import run_gan
from .plots import plot_bars, plot_cases, plot_error_maps, plot_lesions
from .report import _best_baseline, report_markdown
from .scoring import LESION_MEASURES, MEASURES, Scores, aggregate, aggregate_lesions, score

log = logging.getLogger(__name__)
CSV_COLUMNS = ("condition", "method", "key", *MEASURES)
LESION_COLUMNS = ("condition", "method", "key", *LESION_MEASURES)


@dataclass
class Model:
    """The model under evaluation: its generator (None: baselines only), its training config, where it runs."""
    checkpoint: str | Path | None
    generator: nn.Module | None
    trained_cfg: Config | None
    device: str


def _set_up(checkpoint: str | Path | None, out_dir: str | Path, baselines: Sequence[str],
            device: str, model: str | None = None, guard: bool | Guard = True,
            gan_weight: float | None = None) -> tuple[Path, Model, list[str], dict[str, str]]:
    """Check the arguments before any slow work, then load the model (``guard=False``: without its guard; a
    `Guard`: with that one instead, e.g. on a training checkpoint, which carries none).

    Returns the output folder, the model, the baselines that can run here and the skipped ones with the
    reason (an optional package such as bm3d missing: skipped and said so, never a crash).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; evaluation never overwrites results. "
                              f"Choose another folder, e.g. medgan_nb.models.checkpoint.make_run_dir(base, name).")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    skipped = {b: reason for b in baselines if (reason := missing_reason(b))}
    for reason in dict.fromkeys(skipped.values()):
        log.warning("%s", reason)
    device = str(resolve_device(device))
    if model is not None and checkpoint is not None:
        raise ValueError("give a checkpoint or a shipped model, not both")
    if gan_weight is not None and model is None:
        raise ValueError("gan_weight needs a shipped GAN model (model='sharp')")
    if model is not None:
        generator, trained_cfg, _ = load_model(model, device, gan_weight=gan_weight)
    else:
        generator, trained_cfg = load_generator(checkpoint, device) if checkpoint is not None else (None, None)
    if generator is not None and not isinstance(guard, bool):
        generator.guard = guard
    elif generator is not None and not guard:
        generator.guard = None
    return out_dir, Model(checkpoint, generator, trained_cfg, device), \
        [b for b in baselines if b not in skipped], skipped


def _metadata(model: Model, cfg: Config, dataset: Dataset, source: str, data_dir: str | Path | None,
              split: str, methods: Sequence[str], skipped: dict[str, str], inputs_sha256: str,
              half: str = "all") -> dict:
    """What a reader needs to know of an evaluation: model, data, task, methods, machine, versions."""
    generator, trained = model.generator, model.trained_cfg
    return {
        "checkpoint": str(checkpoint_path(model.checkpoint).resolve()) if model.checkpoint is not None else None,
        "model": getattr(generator, "model_name", None),
        "checkpoint_sha256": generator.checkpoint_sha256 if generator is not None else None,
        "guard": g.to_dict() if (g := getattr(generator, "guard", None)) is not None else None,
        "trained_degradations": list(trained.degradations) if trained is not None else None,
        "data": source, "split": None if data_dir is not None else split, "half": half,
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


HALVES = ("all", "selection", "report")


def half_of(key: str | Path) -> str:
    """"report" if the SHA-256 of the file's name (not its folder) ends in an even hex digit, else "selection".

    A fixed division of any folder of frames into two halves of about equal size, which no model, seed or
    machine changes: recipes, checkpoints and thresholds are chosen on the selection half, and results that
    claim a goal are reported on the report half, which no choice has seen.
    """
    return "report" if int(hashlib.sha256(Path(key).name.encode()).hexdigest()[-1], 16) % 2 == 0 else "selection"


def in_half(dataset: Dataset, half: str) -> Dataset:
    """The images of `dataset` in `half` (one of `HALVES`); ValueError for another name or an empty half."""
    if half not in HALVES:
        raise ValueError(f"half must be one of {HALVES}, got {half!r}")
    if half == "all":
        return dataset
    keep = [i for i, key in enumerate(dataset_keys(dataset)) if half_of(key) == half]
    if not keep:
        raise ValueError(f"none of the {len(dataset)} images is in the {half} half")
    return Subset(dataset, keep)


# ----------------------------------------------------------------- evaluate
def evaluate(checkpoint: str | Path | None, out_dir: str | Path, *, cfg: Config | None = None,
             data_dir: str | Path | None = None, split: str = "test",
             baselines: Sequence[str] = FAST_BASELINES, breakdown: bool = True,
             conditions: dict[str, dict] | None = None,
             max_images: int | None = None, device: str = "auto", quiet: bool = False,
             model: str | None = None, guard: bool | Guard = True, gan_weight: float | None = None,
             half: str = "all") -> dict:
    """Score the checkpoint's generator (method "gan") and the baselines on degraded held-out images.

    checkpoint: a medgan_nb checkpoint (file or run folder), or None to evaluate the baselines only
        (or the shipped `model`, a name from ``python -m medgan_nb models``).
    out_dir: a new or empty folder for the results (use `medgan_nb.models.checkpoint.make_run_dir`).
    cfg: the task to score on (image size, data, degradations; see `evaluation_config`) instead of the
        checkpoint's; with neither, `Config()`'s (the original preset: 256², the original's four degradations).
    data_dir: score every image of this folder instead of a split of the default data.
    split: which split of the default data; "test" unless you really mean otherwise.
    baselines: names in `medgan_nb.evaluation.baselines.BASELINES`; by default the fast ones. "cbm3d" and
        "median_cbm3d" cost seconds per image; without the optional bm3d package they are skipped,
        and metrics.json and report.md say so.
    conditions: named conditions (name -> Config overrides of the degradation settings, e.g.
        `GOAL_CONDITIONS`) to score instead of "all" and the breakdown; the first one is shown in the figures.
    max_images: score an evenly spread subset of at most this many images (None: all).
    guard: apply the model's guard (`medgan_nb.models.guard`; shipped models have one), as `enhance` does; a `Guard`
        applies that one instead (training checkpoints carry none).
    gan_weight: with a shipped GAN `model`, interpolate it with its L1 parent (`medgan_nb.models.zoo.load_model`).
    half: with `data_dir`, "selection" or "report" scores only that half of the folder's images (`half_of`).
    Returns the dict written to metrics.json.
    """
    out_dir, model, runnable, skipped = _set_up(checkpoint, out_dir, baselines, device, model, guard, gan_weight)
    cfg, dataset, source = _evaluation_set(model, cfg, data_dir, split, max_images, half)
    methods = (["gan"] if model.generator is not None else []) + runnable
    degraders = build_degraders(cfg, conditions, breakdown)
    masks = dataset_masks(dataset)
    scores = score(dataset, degraders, methods, model.generator, model.device, cfg.batch_size, cfg.num_workers,
                   quiet, masks)
    metrics = {
        "metadata": _metadata(model, cfg, dataset, source, data_dir, split, methods, skipped, scores.inputs_sha256,
                              half),
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
                   device: str = "auto", quiet: bool = False, model: str | None = None, guard: bool | Guard = True,
                   gan_weight: float | None = None, half: str = "all") -> dict:
    """`evaluate` on the three goal conditions (`GOAL_CONDITIONS`: blur_noise, original, light), against
    every classic including CBM3D (seconds per image; skipped, and said so, without bm3d)."""
    return evaluate(checkpoint, out_dir, cfg=cfg, data_dir=data_dir, split=split, baselines=baselines,
                    conditions=GOAL_CONDITIONS, max_images=max_images, device=device, quiet=quiet, model=model,
                    guard=guard, gan_weight=gan_weight, half=half)


def _evaluation_set(model: Model, cfg: Config | None, data_dir: str | Path | None, split: str,
                    max_images: int | None, half: str = "all") -> tuple[Config, Dataset, str]:
    """The task's evaluation config, the images to score and a sentence saying what they are."""
    cfg = evaluation_config(cfg or model.trained_cfg)
    dataset, source = evaluation_data(cfg, data_dir, split, max_images, half)
    if model.trained_cfg is not None and data_dir is None:
        _warn_if_trained_on(dataset_keys(dataset), model.trained_cfg)
    return cfg, dataset, source


def dataset_masks(dataset: Dataset) -> list[torch.Tensor | None] | None:
    """The lesion mask of every image (`medgan_nb.data.mask_of`; None for an image without one), or None
    when no image has a mask."""
    masks = [mask_of(dataset, i) for i in range(len(dataset))]
    return masks if any(m is not None for m in masks) else None


def evaluation_data(cfg: Config, data_dir: str | Path | None = None, split: str = "test",
                    max_images: int | None = None, half: str = "all") -> tuple[Dataset, str]:
    """The clean images to score and a sentence saying what they are.

    cfg: from `evaluation_config`. data_dir: every readable image of that folder instead of a split (unreadable
    files are left out, and the sentence counts them; `ImageLoadError` when none can be read).
    half: with data_dir, "selection" or "report": only the images of that half (`half_of`: a fixed division by
    the file name, so that choices made on one half are reported on the other); "all": every image.
    max_images: an evenly spread subset of at most that many, so that every part of the
    data (embedded patches, synthetic frames) stays represented; None: all.
    """
    if data_dir is not None:              # a folder of the user's: unreadable files are left out and counted
        dataset: Dataset = ImageFolderDataset(data_dir, cfg.image_size, split=None, resize=cfg.resize, on_error="skip")
        skipped = f" ({len(dataset.skipped)} unreadable files left out)" if dataset.skipped else ""
        source = f"every image under {Path(data_dir)}{skipped}"
        if half != "all":
            dataset = in_half(dataset, half)
            source += f", its {half} half ({len(dataset)} images)"
    elif half != "all":
        raise ValueError(f"half={half!r} divides a folder of yours (data_dir); the default data has its own splits")
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
