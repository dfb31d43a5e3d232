"""``python -m benchmarks [--quick] [--only SECTION ...]`` and ``python -m benchmarks quality [--minutes M]``."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from medgan_nb.models import resolve_device

from . import speed
from . import video as video_bench
from .common import machine, now, write_results
from .data_share import data_share
from .degradation import degradation

SECTIONS = ("degradation", "degradation_64", "training", "data_loading", "data_share", "inference", "memory",
            "video")


def run_speed(args: argparse.Namespace, device: torch.device) -> dict:
    q = args.quick
    jobs = {
        # reps: a few seconds per size; at 64² a batch takes milliseconds, so it needs many turns to be stable
        "degradation": lambda: degradation(size=64 if q else 256, batch=8 if q else 32, reps=2 if q else 9),
        "degradation_64": lambda: degradation(size=32 if q else 64, batch=8 if q else 32, reps=2 if q else 40),
        "training": lambda: speed.training(device, reps=1 if q else 3, channels_last=not q),
        "data_loading": lambda: speed.data_loading(n=8 if q else 200, reps=1 if q else 2),
        "data_share": lambda: _data_shares(q),
        "inference": lambda: speed.inference(device, reps=3 if q else 25, frames=4 if q else 36,
                                             compile_=args.compile and not q),
        "memory": lambda: speed.memory(device),
        "video": lambda: video_bench.video(frames=4 if q else 30, reps={720: 2, 1080: 1} if q else None,
                                           sizes=((320, 180),) if q else video_bench.SIZES),
    }
    sections = {}
    for name in args.only or SECTIONS:
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        t = time.perf_counter()
        sections[name] = jobs[name]()
        sections[name].update(seconds=round(time.perf_counter() - t, 1), created=now())
    return sections


def _data_shares(quick: bool) -> dict:
    """The data's share of a training step: the demo and lite presets, and demo with noise_reuse 8."""
    steps, presets = (2, ("tiny",)) if quick else (20, ("demo", "lite"))
    shares = {p: data_share(p, steps) for p in presets}
    shares[f"{presets[0]}_noise_reuse_8"] = data_share(presets[0], steps, noise_reuse=8)
    return shares


def _f(v, unit: str = "") -> str:
    return "-" if v is None else f"{v:g}{unit}"


def _inference_rows(i: dict) -> list[str]:
    """One row per model × backend: median ms (PSNR difference vs fp32 PyTorch), ratio to the seed reference;
    the backend that "auto" keeps is marked, with the noise guard's ms that enhance adds for shipped models."""
    rows = []
    for name, m in i.get("models", {}).items():
        ref_ms = m.get("reference_ms")
        for backend, r in m["backends"].items():
            label = f"inference 256², {name.replace('_', ' ')}, {backend}"
            if backend == m["auto"]:
                label += " ← auto" + (f" (+ guard {m['guard_ms']:g} ms)" if m.get("guard_ms") is not None else "")
            if "median_ms" not in r:
                rows.append(f"| {label} | - | n/a ({r['error'][:60]}) | - | - |")
                continue
            diff = f", Δ PSNR {r['psnr_diff_db']:+.3f} dB" if "psnr_diff_db" in r else ""
            if r.get("kept") is False:
                diff += f", not kept (> {_f(i.get('int8_max_cost_db', 0.1))} dB)"
            ratio = f"{r['ratio_vs_reference']:g}×" if "ratio_vs_reference" in r else "-"
            rows.append(f"| {label} | {_f(ref_ms, ' ms') if ref_ms else '-'} | {r['median_ms']:g} ms{diff} | "
                        f"{ratio} | {m['target']} |")
    return rows


def table(sections: dict) -> str:
    """The results as a Markdown table (the README's Performance section shows it)."""
    rows = ["| benchmark | seed reference | project | ratio | target |", "|---|---|---|---|---|"]
    for key in ("degradation", "degradation_64"):
        if d := sections.get(key):
            rate, ratio = _f(d["project_images_per_s"]), ""
            if "ratio_reuse" in d:          # the pipeline with noise_reuse (NoiseBank) as well
                rate += f"; noise_reuse {d['noise_reuse']}: {_f(d['project_reuse_images_per_s'])}"
                ratio = f"; with noise_reuse {d['noise_reuse']}: {_f(d['ratio_reuse'])}×"
            rows.append(f"| degradation, {d['what']} | {_f(d['seed_images_per_s'])} | {rate} | {_f(d['ratio'])}× "
                        f"(randn alone bounds it at {_f(d['ratio_bound_by_randn'])}×: {_f(d['randn_fraction'])} of "
                        f"that bound){ratio} | ≥ 10× |")
    if t := sections.get("training"):
        extra = f"; channels_last {_f(t['project_channels_last_s'])} s" if "project_channels_last_s" in t else ""
        rows.append(f"| training iteration, s (seed models, batch 4, 1 D + 3 G) | {_f(t['seed_s'])} | "
                    f"{_f(t['project_s'])}{extra} | {_f(t['ratio'])}× | ≥ 1.3× |")
    if d := sections.get("data_loading"):
        rows.append(f"| data loading, images/s (JPEG -> 256²) | {_f(d['seed_load_images_per_s'])} | "
                    f"{_f(d['project_load_images_per_s'])} | {_f(d['ratio_load'])}× | - |")
        rows.append(f"| data loading + degradation, images/s | {_f(d['seed_load_degrade_images_per_s'])} | "
                    f"{_f(d['project_load_degrade_images_per_s'])} | {_f(d['ratio_load_degrade'])}× | - |")
    for d in (sections.get("data_share") or {}).values():
        if isinstance(d, dict) and "data_share" in d:
            reuse = f", noise_reuse {d['noise_reuse']}" if d.get("noise_reuse", 1) > 1 else ""
            rows.append(f"| training step, {d['preset']} preset{reuse} (batch {d['batch']}, {d['image_size']}²): "
                        f"data / model s | - | "
                        f"{d['data_s']:g} / {d['model_s']:g} s: data {100 * d['data_share']:.0f} % | - | ≤ 20 % |")
    if i := sections.get("inference"):
        rows += _inference_rows(i)
    if m := sections.get("memory"):
        def mb(case):
            return _f(m[case].get("peak_mb"), " MB") if isinstance(m.get(case), dict) else "-"
        rows.append(f"| peak memory, training iteration | {mb('train_seed_reference')} | {mb('train_project')} | - | - |")
        rows.append(f"| peak memory, loading a checkpoint file and enhancing one 256² frame (seed arch; lite) | "
                    f"{mb('infer_seed_reference')} | "
                    f"{mb('infer_project_seed')}; {mb('infer_lite')} | - | - |")
    if v := sections.get("video"):
        rows += video_bench.rows(v)
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("what", nargs="?", choices=["speed", "quality", "race"], default="speed")
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these speed sections")
    p.add_argument("--quick", action="store_true", help="small sizes and few repetitions (smoke test; numbers mean little)")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile variant")
    p.add_argument("--minutes", type=float, default=6.0, help="quality: training minutes per generator")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="output/bench", help="folder of results.json")
    p.add_argument("--cpu-minutes", type=float, default=5.0, help="race: training CPU minutes per candidate")
    p.add_argument("--candidates", nargs="+", help="race: candidate names (default: all)")
    p.add_argument("--data", help="race: training data folder (default: the shipped Kvasir-SEG sample)")
    p.add_argument("--parallel", type=int, default=2, help="race: candidates trained at once (one thread each)")
    p.add_argument("--one", help=argparse.SUPPRESS)        # race: run this one candidate (a worker process)
    args = p.parse_args(argv)
    if args.what == "race":
        return _race(args)
    device = resolve_device(args.device)
    out = Path(args.out)
    if args.what == "quality":
        from .quality import quality
        result = quality(args.minutes, str(out), args.device)
        path = write_results(out, {"quality": {**result, "machine": machine(device)}})
        print(f"lite / seed-architecture PSNR gain: {result['gain_ratio']:.2f} (goal >= 0.9)\nwrote {path}")
        return 0
    started = now()
    sections = run_speed(args, device)
    previous = out / "results.json"
    if args.only and previous.exists():          # sections not rerun keep their last figures, in the table too
        sections = {**json.loads(previous.read_text()).get("sections", {}), **sections}
    md = table(sections)
    print("\n" + md + "\n")
    path = write_results(out, {"created": started, "quick": args.quick, "machine": machine(device), "sections": sections,
                               "table_markdown": md})
    print(f"wrote {path}")
    return 0


def _race(args: argparse.Namespace) -> int:
    from . import race
    out = Path(args.out) / "race"
    if args.one:                                        # a worker: one thread, so that candidates never share one
        torch.set_num_threads(1)
        out.mkdir(parents=True, exist_ok=True)
        result = race.run_one(args.one, 60 * args.cpu_minutes, max(15.0, 6 * args.cpu_minutes), args.data, out)
        (out / f"{args.one}.json").write_text(json.dumps(result, indent=2) + "\n")
        return 0
    summary = race.race(args.candidates or list(race.CANDIDATES), args.cpu_minutes, args.data, out, args.parallel)
    for name, r in sorted(summary["candidates"].items(), key=lambda kv: -kv[1]["final_psnr"]):
        print(f"{name:16s} {r['parameters'] / 1e6:5.2f} M  {r['steps']:6d} steps  val PSNR {r['final_psnr']:.2f} dB "
              f"(input {r['psnr_input']:.2f})")
    print(f"wrote {out / 'race.json'} and {out / 'race.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
