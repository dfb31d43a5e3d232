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
from typing import Sequence

from .. import __version__
from ..config.config import INFERENCE_BACKENDS, PRESETS
from .common import GUARD_HELP
from .data import cmd_download, cmd_info
from .demo import cmd_demo
from .enhance import cmd_enhance
from .evaluate import cmd_evaluate
from .export import cmd_export
from .models import cmd_models
from .train import cmd_config, cmd_train


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
    with_config(sub.add_parser("config", help="print a config as JSON"), "original").set_defaults(func=cmd_config)
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
