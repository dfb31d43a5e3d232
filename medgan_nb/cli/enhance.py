"""``python -m medgan_nb enhance``: restore an image or a folder into labelled, audited outputs.

`cmd_enhance(args)` calls `medgan_nb.inference.files.enhance` with a checkpoint, a shipped model or the
default one, and prints where the outputs and ``audit.jsonl`` went. Returns the exit status: 0, or 1 with
the reason on stderr for an unusable checkpoint or image, an existing output without ``--overwrite``, a
missing input, or a backend whose package is not installed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .common import chosen_model


def cmd_enhance(args: argparse.Namespace) -> int:
    from ..data.decode import ImageLoadError
    from ..inference.files import enhance
    from ..models.checkpoint import CheckpointError
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
