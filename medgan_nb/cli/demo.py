"""``python -m medgan_nb demo``: train, then score the result beside the shipped models and the classics.

`cmd_demo(args)` trains the chosen preset (``demo`` by default) on the shipped frames, evaluates the best
checkpoint on the goal conditions (`medgan_nb.evaluation.core.evaluate_goals`) against `DEMO_BASELINES`,
scores every shipped model on the same inputs, and writes report.md and models.md (`demo_table`: mean PSNR
per method and condition) into the run's ``eval`` folder. A run cut short by the ``max_minutes`` safety
stop is trained for fewer steps than asked; the demo then puts a warning on top of both files and of its
output, so its scores are not mistaken for those of a fully trained model.
"""

from __future__ import annotations

import argparse
import time

from ..models.checkpoint import make_run_dir
from ..utils.text import markdown_table
from .common import config_from_args, with_config
from .evaluate import _print_summary
from .train import report_training_error, training_errors


def cmd_demo(args: argparse.Namespace) -> int:
    """Train on the shipped real frames, score the result and the shipped models on held-out frames."""
    from ..evaluation.core import evaluate_goals
    from ..models.zoo import list_models
    from ..training.logs import training_summary
    from ..training.loop import train
    cfg = config_from_args(args)
    print(f"training the {cfg.preset!r} preset for {cfg.epochs} epochs (a fixed number of steps: a slower or busier "
          f"machine takes longer, the bar shows the estimate)" + (f"; safety stop after {cfg.max_minutes:g} min"
                                                                 if cfg.max_minutes else ""))
    started = time.perf_counter()
    try:
        run = train(cfg, name=f"demo-{cfg.preset}", quiet=args.quiet)
    except training_errors() as e:
        return report_training_error(e)
    minutes = (time.perf_counter() - started) / 60
    summary = training_summary(run)
    warning = (f"WARNING: this run was cut short: {summary}. Its scores are of an undertrained model; run the "
               f"demo on a less busy machine, or raise the stop with --set max_minutes=...\n\n"
               if summary.cut_short else "")
    if warning:
        print(f"\n{warning}", end="")
    task = cfg.replace(image_size=max(cfg.image_size, min(256, cfg.frame_size or cfg.image_size)))
    out = make_run_dir(run, "eval")
    metrics = evaluate_goals(run / "checkpoints" / "best.pt", out, cfg=task, baselines=DEMO_BASELINES,
                             quiet=args.quiet)
    shipped = {name: evaluate_goals(None, make_run_dir(run, f"eval-{name}"), cfg=task, baselines=("identity",),
                                    model=name, quiet=args.quiet) for name in list_models()}
    table = demo_table(metrics, shipped)
    (out / "models.md").write_text(warning + table + "\n")
    if warning:                           # the report's first line says so too
        (out / "report.md").write_text(warning + (out / "report.md").read_text())
    print(f"\n{warning}trained in {minutes:.1f} min: {summary}; evaluated on held-out images, ", end="")
    _print_summary(metrics, out / "report.md")
    print(f"\nmean PSNR (dB) per condition, this run's model beside the shipped ones ({out / 'models.md'}):\n{table}")
    return 0


DEMO_BASELINES = ("identity", "median", "nlm", "tv", "bilateral")


def demo_table(metrics: dict, shipped: dict[str, dict]) -> str:
    """Markdown: methods × conditions, mean PSNR; the demo's model, each shipped model, then the classics."""
    conditions = list(metrics["results"])
    rows = {"this run (demo)": {c: metrics["results"][c]["gan"]["psnr_mean"] for c in conditions}}
    for name, m in shipped.items():
        rows[f"shipped: {name}"] = {c: m["results"][c]["gan"]["psnr_mean"] for c in conditions}
    for method in metrics["results"][conditions[0]]:
        if method != "gan":
            rows[method] = {c: metrics["results"][c][method]["psnr_mean"] for c in conditions}
    return markdown_table(("method", *conditions), [(name, *(f"{v[c]:.2f}" for c in conditions))
                                                    for name, v in rows.items()])


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``demo`` command and its options."""
    demo = with_config(sub.add_parser("demo", help="train + evaluate on the embedded data, write a report"), "demo")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(func=cmd_demo)
