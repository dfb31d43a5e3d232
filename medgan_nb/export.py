"""Export a trained generator to ONNX or TorchScript, and run it fast on a CPU.

Why: a checkpoint needs this package (and PyTorch) to run. An exported file
does not: the ONNX file runs in ONNX Runtime from any language, the
TorchScript file in libtorch (C++) or plain ``torch.jit.load``. And on a CPU
ONNX Runtime is simply faster for these convolution stacks (see
`fast_generator`).

What:

- `fold_batchnorm`: an inference copy of a generator with every BatchNorm
  folded into the convolution before it (one op less per block, same outputs).
- `export_onnx`, `export_torchscript`: write the folded generator to a file,
  atomically, never over an existing file unless asked; any batch size and any
  height/width that are multiples of ``generator.size_multiple`` work.
- `OnnxGenerator`: an ONNX Runtime session that behaves like the generator for
  inference, so `medgan_nb.enhance.enhance_array` can use it.
- `fast_generator`: the fastest inference callable available here.
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

import copy
import importlib
import json
import logging
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from . import __version__
from .checkpoint import atomic_write
from .config import INFERENCE_BACKENDS

log = logging.getLogger(__name__)
OPSET = 18                          # ONNX Runtime >= 1.14 runs it; the dynamo exporter's oldest native opset
INPUT_RANGE = "[-1, 1]"


def _require(*modules: str) -> None:
    """Import `modules` or raise ImportError naming the pip command that installs the missing ones."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f"{', '.join(missing)} is not installed; ONNX export/inference needs it: "
                          f"pip install {' '.join(missing)}")


def _check_target(path: str | Path, overwrite: bool) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    return path


# ------------------------------------------------------------ BN folding
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode deep copy of `model` with each BatchNorm2d that directly follows a conv folded into it.

    Only pairs inside an ``nn.Sequential`` are folded (Conv2d, or ConvTranspose2d without groups,
    then BatchNorm2d with running statistics), by PyTorch's ``fuse_conv_bn_eval``; the BatchNorm becomes
    ``nn.Identity``. Outputs equal ``model.eval()``'s up to float rounding.
    `model` itself is not changed. Parameters of the copy need no gradients.
    """
    model = copy.deepcopy(model).eval().requires_grad_(False)
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            transpose = isinstance(conv, nn.ConvTranspose2d)
            if (isinstance(conv, nn.Conv2d) or (transpose and conv.groups == 1)) and type(bn) is nn.BatchNorm2d \
                    and bn.running_mean is not None and bn.num_features == conv.out_channels:
                seq[i] = fuse_conv_bn_eval(conv, bn, transpose=transpose)
                seq[i + 1] = nn.Identity()
    return model


def _inference_copy(generator: nn.Module) -> nn.Module:
    """The BN-folded eval copy on the CPU in float32: what gets exported."""
    return fold_batchnorm(generator).cpu().float()


def _metadata(generator: nn.Module, checkpoint_sha256: str | None) -> dict[str, str]:
    meta = {"medgan_nb_version": __version__, "generator": type(generator).__name__,
            "size_multiple": str(generator.size_multiple), "input_range": INPUT_RANGE,
            "layout": "NCHW float32 RGB"}
    if checkpoint_sha256:
        meta["source_checkpoint_sha256"] = checkpoint_sha256
    return meta


# ------------------------------------------------------------------ ONNX
def onnx_model(generator: nn.Module, opset: int = OPSET, checkpoint_sha256: str | None = None) -> Any:
    """The folded generator as an in-memory ``onnx.ModelProto``, dynamic batch/height/width, with metadata.

    Input ``input`` and output ``output``: (N, 3, H, W) float32 in [-1, 1],
    H and W multiples of ``size_multiple``.
    """
    _require("onnx", "onnxscript")
    import onnx
    from torch.export import Dim

    model = _inference_copy(generator)
    m = generator.size_multiple
    # Example sides of 2*m, batch 2: sizes 0 and 1 would be specialised (fixed) by torch.export.
    # torch.export traces with fake tensors, so even the seed UNet's 2×3×512×512 example costs no compute.
    example = torch.zeros(2, 3, 2 * m, 2 * m)
    dims = {0: Dim("batch", min=1), 2: m * Dim("hk", min=1), 3: m * Dim("wk", min=1)}
    program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=(dims,), opset_version=opset,
                                input_names=["input"], output_names=["output"], verbose=False)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, _metadata(generator, checkpoint_sha256))
    proto.doc_string = (f"medgan_nb {type(generator).__name__}: degraded RGB image (N, 3, H, W) in [-1, 1] -> "
                        f"restored image, same shape; H and W multiples of {m}. AI-enhanced output: "
                        "not for diagnosis without the original image.")
    return proto


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


class OnnxGenerator:
    """An ONNX Runtime session (CPU) that stands in for the generator at inference time.

    ``gen(x)`` takes and returns (N, 3, H, W) float32 tensors in [-1, 1]. It
    has what `medgan_nb.enhance.enhance_array` uses of a generator:
    ``size_multiple``, ``training = False``, no parameters, and ``eval()``/``train()``/``to()``
    that do nothing and return self.
    """

    training = False

    def __init__(self, model: str | Path | bytes, size_multiple: int | None = None, threads: int | None = None):
        _require("onnxruntime")
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        source = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if size_multiple is None:
            if "size_multiple" not in self.metadata:
                raise ValueError("this ONNX model has no 'size_multiple' metadata; pass size_multiple=")
            size_multiple = int(self.metadata["size_multiple"])
        self.size_multiple = size_multiple
        self.input_name = self.session.get_inputs()[0].name

    @classmethod
    def from_module(cls, generator: nn.Module, opset: int = OPSET, threads: int | None = None) -> "OnnxGenerator":
        """Export `generator` to ONNX in memory (no file) and open a session on it."""
        return cls(onnx_model(generator, opset).SerializeToString(), generator.size_multiple, threads)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = self.session.run(None, {self.input_name: x.detach().cpu().float().contiguous().numpy()})[0]
        return torch.from_numpy(y).to(x.device)

    def eval(self) -> "OnnxGenerator":
        return self

    def train(self, mode: bool = True) -> "OnnxGenerator":
        return self

    def to(self, *args: Any, **kwargs: Any) -> "OnnxGenerator":
        return self

    def parameters(self) -> Iterator[nn.Parameter]:
        return iter(())

    def __repr__(self) -> str:
        return f"OnnxGenerator(size_multiple={self.size_multiple}, {self.metadata.get('generator', '?')})"


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
            scripted = torch.jit.trace(model, torch.zeros(2, 3, 2 * m, 2 * m))
        extra = {"medgan_nb.json": json.dumps(_metadata(generator, checkpoint_sha256))}
        with atomic_write(path) as f:
            torch.jit.save(scripted, f, _extra_files=extra)
    return path


# ------------------------------------------------------------- inference
def onnx_available() -> bool:
    """Whether ONNX export and ONNX Runtime can be imported here."""
    try:
        _require("onnxruntime", "onnx", "onnxscript")
    except ImportError:
        return False
    return True


class ChannelsLast(nn.Module):
    """Runs `model` in the channels-last memory layout; inputs and outputs stay ordinary NCHW tensors."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)
        self.size_multiple = model.size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last)).contiguous()


BACKENDS = INFERENCE_BACKENDS


def _build(generator: nn.Module, backend: str) -> Any:
    if backend == "onnxruntime":
        _require("onnxruntime", "onnx", "onnxscript")
        fast = OnnxGenerator.from_module(generator)
    elif backend == "torch-channels-last":
        fast = ChannelsLast(fold_batchnorm(generator)).eval()
    else:
        fast = fold_batchnorm(generator)
    fast.backend = backend
    return fast


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


def fast_generator(generator: nn.Module, backend: str = "auto", probe_size: int = 256) -> Any:
    """The fastest inference version of `generator` here: a callable (N, 3, H, W) -> (N, 3, H, W).

    - ``"torch"``: the BN-folded eval copy (`fold_batchnorm`); any device.
    - ``"torch-channels-last"``: the same in the channels-last memory layout.
    - ``"onnxruntime"``: ``OnnxGenerator.from_module(generator)`` (CPU).
    - ``"auto"``: on the CPU, builds the three (onnxruntime when installed), times
      them on a ``probe_size``² frame and returns the fastest; on a GPU, "torch".

    Why measure instead of a fixed rule: on this project's 2-core CPU ONNX
    Runtime ran the seed UNet at 256² in ~0.65× PyTorch's time, while the
    ``lite`` UNet ran fastest in PyTorch with channels-last; which one wins
    depends on the model and the machine. The returned object's ``backend``
    attribute names the choice. The ONNX export behind "auto" costs a one-off
    3-10 s, so `medgan_nb.enhance` uses "auto" only for larger jobs.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return _build(generator, backend)
    p = next(generator.parameters(), None)
    if p is not None and p.device.type != "cpu":
        return _build(generator, "torch")
    names = ["torch", "torch-channels-last"] + (["onnxruntime"] if onnx_available() else [])
    candidates = {name: _build(generator, name) for name in names}
    m = generator.size_multiple
    side = max(m, -(-probe_size // m) * m)
    choice = _fastest(candidates, torch.zeros(1, 3, side, side))
    log.info("inference backend: %s (fastest of %s on a %d² frame)", choice, names, side)
    return candidates[choice]


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
