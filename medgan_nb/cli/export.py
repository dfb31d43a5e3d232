"""``python -m medgan_nb export``: a checkpoint's generator as ONNX, TorchScript or a shipped model.

- `cmd_export(args)`: writes ONNX or TorchScript (`medgan_nb.inference.export`), then runs the file on a
  random input and compares it with PyTorch; a difference above 1e-4 is an error. Refuses to overwrite
  the checkpoint itself, or an existing file without ``--overwrite``.
- `export_pretrained(args)` (``--format pretrained --name NAME``): publishes the generator (its EMA weights
  when it has them) as a shipped model with a card (`medgan_nb.models.zoo.save_model`); ``--card`` adds
  card fields from a JSON file, and `checkpoint_training` fills the training facts the checkpoint tells.

Both return the exit status: 0, or 1 with the reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..config.config import Config
from ..utils.files import refuse_existing


def cmd_export(args: argparse.Namespace) -> int:
    """Export a checkpoint's generator to ONNX or TorchScript, then check the file against PyTorch;
    or publish it as a shipped model (--format pretrained)."""
    import torch

    from ..inference.engines import verify_export
    from ..inference.export import export_onnx, export_torchscript
    from ..models.checkpoint import CheckpointError, checkpoint_path, load_generator
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
        if not args.overwrite:                                   # before the (slow) load and export
            refuse_existing([out], "pass --overwrite to replace it")
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
    from ..models import zoo as pretrained
    from ..models.checkpoint import checkpoint_path, generator_from_state, load_checkpoint
    if not args.name:
        print("error: --format pretrained needs --name NAME (the model's name, e.g. lite)", file=sys.stderr)
        return 1
    try:
        fields = json.loads(Path(args.card).read_text(encoding="utf-8")) if args.card else {}
        if not isinstance(fields, dict) or not isinstance(fields.get("training", {}), dict):
            raise ValueError(f"{args.card} must hold a JSON object of card fields, its \"training\" an object too")
        state = load_checkpoint(args.checkpoint)
        generator, cfg = generator_from_state(state, checkpoint_path(args.checkpoint))
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


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``export`` command and its options."""
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
