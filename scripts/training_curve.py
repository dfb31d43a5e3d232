"""Goal-condition PSNR of a run's kept checkpoints against training time: is more training worth it?

    python scripts/training_curve.py output/runs/ship-realtime-l1 output/runs/ship-quality-l1 \
        --classics output/eval-classics --out docs/training-curve.png

Each epoch_NNN.pt (its EMA) restores the same degraded test frames as the classics' run of the
blur + noise condition (checked by inputs_sha256); the time axis is the checkpoint file's age since the
run's config.json was written (wall clock on a shared machine, so only roughly CPU time). A run that
started from another run's checkpoint (``init_generator``) continues that run's axes: its minutes and
epochs count from the checkpoint's. ``--reuse FILE.json`` takes the points of runs already in an earlier
output instead of scoring their checkpoints again.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from medgan_nb.models import load_checkpoint
from medgan_nb.config import Config
from medgan_nb.evaluation import GOAL_CONDITIONS, evaluate

CONDITION = "blur_noise"


def _start(run: Path) -> tuple[float, int]:
    """(minutes, epochs) already behind a run at its start: those of its init_generator checkpoint, if any."""
    init = json.loads((run / "config.json").read_text()).get("init_generator")
    if not init:
        return 0.0, 0
    parent = Path(init).parents[1]
    before, epochs = _start(parent)
    minutes = (Path(init).stat().st_mtime - (parent / "config.json").stat().st_mtime) / 60
    return before + minutes, epochs + int(load_checkpoint(init)["epoch"])


def curve(run: Path, classics: dict, data: str, images: int, every: int) -> list[tuple[float, int, float]]:
    start = (run / "config.json").stat().st_mtime
    before_min, before_epochs = _start(run)
    points = []
    kept = sorted(run.glob("checkpoints/epoch_*.pt"))
    for path in kept[every - 1::every] if len(kept) > every else kept:
        cfg = Config.from_dict(load_checkpoint(path)["config"]).replace(image_size=256, frame_size=256, data_dir=data)
        m = evaluate(path, Path(tempfile.mkdtemp()) / "e", cfg=cfg, split="test", max_images=images, device="cpu",
                     conditions={CONDITION: GOAL_CONDITIONS[CONDITION]}, baselines=("identity",), quiet=True)
        if m["metadata"]["inputs_sha256"] != classics["metadata"]["inputs_sha256"]:
            raise SystemExit(f"{path}: other inputs than the classics' run")
        minutes = before_min + (path.stat().st_mtime - start) / 60
        points.append((round(minutes, 1), before_epochs + int(path.stem.split("_")[1]),
                       round(m["results"][CONDITION]["gan"]["psnr_mean"], 3)))
        print(run.name, points[-1], flush=True)
    return points


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--classics", type=Path, default=Path("output/eval-classics"))
    p.add_argument("--data", default="../shared/data/kvasir-seg")
    p.add_argument("--images", type=int, default=36)
    p.add_argument("--every", type=int, default=2, help="use every k-th kept checkpoint")
    p.add_argument("--out", type=Path, default=Path("docs/training-curve.png"))
    p.add_argument("--reuse", type=Path, help="an earlier output .json: its runs' points are not scored again")
    args = p.parse_args()
    torch.set_num_threads(1)
    classics = json.loads((args.classics / f"classics-{CONDITION}" / "metrics.json").read_text())
    earlier = json.loads(args.reuse.read_text()) if args.reuse else {}
    curves = {run.name: earlier.get(run.name) or curve(run, classics, args.data, args.images, args.every)
              for run in args.runs}
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, points in curves.items():
        ax.plot([m for m, _, _ in points], [s for *_, s in points], marker="o", ms=3, label=name)
    cbm3d = classics["results"][CONDITION]["cbm3d"]["psnr_mean"]
    for method, style in (("cbm3d", "--"), ("nlm", ":")):
        ax.axhline(classics["results"][CONDITION][method]["psnr_mean"], color="grey", ls=style, label=method)
    for gain, what in ((0.5, "real-time goal"), (1.0, "larger model's goal")):
        ax.axhline(cbm3d + gain, color="tab:red", ls="--" if gain == 0.5 else ":", lw=0.8,
                   label=f"{what}: CBM3D + {gain} dB")
    ax.set_xlabel("training wall minutes (1 thread, shared 2-core CPU)")
    ax.set_ylabel(f"test PSNR (dB), {args.images} frames, blur + noise 0.075")
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    args.out.with_suffix(".json").write_text(json.dumps(curves, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
