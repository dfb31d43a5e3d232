"""Fit the naturalness model (`medgan_nb.naturalness`) on the clean frames of a data set's training split.

    python scripts/fit_naturalness.py --data-dir data/Kvasir-SEG --out medgan_nb/weights/naturalness/kvasir-seg.json

The frames are prepared exactly as an evaluation sees them (`medgan_nb.evaluation.conditions.evaluation_config` of
the ``quality`` preset: 256², aspect kept, centre crop, no random crops), so that a model is fitted at the scale it scores at. Only
the training split is used: validation and test frames stay unseen. Refuses to overwrite an existing file.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from medgan_nb.config.config import Config
from medgan_nb.evaluation.conditions import evaluation_config
from medgan_nb.evaluation.core import evaluation_data
from medgan_nb.naturalness import fit_naturalness
from medgan_nb.utils.files import refuse_existing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="a folder of frames (Kvasir-SEG: images/ + masks/)")
    parser.add_argument("--out", required=True, help="the JSON file to write (never overwritten)")
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    refuse_existing([args.out], hint="choose another --out")
    cfg = evaluation_config(Config.from_preset("quality", data_dir=args.data_dir, image_size=256, frame_size=256,
                                                 train_crop="none"))
    dataset, _ = evaluation_data(cfg, split=args.split)
    start = time.process_time()
    clean = torch.stack([dataset[i][0] for i in range(len(dataset))])
    model = fit_naturalness(clean, fitted_on=f"the {args.split} split of {Path(args.data_dir).name} "
                                                      f"({len(dataset)} frames, {cfg.image_size}² centre crops)")
    model.save(args.out)
    print(f"{args.out}: {model.n_patches} sharp patches of {model.n_images} frames, "
          f"{time.process_time() - start:.0f} CPU s")


if __name__ == "__main__":
    main()
