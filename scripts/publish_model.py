"""Publish a trained run as a shipped model: weights + a model card whose every score is measured here.

    python scripts/publish_model.py output/runs/ship-realtime-l1 realtime --default \
        --classics output/eval --data ../shared/data/kvasir-seg --images 36 --grid-images 12

1. the run's best.pt (its EMA weights) -> medgan_nb/weights/<name>.safetensors (`save_model`);
2. `evaluate` on the three goal conditions, the real test split of `--data`, `--images` evenly spread frames at
   256² (the same frames and degraded inputs as the classics' runs in `--classics`, which `evaluate` checks
   by their `inputs_sha256`), lesion scores inside/outside the polyp masks, and the noise × blur grid;
3. ms per 256² frame per inference backend (`time_models.time_backends`: 2 threads, median of 30), the reference frame's PSNR (`reference_psnr`);
4. the card is rewritten with those numbers (the weights' bytes do not change).
"""
from __future__ import annotations

import argparse
import json
import platform
from datetime import date
from pathlib import Path

import torch

from medgan_nb.checkpoint import load_checkpoint, load_generator
from medgan_nb.config import Config
from medgan_nb.evaluate import GOAL_CONDITIONS, GRID_BASELINES, cpu_model, evaluate, evaluate_grid, reference_psnr
from medgan_nb.pretrained import load_model, model_card, save_model
from time_models import time_backends          # scripts/time_models.py (this script's folder is on sys.path)

REFERENCE = "data/kvasir-sample/images/cju14pxbaoksp0835qzorx6g6.jpg"     # a test-split frame that ships
LIMITATIONS = [
    "Trained on Kvasir-SEG colonoscopy frames only: other modalities, other scopes and other image scales "
    "are out of distribution.",
    "Degradations outside the training range (blur sigma > 2 px, noise std > 0.2, motion blur, JPEG, low "
    "light, glare) were not trained on; the model may leave them or make them worse.",
    "A restoration is an estimate: fine texture and small vessels can be smoothed away, and a colour shift "
    "or an invented detail is possible; the scores inside polyp masks are on the card, judge lesions on "
    "the original.",
    "A clean input is changed a little (see the grid's noise 0 / blur 0 cell).",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("name")
    p.add_argument("--default", action="store_true")
    p.add_argument("--summary", required=True)
    p.add_argument("--command", required=True, help="the command that trained the run")
    p.add_argument("--classics", type=Path, default=Path("output/eval"))
    p.add_argument("--data", default="../shared/data/kvasir-seg")
    p.add_argument("--images", type=int, default=36)
    p.add_argument("--grid-images", type=int, default=12)
    args = p.parse_args()
    best = args.run / "checkpoints" / "best.pt"
    state = load_checkpoint(best)
    generator, trained = load_generator(best)
    fields = {"summary": args.summary, "default": args.default, "training": training(args, state, trained),
              "limitations": LIMITATIONS}
    save_model(generator, trained, args.name, fields, overwrite=True)
    out = args.run / f"publish-{args.name}"
    task = trained.replace(image_size=256, frame_size=256, data_dir=args.data)
    scores = goal_scores(args, task, out)
    scores["grid"] = grid_scores(args, task, out)
    scores["speed"] = speed(args.name)
    card = model_card(args.name)
    reference = {"image": REFERENCE, "condition": "blur_noise", "image_size": 256}
    reference["psnr"] = round(reference_psnr(load_model(args.name)[0], {**card, "reference": reference}), 3)
    b = scores["goals"][0]
    scores["headline"] = {"blur+noise 0.075": f"{b['model']:.2f} dB (CBM3D {b['cbm3d']:.2f}, input {b['identity']:.2f})",
                          "ms per 256² frame": f"{scores['speed']['ms_per_frame']} ({scores['speed']['backend']}, 2 threads)"}
    save_model(generator, trained, args.name, {**fields, "scores": scores, "reference": reference}, overwrite=True)
    print(json.dumps(scores, indent=2))


def training(args, state: dict, cfg: Config) -> dict:
    started = (args.run / "config.json").stat().st_mtime
    ended = (args.run / "checkpoints" / "last.pt").stat().st_mtime
    return {"data": f"Kvasir-SEG train split ({args.data}; scenes kept on one side, medgan_nb.data.duplicate_groups)",
            "split": "train for training, val for choosing best.pt; scored on test",
            "degradations": {k: cfg.to_dict()[k] for k in ("degradations", "degradation_order", "degradation_p",
                                                          "blur_sigma", "blur_kernel", "noise_std", "noise_std_range",
                                                          "sp_amount", "sp_amount_range")},
            "recipe": ("L1 only (lambda_adv = 0: PSNR-oriented pre-training), Adam lr "
                       f"{cfg.lr_g:g} betas ({cfg.beta1}, {cfg.beta2}), EMA {cfg.ema_decay}, random {cfg.image_size}² "
                       f"crops at ×1-×2 of the 256² test scale, batch {cfg.batch_size}, residual output"
                       if cfg.lambda_adv == 0 else
                       f"GAN fine-tuning from {cfg.init_generator}: lambda_adv {cfg.lambda_adv}, lambda_l1 {cfg.lambda_l1}"),
            "weights": "EMA of G at the best validation epoch (best.pt)",
            "steps": state["step"], "epochs": state["epoch"],
            "wall_minutes": round((ended - started) / 60, 1),
            "machine": f"{cpu_model()}, 2 cores shared with other jobs, 1 torch thread, no GPU ({platform.platform()})",
            "command": args.command, "date": date.today().isoformat()}


def goal_scores(args, task: Config, out: Path) -> dict:
    """Model vs every classic on each goal condition (same frames and inputs as the classics' runs)."""
    rows, lesions = [], []
    for cond, over in GOAL_CONDITIONS.items():
        m = evaluate(None, out / cond, cfg=task, split="test", max_images=args.images, baselines=("identity",),
                     conditions={cond: over}, model=args.name, device="cpu", quiet=True)
        classics = json.loads((args.classics / f"classics-{cond}" / "metrics.json").read_text())
        if classics["metadata"]["inputs_sha256"] != m["metadata"]["inputs_sha256"]:
            raise SystemExit(f"{cond}: the classics were scored on other inputs; rerun them")
        row = {"condition": cond, "model": round(m["results"][cond]["gan"]["psnr_mean"], 2)}
        row.update({k: round(v["psnr_mean"], 2) for k, v in classics["results"][cond].items()})
        row["model_ssim"] = round(m["results"][cond]["gan"]["ssim_mean"], 3)
        row["model_ms"] = round(m["results"][cond]["gan"].get("ms_per_image", float("nan")), 1)
        rows.append(row)
        lesions.append(_lesions(cond, m, classics))
    return {"goals": rows, "lesions": lesions,
            "note": f"Kvasir-SEG test split, {args.images} evenly spread frames at 256² (shorter side scaled to "
                    f"256, centre crop), degraded with per-image seeds; PSNR dB; classics given the true noise std"}


def _lesions(cond: str, m: dict, classics: dict) -> dict:
    inside = {"condition": cond, "model_in": m["lesions"][cond]["gan"]["psnr_in_mean"],
              "model_out": m["lesions"][cond]["gan"]["psnr_out_mean"]}
    for method, v in classics["lesions"][cond].items():
        inside[f"{method}_in"] = v["psnr_in_mean"]
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in inside.items()}


def grid_scores(args, task: Config, out: Path) -> dict:
    grid = evaluate_grid(None, out / "grid", cfg=task, split="test", max_images=args.grid_images,
                         model=args.name, device="cpu", quiet=True)
    return {k: grid[k] for k in ("model_minus_identity", "model_minus_best_classic", "best_classic",
                                 "does_no_harm", "harmful_cells", "worst_cell")} | {
        "images": args.grid_images, "classics": list(GRID_BASELINES), "figure": str(out / "grid" / "grid.png")}


def speed(name: str) -> dict:
    """ms per 256² frame per inference backend (`time_models.time_backends`, 2 threads) and the fastest."""
    torch.set_num_threads(2)
    ms = time_backends(name)
    torch.set_num_threads(1)
    fastest = min(ms, key=ms.get)
    return {"ms_per_frame": ms[fastest], "backend": fastest, "backends_ms": ms, "threads": 2, "cpu": cpu_model(),
            "date": date.today().isoformat(),
            "note": "median of 30, batch 1, 256², BatchNorm folded (python scripts/time_models.py); the machine's "
                    "speed varies 2-4x with load"}


if __name__ == "__main__":
    main()
