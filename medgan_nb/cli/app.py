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
import errno
import sys
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
    """Run one command; its exit status. What the machine refuses (a file or folder that is missing, not
    writable, on a full or read-only disk, a name too long) and Ctrl-C end in one line on stderr, status 1
    (130 for Ctrl-C); any other exception is a bug and keeps its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        resume = ("; the run continues from its last checkpoint with python -m medgan_nb train --resume <run folder>"
                  if args.command == "train" else "")
        print(f"error: interrupted (Ctrl-C){resume}", file=sys.stderr)
        return 130
    except OSError as e:
        print(os_error_line(e), file=sys.stderr)
        return 1


# What to do about the file-system errors a user meets, by errno.
OS_ERROR_FIXES = {
    errno.ENOSPC: "free some space, or write elsewhere (--out, or --set output_dir=... for train)",
    errno.EDQUOT: "free some space, or write elsewhere (--out, or --set output_dir=... for train)",
    errno.EROFS: "the disk is read-only: write elsewhere (--out, or --set output_dir=... for train)",
    errno.EACCES: "choose a file or folder you may use, or change its permissions",
    errno.EPERM: "choose a file or folder you may use, or change its permissions",
    errno.ENAMETOOLONG: "use a shorter name",
    errno.ENOENT: "check the path",
}


def os_error_line(e: OSError) -> str:
    """"error: <what> (<path>); <fix>" for an OSError: its own text, the file it names, and `OS_ERROR_FIXES`."""
    what = e.strerror or str(e) or type(e).__name__
    where = f" ({e.filename})" if e.filename else ""
    fix = OS_ERROR_FIXES.get(e.errno or 0)
    return f"error: {what}{where}{f'; {fix}' if fix and fix not in what else ''}"
