"""Command line: ``python -m medgan_nb --help``.

    python -m medgan_nb data download kvasir-seg --to data/
    python -m medgan_nb data download vgg19
    python -m medgan_nb data info --preset demo
    python -m medgan_nb config --preset tiny --set epochs=3
    python -m medgan_nb train --preset demo --name my-run
    python -m medgan_nb train --resume output/runs/my-run
    python -m medgan_nb evaluate output/runs/my-run --data ../shared/data/endoscopy-sample
    python -m medgan_nb enhance frames/ --checkpoint output/runs/my-run --out enhanced/ --label
    python -m medgan_nb enhance frames/ --model lite --out enhanced/      (a shipped model; none: the default)
    python -m medgan_nb models [NAME]
    python -m medgan_nb export output/runs/my-run/checkpoints/best.pt --format onnx
    python -m medgan_nb export output/runs/my-run/checkpoints/best.pt --format pretrained --name my-model
    python -m medgan_nb demo
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

from . import __version__
from .checkpoint import make_run_dir
from .config import INFERENCE_BACKENDS, PRESETS, Config


def parse_overrides(pairs: Sequence[str]) -> dict:
    """["epochs=3", "degradations=[\"blur\"]"] -> {"epochs": 3, "degradations": ["blur"]}; values are JSON, else text."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def config_from_args(args: argparse.Namespace) -> Config:
    """The config named by --config (a file) or --preset, with --set changes applied."""
    try:
        cfg = Config.load(args.config) if args.config else Config.preset(args.preset)
        return cfg.replace(**parse_overrides(args.set)) if args.set else cfg
    except (KeyError, ValueError) as e:
        raise SystemExit(f"error: {e.args[0]}") from None


# ---------------------------------------------------------------- commands
def cmd_download(args: argparse.Namespace) -> int:
    if args.name == "vgg19":
        from .losses import MissingWeightsError, fetch_vgg19_weights
        try:
            print(f"VGG19 weights: {fetch_vgg19_weights()}")
        except MissingWeightsError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    from .download import DownloadError, download
    try:
        folder = download(args.name, Path(args.to))
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"images ready in {folder}\nuse them with: --set data_dir={folder}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError
    from .data import ImageLoadError
    from .train import TrainingDiverged, train
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.resume:
            if args.set or args.config:
                raise SystemExit("error: --resume continues with the run's own config; drop --set/--config")
            train(resume=args.resume, quiet=args.quiet)
        else:
            train(config_from_args(args), name=args.name, quiet=args.quiet)
    except ImageLoadError as e:
        print(f"error: {e}\n(to leave unreadable files out and list them in the run folder: "
              f"--set bad_images=skip)", file=sys.stderr)
        return 1
    except (TrainingDiverged, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .data import default_dataset
    cfg = config_from_args(args)
    source = cfg.data_dir or "embedded fundus/histology patches + synthetic endoscopy frames"
    print(f"data: {source} at {cfg.image_size}² ({cfg.resize})")
    for split in ("train", "val", "test"):
        try:
            print(f"  {split:5s} {len(default_dataset(split, cfg)):6d} images")
        except (FileNotFoundError, ValueError) as e:
            print(f"  {split:5s} error: {e}")
            return 1
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    print(json.dumps(config_from_args(args).to_dict(), indent=2))
    return 0


def chosen_model(args: argparse.Namespace) -> str | None:
    """--model; with neither --model nor --checkpoint, the default shipped model (said on stdout); else None."""
    from .pretrained import default_model
    if args.checkpoint is not None or args.model is not None:
        return args.model
    name = default_model()
    print(f"no --checkpoint or --model given: using the default shipped model {name!r} "
          f"(python -m medgan_nb models lists them)")
    return name


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError, load_checkpoint, run_folder_of
    from .baselines import FAST_BASELINES
    from .evaluate import GRID_BASELINES, evaluate, evaluate_goals, evaluate_grid
    from .pretrained import model_card
    checkpoint = Path(args.checkpoint) if args.checkpoint is not None else None
    try:
        model = chosen_model(args)
        trained = model_card(model)["config"] if model is not None else load_checkpoint(checkpoint)["config"]
        cfg = Config.from_dict(trained)
        cfg = cfg.replace(**parse_overrides(args.set)) if args.set else cfg
    except (CheckpointError, KeyError, ValueError) as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 1
    run = run_folder_of(checkpoint) if checkpoint is not None else None
    out = Path(args.out) if args.out else make_run_dir(run if run else Path(cfg.output_dir) / "eval",
                                                         "eval" if run else time.strftime("%Y%m%d-%H%M%S"))
    if cfg.modality != "endoscopy":
        return _evaluate_scans(checkpoint, model, cfg, out, args)
    common = dict(cfg=cfg, data_dir=args.data, split=args.split, max_images=args.max_images, device=args.device,
                  quiet=args.quiet, model=model, guard=not args.no_guard)
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


def _evaluate_scans(checkpoint: Path | None, model: str | None, cfg: Config, out: Path,
                    args: argparse.Namespace) -> int:
    """A CT, MRI or X-ray model: `medgan_nb.evaluate_scans` on the held-out scans (or --data's DICOM folder)."""
    from .enhance import load_weights
    from .evaluate_scans import evaluate_scans, markdown, write_report
    unsupported = [flag for flag, on in (("--grid", args.grid), ("--goals", args.goals), ("--cbm3d", args.cbm3d),
                                         ("--max-images", args.max_images)) if on]
    if unsupported:
        print(f"error: {', '.join(unsupported)}: for endoscopy models only; a {cfg.modality} model is scored by "
              "medgan_nb.evaluate_scans (BM3D runs when the bm3d package is installed)", file=sys.stderr)
        return 1
    generator = load_weights(checkpoint, model)[0]
    cfg = cfg.replace(data_dir=args.data) if args.data else cfg
    result = evaluate_scans(generator, cfg, split=args.split, quiet=args.quiet)
    print(markdown(result))
    print(f"report: {write_report(result, out, str(checkpoint or model))}")
    return 0


def _print_summary(metrics: dict, report: Path) -> None:
    from .evaluate import summarize
    print(f"{metrics['metadata']['data']} ({metrics['metadata']['n_images']} images):")
    for line in summarize(metrics):
        print(f"  - {line}")
    print(f"report: {report}")


def cmd_enhance(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError
    from .data import ImageLoadError
    from .enhance import enhance
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        written = enhance(args.input, args.out, args.checkpoint, model=chosen_model(args), device=args.device,
                          label=args.label, overwrite=args.overwrite, tile=args.tile,
                          on_error="skip" if args.skip_bad else "raise", backend=args.backend,
                          record_source_name=args.record_source_name, quiet=args.quiet, guard=not args.no_guard)
    except (CheckpointError, ImageLoadError, FileExistsError, FileNotFoundError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} AI-enhanced image(s) to {args.out} (audit log: {Path(args.out) / 'audit.jsonl'})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a checkpoint's generator to ONNX or TorchScript, then check the file against PyTorch;
    or publish it as a shipped model (--format pretrained)."""
    import torch
    from .checkpoint import CheckpointError, checkpoint_path, load_generator
    from .export import export_onnx, export_torchscript, verify_export
    if args.format == "pretrained":
        return export_pretrained(args)
    if args.name or args.card or args.default:
        print("error: --name, --card and --default belong to --format pretrained", file=sys.stderr)
        return 1
    try:
        checkpoint = checkpoint_path(args.checkpoint)
        out = Path(args.out) if args.out else checkpoint.with_name(
            checkpoint.stem + (".onnx" if args.format == "onnx" else ".ts.pt"))
        if out.resolve() == checkpoint.resolve():
            raise FileExistsError(f"{out} is the checkpoint itself; choose another --out")
        if out.exists() and not args.overwrite:                  # before the (slow) load and export
            raise FileExistsError(f"{out} already exists; pass --overwrite to replace it")
        generator, _ = load_generator(checkpoint)
        export = export_onnx if args.format == "onnx" else export_torchscript
        started = time.perf_counter()
        export(generator, out, overwrite=args.overwrite, checkpoint_sha256=generator.checkpoint_sha256)
        seconds = time.perf_counter() - started
        m = generator.size_multiple
        side = -(-max(m, 64) // m) * m                           # cheap: 64 or one size_multiple
        x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
        diff = verify_export(out, generator, x)
    except (CheckpointError, FileExistsError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"exported {out} ({out.stat().st_size / 1e6:.1f} MB, {args.format}) in {seconds:.1f} s")
    print(f"max abs difference to PyTorch on a 1×3×{side}×{side} input: {diff:.2e}")
    if diff > 1e-4:
        print(f"error: the exported model differs from PyTorch by {diff:.2e} (> 1e-4); do not use {out}",
              file=sys.stderr)
        return 1
    return 0


def export_pretrained(args: argparse.Namespace) -> int:
    """Publish a checkpoint's generator (its EMA weights when it has them) as a shipped model with a card."""
    from . import pretrained
    from .checkpoint import generator_from_state, load_checkpoint
    if not args.name:
        print("error: --format pretrained needs --name NAME (the model's name, e.g. lite)", file=sys.stderr)
        return 1
    try:
        fields = json.loads(Path(args.card).read_text(encoding="utf-8")) if args.card else {}
        if not isinstance(fields, dict) or not isinstance(fields.get("training", {}), dict):
            raise ValueError(f"{args.card} must hold a JSON object of card fields, its \"training\" an object too")
        state = load_checkpoint(args.checkpoint)
        generator, cfg = generator_from_state(state)
        training = checkpoint_training(state, cfg, generator.checkpoint_weights)
        fields = {"summary": f"{cfg.preset} generator published from {Path(args.checkpoint).name}", **fields,
                  "training": {**training, **fields.get("training", {})}}
        if args.default:
            fields["default"] = True
        weights = pretrained.save_model(generator, cfg, args.name, fields, folder=args.out, overwrite=args.overwrite)
    except (ValueError, OSError) as e:              # CheckpointError and PretrainedError are ValueErrors
        print(f"error: {e}", file=sys.stderr)
        return 1
    card = pretrained.model_card(args.name, weights.parent)
    print(f"published model {args.name!r} ({card['parameters']:,} parameters, {generator.checkpoint_weights} "
          f"weights): {weights} (sha256 {card['weights_sha256'][:12]}…) and {weights.with_suffix('.json')}")
    return 0


def checkpoint_training(state: dict, cfg: Config, weights: str) -> dict:
    """The card's training facts that the checkpoint itself tells (a --card file may override them):
    data, degradations, recipe, steps, which weights (generator or generator_ema) and the checkpoint's SHA-256."""
    return {"data": cfg.data_dir or "embedded fundus/histology patches + synthetic endoscopy frames",
            "degradations": list(cfg.degradations), "recipe": f"preset {cfg.preset}", "steps": state.get("step"),
            "weights": weights, "checkpoint_sha256": state["sha256"]}


def cmd_models(args: argparse.Namespace) -> int:
    """List the shipped models (name, default mark, size, summary, headline scores), or print one's card."""
    from . import pretrained
    try:
        if args.name:
            print(pretrained.card_markdown(pretrained.model_card(args.name)))
            return 0
        cards = [pretrained.model_card(n) for n in pretrained.list_models()]
    except pretrained.PretrainedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not cards:
        print(pretrained.no_models_message(pretrained.WEIGHTS_DIR))
        return 0
    for card in cards:
        print(f"{'*' if card['default'] else ' '} {card['name']:<20} {card['parameters']:>12,} parameters  "
              f"{card['summary']}")
        if pretrained.headline(card):
            print(f"  {'':<20} scores: {pretrained.headline(card)}")
    print("* the default model (enhance/evaluate without --checkpoint); python -m medgan_nb models NAME shows a card")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Train on the shipped real frames, score the result and the shipped models on held-out frames."""
    from .evaluate import evaluate_goals
    from .pretrained import list_models
    from .train import train, training_summary
    cfg = config_from_args(args)
    print(f"training the {cfg.preset!r} preset for {cfg.epochs} epochs (a fixed number of steps: a slower or busier "
          f"machine takes longer, the bar shows the estimate)" + (f"; safety stop after {cfg.max_minutes:g} min"
                                                                 if cfg.max_minutes else ""))
    started = time.perf_counter()
    run = train(cfg, name=f"demo-{cfg.preset}", quiet=args.quiet)
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
GUARD_HELP = ("do not apply the shipped model's guard (which returns inputs that show no noise and that the model "
              "would change only a little unchanged, medgan_nb.guard): the model then also deblurs noise-free "
              "images, and changes clean ones")


def demo_table(metrics: dict, shipped: dict[str, dict]) -> str:
    """Markdown: methods × conditions, mean PSNR; the demo's model, each shipped model, then the classics."""
    conditions = list(metrics["results"])
    rows = {"this run (demo)": {c: metrics["results"][c]["gan"]["psnr_mean"] for c in conditions}}
    for name, m in shipped.items():
        rows[f"shipped: {name}"] = {c: m["results"][c]["gan"]["psnr_mean"] for c in conditions}
    for method in metrics["results"][conditions[0]]:
        if method != "gan":
            rows[method] = {c: metrics["results"][c][method]["psnr_mean"] for c in conditions}
    lines = ["| method | " + " | ".join(conditions) + " |", "|---" * (len(conditions) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{v[c]:.2f}" for c in conditions) + " |" for name, v in rows.items()]
    return "\n".join(lines)


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m medgan_nb",
                                     description="Restore degraded medical images with a pix2pix-style GAN.")
    parser.add_argument("--version", action="version", version=f"medgan_nb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser, preset: str) -> argparse.ArgumentParser:
        p.add_argument("--preset", default=preset, choices=sorted(PRESETS), help=f"named settings (default {preset})")
        p.add_argument("--config", help="a JSON or YAML config file (instead of --preset)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="change one config field, e.g. --set epochs=3 (repeatable)")
        return p

    data = sub.add_parser("data", help="download data sets and weights, show the data").add_subparsers(
        dest="data_command", required=True)
    dl = data.add_parser("download", help="download kvasir-seg (data set) or vgg19 (perceptual-loss weights)")
    dl.add_argument("name", choices=["kvasir-seg", "vgg19"])
    dl.add_argument("--to", default="data", help="target folder for data sets (default: data)")
    dl.set_defaults(func=cmd_download)
    with_config(data.add_parser("info", help="how many images each split holds"), "demo").set_defaults(func=cmd_info)
    with_config(sub.add_parser("config", help="print a config as JSON"), "seed").set_defaults(func=cmd_config)
    tr = with_config(sub.add_parser("train", help="train a restoration GAN (output/runs/<name>/)"), "demo")
    tr.add_argument("--name", help="run folder name (default: a timestamp; never overwrites)")
    tr.add_argument("--resume", metavar="RUN_OR_CHECKPOINT",
                    help="a run folder: continue it in place from its last.pt; any other checkpoint "
                         "(best.pt, epoch_NNN.pt, ...): a new run folder starts from it")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    tr.set_defaults(func=cmd_train)
    ev = sub.add_parser("evaluate", help="PSNR/SSIM of a checkpoint and classical baselines on held-out images")
    ev_weights = ev.add_mutually_exclusive_group()
    ev_weights.add_argument("checkpoint", nargs="?",
                            help="a checkpoint file, or a run folder (its last checkpoint); "
                                 "without it or --model: the default shipped model")
    ev_weights.add_argument("--model", metavar="NAME", help="a shipped model (python -m medgan_nb models)")
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
    ev.add_argument("--cbm3d", action="store_true",
                    help="also run CBM3D (pip install bm3d; non-commercial licence; ~5 s per 256² image)")
    ev.add_argument("--no-guard", action="store_true", help=GUARD_HELP)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change a task field for the evaluation, e.g. --set image_size=128 or noise_std=0.05; "
                         "seed, max_images, synthetic_frames and cache_images are fixed by the evaluation, so that "
                         "every model is scored on the same inputs (use --max-images for a subset)")
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(func=cmd_evaluate)
    en = sub.add_parser("enhance", help="enhance an image or a folder; outputs are labelled and audited")
    en.add_argument("input", help="an image file or a folder (searched recursively)")
    en_weights = en.add_mutually_exclusive_group()
    en_weights.add_argument("--checkpoint", help="a checkpoint file or a run folder "
                                                 "(without it or --model: the default shipped model)")
    en_weights.add_argument("--model", metavar="NAME", help="a shipped model (python -m medgan_nb models)")
    en.add_argument("--out", required=True, help="output folder (PNG files + audit.jsonl)")
    en.add_argument("--label", action="store_true", help="burn a visible 'AI-enhanced' label into a corner")
    en.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    en.add_argument("--record-source-name", action="store_true",
                    help="also write each input's relative path into its output PNG's metadata (off by default: "
                         "file names often hold patient identifiers; the input's SHA-256 is always written and "
                         "the local audit.jsonl always keeps the path)")
    en.add_argument("--skip-bad", action="store_true", help="skip unreadable images (counted) instead of stopping")
    en.add_argument("--tile", type=int, default=512, help="tile size for large images (default 512)")
    en.add_argument("--no-guard", action="store_true", help=GUARD_HELP)
    en.add_argument("--device", default="auto")
    en.add_argument("--backend", default="auto", choices=INFERENCE_BACKENDS,
                    help="inference engine; auto: for 32+ images on the CPU the fastest one measured here, else torch")
    en.add_argument("--quiet", action="store_true")
    en.set_defaults(func=cmd_enhance)
    ex = sub.add_parser("export", help="export a checkpoint's generator to ONNX or TorchScript (checked after), "
                                       "or publish it as a shipped model (--format pretrained)")
    ex.add_argument("checkpoint", help="a checkpoint file, or a run folder (its last checkpoint)")
    ex.add_argument("--format", default="onnx", choices=["onnx", "torchscript", "pretrained"],
                    help="default onnx; pretrained: <name>.safetensors + <name>.json model card (EMA weights "
                         "when the checkpoint has them)")
    ex.add_argument("--out", help="output file (default: next to the checkpoint, <stem>.onnx or <stem>.ts.pt); "
                                  "for pretrained a folder (default: the package's medgan_nb/weights/)")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    ex.add_argument("--name", help="pretrained: the model's name (its file names)")
    ex.add_argument("--card", metavar="JSON", help="pretrained: a JSON file of card fields (summary, training, "
                                                   "scores, reference, limitations, intended_use, default)")
    ex.add_argument("--default", action="store_true", help="pretrained: mark it the default model")
    ex.set_defaults(func=cmd_export)
    mo = sub.add_parser("models", help="list the shipped pretrained models, or print one's model card")
    mo.add_argument("name", nargs="?", help="a model's name: print its card (Markdown)")
    mo.set_defaults(func=cmd_models)
    demo = with_config(sub.add_parser("demo", help="train + evaluate on the embedded data, write a report"), "demo")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
