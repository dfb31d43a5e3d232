"""``python -m medgan_nb evaluate``: score a checkpoint or a shipped model on held-out images.

`cmd_evaluate(args)` reads the model's training config (``--set`` may change the task) and, for an
endoscopy model, runs `medgan_nb.evaluation.core.evaluate` (with ``--goals``: `evaluate_goals`; with
``--grid``: `evaluate_grid`, the noise × blur grid; with ``--centres``: `evaluate_centres`, one row per
sub-folder of ``--data``), then prints the report's summary. A CT, MRI or
X-ray model goes to `medgan_nb.evaluation.scans.evaluate_scans` instead, which takes none of the
endoscopy-only flags. Results go to ``--out``, else to an ``eval`` folder of the run, or a time-stamped
folder under the output folder for a shipped model. Returns the exit status: 0, or 1 with the reason on
stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..config.config import Config
from ..models.checkpoint import make_run_dir, remove_if_empty
from .common import GUARD_HELP, chosen_model, parse_overrides


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..data.decode import ImageLoadError
    from ..models.checkpoint import CheckpointError, checkpoint_config, checkpoint_path, load_checkpoint, run_folder_of
    checkpoint = Path(args.checkpoint) if args.checkpoint is not None else None
    try:
        model = chosen_model(args)
        cfg = (_shipped_config(model, args.data) if model is not None
               else checkpoint_config(load_checkpoint(checkpoint), checkpoint_path(checkpoint)))
        cfg = cfg.replace(**parse_overrides(args.set)) if args.set else cfg
    except (CheckpointError, KeyError, ValueError) as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 1
    run = run_folder_of(checkpoint) if checkpoint is not None else None
    made = not args.out
    out = Path(args.out) if args.out else make_run_dir(run if run else Path(cfg.output_dir) / "eval",
                                                         "eval" if run else time.strftime("%Y%m%d-%H%M%S"))
    try:
        return _evaluate(checkpoint, model, cfg, out, args)
    except (ImageLoadError, ValueError, FileExistsError, FileNotFoundError) as e:   # CheckpointError: a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if made:
            remove_if_empty(out)                   # the folder this call made, if the evaluation wrote nothing


def _shipped_config(model: str, data: str | None) -> Config:
    """A shipped model's config, reading data this machine has: where its card's data folder (the developers') is
    not here, `medgan_nb.models.zoo.user_config` picks data/Kvasir-SEG if present, else the shipped sample; without
    ``--data`` that is said on stdout."""
    from ..data.datasets import data_source
    from ..models.zoo import model_card, user_config
    trained = Config.from_dict(model_card(model)["config"])
    cfg = trained if trained.data_dir and Path(trained.data_dir).is_dir() else user_config(trained, model)
    if data is None and cfg.data_dir != trained.data_dir:
        which = "the shipped sample " if cfg.data_dir is None else ""
        print(f"model {model!r} was trained on {trained.data_dir}, which is not here; evaluating on "
              f"{which}{data_source(cfg)} (python -m medgan_nb data download kvasir-seg fetches the full data set)")
    return cfg


def _evaluate(checkpoint: Path | None, model: str | None, cfg: Config, out: Path, args: argparse.Namespace) -> int:
    """The evaluation `cmd_evaluate` chose, written to `out`; the exit status."""
    from ..evaluation.baselines import FAST_BASELINES
    from ..evaluation.conditions import GRID_BASELINES
    from ..evaluation.core import evaluate, evaluate_goals
    from ..evaluation.grid import evaluate_grid
    if cfg.modality != "endoscopy":
        return _evaluate_scans(checkpoint, model, cfg, out, args)
    if args.centres:
        return _evaluate_centres(checkpoint, model, cfg, out, args)
    if args.classics_from:
        print("error: --classics-from reuses an earlier --centres evaluation: use it with --centres", file=sys.stderr)
        return 1
    common = dict(cfg=cfg, data_dir=args.data, split=args.split, max_images=args.max_images, device=args.device,
                  quiet=args.quiet, model=model, guard=not args.no_guard, gan_weight=args.gan_weight,
                  half=args.half or "all")
    if args.grid:
        baselines = [*GRID_BASELINES, *(["cbm3d"] if args.cbm3d else [])]
        grid = evaluate_grid(checkpoint, out, baselines=baselines, **common)
        print(f"worst cell: {grid['worst_cell']}; figure: {out / 'grid.png'}")
        return 0
    if args.goals:
        metrics = evaluate_goals(checkpoint, out, **common)
    else:
        metrics = evaluate(checkpoint, out, breakdown=not args.no_breakdown,
                           **({"baselines": (*FAST_BASELINES, "cbm3d", "median_cbm3d")} if args.cbm3d else {}), **common)
    _print_summary(metrics, out / "report.md")
    return 0


def _evaluate_centres(checkpoint: Path | None, model: str | None, cfg: Config, out: Path,
                      args: argparse.Namespace) -> int:
    """--centres: `medgan_nb.evaluation.centres.evaluate_centres` on --data's sub-folders, goal conditions."""
    from ..evaluation.centres import centres_markdown, evaluate_centres
    if args.data is None or args.grid:
        print("error: --centres needs --data (a folder with one sub-folder of clean frames per centre) and scores the "
              "goal conditions (not --grid)", file=sys.stderr)
        return 1
    tables = evaluate_centres(checkpoint, args.data, out, half=args.half or "report", classics_from=args.classics_from,
                              cfg=cfg, max_images=args.max_images, device=args.device, quiet=args.quiet, model=model,
                              guard=not args.no_guard, gan_weight=args.gan_weight)
    print(centres_markdown(tables))
    print(f"report: {out / 'centres.md'}")
    return 0


def _evaluate_scans(checkpoint: Path | None, model: str | None, cfg: Config, out: Path,
                    args: argparse.Namespace) -> int:
    """A CT, MRI or X-ray model: `medgan_nb.evaluation.scans` on the held-out scans (or --data's DICOM folder)."""
    from ..evaluation.scans import evaluate_scans, markdown, write_report
    from ..inference.files import load_weights
    unsupported = [flag for flag, on in (("--grid", args.grid), ("--goals", args.goals), ("--cbm3d", args.cbm3d),
                                         ("--max-images", args.max_images), ("--centres", args.centres),
                                         ("--half", args.half)) if on]
    if unsupported:
        print(f"error: {', '.join(unsupported)}: for endoscopy models only; a {cfg.modality} model is scored by "
              "medgan_nb.evaluation.scans (BM3D runs when the bm3d package is installed)", file=sys.stderr)
        return 1
    generator = load_weights(checkpoint, model)[0]
    cfg = cfg.replace(data_dir=args.data) if args.data else cfg
    result = evaluate_scans(generator, cfg, split=args.split, quiet=args.quiet)
    print(markdown(result))
    print(f"report: {write_report(result, out, str(checkpoint or model))}")
    return 0


def _print_summary(metrics: dict, report: Path) -> None:
    from ..evaluation.report import summarize
    print(f"{metrics['metadata']['data']} ({metrics['metadata']['n_images']} images):")
    for line in summarize(metrics):
        print(f"  - {line}")
    print(f"report: {report}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``evaluate`` command and its options."""
    ev = sub.add_parser("evaluate", help="PSNR/SSIM of a checkpoint and classical baselines on held-out images")
    ev_weights = ev.add_mutually_exclusive_group()
    ev_weights.add_argument("checkpoint", nargs="?",
                            help="a checkpoint file, or a run folder (its last checkpoint); "
                                 "without it or --model: the default shipped model")
    ev_weights.add_argument("--model", metavar="NAME", help="a shipped model (python -m medgan_nb models)")
    ev.add_argument("--gan-weight", type=float, metavar="A",
                    help="with a GAN model (--model sharp): interpolate it with its L1 parent (0: the parent, 1: it)")
    ev.add_argument("--data", help="evaluate on every image of this folder (clean images; they get degraded)")
    ev.add_argument("--split", default="test", choices=["train", "val", "test"], help="default data split (test)")
    ev.add_argument("--out", help="results folder (default: <run>/eval, never overwritten)")
    ev.add_argument("--max-images", type=int, help="evaluate at most this many images")
    ev.add_argument("--no-breakdown", action="store_true", help="skip the per-degradation conditions")
    ev_task = ev.add_mutually_exclusive_group()
    ev_task.add_argument("--goals", action="store_true",
                         help="score the three goal conditions (blur + noise 0.075, the original's, light) against "
                              "every classic, CBM3D included when bm3d is installed (seconds per image)")
    ev_task.add_argument("--grid", action="store_true",
                         help="noise σ × blur σ grid: model − input and model − best classic per cell (grid.png)")
    ev.add_argument("--centres", action="store_true",
                    help="--data holds one sub-folder of clean frames per centre (hospital, camera): score each on "
                         "the goal conditions against every classic, with the model's paired differences and "
                         "95%% intervals per centre (centres.md)")
    ev.add_argument("--half", choices=["all", "selection", "report"],
                    help="with --data: score only this fixed half of each folder's frames (by a hash of the file "
                         "name; choose recipes on 'selection', report on 'report'); default: report with --centres, "
                         "else all")
    ev.add_argument("--classics-from", metavar="DIR",
                    help="with --centres: reuse the classics' scores of an earlier --centres evaluation of the same "
                         "frames (checked) instead of running CBM3D again")
    ev.add_argument("--cbm3d", action="store_true",
                    help="also run CBM3D (pip install bm3d; non-commercial licence; seconds per 256² image)")
    ev.add_argument("--no-guard", action="store_true", help=GUARD_HELP)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change a task field for the evaluation, e.g. --set image_size=128 or noise_std=0.05; "
                         "seed, max_images, synthetic_frames and cache_images are fixed by the evaluation, so that "
                         "every model is scored on the same inputs (use --max-images for a subset)")
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(func=cmd_evaluate)
