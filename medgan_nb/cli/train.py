"""``python -m medgan_nb train`` and ``python -m medgan_nb config``.

- `cmd_train(args)`: trains with the config of ``--preset``/``--config``/``--set``
  (`medgan_nb.training.loop.train`), or continues a run with ``--resume`` (and its own config: ``--set``
  and ``--config`` are refused there). Returns the exit status: 0, or 1 with the reason on stderr for an
  unreadable image (and how to skip such files), a diverged loss, an unusable checkpoint or a bad setting.
- `cmd_config(args)`: prints the resulting config as JSON, without training.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .common import config_from_args, with_config


def cmd_train(args: argparse.Namespace) -> int:
    from ..data.decode import ImageLoadError
    from ..models.checkpoint import CheckpointError
    from ..training.loop import train
    from ..training.trainer import TrainingDiverged
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
