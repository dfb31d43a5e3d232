"""Command line: ``python -m medgan_nb --help``.

    python -m medgan_nb data download kvasir-seg --to data/
    python -m medgan_nb data download vgg19
    python -m medgan_nb data info --preset demo
    python -m medgan_nb config --preset tiny --set epochs=3
    python -m medgan_nb train --preset demo --name my-run
    python -m medgan_nb train --resume output/runs/my-run
    python -m medgan_nb evaluate output/runs/my-run --data my_frames/
    python -m medgan_nb enhance frames/ --checkpoint output/runs/my-run --out enhanced/ --label
    python -m medgan_nb enhance frames/ --model realtime --out enhanced/  (a shipped model; none: the default)
    python -m medgan_nb models [NAME]
    python -m medgan_nb export output/runs/my-run/checkpoints/best.pt --format onnx
    python -m medgan_nb export output/runs/my-run/checkpoints/best.pt --format pretrained --name my-model
    python -m medgan_nb demo
"""

from __future__ import annotations

import argparse
from typing import Sequence

from .. import __version__
from . import data, demo, enhance, evaluate, export, models, train


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each command's module adds its own (``add_parser``)."""
    parser = argparse.ArgumentParser(prog="python -m medgan_nb",
                                     description="Restore degraded medical images with a pix2pix-style GAN.")
    parser.add_argument("--version", action="version", version=f"medgan_nb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (data, train, evaluate, enhance, export, models, demo):
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
