"""``python -m medgan_nb train`` and ``python -m medgan_nb config``.

- `cmd_train(args)`: trains with the config of ``--preset``/``--config``/``--set``
  (`medgan_nb.training.loop.train`), or continues a run with ``--resume`` (and its own config: ``--set``
  and ``--config`` are refused there). Returns the exit status: 0, or 1 with the reason on stderr for an
  unreadable image (and how to skip such files), a diverged loss, an unusable checkpoint, a bad setting, a
  device this machine lacks or a missing optional package; file-system errors (a missing data folder, a full
  disk) end in one line from `medgan_nb.cli.app.main`. A start that fails leaves no run folder.
- `cmd_config(args)`: prints the resulting config as JSON, without training.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .common import config_from_args, with_config


def cmd_train(args: argparse.Namespace) -> int:
    from ..training.loop import train
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.resume:
            if args.set or args.config:
                raise SystemExit("error: --resume continues with the run's own config; drop --set/--config")
            train(resume=args.resume, quiet=args.quiet)
        else:
            train(config_from_args(args), name=args.name, quiet=args.quiet)
    except training_errors() as e:
        return report_training_error(e)
    return 0


def training_errors() -> tuple[type[Exception], ...]:
    """What ends a training start or run with a message instead of a traceback: an unreadable image, a diverged
    loss, an unusable checkpoint, a bad setting or device (ValueError) or a missing optional package
    (ImportError: tensorboard=True)."""
    from ..data.decode import ImageLoadError
    from ..models.checkpoint import CheckpointError
    from ..training.trainer import TrainingDiverged
    return ImageLoadError, TrainingDiverged, CheckpointError, ValueError, ImportError


def report_training_error(e: Exception) -> int:
    """Print one of `training_errors` on stderr (for an unreadable image, how to skip such files); returns 1."""
    from ..data.decode import ImageLoadError
    hint = ("\n(to leave unreadable files out and list them in the run folder: --set bad_images=skip)"
            if isinstance(e, ImageLoadError) else "")
    print(f"error: {e}{hint}", file=sys.stderr)
    return 1


def cmd_config(args: argparse.Namespace) -> int:
    print(json.dumps(config_from_args(args).to_dict(), indent=2))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``train`` commands and their options."""
    with_config(sub.add_parser("config", help="print a config as JSON"), "original").set_defaults(func=cmd_config)
    tr = with_config(sub.add_parser("train", help="train a restoration GAN (output/runs/<name>/)"), "demo")
    tr.add_argument("--name", help="run folder name (default: a timestamp; never overwrites)")
    tr.add_argument("--resume", metavar="RUN_OR_CHECKPOINT",
                    help="a run folder: continue it in place from its last.pt; any other checkpoint "
                         "(best.pt, epoch_NNN.pt, ...): a new run folder starts from it")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    tr.set_defaults(func=cmd_train)
