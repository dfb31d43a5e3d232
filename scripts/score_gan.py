"""Score a GAN model against its L1 parent by what a GAN is for: sharpness, naturalness, lesions, other centres.

    python scripts/score_gan.py sharp --data ../shared/data/kvasir-seg --centres ../shared/data/polypgen-eval \
        --images 36 --out output/score-sharp

All at 256², the blur + noise goal condition (blur sigma 0.5-1.5 + noise 0.075), with the shipped guard, as
`enhance` runs them:

1. Kvasir-SEG's test split (`--images` evenly spread frames): the L1 parent with every classic (CBM3D too), and
   the GAN model at each ``--gan-weights`` value on the very same degraded inputs (checked by ``inputs_sha256``):
   PSNR, SSIM, the sharpness ratios and the naturalness score, and the clean frames' own naturalness (so for
   each set of frames below).
2. Lesions (the test split's polyp masks): per image, the GAN model's PSNR loss against its parent inside the mask
   minus the loss outside it, with a 95 % bootstrap interval of the mean
   (`medgan_nb.evaluation.report.mean_interval`: ``scipy.stats.bootstrap``, 10,000 resamples); the gradient
   energy inside the mask and the high-frequency power in its box against the clean frame's (both from
   lesions.csv); lesions.png (parent | GAN | clean).
3. Each centre folder under ``--centres`` (e.g. PolypGen C1-C3): its *report* half only
   (`medgan_nb.evaluation.half_of`; the other half is for choices), the parent with every classic, the GAN at
   gan weights 0.5 and 1.
4. perception_distortion.png: every method of step 1 on the perception-distortion plane, the gan-weight curve joined.

Writes scores.json and the figures into `--out` (a new folder); the evaluations' own folders are kept beside them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from medgan_nb.config import Config
from medgan_nb.degrade.pipeline import Degradation
from medgan_nb.evaluation import GOAL_BASELINES, GOAL_CONDITIONS, evaluate, evaluation_config
from medgan_nb.evaluation.core import dataset_masks, evaluation_data
from medgan_nb.evaluation.methods import run_gan
from medgan_nb.evaluation.report import mean_interval
from medgan_nb.evaluation.scoring import MEASURES as SCORED
from medgan_nb.figures.gan import lesion_comparison_figure, perception_distortion_figure
from medgan_nb.models import load_model, model_card
from medgan_nb.naturalness import load_naturalness
from medgan_nb.utils.files import refuse_existing

CONDITION = "blur_noise"
MEASURES = tuple(f"{m}_mean" for m in SCORED)          # the means `evaluate` reports of every measure


def _measures(stats: dict) -> dict:
    return {k: round(stats[k], 4) if stats.get(k) is not None else None for k in MEASURES}


def _evaluate(out: Path, name: str, task: Config, **kwargs) -> dict:
    return evaluate(None, out / name, cfg=task, conditions={CONDITION: GOAL_CONDITIONS[CONDITION]}, quiet=True,
                    device="cpu", **kwargs)


def score_set(out: Path, label: str, model: str, parent: str, weights: list[float], task: Config, **data) -> dict:
    """The parent with every classic, then the GAN model at each gan weight, on the same inputs; the clean
    frames' own naturalness score."""
    base = _evaluate(out, f"{label}-{parent}", task, model=parent, baselines=GOAL_BASELINES, **data)
    fingerprint = base["metadata"]["inputs_sha256"]
    methods = {("input" if m == "identity" else parent if m == "gan" else m): _measures(s)
               for m, s in base["results"][CONDITION].items()}
    for a in weights:
        m = _evaluate(out, f"{label}-{model}-{a:g}", task, model=model, gan_weight=a, baselines=(), **data)
        if m["metadata"]["inputs_sha256"] != fingerprint:
            raise SystemExit(f"{label}: the GAN model scored other inputs than its parent")
        methods[f"{model} (gan weight {a:g})"] = _measures(m["results"][CONDITION]["gan"])
    dataset, _ = evaluation_data(evaluation_config(task), **data)
    clean = torch.stack([dataset[i][0] for i in range(len(dataset))])
    return {"n_images": base["metadata"]["n_images"], "inputs_sha256": fingerprint, "methods": methods,
            "skipped": base["metadata"]["skipped"],
            "clean_naturalness": round(float(np.nanmean(load_naturalness().score(clean))), 4)}


def lesions(out: Path, model: str, parent: str, task: Config, images: int) -> dict:
    """Paired PSNR loss inside vs outside the polyp masks and the detail kept on them, from the evaluations'
    lesions.csv; lesions.png (parent | GAN | clean crops of the first 4 lesions)."""
    rows = {}
    for name in (parent, f"{model}-1"):
        path = out / f"kvasir-{name}" / "lesions.csv"
        for r in np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="utf-8"):
            if r["method"] == "gan" and r["condition"] == CONDITION:
                rows.setdefault(str(r["key"]), {})[name] = r
    both = [v for v in rows.values() if len(v) == 2 and np.isfinite(v[parent]["psnr_in"])]
    pairs = np.array([(v[parent]["psnr_in"] - v[f"{model}-1"]["psnr_in"],
                       v[parent]["psnr_out"] - v[f"{model}-1"]["psnr_out"]) for v in both])
    diff = pairs[:, 0] - pairs[:, 1]                # > 0: the GAN loses more inside the polyp than outside it
    low, high = mean_interval(diff)
    detail = {f"{m}_mean": {n: round(float(np.nanmean([v[key][m] for v in both])), 3)
                            for n, key in ((parent, parent), (model, f"{model}-1"))}
              for m in ("grad_ratio_in", "hf_ratio_box")}

    scored = evaluation_config(task)                 # the evaluation's images and per-image degradations
    dataset, _ = evaluation_data(scored, split="test", max_images=images)
    masks = dataset_masks(dataset)
    picks = [i for i, m in enumerate(masks) if m is not None and bool(torch.as_tensor(m).any())][:4]
    clean = torch.stack([dataset[i][0] for i in picks])
    keys = [dataset[i][1] for i in picks]
    degraded = Degradation(scored.replace(**GOAL_CONDITIONS[CONDITION]))(clean, keys=keys).image
    outputs = {name: run_gan(load_model(name)[0], degraded, "cpu")[0] for name in (parent, model)}
    fig = lesion_comparison_figure(clean, outputs, [masks[i] for i in picks], keys)
    fig.savefig(out / "lesions.png", dpi=110)
    return {"n_images": len(diff),
            "psnr_loss_inside_mean": round(float(pairs[:, 0].mean()), 3),
            "psnr_loss_outside_mean": round(float(pairs[:, 1].mean()), 3),
            "inside_minus_outside_mean": round(float(diff.mean()), 3),
            "inside_minus_outside_ci95": [round(low, 3), round(high, 3)], **detail}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a shipped GAN model (its card names its l1_parent)")
    p.add_argument("--data", required=True, help="Kvasir-SEG (its test split is scored)")
    p.add_argument("--centres", type=Path, help="a folder of centre folders of clean frames (e.g. PolypGen)")
    p.add_argument("--images", type=int, default=36)
    p.add_argument("--centre-images", type=int, help="score at most this many frames of each centre's report half")
    p.add_argument("--gan-weights", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    refuse_existing([args.out], "choose another --out")
    parent = model_card(args.model)["l1_parent"]
    if not parent:
        raise SystemExit(f"{args.model} has no l1_parent in its card")
    task = Config.from_dict(model_card(parent)["config"]).replace(image_size=256, frame_size=256, data_dir=args.data,
                                                                  init_generator=None)
    args.out.mkdir(parents=True)
    scores = {"condition": CONDITION, "model": args.model, "l1_parent": parent,
              "kvasir_test": score_set(args.out, "kvasir", args.model, parent, args.gan_weights, task,
                                       split="test", max_images=args.images)}
    scores["lesions"] = lesions(args.out, args.model, parent, task, args.images)
    if args.centres:
        scores["centres"] = {c.name: score_set(args.out, c.name, args.model, parent, [0.5, 1.0], task,
                                               data_dir=c, half="report", max_images=args.centre_images)
                             for c in sorted(d for d in args.centres.iterdir() if d.is_dir())}
    k = scores["kvasir_test"]
    curve = [parent, *(f"{args.model} (gan weight {a:g})" for a in args.gan_weights)]
    fig = perception_distortion_figure(k["methods"], curve, k["clean_naturalness"],
                                       f"Kvasir-SEG test, {k['n_images']} frames, blur + noise, 256²")
    fig.savefig(args.out / "perception_distortion.png", dpi=110)
    (args.out / "scores.json").write_text(json.dumps(scores, indent=1) + "\n")
    print(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main()
