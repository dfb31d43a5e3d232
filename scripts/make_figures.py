"""Draw README's figures from the shipped models and their cards (no training; about a minute on 2 cores).

    python scripts/make_figures.py                   # or: make figures

- docs/hero.png: three shipped test frames under blur + noise, restored by the default model and the best
  classic available here (CBM3D with the bm3d extra, else NLM), beside the card's noise × blur grid;
- docs/grid-<model>.png: each shipped model's grid (model − input, model − best classic) from its card.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from medgan_nb.evaluation import plot_grid
from medgan_nb.models import default_model, list_models, model_card
from medgan_nb.figures import hero_figure


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs"))
    p.add_argument("--model", help="the model in the hero figure (default: the default shipped model)")
    args = p.parse_args()
    print("wrote", hero_figure(args.out / "hero.png", model=args.model or default_model()))
    for name in list_models():
        grid = model_card(name)["scores"].get("grid")
        if grid and "noise_stds" in grid:
            print("wrote", plot_grid(grid, args.out / f"grid-{name}.png"))


if __name__ == "__main__":
    main()
