"""A training checkpoint's scores on one split, guarded as the shipped models are: choose between stages on val.

    python scripts/split_scores.py output/runs/ship-realtime-l1e/checkpoints/best.pt --split val --out output/x

Scores the checkpoint (its EMA weights) with `medgan_nb.models.guard.Guard`'s default thresholds, the shipped cards'
guard, on every frame of the split at 256²: the three goal conditions (`evaluate_goals`, identity only: the
classics do not change between checkpoints) and the grid's noise-0 and noise-0.02 rows (`evaluate_grid`).
Prints each condition's mean PSNR, each grid cell's model − input and the frames the model harms there by more
than 0.1 dB. A shipped model is scored the same way with ``--model NAME`` instead of a checkpoint, with its
card's guard (``--default-guard``: with today's `Guard` defaults, before its card is measured again).
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from medgan_nb.models import load_generator
from medgan_nb.evaluation import evaluate_goals, evaluate_grid
from medgan_nb.models import Guard
from medgan_nb.models import load_model

NOISE_ROWS = (0.0, 0.02)


def harmed_frames(per_image_csv: Path, margin_db: float = 0.1) -> dict[str, list[tuple[str, float]]]:
    """Per grid cell, the frames whose model PSNR is more than `margin_db` below their input's."""
    rows = list(csv.DictReader(per_image_csv.open()))
    inputs = {(r["condition"], r["key"]): float(r["psnr"]) for r in rows if r["method"] == "identity"}
    harmed: dict[str, list[tuple[str, float]]] = {}
    for r in (r for r in rows if r["method"] == "gan"):
        diff = float(r["psnr"]) - inputs[(r["condition"], r["key"])]
        if diff < -margin_db:
            harmed.setdefault(r["condition"], []).append((Path(r["key"]).name, round(diff, 2)))
    return harmed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="?")
    p.add_argument("--model", help="a shipped model instead of a checkpoint")
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--data", default="../shared/data/kvasir-seg")
    p.add_argument("--out", type=Path, required=True, help="a new folder for the two evaluations")
    p.add_argument("--default-guard", action="store_true",
                   help="a shipped model with today's Guard defaults instead of its card's thresholds")
    args = p.parse_args()
    if (args.checkpoint is None) == (args.model is None):
        p.error("give a checkpoint or --model NAME")
    trained = load_model(args.model, "cpu")[1] if args.model else load_generator(args.checkpoint, "cpu")[1]
    task = trained.replace(image_size=256, frame_size=256, data_dir=args.data)
    # a training checkpoint carries no guard: give it the shipped cards'; a shipped model keeps its card's
    common = dict(cfg=task, split=args.split, baselines=("identity",), quiet=True, model=args.model,
                  guard=True if args.model and not args.default_guard else Guard())
    goals = evaluate_goals(args.checkpoint, args.out / "goals", **common)
    grid = evaluate_grid(args.checkpoint, args.out / "grid", noise_stds=NOISE_ROWS, **common)
    print(json.dumps({
        "checkpoint": args.checkpoint or args.model, "split": args.split, "guard": goals["metadata"]["guard"],
        "goals_psnr": {c: {m: round(v["psnr_mean"], 3) for m, v in ms.items()} for c, ms in goals["results"].items()},
        "grid_model_minus_input": {c: round(ms["gan"]["psnr_mean"] - ms["identity"]["psnr_mean"], 3)
                                   for c, ms in grid["results"].items()},
        "harmed_frames": harmed_frames(args.out / "grid" / "per_image.csv"),
    }, indent=1))


if __name__ == "__main__":
    main()
