"""Exported generators that behave like the PyTorch module at inference: ONNX Runtime and OpenVINO.

- `OnnxGenerator`, `OpenVinoGenerator`: a session or compiled model called like the generator, (N, C, H, W)
  float32 in [-1, 1] in and out, so `runner.enhance_array` can use it.
- `quantize_int8`, `int8_generator`, `psnr_cost`: ONNX Runtime static int8 quantisation, offered only where it
  costs at most `INT8_MAX_COST_DB` of PSNR against the float generator.
- `verify_export`: max |exported - PyTorch| on an input.
- `onnx_available`, `openvino_available`: whether the optional engines import here.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..models.build import eval_mode
from .export import OPSET, _onnx_file, _require, onnx_model
from .fold import fold_batchnorm


class _EngineGenerator:
    """What `medgan_nb.models.runner.enhance_array` uses of a generator, for an inference engine outside PyTorch:
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


INT8_MAX_COST_DB = 0.1              # int8 is offered only where it costs at most this much PSNR


def verify_export(path: str | Path, generator: nn.Module, x: torch.Tensor) -> float:
    """Max absolute difference between the exported file's output on `x` and ``generator.eval()``'s.

    ``.onnx`` files run in ONNX Runtime; anything else is loaded with
    ``torch.jit.load``. The generator's train/eval mode is restored afterwards.
    """
    path = Path(path)
    x = x.float().cpu()
    p = next(generator.parameters(), None)
    with eval_mode(generator), torch.no_grad():
        expected = generator(x.to(p.device if p is not None else "cpu")).float().cpu()
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
    itself and for the correction added to it cost the most PSNR (`psnr_cost` measures a model's). Use
    `int8_generator` to get it only where it costs little.
    """
    _require("onnxruntime", "onnx", "onnxscript", purpose="int8 quantisation")
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
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
    from ..metrics import psnr
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
