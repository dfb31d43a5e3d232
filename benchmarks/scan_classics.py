"""How far one test scan carries a verdict: the classics of a modality on every sample scan, scan by scan.

``python -m benchmarks.scan_classics --modality ct [--realisations 1] [--bm3d]`` degrades every sample scan's
slices (all splits: no model is involved) under each of `medgan_nb.evaluation.scans.CONDITIONS` and restores them
with the classics; it prints one row per scan and the range, over scans, of the PSNR gap between each pair of
classics, with the machine and the load average. If that range spans zero, the ranking of two methods on one
scan says nothing about the next.
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics

from medgan_nb.config import Config
from medgan_nb.data.scans import sample_slices
from medgan_nb.evaluation.scans import CONDITIONS, methods_for, restore_all, score_slice
from medgan_nb.utils.hardware import cpu_model


def scan_of(key: str) -> str:
    return key.split("#")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", choices=sorted(CONDITIONS), default="ct")
    parser.add_argument("--realisations", type=int, default=1)
    parser.add_argument("--bm3d", action="store_true", help="include BM3D (slow: seconds per 512² slice)")
    args = parser.parse_args()
    cfg = Config.from_preset(args.modality)
    methods = [m for m in methods_for(args.modality) if m != "model" and (args.bm3d or m != "bm3d")]
    slices = [s for split in ("train", "val", "test") for s in sample_slices(args.modality, split, cfg.scan_size)]
    print(f"{args.modality}: {len(slices)} slices of {len({scan_of(s.key) for s in slices})} scans; "
          f"{cpu_model()}, load average {os.getloadavg()[0]:.1f}")
    for condition, strengths in CONDITIONS[args.modality].items():
        psnr: dict[str, dict[str, list[float]]] = {}
        for s, r in itertools.product(slices, range(args.realisations)):
            outputs = restore_all(None, args.modality, s, strengths, f"{s.key} {condition} {r}", cfg.seed, methods)
            for method, (out, _) in outputs.items():
                psnr.setdefault(scan_of(s.key), {}).setdefault(method, []).append(
                    score_slice(args.modality, out, s)["psnr"])
        means = {scan: {m: statistics.fmean(v) for m, v in by.items()} for scan, by in psnr.items()}
        print(f"\n### {condition}\n\n| scan | " + " | ".join(methods) + " |\n|---|" + "---|" * len(methods))
        for scan, by in means.items():
            print(f"| {scan} | " + " | ".join(f"{by[m]:.2f}" for m in methods) + " |")
        for a, b in itertools.combinations([m for m in methods if m != "input"], 2):
            gaps = [by[a] - by[b] for by in means.values()]
            print(f"\n{a} − {b} over {len(gaps)} scans: {min(gaps):+.2f} … {max(gaps):+.2f} dB")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
