"""Facts about the machine this runs on, for timing records, set-up lines and the choice of backend.

- `cpu_model()`: the CPU's name; `machine(device)`: a dict of the device, torch's CPU threads and the CPU
  model, stored next to timings so that a reader knows where they come from.
- `cpu_flags()`, `bf16_native()`: whether the CPU computes bfloat16 itself (AVX512-BF16 or AMX); elsewhere
  bf16 is emulated and slower than float32, so the bf16 backends are not tried there.
- `version_of(package)`: an installed distribution's version, or None; `device_line()`: one line naming
  the GPU, or the CPU and its torch threads.

Nothing here raises for a fact it cannot find: it comes back empty, None or "unknown".
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
from pathlib import Path

import torch


def _cpuinfo_field(name: str, cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The value of the first line of /proc/cpuinfo (Linux) that starts with `name`; None where there is no such
    line or the file cannot be read."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith(name) and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's name: "model name" of /proc/cpuinfo (Linux), else platform.processor(), else "unknown"."""
    return _cpuinfo_field("model name") or platform.processor() or "unknown"


def machine(device: str) -> dict[str, str | int]:
    """Where the timings were measured: the device, torch's CPU threads and the CPU model."""
    return {"device": device, "torch_threads": torch.get_num_threads(), "cpu": cpu_model()}


BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})     # /proc/cpuinfo flags of CPUs that compute bf16 natively


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where it cannot be read."""
    return frozenset((_cpuinfo_field("flags", cpuinfo) or "").split())


def bf16_native() -> bool:
    """Whether this CPU computes bf16 itself (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower than fp32."""
    return bool(BF16_FLAGS & cpu_flags())


def version_of(package: str) -> str | None:
    """The installed distribution's version, or None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def device_line() -> str:
    """The device the notebooks train on, with the CPU threads or the GPU's name."""
    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)} (torch {torch.version.cuda})"
    return f"CPU: {cpu_model()}, {torch.get_num_threads()} torch threads, no GPU"
