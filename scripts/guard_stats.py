"""What the noise guard measures on a split: the input's noise estimate and the model's correction, per condition.

    python scripts/guard_stats.py output/runs/ship-realtime-l1e/checkpoints/best.pt --split val
    python scripts/guard_stats.py output/runs/ship-realtime-l1e/checkpoints/best.pt --split train --every 5

`medgan_nb.guard.Guard`'s thresholds must sit between the clean frames (which should pass unchanged: noise
estimate below `below`, correction below `change_below`) and the degraded ones that read as weakly noisy,
above all the original's order, noise blurred after it was added (which should get the whole correction: a
correction, measured by `Guard.change_stat`, of at least `change_full`). This prints, per condition, the
range and quantiles of both numbers, and how many images the current thresholds treat wrongly. Choose
thresholds on the validation and training splits; the test split only scores them.
"""
from __future__ import annotations

import argparse
import json

import torch

from medgan_nb.checkpoint import load_generator
from medgan_nb.degrade import Degradation
from medgan_nb.evaluate import GOAL_CONDITIONS, evaluation_config, evaluation_data
from medgan_nb.guard import Guard


def _summary(v: torch.Tensor) -> dict[str, float]:
    q = torch.quantile(v, torch.tensor([0.0, 0.05, 0.5, 0.95, 1.0]))
    return dict(zip(("min", "q05", "median", "q95", "max"), (round(float(x), 4) for x in q)))


def stats(checkpoint: str, split: str, data: str, guard: Guard, batch: int = 12, every: int = 1) -> dict:
    generator, trained = load_generator(checkpoint, "cpu")
    cfg = evaluation_config(trained.replace(image_size=256, frame_size=256, data_dir=data))
    dataset, _ = evaluation_data(cfg, split=split)
    items = [dataset[j] for j in range(0, len(dataset), every)]    # decoded once, for every condition
    clean, keys = torch.stack([x for x, _ in items]), [k for _, k in items]
    out = {}
    for name, over in {"clean": None, **GOAL_CONDITIONS}.items():
        degrade = None if over is None else Degradation(cfg.replace(**over))
        parts = []
        for i in range(0, len(clean), batch):
            x = clean[i:i + batch] if degrade is None else degrade(clean[i:i + batch], keys=keys[i:i + batch]).image
            with torch.inference_mode():
                parts.append(guard.measure(x, generator(x)))
        m = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        sigma, change, strength = m["noise_level"], m["change"], m["strength"]
        wrong = int((strength > 0).sum()) if name == "clean" else int((strength < 1).sum())
        out[name] = {"images": len(sigma), "noise_level": _summary(sigma), "change": _summary(change),
                     "treated_wrongly": wrong,
                     "change_where_noise_reads_low": _summary(change[sigma < guard.full]) if (sigma < guard.full).any()
                     else None}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--data", default="../shared/data/kvasir-seg")
    p.add_argument("--every", type=int, default=1, help="use every k-th frame of the split (e.g. 5 on train)")
    args = p.parse_args()
    guard = Guard()
    result = stats(args.checkpoint, args.split, args.data, guard, every=args.every)
    print(json.dumps({"checkpoint": args.checkpoint, "split": args.split, "every": args.every, "guard": guard.to_dict(),
                      "note": "treated_wrongly: clean images the guard changes; degraded ones it does not give the "
                              "whole correction", **result}, indent=1))


if __name__ == "__main__":
    main()
