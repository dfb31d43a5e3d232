"""What several commands share: the config from the command line, and the model to use.

- `config_from_args(args)`: the `Config` of ``--config FILE`` or ``--preset NAME``, with the
  ``--set key=value`` changes applied; a bad name or value exits with its message (SystemExit).
- `parse_overrides(pairs)`: ``["epochs=3", 'degradations=["blur"]']`` -> a dict; values are read as
  JSON, else kept as text; a pair without ``=`` exits.
- `chosen_model(args)`: ``--model``; with neither ``--model`` nor ``--checkpoint``, the default shipped model
  (and says so on stdout).
- `GUARD_HELP`: the help text of ``--no-guard``.
"""

from __future__ import annotations

import argparse
import json
from typing import Sequence

from ..config import PRESETS, Config


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
        cfg = Config.load(args.config) if args.config else Config.from_preset(args.preset)
        return cfg.replace(**parse_overrides(args.set)) if args.set else cfg
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e.args[0] if isinstance(e, KeyError) else e}") from None


def chosen_model(args: argparse.Namespace) -> str | None:
    """--model; with neither --model nor --checkpoint, the default shipped model (said on stdout); else None."""
    from ..models.zoo import default_model
    if args.checkpoint is not None or args.model is not None:
        return args.model
    name = default_model()
    print(f"no --checkpoint or --model given: using the default shipped model {name!r} "
          f"(python -m medgan_nb models lists them)")
    return name
GUARD_HELP = ("do not apply the shipped model's guard (which returns inputs that show no noise and that the model "
              "would change only a little unchanged, medgan_nb.models.guard): the model then also deblurs noise-free "
              "images, and changes clean ones")


def with_config(p: argparse.ArgumentParser, preset: str) -> argparse.ArgumentParser:
    """Add --preset (default `preset`), --config and --set to a command's parser; returns it."""
    p.add_argument("--preset", default=preset, choices=sorted(PRESETS), help=f"named settings (default {preset})")
    p.add_argument("--config", help="a JSON or YAML config file (instead of --preset)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change one config field, e.g. --set epochs=3 (repeatable)")
    return p
