"""Faster ways to run a trained generator on the CPU, and the choice among them.

`fast_generator(generator, backend, probe_size)` returns a callable (N, C, H, W) -> (N, C, H, W) with a
``backend`` attribute naming the choice (`BACKENDS`):

- "torch": the BatchNorm-folded eval copy (`medgan_nb.inference.fold`), on any device;
- "torch-channels-last" (`ChannelsLast`) and "torch-bf16" (`Bf16Autocast`: bf16 conv weights under
  autocast, float32 in and out; fast only where the CPU computes bf16 natively);
- "onnxruntime", "openvino", "openvino-bf16" (`ENGINES`): the engines of `medgan_nb.inference.engines`,
  sharing one ONNX export;
- "auto": on a GPU "torch"; on the CPU, times the `auto_candidates` in turns (`time_in_turns`) on one
  frame and keeps the fastest, as the winner depends on the model and the machine. Backends with a
  second float32 copy of the weights (`OWN_WEIGHTS`) are candidates only up to `AUTO_OWN_WEIGHTS_MAX_MB`.
  The ONNX exporter's progress lines are kept off the screen (logged at debug level).

An unknown backend raises ValueError. `remember_backend(weights_sha256, name)` and `remembered_backend(weights_sha256)`
keep the choice per weights and machine (CPU model, threads, package versions) in the user cache
(``$XDG_CACHE_HOME/medgan_nb/backends.json``, else ``~/.cache/...``), so that "auto" measures once.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..config.config import INFERENCE_BACKENDS
from ..utils.files import atomic_write
from ..utils.hardware import bf16_native, cpu_model, version_of
from .engines import OnnxGenerator, OpenVinoGenerator, _require, onnx_available, openvino_available
from .export import _channels, _onnx_file
from .fold import fold_batchnorm

log = logging.getLogger(__name__)

# Backends that hold their own float32 copy of the weights (a new layout, or an engine's copy) instead of sharing the
# model's. torch-bf16 holds bf16 copies of the conv weights: half their size, allowed for models of any size.
OWN_WEIGHTS = ("torch-channels-last", "onnxruntime", "openvino", "openvino-bf16")
ENGINES = ("onnxruntime", "openvino", "openvino-bf16")          # run from the ONNX export
AUTO_OWN_WEIGHTS_MAX_MB = 64        # "auto" tries those only for models with at most this many MB of weights


class ChannelsLast(nn.Module):
    """Runs `model` in the channels-last memory layout; inputs and outputs stay ordinary NCHW tensors.

    The weights are converted to that layout: a copy of them (the model's own stay as they are).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)
        self.size_multiple, self.in_channels = model.size_multiple, _channels(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last)).contiguous()


class Bf16Autocast(nn.Module):
    """Runs `model` under bf16 autocast on channels-last inputs; inputs and outputs are float32 NCHW tensors.

    The conv weights are cast to bf16 once, here, and stored channels-last (`_with_bf16_convs`): the very
    numbers autocast would make in every forward, so the outputs are the same, without a cast per conv and
    call; the channels-last layout that the activations want is part of the gain (docs/performance.md).
    The copies cost half the conv weights' float32 size; every other tensor is shared with `model`. Fast
    only on CPUs with native bf16 (`bf16_native`); outputs differ from float32 by bf16 rounding only (the
    residual sum and the clamp stay float32).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = _with_bf16_convs(model)
        self.size_multiple, self.in_channels = model.size_multiple, _channels(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # no cast cache: a float32 weight that is still cast (not a conv's) is freed as soon as its layer has run
        with torch.autocast(x.device.type, dtype=torch.bfloat16, cache_enabled=False):
            y = self.model(x.contiguous(memory_format=torch.channels_last))
        return y.float().contiguous()


def _with_bf16_convs(module: nn.Module) -> nn.Module:
    """A copy of `module` whose conv weights (channels-last) and biases are bf16; every other tensor is shared."""
    shared = {id(t): t for t in (*module.parameters(), *module.buffers())}
    module = copy.deepcopy(module, shared)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            for name, t in list(m.named_parameters(recurse=False)):
                t = t.detach().to(torch.bfloat16)
                t = t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t
                setattr(m, name, nn.Parameter(t, requires_grad=False))
    return module


BACKENDS = INFERENCE_BACKENDS


def _build(generator: nn.Module, backend: str, onnx_file: Path | None = None) -> Any:
    """`generator` as one backend (not "auto"), with a ``backend`` attribute naming it.

    onnx_file: the generator's ONNX export, already written (`_onnx_file`): the engines then share it
    instead of exporting once each.
    """
    if backend == "onnxruntime":
        _require("onnxruntime", "onnx", "onnxscript")
        with _quiet():                                   # from_module exports
            fast = (OnnxGenerator(onnx_file, generator.size_multiple) if onnx_file
                    else OnnxGenerator.from_module(generator))
    elif backend in ("openvino", "openvino-bf16"):
        bf16 = backend == "openvino-bf16"
        with _quiet():
            fast = (OpenVinoGenerator(onnx_file, generator.size_multiple, bf16) if onnx_file
                    else OpenVinoGenerator.from_module(generator, bf16))
    elif backend == "torch-channels-last":
        fast = ChannelsLast(fold_batchnorm(generator)).eval()
    elif backend == "torch-bf16":
        if not bf16_native():
            log.warning("this CPU has no native bf16 (AVX512-BF16 or AMX): torch-bf16 will be slower than torch")
        fast = Bf16Autocast(fold_batchnorm(generator)).eval()
    else:
        fast = fold_batchnorm(generator)
    fast.backend = backend
    return fast


def _build_all(generator: nn.Module, names: list[str]) -> dict[str, Any]:
    """The backends `names` of `generator`, the engines sharing one ONNX export; a backend that cannot be
    built for this model (an op an engine lacks) is left out, logged."""
    built = {}
    with contextlib.ExitStack() as stack:
        onnx_file = None
        for name in names:
            try:
                if name in ENGINES and onnx_file is None:
                    with _quiet():
                        onnx_file = stack.enter_context(_onnx_file(generator))
                built[name] = _build(generator, name, onnx_file)
            except Exception as e:
                log.warning("inference backend %s left out: %s: %s", name, type(e).__name__, e)
    return built


@contextlib.contextmanager
def _quiet() -> Any:
    """Keep the ONNX exporter's progress lines (printed, logged, warned: dozens per export) off the screen; what
    it printed is logged at debug level."""
    import warnings
    printed = io.StringIO()
    loggers = [logging.getLogger(name)
               for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir", "onnx")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if printed.getvalue():
            log.debug("ONNX export:\n%s", printed.getvalue())


def _cache_file() -> Path:
    """The user cache of "auto"'s choices: ``$XDG_CACHE_HOME/medgan_nb/backends.json``, else ``~/.cache/...``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "medgan_nb" / "backends.json"


def _machine_key(weights_sha256: str) -> str:
    """What the fastest backend depends on: the weights, the CPU, torch's threads and the packages' versions."""
    versions = ",".join(f"{p}={version_of(p)}" for p in ("torch", "onnxruntime", "openvino"))
    return f"{weights_sha256} {cpu_model()} threads={torch.get_num_threads()} {versions}"


def remembered_backend(weights_sha256: str) -> str | None:
    """The backend "auto" chose for these weights on this machine before (`remember_backend`), or None; an
    unreadable cache counts as empty."""
    try:
        choice = json.loads(_cache_file().read_text(encoding="utf-8")).get(_machine_key(weights_sha256))
    except (OSError, ValueError, AttributeError):
        return None
    return choice if choice in BACKENDS and choice != "auto" else None


def remember_backend(weights_sha256: str, backend: str) -> None:
    """Keep "auto"'s choice for these weights on this machine in the user cache (written atomically); a cache
    that cannot be written is skipped, logged at debug level: the choice is then measured again next time."""
    path = _cache_file()
    try:
        try:
            choices = json.loads(path.read_text(encoding="utf-8"))
            choices = choices if isinstance(choices, dict) else {}
        except (OSError, ValueError):
            choices = {}
        choices[_machine_key(weights_sha256)] = backend
        with atomic_write(path) as f:
            f.write((json.dumps(choices, indent=1) + "\n").encode("utf-8"))
    except OSError as e:
        log.debug("backend choice not cached in %s: %s", path, e)


def time_in_turns(fns: dict[str, Callable[[], Any]], reps: int, warmup: int = 1,
                  device: torch.device = torch.device("cpu")) -> dict[str, list[float]]:
    """Seconds per call of each function, `reps` calls taking turns (a, b, c, a, b, c, ...) after `warmup` each.

    Taking turns matters on a shared machine: a slow spell then hits every
    contender alike instead of whichever ran during it. CUDA work is
    synchronised before each clock reading.
    """
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            sync()
            runs[name].append(time.perf_counter() - t)
    return runs


def _fastest(candidates: dict[str, Any], x: torch.Tensor, reps: int = 5) -> str:
    """The name of the candidate with the lowest median time on x."""
    with torch.inference_mode():
        runs = time_in_turns({name: (lambda fn=fn: fn(x)) for name, fn in candidates.items()}, reps)
    return min(runs, key=lambda name: statistics.median(runs[name]))


def weights_mb(model: nn.Module) -> float:
    """MB of the model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers())) / 2**20


def auto_candidates(generator: nn.Module) -> list[str]:
    """The backends "auto" times for `generator` here.

    bf16 only where the CPU computes it natively (`bf16_native`); ONNX Runtime and OpenVINO where
    installed; and the backends that hold their own float32 copy of the weights (`OWN_WEIGHTS`) only for
    models of at most `AUTO_OWN_WEIGHTS_MAX_MB`: for a larger one, a second copy (an engine's copy plus the
    export's transient memory: several times the weights) would take enhance's memory far past the seed notebook's.
    torch-bf16's bf16 copy of the conv weights (half their float32 size) is allowed for every model.
    """
    bf16 = bf16_native()
    names = ["torch", "torch-channels-last"] + (["torch-bf16"] if bf16 else [])
    if weights_mb(generator) > AUTO_OWN_WEIGHTS_MAX_MB:
        return [n for n in names if n not in OWN_WEIGHTS]     # not even importing the engines (~80 MB of code)
    if onnx_available():
        names.append("onnxruntime")
    if openvino_available():
        names += ["openvino"] + (["openvino-bf16"] if bf16 else [])
    return names


def fast_generator(generator: nn.Module, backend: str = "auto", probe_size: int = 256) -> Any:
    """The fastest inference version of `generator` here: a callable (N, C, H, W) -> (N, C, H, W).

    - ``"torch"``: the BN-folded eval copy (`fold_batchnorm`); any device.
    - ``"torch-channels-last"``: the same in the channels-last memory layout.
    - ``"torch-bf16"``: the same under bf16 autocast (`Bf16Autocast`).
    - ``"onnxruntime"``: ``OnnxGenerator.from_module(generator)`` (CPU).
    - ``"openvino"``, ``"openvino-bf16"``: ``OpenVinoGenerator.from_module(generator)`` (CPU), f32 or bf16.
    - ``"auto"``: on the CPU, builds the `auto_candidates`, times them in turns on a ``probe_size``² frame,
      keeps the fastest and drops the others; on a GPU, "torch".

    Why measure instead of a fixed rule: which one wins depends on the model and the machine, and can
    change from run to run between close contenders (docs/performance.md). The returned object's
    ``backend`` attribute names the choice. The engines share one ONNX export, made once per call, so
    `medgan_nb.inference.files` uses "auto" only for larger jobs.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return _build(generator, backend)
    p = next(generator.parameters(), None)
    if p is not None and p.device.type != "cpu":
        return _build(generator, "torch")
    names = auto_candidates(generator)
    candidates = _build_all(fold_batchnorm(generator), names)     # folded once: the torch candidates share it
    m = generator.size_multiple
    side = max(m, -(-probe_size // m) * m)
    x = torch.rand(1, _channels(generator), side, side, generator=torch.Generator().manual_seed(0)) * 2 - 1
    choice = _fastest(candidates, x)
    fast = candidates.pop(choice)
    candidates.clear()
    gc.collect()                                         # the losers' weights go now, not whenever
    log.info("inference backend: %s (fastest of %s on a %d² frame)", choice, names, side)
    return fast
