"""Export a trained generator to ONNX or TorchScript, and run it fast on a CPU.

Why: a checkpoint needs this package (and PyTorch) to run. An exported file
does not: the ONNX file runs in ONNX Runtime or OpenVINO from any language, the
TorchScript file in libtorch (C++) or plain ``torch.jit.load``. And on a CPU
another engine or bf16 arithmetic is often faster for these convolution stacks
(see `fast_generator`).

What:

- `fold_batchnorm`: an inference copy of a generator with every BatchNorm
  folded into the convolution before it (one op less per block, same outputs).
- `export_onnx`, `export_torchscript`: write the folded generator to a file,
  atomically, never over an existing file unless asked; any batch size and any
  height/width that are multiples of ``generator.size_multiple`` work.
- `OnnxGenerator`, `OpenVinoGenerator`: an ONNX Runtime session or an OpenVINO
  compiled model that behaves like the generator for inference, so
  `medgan_nb.enhance.enhance_array` can use it.
- `fast_generator`: the fastest inference callable available here, one of
  `BACKENDS` (`medgan_nb.config.INFERENCE_BACKENDS`).
- `quantize_int8`, `int8_generator`, `psnr_cost`: ONNX Runtime static int8
  quantisation, offered only where it costs at most `INT8_MAX_COST_DB` of PSNR.
- `verify_export`: max |exported - PyTorch| on an input.

ONNX uses the current exporter, ``torch.onnx.export(..., dynamo=True)``
(torch.export + onnxscript), not the deprecated TorchScript-based one. The
generators' ``if h % m or w % m: raise`` size check is satisfied for every
size by declaring height and width as *derived* dims, ``m * Dim("hk")``,
so torch.export can prove the check false and drop it; the ONNX graph
itself then has no size check (ONNX Runtime fails inside the graph on a bad
size). TorchScript uses ``torch.jit.script``, which keeps the check and its
message. Both TorchScript APIs are deprecated in PyTorch 2.x (a
FutureWarning, suppressed here) but still the way to get a file for libtorch.
"""
from __future__ import annotations

import contextlib
import copy
import gc
import importlib
import json
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from . import __version__
from .checkpoint import atomic_write
from .config import INFERENCE_BACKENDS

log = logging.getLogger(__name__)
OPSET = 18                          # ONNX Runtime >= 1.14 runs it; the dynamo exporter's oldest native opset
INPUT_RANGE = "[-1, 1]"
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})     # /proc/cpuinfo flags of CPUs that compute bf16 natively
# Backends that hold their own float32 copy of the weights (a new layout, or an engine's copy) instead of sharing the
# model's. torch-bf16 holds bf16 copies of the conv weights: half their size, allowed for models of any size.
OWN_WEIGHTS = ("torch-channels-last", "onnxruntime", "openvino", "openvino-bf16")
ENGINES = ("onnxruntime", "openvino", "openvino-bf16")          # run from the ONNX export
AUTO_OWN_WEIGHTS_MAX_MB = 64        # "auto" tries those only for models with at most this many MB of weights
INT8_MAX_COST_DB = 0.1              # int8 is offered only where it costs at most this much PSNR
INSTALL_HINT = {"openvino": "openvino (or: pip install 'medgan_nb[openvino]')"}


def _require(*modules: str, purpose: str = "ONNX export/inference") -> None:
    """Import `modules` or raise ImportError naming the pip command that installs the missing ones."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f"{', '.join(missing)} is not installed; {purpose} needs it: "
                          f"pip install {' '.join(INSTALL_HINT.get(m, m) for m in missing)}")


def _check_target(path: str | Path, overwrite: bool) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    return path


def _channels(generator: Any) -> int:
    """Input channels of a generator (1 or 3); older objects without ``in_channels`` are RGB."""
    return getattr(generator, "in_channels", 3)


# ------------------------------------------------------------ BN folding
def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """An eval-mode copy of `model` with each BatchNorm2d that directly follows a conv folded into it.

    Only pairs inside an ``nn.Sequential`` are folded (Conv2d, or ConvTranspose2d without groups,
    then BatchNorm2d with running statistics), one layer at a time (`_fold_into`); the BatchNorm becomes
    ``nn.Identity``. Outputs equal ``model.eval()``'s up to float rounding.
    Parameters of the copy need no gradients. `model` itself is not changed, but the copy shares the storage
    of every weight that folding leaves as it is (a model without BatchNorm costs no second copy of its
    weights), so later in-place changes to those weights of `model` show in the copy too.
    inplace: fold into `model` itself and return it (for a caller that owns the model and only runs it
    from now on: then no second copy of the folded weights exists at any time).
    """
    if not inplace:
        shared = {id(t): nn.Parameter(t.detach(), requires_grad=False) if isinstance(t, nn.Parameter) else t
                  for t in (*model.parameters(), *model.buffers())}
        model = copy.deepcopy(model, shared)
    model.eval().requires_grad_(False)
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            transpose = isinstance(conv, nn.ConvTranspose2d)
            if (isinstance(conv, nn.Conv2d) or (transpose and conv.groups == 1)) and type(bn) is nn.BatchNorm2d \
                    and bn.running_mean is not None and bn.num_features == conv.out_channels:
                _fold_into(conv, bn, transpose, inplace)
                seq[i + 1] = nn.Identity()
    return model


def _fold_into(conv: nn.Module, bn: nn.BatchNorm2d, transpose: bool, inplace: bool) -> None:
    """Fold eval-mode `bn` into `conv`: w' = w·s, b' = (b - mean)·s + beta with s = gamma / sqrt(var + eps).

    inplace: scale conv's weight tensor itself (no new allocation: freeing a large block makes glibc keep
    later ones on its heap, ~40 MB more resident for the seed UNet); else new tensors (the old may be shared).
    """
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var + bn.eps) * (bn.weight if bn.weight is not None else 1)
        bias = (conv.bias if conv.bias is not None else 0) - bn.running_mean
        bias = bias * scale + (bn.bias if bn.bias is not None else 0)
        scale = scale.reshape((1, -1, 1, 1) if transpose else (-1, 1, 1, 1)).to(conv.weight.dtype)
        weight = conv.weight.mul_(scale) if inplace else conv.weight * scale
    conv.weight = nn.Parameter(weight, requires_grad=False)
    conv.bias = nn.Parameter(bias.to(weight.dtype), requires_grad=False)


def _inference_copy(generator: nn.Module) -> nn.Module:
    """The BN-folded eval copy on the CPU in float32: what gets exported."""
    return fold_batchnorm(generator).cpu().float()


def _metadata(generator: nn.Module, checkpoint_sha256: str | None) -> dict[str, str]:
    meta = {"medgan_nb_version": __version__, "generator": type(generator).__name__,
            "size_multiple": str(generator.size_multiple), "input_range": INPUT_RANGE,
            "layout": f"NCHW float32 {'RGB' if _channels(generator) == 3 else 'grayscale'}"}
    if checkpoint_sha256:
        meta["source_checkpoint_sha256"] = checkpoint_sha256
    return meta


# ------------------------------------------------------------------ ONNX
def _onnx_program(generator: nn.Module, opset: int, checkpoint_sha256: str | None) -> Any:
    """The folded generator exported by the dynamo exporter (a ``torch.onnx.ONNXProgram``), with metadata."""
    _require("onnx", "onnxscript")
    from torch.export import Dim

    model = _inference_copy(generator)
    m, c = generator.size_multiple, _channels(generator)
    # Example sides of 2*m, batch 2: sizes 0 and 1 would be specialised (fixed) by torch.export.
    # torch.export traces with fake tensors, so even the seed UNet's 2×3×512×512 example costs no compute.
    example = torch.zeros(2, c, 2 * m, 2 * m)
    dims = {0: Dim("batch", min=1), 2: m * Dim("hk", min=1), 3: m * Dim("wk", min=1)}
    program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=(dims,), opset_version=opset,
                                input_names=["input"], output_names=["output"], verbose=False)
    program.model.metadata_props.update(_metadata(generator, checkpoint_sha256))
    kind = "RGB" if c == 3 else "grayscale"
    program.model.doc_string = (f"medgan_nb {type(generator).__name__}: degraded {kind} image (N, {c}, H, W) in "
                                f"[-1, 1] -> restored image, same shape; H and W multiples of {m}. AI-enhanced "
                                "output: not for diagnosis without the original image.")
    return program


def onnx_model(generator: nn.Module, opset: int = OPSET, checkpoint_sha256: str | None = None) -> Any:
    """The folded generator as an in-memory ``onnx.ModelProto``, dynamic batch/height/width, with metadata.

    Input ``input`` and output ``output``: (N, C, H, W) float32 in [-1, 1] (C = ``in_channels``),
    H and W multiples of ``size_multiple``.
    """
    return _onnx_program(generator, opset, checkpoint_sha256).model_proto


@contextlib.contextmanager
def _onnx_file(generator: nn.Module, opset: int = OPSET) -> Iterator[Path]:
    """A temporary ONNX file of the folded generator, weights in a side file, removed afterwards.

    Why a file: an in-memory ``ModelProto`` and its serialised bytes are two more copies of the weights
    (the seed UNet: 218 MB each); written straight from the exported program, neither exists.
    """
    with tempfile.TemporaryDirectory(prefix="medgan-onnx-", ignore_cleanup_errors=True) as tmp:
        path = Path(tmp) / "generator.onnx"
        program = _onnx_program(generator, opset, None)
        program.save(path, external_data=True)
        del program
        gc.collect()
        yield path


def export_onnx(generator: nn.Module, path: str | Path, *, opset: int = OPSET, overwrite: bool = False,
                checkpoint_sha256: str | None = None) -> Path:
    """Write the BN-folded generator as an ONNX file (see `onnx_model`); returns `path`.

    Raises FileExistsError if `path` exists and not `overwrite`. The file is
    written atomically (temp file + ``os.replace``). Metadata (``metadata_props``):
    medgan_nb_version, generator, size_multiple, input_range, layout and,
    if given, source_checkpoint_sha256. One file with the weights inside:
    fine below protobuf's 2 GB limit (the seed UNet is 218 MB).
    """
    path = _check_target(path, overwrite)
    data = onnx_model(generator, opset, checkpoint_sha256).SerializeToString()
    with atomic_write(path) as f:
        f.write(data)
    return path


class _EngineGenerator:
    """What `medgan_nb.enhance.enhance_array` uses of a generator, for an inference engine outside PyTorch:
    ``size_multiple``, ``in_channels``, ``training = False``, no parameters, and ``eval()``/``train()``/``to()``
    that do nothing and return self."""

    training = False
    size_multiple: int
    in_channels: int

    def eval(self) -> "_EngineGenerator":
        return self

    def train(self, mode: bool = True) -> "_EngineGenerator":
        return self

    def to(self, *args: Any, **kwargs: Any) -> "_EngineGenerator":
        return self

    def parameters(self) -> Iterator[nn.Parameter]:
        return iter(())


class OnnxGenerator(_EngineGenerator):
    """An ONNX Runtime session (CPU) that stands in for the generator at inference time.

    ``gen(x)`` takes and returns (N, C, H, W) float32 tensors in [-1, 1].
    """

    def __init__(self, model: str | Path | bytes, size_multiple: int | None = None, threads: int | None = None):
        _require("onnxruntime")
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        # No busy-waiting between runs: ORT's spinning threads doubled the time of the PyTorch work done
        # between two frames here (the guard, tile blending, the other candidates of the "auto" probe).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if size_multiple is None:
            if "size_multiple" not in self.metadata:
                raise ValueError("this ONNX model has no 'size_multiple' metadata; pass size_multiple=")
            size_multiple = int(self.metadata["size_multiple"])
        self.size_multiple = size_multiple
        self.input_name = self.session.get_inputs()[0].name
        self.in_channels = self.session.get_inputs()[0].shape[1]

    @classmethod
    def from_module(cls, generator: nn.Module, opset: int = OPSET, threads: int | None = None) -> "OnnxGenerator":
        """Export `generator` to a temporary ONNX file (`_onnx_file`) and open a session on it."""
        with _onnx_file(generator, opset) as path:
            return cls(path, generator.size_multiple, threads)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = self.session.run(None, {self.input_name: x.detach().cpu().float().contiguous().numpy()})[0]
        return torch.from_numpy(y).to(x.device)

    def __repr__(self) -> str:
        return f"OnnxGenerator(size_multiple={self.size_multiple}, {self.metadata.get('generator', '?')})"


class OpenVinoGenerator(_EngineGenerator):
    """An OpenVINO model compiled for the CPU that stands in for the generator at inference time.

    ``gen(x)`` takes and returns (N, C, H, W) float32 tensors in [-1, 1]. The precision is always set:
    OpenVINO's CPU plugin computes in bf16 by default on CPUs with AVX512-BF16 or AMX, so "openvino"
    asks for f32 and "openvino-bf16" for bf16.
    """

    def __init__(self, model: str | Path, size_multiple: int, bf16: bool = False, threads: int | None = None):
        _require("openvino", purpose="the OpenVINO backend")
        import openvino as ov
        config = {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32", "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": threads or torch.get_num_threads()}
        compiled = ov.Core().compile_model(str(model), "CPU", config)
        self.request = compiled.create_infer_request()
        self.size_multiple, self.bf16 = size_multiple, bf16
        self.in_channels = compiled.input(0).get_partial_shape()[1].get_length()

    @classmethod
    def from_module(cls, generator: nn.Module, bf16: bool = False, threads: int | None = None) -> "OpenVinoGenerator":
        """Export `generator` to a temporary ONNX file (`_onnx_file`) and compile it."""
        _require("openvino", "onnx", "onnxscript", purpose="the OpenVINO backend")
        with _onnx_file(generator) as path:
            return cls(path, generator.size_multiple, bf16, threads)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = self.request.infer({0: x.detach().cpu().float().contiguous().numpy()})[0]     # a copy of the output
        return torch.from_numpy(y).to(x.device)

    def __repr__(self) -> str:
        return f"OpenVinoGenerator(size_multiple={self.size_multiple}, {'bf16' if self.bf16 else 'f32'})"


# ----------------------------------------------------------- TorchScript
def export_torchscript(generator: nn.Module, path: str | Path, *, overwrite: bool = False,
                       checkpoint_sha256: str | None = None) -> Path:
    """Write the BN-folded generator as TorchScript (``torch.jit.script``, else trace); returns `path`.

    Scripting keeps the model's input-size check and works for any batch and
    size (tracing, the fallback for models that do not script, also does for
    these convolution-only networks). The same metadata as the ONNX export is
    stored as the extra file ``medgan_nb.json``:
    ``torch.jit.load(path, _extra_files={"medgan_nb.json": ""})``.
    Atomic write; FileExistsError if `path` exists and not `overwrite`.
    """
    path = _check_target(path, overwrite)
    model = _inference_copy(generator)
    m = generator.size_multiple
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")   # deprecated, still works
        try:
            scripted = torch.jit.script(model)
        except Exception:                               # not scriptable: trace (shape-generic for conv nets)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            scripted = torch.jit.trace(model, torch.zeros(2, _channels(generator), 2 * m, 2 * m))
        extra = {"medgan_nb.json": json.dumps(_metadata(generator, checkpoint_sha256))}
        with atomic_write(path) as f:
            torch.jit.save(scripted, f, _extra_files=extra)
    return path


# ------------------------------------------------------------- inference
def onnx_available() -> bool:
    """Whether ONNX export and ONNX Runtime can be imported here."""
    return _importable("onnxruntime", "onnx", "onnxscript")


def openvino_available() -> bool:
    """Whether OpenVINO and the ONNX export it reads can be imported here."""
    return _importable("openvino", "onnx", "onnxscript")


def _importable(*modules: str) -> bool:
    try:
        _require(*modules)
    except ImportError:
        return False
    return True


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where it cannot be read."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bf16_native() -> bool:
    """Whether this CPU computes bf16 itself (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower than fp32."""
    return bool(BF16_FLAGS & cpu_flags())


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
    call. On the seed UNet (218 MB of float32 weights) most of the gain measured is the layout, which the
    channels-last activations want, not the cast; the small shipped models gain a few per cent (figures:
    README, "Performance").
    The copies cost half the conv weights' float32 size; every other tensor is shared with `model`. Fast
    only on CPUs with native bf16 (`bf16_native`); costs about 0.01 dB PSNR on the shipped models (the
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
        fast = OnnxGenerator(onnx_file, generator.size_multiple) if onnx_file else OnnxGenerator.from_module(generator)
    elif backend in ("openvino", "openvino-bf16"):
        bf16 = backend == "openvino-bf16"
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
                    onnx_file = stack.enter_context(_onnx_file(generator))
                built[name] = _build(generator, name, onnx_file)
            except Exception as e:
                log.warning("inference backend %s left out: %s: %s", name, type(e).__name__, e)
    return built


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
    export's transient memory: 2-5× the weights) would take enhance's memory far past the seed notebook's.
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

    Why measure instead of a fixed rule: which one wins depends on the model and the machine (on a
    2-core CPU with AVX512-BF16, README "Performance": torch-bf16 for the shipped realtime UNet and for the
    218 MB seed UNet, which stays in PyTorch (`auto_candidates`); torch-bf16 or openvino-bf16, from run to
    run, for the shipped NAFNet). The returned object's ``backend`` attribute names the choice. The engines
    share one ONNX export, a few seconds once, so `medgan_nb.enhance` uses "auto" only for larger jobs.
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


def verify_export(path: str | Path, generator: nn.Module, x: torch.Tensor) -> float:
    """Max absolute difference between the exported file's output on `x` and ``generator.eval()``'s.

    ``.onnx`` files run in ONNX Runtime; anything else is loaded with
    ``torch.jit.load``. The generator's train/eval mode is restored afterwards.
    """
    path = Path(path)
    x = x.float().cpu()
    p = next(generator.parameters(), None)
    was_training = generator.training
    try:
        with torch.no_grad():
            expected = generator.eval()(x.to(p.device if p is not None else "cpu")).float().cpu()
    finally:
        generator.train(was_training)
    if path.suffix == ".onnx":
        got = OnnxGenerator(path, size_multiple=generator.size_multiple)(x)
    else:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
            got = torch.jit.load(str(path), map_location="cpu")(x)
    return (got - expected).abs().max().item()


# ------------------------------------------------------------- int8
def quantize_int8(generator: nn.Module, calibration: torch.Tensor, threads: int | None = None) -> OnnxGenerator:
    """`generator` quantised to int8 by ONNX Runtime's static quantisation, as an `OnnxGenerator`.

    QDQ format, int8 weights per output channel, uint8 activations whose ranges come from running the
    `calibration` frames ((N, C, H, W) in [-1, 1], real degraded images of the model's task) at the
    0.001st/99.999th percentiles. The first and the last convolution stay float: 8 bits for the image
    itself and for the correction added to it cost the most PSNR (shipped realtime UNet: 0.55 dB with
    them quantised, 0.10 dB without). Use `int8_generator` to get it only where it costs little.
    """
    _require("onnxruntime", "onnx", "onnxscript", purpose="int8 quantisation")
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.frames = iter(calibration.detach().cpu().float().split(1))

        def get_next(self) -> dict | None:
            frame = next(self.frames, None)
            return None if frame is None else {"input": frame.numpy()}

    with tempfile.TemporaryDirectory(prefix="medgan-int8-", ignore_cleanup_errors=True) as tmp:
        src, pre, out = (Path(tmp) / f"{name}.onnx" for name in ("float", "pre", "int8"))
        onnx.save(onnx_model(generator), str(src))          # one file: the pre-processing cannot follow side files
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        convs = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type in ("Conv", "ConvTranspose")]
        quantize_static(str(pre), str(out), Frames(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "ConvTranspose"], nodes_to_exclude=[convs[0], convs[-1]],
                        calibrate_method=CalibrationMethod.Percentile)
        fast = OnnxGenerator(out, generator.size_multiple, threads)
    fast.backend = "onnxruntime-int8"
    return fast


def psnr_cost(fast: Callable[[torch.Tensor], torch.Tensor], generator: nn.Module, degraded: torch.Tensor,
              clean: torch.Tensor) -> float:
    """dB of mean PSNR that `fast` loses against the float32 `generator` on frames (N, C, H, W) in [-1, 1],
    one frame at a time: mean PSNR(generator) - mean PSNR(fast); negative where `fast` scores higher."""
    from .metrics import psnr
    reference = fold_batchnorm(generator)
    with torch.inference_mode():
        ours = torch.cat([torch.as_tensor(fast(x)).float() for x in degraded.split(1)])
        theirs = torch.cat([reference(x).float() for x in degraded.split(1)])
    return float(psnr(theirs, clean).mean() - psnr(ours, clean).mean())


def int8_generator(generator: nn.Module, calibration: torch.Tensor, degraded: torch.Tensor,
                   clean: torch.Tensor) -> OnnxGenerator:
    """`quantize_int8(generator, calibration)`, refused (ValueError) where it costs more than `INT8_MAX_COST_DB`
    of PSNR on the `degraded` frames against their `clean` originals; the cost is kept as ``psnr_cost_db``.

    Calibrate and score on different frames (e.g. the validation and the test split) of real images.
    """
    fast = quantize_int8(generator, calibration)
    fast.psnr_cost_db = psnr_cost(fast, generator, degraded, clean)
    if fast.psnr_cost_db > INT8_MAX_COST_DB:
        raise ValueError(f"int8 costs {fast.psnr_cost_db:.3f} dB PSNR on these frames, more than the "
                         f"{INT8_MAX_COST_DB} dB allowed: use a float backend (fast_generator)")
    return fast
