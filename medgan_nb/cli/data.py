"""``python -m medgan_nb data``: fetch data or weights, and show what a config's data holds.

- `cmd_download(args)`: ``download kvasir-seg --to DIR`` fetches and checks the data set
  (`medgan_nb.data.fetch.download`); ``download vgg19`` fetches the perceptual loss's weights.
- `cmd_info(args)`: the data source of a config and the number of images in each split.

Both return the exit status: 0, or 1 with the reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import config_from_args, with_config


# ---------------------------------------------------------------- commands
def cmd_download(args: argparse.Namespace) -> int:
    if args.name == "vgg19":
        from ..losses import MissingWeightsError, fetch_vgg19_weights
        try:
            print(f"VGG19 weights: {fetch_vgg19_weights()}")
        except MissingWeightsError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    from ..data.fetch import DownloadError, download
    try:
        folder = download(args.name, Path(args.to))
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"images ready in {folder}\nuse them with: --set data_dir={folder}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..data.datasets import data_source, default_dataset
    cfg = config_from_args(args)
    source = data_source(cfg) if cfg.modality == "endoscopy" else cfg.data_dir or f"the sample {cfg.modality} scans"
    print(f"data: {source} at {cfg.image_size}² ({cfg.resize})")
    for split in ("train", "val", "test"):
        try:
            print(f"  {split:5s} {len(default_dataset(split, cfg)):6d} images")
        except (FileNotFoundError, ValueError) as e:      # ImageLoadError is a ValueError
            print(f"error: the {split} split: {e}", file=sys.stderr)
            return 1
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``data`` commands and their options."""
    data = sub.add_parser("data", help="download data sets and weights, show the data").add_subparsers(
        dest="data_command", required=True)
    dl = data.add_parser("download", help="download kvasir-seg (data set) or vgg19 (perceptual-loss weights)")
    dl.add_argument("name", choices=["kvasir-seg", "vgg19"])
    dl.add_argument("--to", default="data", help="target folder for data sets (default: data)")
    dl.set_defaults(func=cmd_download)
    with_config(data.add_parser("info", help="how many images each split holds"), "demo").set_defaults(func=cmd_info)
