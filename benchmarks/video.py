"""The "video" section of ``python -m benchmarks``: frames/s of the shipped ``realtime`` model on video frames.

The original design asks for "real-time enhancement during procedures": the goal here is `GOAL_FPS` (25)
frames/s at 1280×720 on the CPU. Measured, per frame size:

- restoration only: `medgan_nb.inference.video.FrameRestorer`, the path `enhance` takes for each decoded frame
  (float conversion, `enhance_array` with its padding and 512² tiles, the guard with its smoothed strength,
  rounding to uint8), with the weights loaded as `enhance` loads them (`_open_weights`: BatchNorm folded), for
  each CPU backend in `BACKENDS`;
- end to end: ``enhance(clip.mp4, out, model="realtime")`` on a generated clip of `frames` noisy frames
  (decode + restore + encode, H.264 CRF 17), read from its audit line, with the faster backend.

And the arithmetic limit: the model's FLOPs per frame (`torch.utils.flop_counter.FlopCounterMode` over one
frame through `enhance_array`, tiles and overlaps included) against this CPU's rate on a large matmul (fp32 and
bf16), which no convolution beats: ``limit frames/s = matmul FLOP/s / FLOPs per frame``.
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medgan_nb.inference.files import _open_weights, enhance
from medgan_nb.inference.video import FrameRestorer, video_codec, write_clip
from medgan_nb.models.runner import enhance_array

GOAL_FPS = 25
SIZES = ((1280, 720), (1920, 1080))
BACKENDS = ("torch", "torch-bf16")
MODEL = "realtime"


def pattern_frames(w: int, h: int, n: int, seed: int = 0) -> list[np.ndarray]:
    """`n` uint8 (h, w, 3) frames: a smooth colour pattern drifting from frame to frame, plus Gaussian noise
    (std 12 of 255), so that the guard applies the model (as on a noisy endoscopy frame)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / (h / 12)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = np.stack([np.sin(xx + i / 5) * np.cos(yy), np.cos(xx + yy), np.sin(xx * yy / 6)], axis=2) * 0.35 + 0.5
        noisy = img * 255 + rng.normal(0, 12, img.shape).astype(np.float32)
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return out


def matmul_rate(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    """FLOP/s of an n×n by n×n matmul in `dtype` on the CPU (median of `reps`, after one warm-up)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times)


def frame_flops(generator: torch.nn.Module, w: int, h: int, tile: int = 512) -> int:
    """FLOPs of the generator on one w×h frame through `enhance_array` (its tiles and overlaps counted)."""
    from torch.utils.flop_counter import FlopCounterMode
    frame = pattern_frames(w, h, 1)[0].astype(np.float32) / 255
    with FlopCounterMode(display=False) as counter:
        enhance_array(generator, frame, tile=tile, progress=False)
    return int(counter.get_total_flops())


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _restoration_ms(run, frames: list[np.ndarray], threads: int) -> tuple[float, float]:
    """(median ms per frame, mean guard strength applied) of `FrameRestorer` on frames[1:] after frames[0]."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        restore = FrameRestorer(run, fps=25)
        restore(frames[0])                                    # warm-up
        times = []
        for f in frames[1:]:
            t = time.perf_counter()
            restore(f)
            times.append(time.perf_counter() - t)
    finally:
        torch.set_num_threads(before)
    return 1000 * statistics.median(times), float(np.mean(restore.applied))


def _end_to_end(w: int, h: int, frames: int, backend: str, tile: int, threads: int) -> dict:
    """`enhance` on a generated clip: its audit line's frames/s, and the call's seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory() as folder:
            clip = write_clip(Path(folder) / "clip.mp4", pattern_frames(w, h, frames, seed=2))
            t = time.perf_counter()
            enhance(clip, Path(folder) / "out", model=MODEL, device="cpu", backend=backend, tile=tile, quiet=True)
            call_s = time.perf_counter() - t
            record = json.loads((Path(folder) / "out" / "audit.jsonl").read_text().splitlines()[-1])
    finally:
        torch.set_num_threads(before)
    return {"backend": backend, "tile": tile, "threads": threads, "frames": record["frames"],
            "fps": record["frames_per_s"]["end_to_end"], "restoration_fps": record["frames_per_s"]["restoration"],
            "enhance_call_s": round(call_s, 2)}


def video(frames: int = 30, reps: dict | None = None, sizes=SIZES, backends=BACKENDS) -> dict:
    """The section's figures (see the module docstring); `reps`: timed frames per size for restoration only.

    Each backend is timed with 1 thread and with torch's default thread count: on a shared machine more threads
    than free cores make OpenMP wait at every barrier, and one thread can be several times faster. Then the
    fastest setting is timed with the whole frame as one tile (``--tile`` >= the frame's longer side): the
    default tiles (at most 512², as few as cover the padded frame, overlapping by at least 32 pixels) run the
    model on about 1.1 times the frame's pixels at 1280×720 and 1920×1080 (`frame_flops`).
    """
    device = torch.device("cpu")
    reps = reps or {720: 5, 1080: 3}
    default_threads = torch.get_num_threads()
    thread_counts = sorted({1, default_threads})
    result: dict = {"what": f"frames/s of the shipped {MODEL} model on the CPU, goal >= {GOAL_FPS} at 1280x720",
                    "model": MODEL, "torch_threads": default_threads, "threads_tried": thread_counts,
                    "load_average_before": _load(), "codec": video_codec(), "goal_fps": GOAL_FPS, "sizes": {}}
    runs = {b: _open_weights(None, MODEL, None, device, True, b, 0, tile=512, label=False, progress=False)
            for b in backends}
    for w, h in sizes:
        test = pattern_frames(w, h, reps.get(h, 3) + 1, seed=1)
        whole = max(w, h)
        size: dict = {"restoration_ms": {}}
        for b, run in runs.items():
            for threads in thread_counts:
                ms, strength = _restoration_ms(run, test, threads)
                size["restoration_ms"][f"{b}, {threads} thread{'s' if threads > 1 else ''}"] = round(ms, 1)
                size["guard_strength_mean"] = round(strength, 3)
        best = min(size["restoration_ms"], key=size["restoration_ms"].get)
        backend, threads = best.split(", ")[0], int(best.split(", ")[1].split()[0])
        runs[backend].tile = whole
        ms, _ = _restoration_ms(runs[backend], test, threads)
        runs[backend].tile = 512
        size["restoration_ms"][f"{best}, whole frame as one tile"] = round(ms, 1)
        size["restoration_fps"] = {k: round(1000 / v, 2) for k, v in size["restoration_ms"].items()}
        size["end_to_end"] = [_end_to_end(w, h, frames, backend, tile, threads) for tile in (512, whole)]
        size["end_to_end_fps"] = max(e["fps"] for e in size["end_to_end"])
        for tile, name in ((512, "tiles_512"), (whole, "whole_frame")):
            flops = frame_flops(runs["torch"].generator, w, h, tile)
            size[f"flops_{name}"] = {"gflops_per_frame": round(flops / 1e9, 2),
                                     "flops_per_pixel": round(flops / (w * h)),
                                     "gflops_per_s_for_goal": round(flops * GOAL_FPS / 1e9, 1)}
        result["sizes"][f"{w}x{h}"] = size
    rates = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            rates[name] = max(rates.get(name, 0.0), matmul_rate(dtype))
    torch.set_num_threads(default_threads)
    result["matmul_gflops_per_s"] = {k: round(v / 1e9, 1) for k, v in rates.items()}
    for size in result["sizes"].values():
        flops = size["flops_whole_frame"]["gflops_per_frame"] * 1e9
        size["limit_fps"] = {k: round(v / flops, 1) for k, v in rates.items()}
    at720 = result["sizes"].get("1280x720")
    if at720:
        fps = min(max(at720["restoration_fps"].values()), at720["end_to_end_fps"])
        result["goal_met"] = fps >= GOAL_FPS
        result["gap_x"] = round(GOAL_FPS / fps, 1)
    result["load_average_after"] = _load()
    return result


def rows(v: dict) -> list[str]:
    """The section's rows of the benchmarks table (columns: benchmark | seed reference | project | ratio | target)."""
    out = []
    goal = f"≥ {v['goal_fps']} at 1280x720"
    for key, s in v.get("sizes", {}).items():
        per = "; ".join(f"{b}: {fps:g}" for b, fps in s["restoration_fps"].items())
        out.append(f"| video {key}, {v['model']}: restoration only (model + guard), frames/s | - | {per} | - | "
                   f"{goal} |")
        for e in s["end_to_end"]:
            out.append(f"| video {key}: end to end (decode + restore + {v['codec']}), {e['frames']} frames, "
                       f"{e['backend']}, {e['threads']} thread(s), tile {e['tile']}, frames/s | - | {e['fps']:g} | - | "
                       f"{goal} |")
        t, f = s["flops_tiles_512"], s["flops_whole_frame"]
        out.append(f"| video {key}: arithmetic limit: {f['gflops_per_frame']:g} GFLOP/frame ({f['flops_per_pixel']:g} "
                   f"FLOP/pixel; tiles 512: {t['gflops_per_frame']:g}), {f['gflops_per_s_for_goal']:g} GFLOP/s for "
                   f"{v['goal_fps']} frames/s, against matmul {v['matmul_gflops_per_s']['fp32']:g} (fp32) / "
                   f"{v['matmul_gflops_per_s']['bf16']:g} (bf16) GFLOP/s | - | ≤ {s['limit_fps']['fp32']:g} (fp32) / "
                   f"{s['limit_fps']['bf16']:g} (bf16) frames/s | - | - |")
    if "sizes" in v:
        verdict = ("-" if "goal_met" not in v else "met" if v["goal_met"] else f"missed by {v['gap_x']:g}×")
        out.append(f"| video goal, 1280x720 | - | {verdict} (torch threads {v['torch_threads']}, load average "
                   f"{v['load_average_before']} -> {v['load_average_after']}) | - | ≥ {v['goal_fps']} frames/s |")
    return out
