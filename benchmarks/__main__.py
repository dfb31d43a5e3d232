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
from .common import machine, now, write_results

SECTIONS = ("degradation", "training", "data_loading", "inference", "memory")


def run_speed(args: argparse.Namespace, device: torch.device) -> dict:
    q = args.quick
    jobs = {
        "degradation": lambda: speed.degradation(size=64 if q else 256, batch=8 if q else 32, reps=2 if q else 5),
        "training": lambda: speed.training(device, reps=1 if q else 3, channels_last=not q),
        "data_loading": lambda: speed.data_loading(n=8 if q else 200, reps=1 if q else 2),
        "inference": lambda: speed.inference(device, reps=3 if q else 25, compile_=args.compile and not q),
        "memory": lambda: speed.memory(device),
    }
    sections = {}
    for name in args.only or SECTIONS:
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        t = time.perf_counter()
        sections[name] = jobs[name]()
        sections[name].update(seconds=round(time.perf_counter() - t, 1), created=now())
    return sections


def _f(v, unit: str = "") -> str:
    return "-" if v is None else f"{v:g}{unit}"


def table(sections: dict) -> str:
    """The results as a Markdown table (the README's Performance section shows it)."""
    rows = ["| benchmark | seed reference | project | ratio | target |", "|---|---|---|---|---|"]
    if d := sections.get("degradation"):
        rows.append(f"| degradation, {d['what']} | {_f(d['seed_images_per_s'])} | "
                    f"{_f(d['project_images_per_s'])} | {_f(d['ratio'])}× (randn alone bounds it at "
                    f"{_f(d['ratio_bound_by_randn'])}×) | ≥ 20× |")
    if t := sections.get("training"):
        extra = f"; channels_last {_f(t['project_channels_last_s'])} s" if "project_channels_last_s" in t else ""
        rows.append(f"| training iteration, s (seed models, batch 4, 1 D + 3 G) | {_f(t['seed_s'])} | "
                    f"{_f(t['project_s'])}{extra} | {_f(t['ratio'])}× | ≥ 1.3× |")
    if d := sections.get("data_loading"):
        rows.append(f"| data loading, images/s (JPEG -> 256²) | {_f(d['seed_load_images_per_s'])} | "
                    f"{_f(d['project_load_images_per_s'])} | {_f(d['ratio_load'])}× | - |")
        rows.append(f"| data loading + degradation, images/s | {_f(d['seed_load_degrade_images_per_s'])} | "
                    f"{_f(d['project_load_degrade_images_per_s'])} | {_f(d['ratio_load_degrade'])}× | - |")
    if i := sections.get("inference"):
        ref_ms = i["seed_reference_no_grad"]["median_ms"]
        shipped = [(n, "≤ 10 ms" if n == "shipped_realtime" else "-") for n in i if n.startswith("shipped_")]
        for name, target in (("seed_architecture", "≤ 0.7×"), ("lite", "≤ 10 ms"), *shipped):
            m = i[name]
            variants = ", ".join(f"{k} {v['median_ms']:g}" if "median_ms" in v else f"{k} n/a"
                                 for k, v in m["variants"].items())
            if "guard_ms" in m:
                variants += f"; + guard {m['guard_ms']:g} = {m['default_ms_with_guard']:g}"
            ratio = f"{m['default_ms'] / ref_ms:.2f}×" if m["default_ms"] and name == "seed_architecture" else "-"
            rows.append(f"| inference, ms/frame, {name.replace('_', ' ')} (256², batch 1; {variants}) | "
                        f"{_f(ref_ms) if name == 'seed_architecture' else '-'} | "
                        f"{_f(m.get('default_ms_with_guard', m['default_ms']))} "
                        f"({m['default_backend']}{' + guard' if 'guard_ms' in m else ''}) | {ratio} | {target} |")
    if m := sections.get("memory"):
        def mb(case):
            return _f(m[case].get("peak_mb"), " MB") if isinstance(m.get(case), dict) else "-"
        rows.append(f"| peak memory, training iteration | {mb('train_seed_reference')} | {mb('train_project')} | - | - |")
        rows.append(f"| peak memory, inference (seed arch; lite) | {mb('infer_seed_reference')} | "
                    f"{mb('infer_project_seed')}; {mb('infer_lite')} | - | - |")
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
