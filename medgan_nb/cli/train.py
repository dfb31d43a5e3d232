"""TODO docstring (cli)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .common import config_from_args


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
