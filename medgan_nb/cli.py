"""Command line: ``python -m medgan_nb --help``.

    python -m medgan_nb data download kvasir-seg --to data/
    python -m medgan_nb data download vgg19
    python -m medgan_nb data info --preset demo
    python -m medgan_nb config --preset tiny --set epochs=3
    python -m medgan_nb demo
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from . import __version__
from .config import PRESETS, Config


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
        cfg = Config.load(args.config) if args.config else Config.preset(args.preset)
        return cfg.replace(**parse_overrides(args.set)) if args.set else cfg
    except (KeyError, ValueError) as e:
        raise SystemExit(f"error: {e.args[0]}") from None


def make_run_dir(base: str | Path, name: str) -> Path:
    """A new folder base/name, or base/name-1, -2, ... if taken: earlier runs are never overwritten."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    for i in range(10_000):
        path = base / (name if i == 0 else f"{name}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run folder name under {base}")


# ---------------------------------------------------------------- commands
def cmd_download(args: argparse.Namespace) -> int:
    if args.name == "vgg19":
        from .losses import MissingWeightsError, fetch_vgg19_weights
        try:
            print(f"VGG19 weights: {fetch_vgg19_weights()}")
        except MissingWeightsError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    from .download import DownloadError, download
    try:
        folder = download(args.name, Path(args.to))
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"images ready in {folder}\nuse them with: --set data_dir={folder}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .data import default_dataset
    cfg = config_from_args(args)
    source = cfg.data_dir or "embedded fundus/histology patches + synthetic endoscopy frames"
    print(f"data: {source} at {cfg.image_size}² ({cfg.resize})")
    for split in ("train", "val", "test"):
        try:
            print(f"  {split:5s} {len(default_dataset(split, cfg)):6d} images")
        except (FileNotFoundError, ValueError) as e:
            print(f"  {split:5s} error: {e}")
            return 1
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    print(json.dumps(config_from_args(args).to_dict(), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """A smoke run of the core: data, degradations, both networks and one optimisation step.

    Training, evaluation and the report come with the training issue.
    """
    import torch

    from .data import default_dataset
    from .degrade import Degradation
    from .losses import GeneratorLoss, discriminator_loss
    from .metrics import psnr, ssim
    from .models import build_discriminator, build_generator, summary
    from .viz import image_grid

    cfg = config_from_args(args)
    torch.manual_seed(cfg.seed)
    run = make_run_dir(Path(cfg.output_dir) / "smoke", time.strftime("%Y%m%d-%H%M%S"))
    cfg.save(run / "config.json")
    test = default_dataset("test", cfg)
    clean = torch.stack([test[i][0] for i in range(min(4, len(test)))])
    keys = [test[i][1] for i in range(len(clean))]
    degraded = Degradation(cfg)(clean, keys=keys)
    g, d = build_generator(cfg), build_discriminator(cfg)
    print(f"{summary(g)}\n{summary(d)}\n{Degradation(cfg)}")
    loss_g = GeneratorLoss(cfg)
    opt_g = torch.optim.Adam(g.parameters(), cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(d.parameters(), cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    fake = g(degraded.image)
    d_loss = discriminator_loss(loss_g.gan, d(degraded.image, clean), d(degraded.image, fake.detach()))
    opt_d.zero_grad(set_to_none=True), d_loss.backward(), opt_d.step()
    parts = loss_g(d(degraded.image, fake), fake, clean)
    opt_g.zero_grad(set_to_none=True), parts.total.backward(), opt_g.step()
    print(f"one step: D loss {d_loss.item():.3f} | G "
          + " ".join(f"{k} {v:.3f}" for k, v in parts.as_floats().items()))
    g.eval()
    with torch.no_grad():
        restored = g(degraded.image)
    print(f"degraded test images: PSNR {psnr(degraded.image, clean).mean():.2f} dB, "
          f"SSIM {ssim(degraded.image, clean).mean():.3f} (untrained generator: "
          f"{psnr(restored, clean).mean():.2f} dB)")
    fig = image_grid({"clean": clean, "degraded": degraded.image, "untrained generator": restored}, keys)
    fig.savefig(run / "overview.png", dpi=80)
    print(f"wrote {run}/overview.png and config.json\n"
          "(this is a smoke run of the core; training and evaluation come with the training issue)")
    return 0


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
    with_config(sub.add_parser("config", help="print a config as JSON"), "seed").set_defaults(func=cmd_config)
    with_config(sub.add_parser("demo", help="smoke run of the core on the embedded data"), "demo").set_defaults(
        func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
