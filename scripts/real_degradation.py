"""What the shipped models do to frames that are degraded for real (not by our simulation), judged without a reference.

    python scripts/real_degradation.py --data ../shared/data/kvasir-seg --out output/real-degradation \
        [--centres ../shared/data/polypgen-eval] [--figure docs/real-degradation.jpg]

Real frames have no clean twin, so PSNR cannot judge them. Every frame of the Kvasir-SEG test split (and of each
``--centres`` folder) is taken at the evaluation's scale (shorter side 256, centre 256² crop) and measured before
and after each shipped L1 model (with its guard, as ``enhance`` runs it) by three no-reference measures:

- the noise std the guard estimates (`medgan_nb.models.guard.noise_level`, [0, 1] units);
- the gradient energy (`medgan_nb.sharpness.gradient_energy`; after / before > 1: sharper, < 1: smoother);
- the naturalness score (`medgan_nb.naturalness`, NIQE-like, fitted on clean Kvasir-SEG training frames: lower
  is more natural).

The frames that look most degraded by one of these (the most blurred: lowest gradient energy; the noisiest:
highest noise estimate; the darkest: lowest mean luminance; the least natural: highest score) are picked from
the Kvasir-SEG test split (CC BY 4.0, so they may be shown; PolypGen frames are scored, never drawn), drawn before
and after each model without its guard (``--figure``; with it, a frame the guard leaves alone is unchanged), and
every set's paired change is summarised, with and without the guard, with a 95 % bootstrap interval.
Writes ``real.json`` and ``real.md`` into ``--out`` (a new folder).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from medgan_nb.config import Config
from medgan_nb.evaluation import centre_folders, evaluation_config, evaluation_data
from medgan_nb.evaluation.report import mean_interval
from medgan_nb.evaluation.methods import run_gan
from medgan_nb.models import load_model
from medgan_nb.models.guard import noise_level
from medgan_nb.naturalness import load_naturalness
from medgan_nb.sharpness import gradient_energy
from medgan_nb.utils.files import refuse_existing
from medgan_nb.utils.images import luminance
from medgan_nb.utils.text import markdown_table

MODELS = ("realtime", "quality")
VARIANTS = (*MODELS, *(f"{m} without guard" for m in MODELS))
PICKS = {"most blurred": ("sharpness", 1), "noisiest": ("noise", -1), "darkest": ("luminance", 1),
         "least natural": ("naturalness", -1)}      # measure, 1: the lowest values, -1: the highest


def measures(images: torch.Tensor, natural) -> dict[str, np.ndarray]:
    """Per image (N, 3, H, W) in [-1, 1]: noise estimate, gradient energy, naturalness, mean luminance."""
    return {"noise": noise_level(images).numpy(), "sharpness": gradient_energy(images),
            "naturalness": natural.score(images), "luminance": luminance(images).mean(axis=(1, 2))}


def frames(folder: str | Path, split: str | None) -> tuple[torch.Tensor, list[str]]:
    """The clean frames of a folder (or its split) at 256², stacked, and their keys."""
    cfg = evaluation_config(Config(data_dir=str(folder), image_size=256, frame_size=256, resize="crop"))
    dataset, _ = evaluation_data(cfg, None if split else folder, split or "test")
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([x for x, _ in items]), [k for _, k in items]


def score_set(images: torch.Tensor, natural) -> dict:
    """Before and after each model, with its guard (as enhance runs it) and without: the measures per frame, and
    the guard's strength per frame (what it would apply)."""
    out = {"input": {k: v.tolist() for k, v in measures(images, natural).items()}}
    for name in MODELS:
        generator = load_model(name, "cpu")[0].eval()
        with torch.inference_mode():
            raw = torch.cat([generator(images[i:i + 8]) for i in range(0, len(images), 8)]).clamp(-1, 1)
            strength = generator.guard.strength(images, raw)
        for variant, restored in ((name, generator.guard.blend(images, raw, strength)),
                                  (f"{name} without guard", raw)):
            out[variant] = {k: v.tolist() for k, v in measures(restored, natural).items()}
            out[variant]["guard_strength"] = strength.tolist()
            out[variant]["images"] = restored
    return out


def summary_rows(label: str, scored: dict) -> list[list]:
    """One row per model: the paired change of each measure (mean [95 % interval]) and frames left unchanged."""
    rows = []
    before = {k: np.asarray(v) for k, v in scored["input"].items()}
    for name in VARIANTS:
        after = {k: np.asarray(v) for k, v in scored[name].items() if k != "images"}
        cells = [label, name, len(before["noise"])]
        for change in (after["naturalness"] - before["naturalness"], after["noise"] - before["noise"],
                       np.log2(after["sharpness"] / before["sharpness"])):
            low, high = mean_interval(change) if np.ptp(change) > 0 else (change[0], change[0])
            cells.append(f"{change.mean():+.3f} [{low:+.3f}, {high:+.3f}]")
        cells.append(int((after["guard_strength"] == 0).sum()))
        rows.append(cells)
    return rows


def picks(scored: dict, keys: list[str]) -> dict[str, int]:
    """Category -> the index of the frame that shows it most (each frame picked once)."""
    chosen: dict[str, int] = {}
    for category, (measure, sign) in PICKS.items():
        order = np.argsort(sign * np.asarray(scored["input"][measure]))
        chosen[category] = next(int(i) for i in order if int(i) not in chosen.values())
    return chosen


def figure(images: torch.Tensor, keys: list[str], scored: dict, chosen: dict[str, int], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from medgan_nb.utils.images import to_numpy_images
    shown = [f"{m} without guard" for m in MODELS]
    fig, axes = plt.subplots(len(chosen), 1 + len(shown), figsize=(3.2 * (1 + len(shown)), 3.4 * len(chosen)))
    for r, (category, i) in enumerate(chosen.items()):
        for c, name in enumerate(("input", *shown)):
            img = images[i] if name == "input" else scored[name]["images"][i]
            m = scored[name]
            ax = axes[r, c]
            ax.imshow(to_numpy_images(img))
            ax.set_xticks([]), ax.set_yticks([])
            extra = f"\nits guard would apply {m['guard_strength'][i]:.2f}" if name != "input" else ""
            ax.set_title(f"{name if c else category + ': ' + Path(keys[i]).name[:14]}\n"
                         f"naturalness {m['naturalness'][i]:.2f}, noise {m['noise'][i]:.3f}{extra}", fontsize=8)
    fig.suptitle("Kvasir-SEG test frames that look degraded for real (CC BY 4.0), before and after each model "
                 "without its guard; lower naturalness is more natural", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90, pil_kwargs={"quality": 85})
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="Kvasir-SEG (its test split is used)")
    p.add_argument("--centres", type=Path, help="a folder of centre folders (scored, never drawn)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--figure", type=Path)
    args = p.parse_args()
    refuse_existing([args.out], "choose another --out")
    natural = load_naturalness()
    sets = {"Kvasir-SEG test": frames(args.data, "test")}
    for folder in centre_folders(args.centres) if args.centres else []:
        sets[folder.name] = frames(folder, None)
    rows, results = [], {}
    for label, (images, keys) in sets.items():
        scored = score_set(images, natural)
        rows += summary_rows(label, scored)
        if label == "Kvasir-SEG test":
            chosen = picks(scored, keys)
            if args.figure:
                figure(images, keys, scored, chosen, args.figure)
            results["picked"] = {c: {"key": keys[i], **{n: {k: scored[n][k][i] for k in scored[n] if k != "images"}
                                                        for n in ("input", *VARIANTS)}} for c, i in chosen.items()}
        results[label] = {n: {k: v for k, v in s.items() if k != "images"} for n, s in scored.items()}
        results[label]["keys"] = keys
    table = markdown_table(["frames", "model", "n", "naturalness change (lower: more natural)",
                            "noise estimate change", "log2 gradient energy change", "left unchanged by the guard"],
                           rows)
    args.out.mkdir(parents=True)
    (args.out / "real.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "real.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
