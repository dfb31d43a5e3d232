"""Score the classical methods on the goal conditions once, for `publish_model.py` and `training_curve.py` to compare with.

    python scripts/score_classics.py output/eval-classics --data ../shared/data/kvasir-seg --images 36

Writes OUT/classics-<condition>/ (`evaluate` without a model: identity, median, Gaussian, NLM, TV, bilateral,
and CBM3D, or for the original's degradations a 3×3 median then CBM3D) on the Kvasir-SEG test split, the same
evenly spread frames at 256² and per-image seeds that the model cards use. CBM3D takes seconds per frame.
The publishing scripts check that a model was scored on the very same degraded inputs (``inputs_sha256``),
so rerun this whenever the degradation code changes the inputs, even by rounding.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from medgan_nb.config import Config
from medgan_nb.evaluation import FAST_BASELINES, GOAL_CONDITIONS, evaluate

STRONGEST = {"blur_noise": "cbm3d", "original": "median_cbm3d", "light": "cbm3d"}   # the goals' reference per condition


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="a new folder")
    p.add_argument("--data", default="../shared/data/kvasir-seg")
    p.add_argument("--images", type=int, default=36)
    p.add_argument("--conditions", nargs="+", default=list(GOAL_CONDITIONS), choices=list(GOAL_CONDITIONS))
    args = p.parse_args()
    task = Config.from_preset("realtime").replace(image_size=256, frame_size=256, data_dir=args.data)
    for cond in args.conditions:
        m = evaluate(None, args.out / f"classics-{cond}", cfg=task, split="test", max_images=args.images,
                     baselines=(*FAST_BASELINES, STRONGEST[cond]), conditions={cond: GOAL_CONDITIONS[cond]},
                     device="cpu", quiet=True)
        print(cond, {k: round(v["psnr_mean"], 2) for k, v in m["results"][cond].items()}, flush=True)


if __name__ == "__main__":
    main()
