"""Build data/kvasir-sample/ (the real frames the repository ships) from a Kvasir-SEG folder.

    python scripts/make_kvasir_sample.py ../shared/data/kvasir-seg data/kvasir-sample --frames 100

Takes whole near-duplicate groups (medgan_nb.data.duplicate_groups) in the order of a hash of their
names until `--frames` frames are in, so the sample's frames fall in the same train/val/test split as
in the full set. Frames are scaled so their shorter side is `--side` pixels (JPEG, quality 92) and
their masks with them (PNG, 0/255). Writes into a new folder only.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from medgan_nb.data import ImageFolderDataset, split_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("source", type=Path, help="a Kvasir-SEG folder (images/ + masks/)")
    parser.add_argument("target", type=Path, help="a new folder")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--side", type=int, default=384, help="shorter side in pixels")
    args = parser.parse_args()
    full = ImageFolderDataset(args.source, 256)
    if full.mask_root is None:
        raise SystemExit(f"{args.source} has no masks/ folder beside its images")
    chosen: list[int] = []
    for group in sorted(set(full.groups), key=lambda g: hashlib.sha256(g.encode()).hexdigest()):
        if len(chosen) >= args.frames:
            break
        chosen += [i for i, g in enumerate(full.groups) if g == group]
    (args.target / "images").mkdir(parents=True)           # fails if it exists: never overwrites
    (args.target / "masks").mkdir()
    for i in chosen:
        name = Path(full.keys[i]).with_suffix("")
        with Image.open(full.files[i]) as img:
            size = _scaled(img.size, args.side)
            img.convert("RGB").resize(size, Image.LANCZOS).save(args.target / "images" / f"{name}.jpg", quality=92)
        with Image.open(full.mask_file(i)) as mask:
            grey = np.asarray(mask.convert("L").resize(size, Image.BILINEAR))
            Image.fromarray(np.where(grey > 127, 255, 0).astype(np.uint8)).save(args.target / "masks" / f"{name}.png")
    splits = [split_of(full.groups[i]) for i in chosen]
    print(f"{len(chosen)} frames -> {args.target}: " + ", ".join(f"{s} {splits.count(s)}" for s in ("train", "val", "test")))


def _scaled(size: tuple[int, int], side: int) -> tuple[int, int]:
    w, h = size
    scale = side / min(w, h)
    return round(w * scale), round(h * scale)


if __name__ == "__main__":
    main()
