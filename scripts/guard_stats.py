"""What the noise guard measures on a split: the input's noise estimate and the model's correction, per condition.

    python scripts/guard_stats.py output/runs/ship-realtime-l1e/checkpoints/best.pt --split val
    python scripts/guard_stats.py output/runs/ship-realtime-l1e/checkpoints/best.pt --split train --every 5
    python scripts/guard_stats.py --model realtime --split train --crop centre

`medgan_nb.models.guard.Guard`'s thresholds must sit between the clean frames (which should pass unchanged: noise
estimate below `below`, correction below `change_below`) and the degraded ones that read as weakly noisy,
above all the original's order, noise blurred after it was added (which should get the whole correction: a
correction, measured by `Guard.change_stat`, of at least `change_full`). This prints, per condition, the
range and quantiles of both numbers, and how many images the current thresholds treat wrongly. Choose
thresholds on the validation and training splits; the test split only scores them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from medgan_nb.models import load_generator
from medgan_nb.degrade import Degradation
from medgan_nb.evaluation import GOAL_CONDITIONS, evaluation_config, evaluation_data
from medgan_nb.models import Guard
from medgan_nb.models import load_model


def _summary(v: torch.Tensor) -> dict[str, float]:
    q = torch.quantile(v, torch.tensor([0.0, 0.05, 0.5, 0.95, 1.0]))
    return dict(zip(("min", "q05", "median", "q95", "max"), (round(float(x), 4) for x in q)))


def _largest(keys: list, change: torch.Tensor, sigma: torch.Tensor, top: int) -> list[tuple[str, float, float]]:
    """The `top` images with the largest corrections: (file name, correction, noise estimate), largest first."""
    return [(Path(str(keys[i])).name, round(float(change[i]), 5), round(float(sigma[i]), 5))
            for i in change.argsort(descending=True)[:top]]


def stats(checkpoint: str | None, split: str, data: str, guard: Guard, batch: int = 12, every: int = 1,
          model: str | None = None, crop: str = "random", top: int = 5) -> dict:
    """Per condition: the quantiles of the noise estimate and the correction, the images treated wrongly, and
    the `top` largest corrections of clean images (key, change, noise estimate).

    model: a shipped model instead of a checkpoint. crop: training frames as random crops (seeded: the same
    crops every run) or their centre crops, as val and test see them.
    """
    generator, trained = load_model(model, "cpu")[:2] if model else load_generator(checkpoint, "cpu")
    cfg = evaluation_config(trained.replace(image_size=256, frame_size=256, data_dir=data,
                                            train_crop="random" if crop == "random" else "none"))
    torch.manual_seed(0)                                          # the random crops of the training split
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
                     "treated_wrongly": wrong, **({"largest_changes": _largest(keys, change, sigma, top)}
                                                  if name == "clean" else {}),
                     "change_where_noise_reads_low": _summary(change[sigma < guard.full]) if (sigma < guard.full).any()
                     else None}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="?")
    p.add_argument("--model", help="a shipped model instead of a checkpoint")
    p.add_argument("--crop", default="random", choices=("random", "centre"),
                   help="training frames: seeded random crops as training sees them, or centre crops as val/test")
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--data", default="../shared/data/kvasir-seg")
    p.add_argument("--every", type=int, default=1, help="use every k-th frame of the split (e.g. 5 on train)")
    args = p.parse_args()
    if (args.checkpoint is None) == (args.model is None):
        p.error("give a checkpoint or --model NAME")
    guard = Guard()
    result = stats(args.checkpoint, args.split, args.data, guard, every=args.every, model=args.model, crop=args.crop)
    print(json.dumps({"checkpoint": args.checkpoint or args.model, "split": args.split, "every": args.every,
                      "crop": args.crop if args.split == "train" else "centre", "guard": guard.to_dict(),
                      "note": "treated_wrongly: clean images the guard changes; degraded ones it does not give the "
                              "whole correction", **result}, indent=1))


if __name__ == "__main__":
    main()
