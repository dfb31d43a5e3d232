"""What a GAN fine-tune buys against CPU time: PSNR, sharpness and naturalness of a run's kept checkpoints.

    python scripts/gan_curve.py output/runs/sharp-a0.1 output/runs/sharp-a0.5 --data ../shared/data/kvasir-seg \
        --out output/gan-curve

Each epoch_NNN.pt (the generator itself: GAN runs keep no EMA) restores the same `--images` frames of the
**validation** split (choices are made there; the test split stays for the goals), 256², the blur + noise goal
condition, no guard. The measures: PSNR, the gradient-energy and high-frequency power ratios against the clean
frames (`medgan_nb.sharpness`, 1.0 = as sharp as the truth) and the naturalness score (`medgan_nb.naturalness`,
lower = more natural). The time axis is the run's own CPU time (val.csv's ``cpu_s``, summed over resumed chunks),
in minutes. The starting point (the run's ``init_generator``, epoch 0) is scored too. Writes curve.json and
curve.png into `--out` (a new folder); ``--add`` draws the curves of earlier calls beside them without scoring them
again.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from medgan_nb.config import Config
from medgan_nb.evaluation import GOAL_CONDITIONS, evaluate
from medgan_nb.models import load_checkpoint
from medgan_nb.training import read_log
from medgan_nb.utils.files import refuse_existing

CONDITION = "blur_noise"
MEASURES = ("psnr_mean", "grad_ratio_mean", "hf_ratio_mean", "naturalness_mean")
PSNR_RANGE = 1.5              # dB below the start that the PSNR axis shows (the goal allows at most 1.5 dB)


def score(cfg: Config, images: int, checkpoint: Path | None = None, model: str | None = None) -> dict:
    m = evaluate(checkpoint, Path(tempfile.mkdtemp()) / "e", cfg=cfg, split="val", max_images=images, device="cpu",
                 conditions={CONDITION: GOAL_CONDITIONS[CONDITION]}, baselines=("identity",), quiet=True,
                 model=model, guard=False)
    return {k: round(m["results"][CONDITION]["gan"][k], 4) for k in MEASURES}


def curve(run: Path, data: str, images: int) -> list[dict]:
    log = read_log(run, "val.csv", columns=True)
    cpu = dict(zip(log["epoch"], log["cpu_s"]))
    first = load_checkpoint(run / "checkpoints" / "last.pt")["config"]
    cfg = Config.from_dict(first).replace(image_size=256, frame_size=256, data_dir=data, init_generator=None)
    points = [{"epoch": 0, "cpu_min": 0.0, **score(cfg, images, model=first["init_generator"])}]
    print(run.name, points[-1], flush=True)
    for path in sorted(run.glob("checkpoints/epoch_*.pt")):
        epoch = int(path.stem.split("_")[1])
        points.append({"epoch": epoch, "cpu_min": round(cpu[epoch] / 60, 1), **score(cfg, images, path)})
        print(run.name, points[-1], flush=True)
    return points


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    """One colour per run (sharpness: gradient energy solid, HF power dashed). The axes end at the range of a
    stable fine-tune; the epochs of a collapse (PSNR many dB down) leave the plot, marked by an arrow."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for (name, points), colour in zip(curves.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        x = [p["cpu_min"] for p in points]
        axes[0].plot(x, [p["psnr_mean"] for p in points], "o-", color=colour, label=name)
        axes[1].plot(x, [p["grad_ratio_mean"] for p in points], "o-", color=colour, label=f"{name}: gradient energy")
        axes[1].plot(x, [p["hf_ratio_mean"] for p in points], "s--", color=colour, label=f"{name}: HF power")
        axes[2].plot(x, [p["naturalness_mean"] for p in points], "o-", color=colour, label=name)
        start = points[0]["psnr_mean"]
        for p in points:
            if p["psnr_mean"] < start - PSNR_RANGE:
                axes[0].annotate("", (p["cpu_min"], start - PSNR_RANGE), xytext=(p["cpu_min"], start - 0.8 * PSNR_RANGE),
                                 arrowprops={"arrowstyle": "->", "color": colour})
    start = min(points[0]["psnr_mean"] for points in curves.values())
    axes[0].set_ylim(start - PSNR_RANGE, start + 0.3)
    axes[1].set_ylim(0, 1.6)
    axes[2].set_ylim(2, 6)
    axes[1].axhline(1.0, color="grey", lw=0.8)
    for ax, title in zip(axes, ("PSNR (dB; arrows: collapsed, off the axis)", "sharpness vs clean (1 = as sharp)",
                                "naturalness (lower: more natural)")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("CPU minutes of the fine-tune")
        ax.legend(fontsize=6)
    fig.suptitle(f"GAN fine-tuning on the validation split ({CONDITION}, 256²)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, nargs="*")
    p.add_argument("--data", required=True, help="the data set's folder (Kvasir-SEG: its validation split is used)")
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--out", type=Path, required=True, help="a new folder for curve.json and curve.png")
    p.add_argument("--add", type=Path, nargs="+", default=[],
                   help="curve.json files of earlier calls (same --data and --images) to draw beside these runs")
    args = p.parse_args()
    if not (args.runs or args.add):
        p.error("give runs to score, or --add curve.json files to draw")
    refuse_existing([args.out], "choose another --out")
    curves = {name: points for path in args.add for name, points in json.loads(path.read_text()).items()}
    curves.update({run.name: curve(run, args.data, args.images) for run in args.runs})
    args.out.mkdir(parents=True)
    (args.out / "curve.json").write_text(json.dumps(curves, indent=1) + "\n")
    plot(curves, args.out / "curve.png")
    print(f"wrote {args.out / 'curve.json'} and {args.out / 'curve.png'}")


if __name__ == "__main__":
    main()
