"""Compare training recipes where choices may be made: Kvasir-SEG validation and the selection half of each centre.

    python scripts/hypotheses.py --runs output/runs/h-base output/runs/h-soft --centres ../shared/data/polypgen-eval \
        --out output/hypotheses/compare

Each run's best checkpoint is scored at 256² on the goal conditions (`GOAL_CONDITIONS`) with the input and NLM
beside it (CBM3D, seconds per frame, is left to the report-half evaluation, `evaluate --centres`): on the
Kvasir-SEG validation split of the run's own data, and on the *selection* half (`medgan_nb.evaluation.half_of`) of
every centre folder. The first run is the baseline: every other run gets its paired per-frame difference to it,
with a 95 % bootstrap interval, per centre, pooled over centres, and on Kvasir-SEG validation; and the CPU
seconds each run trained for (from its val.csv). Writes compare.json and compare.md into ``--out`` (new);
``--reuse`` earlier ``--out`` folders to read the evaluations of the runs they scored instead of running them again.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from medgan_nb.config import Config
from medgan_nb.evaluation import GOAL_CONDITIONS, evaluate
from medgan_nb.evaluation.centres import evaluate_centres, read_rows
from medgan_nb.evaluation.report import mean_interval
from medgan_nb.models import list_models, model_card
from medgan_nb.utils.files import refuse_existing
from medgan_nb.utils.text import markdown_table

CLASSICS = ("identity", "nlm")


def cpu_seconds(run: Path) -> float | None:
    """The CPU seconds (all threads) a run trained for, from the last line of its val.csv (None: a shipped model)."""
    if not run.exists():
        return None
    with open(run / "val.csv", newline="") as f:
        return round(float(list(csv.DictReader(f))[-1]["cpu_s"]))


def model_psnr(folder: Path) -> dict[tuple[str, str], float]:
    """(condition, key) -> the model's PSNR in an evaluation folder."""
    return {(r["condition"], r["key"]): r["psnr"] for r in read_rows(folder) if r["method"] == "gan"}


def score_run(run: Path, centres: Path, out: Path, task: Config, reuse: list[Path]) -> dict[str, dict]:
    """set name -> (condition, key) -> the model's PSNR, for one run (or a shipped model's name, scored without
    its guard, as the runs are): its evaluations in the first of `reuse` (earlier ``--out`` folders) that has
    them, else run now into `out`."""
    shipped = not run.exists() and run.name in list_models()
    checkpoint, model = (None, run.name) if shipped else (run / "checkpoints" / "best.pt", None)
    options = dict(cfg=task, baselines=CLASSICS, device="cpu", quiet=True, model=model, guard=not shipped)
    earlier = [r / run.name for r in reuse if (r / run.name / "centres" / "centres.json").is_file()]
    if earlier:
        out = earlier[0]
    sets = {}
    if not (out / "kvasir-val" / "per_image.csv").is_file():
        evaluate(checkpoint, out / "kvasir-val", split="val", conditions=GOAL_CONDITIONS, **options)
    sets["Kvasir-SEG val"] = out / "kvasir-val"
    if not (out / "centres" / "centres.json").is_file():
        evaluate_centres(checkpoint, centres, out / "centres", half="selection", **options)
    for folder in sorted((out / "centres").iterdir()):
        if folder.is_dir():
            sets[folder.name] = folder
    return {name: model_psnr(folder) for name, folder in sets.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, nargs="+", required=True,
                   help="run folders or shipped models' names; the first is the baseline")
    p.add_argument("--centres", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="a new folder")
    p.add_argument("--reuse", type=Path, nargs="+", default=[],
                   help="earlier --out folders: the evaluations of runs they hold are read from there")
    args = p.parse_args()
    refuse_existing([args.out], "choose another --out")
    scores = {}
    for run in args.runs:
        config = model_card(run.name)["config"] if not run.exists() else json.loads((run / "config.json").read_text())
        task = Config.from_dict(config).replace(image_size=256, frame_size=256, init_generator=None)
        scores[run.name] = score_run(run, args.centres, args.out / run.name, task, args.reuse)
    base = args.runs[0].name
    rows, results = [], {}
    for run in args.runs[1:]:
        for cond in GOAL_CONDITIONS:
            diffs = {name: [scores[run.name][name][k] - a[k] for k in a if k[0] == cond]
                     for name, a in scores[base].items()}
            diffs["centres pooled"] = [d for name, v in diffs.items() if name != "Kvasir-SEG val" for d in v]
            levels = {name: [p for k, p in a.items() if k[0] == cond] for name, a in scores[base].items()}
            levels["centres pooled"] = [p for name, v in levels.items() if name != "Kvasir-SEG val" for p in v]
            for label, d in diffs.items():
                low, high = mean_interval(d)
                results.setdefault(run.name, {}).setdefault(cond, {})[label] = [float(np.mean(d)), low, high]
                rows.append([run.name, cond, label, len(d), f"{np.mean(levels[label]):.2f}",
                             f"{np.mean(d):+.2f} [{low:+.2f}, {high:+.2f}]"])
    cpu = {run.name: cpu_seconds(run) for run in args.runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.json").write_text(json.dumps({"baseline": base, "differences": results, "cpu_s": cpu},
                                                      indent=1) + "\n")
    table = markdown_table(["recipe", "condition", "frames", "n", f"{base} (dB)", f"PSNR − {base} (dB, 95 % interval)"],
                           rows)
    (args.out / "compare.md").write_text(table + "\n\nCPU seconds of training: " + json.dumps(cpu) + "\n")
    print(table)
    print("CPU seconds of training:", cpu)


if __name__ == "__main__":
    main()
