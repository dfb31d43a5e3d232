"""Timing, machine description and the results file shared by the benchmark sections."""
from __future__ import annotations

import json
import os
import platform
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

import medgan_nb
from medgan_nb.inference import time_in_turns
from medgan_nb.utils.hardware import cpu_model


def measure(fns: dict[str, Callable[[], Any]], reps: int, warmup: int = 1,
            device: torch.device = torch.device("cpu")) -> dict[str, dict]:
    """Time the functions taking turns (`medgan_nb.inference.backends.time_in_turns`); per name: seconds as min / median / all."""
    runs = time_in_turns(fns, reps, warmup, device)
    return {name: {"min_s": min(r), "median_s": statistics.median(r), "runs_s": [round(x, 6) for x in r]}
            for name, r in runs.items()}


def machine(device: torch.device) -> dict:
    """What the numbers were measured on."""
    info = {"device": str(device), "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "medgan_nb": medgan_nb.__version__,
            "platform": platform.platform()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_results(out_dir: Path, update: dict) -> Path:
    """Merge `update` into out_dir/results.json; the previous file is kept as results-<its date>.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    old: dict = {}
    if path.exists():
        old = json.loads(path.read_text())
        stamp = str(old.get("created", "previous")).replace(":", "").replace("+0000", "Z")
        keep = out_dir / f"results-{stamp}.json"
        n = 1
        while keep.exists():
            keep, n = out_dir / f"results-{stamp}-{n}.json", n + 1
        path.rename(keep)
    merged = {**old, **update}
    if "sections" in old and "sections" in update:
        merged["sections"] = {**old["sections"], **update["sections"]}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(merged, indent=2) + "\n")
    os.replace(tmp, path)
    return path
