"""A checkpoint's PSNR on the three goal conditions and inside the polyp masks, model only (no classics):
the same 256² test frames and per-image seeds as the model cards' scores, in a minute or two.

    python scripts/score_goals.py output/runs/ship-realtime-log/checkpoints/best.pt output/eval/rt-log [--images 36]

For comparing training runs before publishing one (`publish_model.py` adds every classic and the grid).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from medgan_nb.models import load_checkpoint
from medgan_nb.config import Config
from medgan_nb.evaluation import GOAL_CONDITIONS, evaluate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("out", type=Path, help="a new folder for the evaluations")
    p.add_argument("--images", type=int, default=36)
    p.add_argument("--data", default="../shared/data/kvasir-seg")
    args = p.parse_args()
    cfg = Config.from_dict(load_checkpoint(args.checkpoint)["config"])
    task = cfg.replace(image_size=256, frame_size=256, data_dir=args.data)
    scores = {}
    for cond, over in GOAL_CONDITIONS.items():
        m = evaluate(args.checkpoint, args.out / cond, cfg=task, split="test", max_images=args.images,
                     baselines=("identity",), conditions={cond: over}, device="cpu", quiet=True)
        scores[cond] = round(m["results"][cond]["gan"]["psnr_mean"], 3)
        if m.get("lesions"):
            scores[f"{cond}_lesion_in"] = round(m["lesions"][cond]["gan"]["psnr_in_mean"], 3)
    print(json.dumps({"checkpoint": str(args.checkpoint), **scores}))


if __name__ == "__main__":
    main()
