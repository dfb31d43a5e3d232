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
   where the GAN helps and where it does not. Each degraded image is restored
   with the GAN and each baseline (`medgan_nb.baselines`) and scored against the
   clean image with PSNR and SSIM (`medgan_nb.metrics`), timing every method.
4. aggregation (`aggregate`): mean, std and ms/image per condition and method.
5. writing (`write_results`): ``metrics.json`` (results, metadata),
   ``per_image.csv``, figures and ``report.md``, which says, from the numbers
   alone, where the GAN wins and where a baseline beats it (`summarize`).

The reference levels of the original notebook (PSNR 25 dB "good", 30 dB
"excellent"; SSIM 0.85 / 0.90) are drawn and quoted as context, never as
pass/fail: what is reachable depends on the images and the degradation strength.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
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
from .baselines import BASELINES
from .checkpoint import checkpoint_path, load_generator
from .config import DEGRADATION_SETS, Config
from .data import (ImageFolderDataset, SyntheticEndoscopyDataset, dataset_keys, default_dataset, from_numpy_images,
                   to_numpy_images)
from .degrade import Degradation
from .metrics import SSIM_DESCRIPTION, psnr, ssim
from .models import resolve_device
from .viz import image_grid

log = logging.getLogger(__name__)

EVAL_SEED = 0                   # seeds the synthetic test frames and every image's degradation
EVAL_SYNTHETIC_FRAMES = 1000    # synthetic frames of all splits together, as the seed preset: 100 test frames
REFERENCE_PSNR = {"good": 25.0, "excellent": 30.0}     # dB, the original notebook's levels
REFERENCE_SSIM = {"good": 0.85, "excellent": 0.90}
LABELS = {"gan": "the GAN", "identity": "identity", "median": "median", "gaussian": "Gaussian",
          "nlm": "NLM", "tv": "TV", "bilateral": "bilateral"}
CSV_COLUMNS = ("condition", "method", "key", "psnr", "ssim")
PSNR_CAP = 100.0        # dB; identical images have infinite PSNR, which would make every mean infinite
ERROR_QUANTILE = 0.99   # the error maps' colour scale ends at this quantile: a few salt-and-pepper specks aside

Row = tuple[str, str, str, float, float]      # condition, method, key, PSNR, SSIM


def conditions_of(cfg: Config, breakdown: bool = True) -> dict[str, tuple[str, ...]]:
    """Condition name -> degradations applied: "all" of cfg.degradations, then (breakdown) each one alone,
    plus each of the original's four (noise, salt-and-pepper, blur, colour jitter) that training left out."""
    conditions = {"all": tuple(cfg.degradations)}
    if breakdown:
        for name in dict.fromkeys([*cfg.degradations, *DEGRADATION_SETS["seed"]]):
            if len(cfg.degradations) > 1 or name not in cfg.degradations:
                conditions[name] = (name,)
    return conditions


# ------------------------------------------------------------------ restoring
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def run_gan(generator: nn.Module, degraded: torch.Tensor, device: str) -> tuple[torch.Tensor, float]:
    """Restore a batch (N, 3, H, W) in [-1, 1] with the generator; (output on the CPU, seconds for the batch)."""
    x = degraded.to(device)
    with torch.inference_mode():
        _sync(device)
        start = time.perf_counter()
        y = generator(x)
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


def _restore(method: str, degraded: torch.Tensor, params: dict, generator: nn.Module | None,
             device: str) -> torch.Tensor:
    """One method's output for a batch, untimed (for the figures)."""
    if method == "gan":
        return run_gan(generator, degraded, device)[0]
    return run_baseline(method, degraded, params.get("noise_std"))[0]


# ----------------------------------------------------------------- evaluate
def evaluate(checkpoint: str | Path | None, out_dir: str | Path, *, cfg: Config | None = None,
             data_dir: str | Path | None = None, split: str = "test",
             baselines: Sequence[str] = tuple(BASELINES), breakdown: bool = True,
             max_images: int | None = None, device: str = "auto", quiet: bool = False) -> dict:
    """Score the checkpoint's generator (method "gan") and the baselines on degraded held-out images.

    checkpoint: a medgan_nb checkpoint (file or run folder), or None to evaluate the baselines only.
    out_dir: a new or empty folder for the results (use `medgan_nb.checkpoint.make_run_dir`).
    cfg: the task to score on (image size, data, degradations; see `evaluation_config`) instead of the
        checkpoint's; with neither, `Config()`'s (the seed preset: 256², the original's four degradations).
    data_dir: score every image of this folder instead of a split of the default data.
    split: which split of the default data; "test" unless you really mean otherwise.
    max_images: score an evenly spread subset of at most this many images (None: all).
    Returns the dict written to metrics.json.
    """
    # 1. set-up: check the arguments before any slow work, load the model
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; evaluation never overwrites results. "
                              f"Choose another folder, e.g. medgan_nb.checkpoint.make_run_dir(base, name).")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    device = str(resolve_device(device))
    generator, trained_cfg = load_generator(checkpoint, device) if checkpoint is not None else (None, None)

    # 2. the data: a fixed evaluation set of the task
    cfg = evaluation_config(cfg or trained_cfg)
    dataset, source = evaluation_data(cfg, data_dir, split, max_images)
    if trained_cfg is not None and data_dir is None:
        _warn_if_trained_on(dataset_keys(dataset), trained_cfg)

    # 3. scoring every condition with every method
    methods = (["gan"] if generator is not None else []) + list(baselines)
    conditions = conditions_of(cfg, breakdown)
    degraders = {c: Degradation(cfg, names) for c, names in conditions.items()}
    rows, seconds, inputs_sha256 = score(dataset, degraders, methods, generator, device,
                                         cfg.batch_size, cfg.num_workers, quiet)

    # 4. aggregation, with everything a reader needs to know what was measured
    metrics = {
        "metadata": {
            "checkpoint": str(checkpoint_path(checkpoint).resolve()) if generator is not None else None,
            "checkpoint_sha256": generator.checkpoint_sha256 if generator is not None else None,
            "trained_degradations": list(trained_cfg.degradations) if trained_cfg is not None else None,
            "data": source, "split": None if data_dir is not None else split,
            "data_dir": str(data_dir) if data_dir is not None else cfg.data_dir,
            "n_images": len(dataset), "image_size": cfg.image_size,
            "degradations": list(cfg.degradations), "degradation_order": cfg.degradation_order,
            "inputs_sha256": inputs_sha256,
            "methods": methods, "nlm_noise_std": "oracle (the noise std drawn for each image) when noise is applied",
            "ssim": SSIM_DESCRIPTION,
            "device": device, "medgan_nb_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": cfg.to_dict(),
        },
        "conditions": {c: list(names) for c, names in conditions.items()},
        "results": aggregate(rows, seconds),
    }

    # 5. metrics.json, per_image.csv, figures, report.md
    write_results(out_dir, metrics, rows, dataset, degraders["all"], generator, device)
    if not quiet:
        print(f"evaluation written to {out_dir}")
    return metrics


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
        origin = f"the folder {cfg.data_dir}" if cfg.data_dir else \
            "the default data (scikit-image fundus/histology patches + synthetic endoscopy frames)"
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
    if trained.data_dir:
        return
    seen = set()
    for split, share in zip(("train", "val"), trained.split_ratios):
        first = trained.seed + SyntheticEndoscopyDataset.SPLIT_OFFSET[split]
        seen.update(f"synthetic/{first + i}" for i in range(round(trained.synthetic_frames * share)))
    overlap = [k for k in keys if k in seen]
    if overlap:
        log.warning("%d evaluation frames (e.g. %s) are among the training or validation frames of this "
                    "model (its seed %d): its scores on them may be inflated", len(overlap), overlap[0], trained.seed)


def score(dataset: Dataset, degraders: dict[str, Degradation], methods: Sequence[str],
          generator: nn.Module | None, device: str, batch_size: int = 4, num_workers: int = 0,
          quiet: bool = False) -> tuple[list[Row], dict[tuple[str, str], float], str]:
    """Degrade, restore and score every image under every condition with every method.

    Returns the per-image rows, the seconds spent per (condition, method), and ``inputs_sha256``: a SHA-256
    of the keys and the float32 bytes of the clean and degraded images of condition "all", in order. Equal
    fingerprints mean two evaluations scored the very same inputs.
    """
    rows: list[Row] = []
    seconds = {(c, m): 0.0 for c in degraders for m in methods}
    inputs = hashlib.sha256()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    warmed = False
    for clean, keys in tqdm(loader, desc="evaluating", unit="batch", disable=quiet):
        keys = list(keys)
        for cond, degrade in degraders.items():
            d = degrade(clean, keys=keys)          # on the CPU, seeded per key: identical in every run
            if cond == "all":
                for key, x, y in zip(keys, clean, d.image):
                    inputs.update(key.encode("utf-8", "surrogateescape") + b"\0")
                    inputs.update(x.float().contiguous().numpy().tobytes())
                    inputs.update(y.float().contiguous().numpy().tobytes())
            for method in methods:
                if method == "gan":
                    if not warmed:                 # the first call pays for allocation/cuDNN set-up
                        run_gan(generator, d.image, device)
                        warmed = True
                    y, dt = run_gan(generator, d.image, device)
                else:
                    y, per_image = run_baseline(method, d.image, d.params.get("noise_std"))
                    dt = sum(per_image)
                seconds[cond, method] += dt
                for key, p, s in zip(keys, psnr(y, clean), ssim(y, clean)):
                    rows.append((cond, method, key, min(float(p), PSNR_CAP), float(s)))
    return rows, seconds, inputs.hexdigest()


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


def write_results(out_dir: Path, metrics: dict, rows: Sequence[Row], dataset: Dataset, degrade: Degradation,
                  generator: nn.Module | None, device: str) -> None:
    """Write metrics.json, per_image.csv, the figures and report.md into out_dir.

    The figures show the GAN, or without one the baseline with the highest mean PSNR on "all".
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with open(out_dir / "per_image.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    plot_bars(metrics, out_dir / "psnr_ssim_bars.png")
    shown = "gan" if generator is not None else _best_baseline(metrics["results"]["all"])
    if shown is not None:
        plot_cases(dataset, rows, shown, degrade, generator, device, out_dir / "cases.png")
        plot_error_maps(dataset, shown, degrade, generator, device, out_dir / "error_maps.png")
    (out_dir / "report.md").write_text(report_markdown(metrics, shown))


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
    return f"On {cond}"


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
        if trained is not None and cond != "all" and cond not in trained:
            where += " (not part of this model's training degradations)"
        p = {m: s["psnr_mean"] for m, s in methods.items()}
        best = _best_baseline({m: s for m, s in methods.items() if m != "gan"})
        best = best if best != "identity" else None
        ident = f"the degraded input ({p['identity']:.2f} dB)" if "identity" in p else None
        if "gan" in p:
            line = f"{where}, the GAN reaches {p['gan']:.2f} dB"
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
                    line += (f"; {LABELS.get(best, best)} beats the GAN by {-diff:.2f} dB "
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


# ------------------------------------------------------------------ report
def report_markdown(metrics: dict, shown: str | None = None) -> str:
    """The text of report.md: what was evaluated, the summary, a table per condition, the figures."""
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
        f"- **Methods:** {', '.join(meta['methods'])}."
        + (" NLM is given each image's true noise level when noise is applied (an oracle the GAN does not get)."
           if "nlm" in meta["methods"] else "")
        + f" **Metrics:** PSNR on images in [0, 1]; SSIM {meta['ssim']}.",
        f"- **Device:** {meta['device']}; medgan_nb {meta['medgan_nb_version']}; {meta['created']}", "",
    ]
    if meta.get("split") not in (None, "test"):
        lines += [f"> **Warning:** these are {meta['split']!r} images, not the held-out test split; "
                  "scores on images a model trained on are inflated.", ""]
    lines += ["## Summary", ""] + [f"- {s}" for s in summarize(metrics)] + [
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
    lines += ["## Figures", "", "![PSNR and SSIM by method and condition](psnr_ssim_bars.png)", ""]
    if shown is not None:
        lines += [f"Best, median and worst images for {shown} on all degradations (degraded | {shown} | clean):",
                  "", "![best, median and worst cases](cases.png)", "",
                  f"Absolute error against the clean image, degraded input vs {shown}, for the first "
                  f"{min(3, meta['n_images'])} images; the colour scale ends at the {100 * ERROR_QUANTILE:.0f}th "
                  "percentile of these errors, so the few brighter pixels (salt-and-pepper specks) are clipped:",
                  "",
                  "![error maps](error_maps.png)", ""]
    return "\n".join(lines)


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
               device: str, path: str | Path) -> Path:
    """Best, median and worst images of `method` on "all" by PSNR: degraded | output | clean."""
    scored = sorted(((r[3], r[2]) for r in rows if r[0] == "all" and r[1] == method), reverse=True)
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
