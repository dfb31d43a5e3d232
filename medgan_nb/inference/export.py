"""Write a trained generator to an ONNX or TorchScript file that runs without this package.

Why: a checkpoint needs this package (and PyTorch) to run. An exported file does not: the ONNX file runs in
ONNX Runtime or OpenVINO from any language, the TorchScript file in libtorch (C++) or plain ``torch.jit.load``.

- `export_onnx`, `export_torchscript`: write the BatchNorm-folded generator (`fold.fold_batchnorm`) to a file,
  atomically, never over an existing file unless asked; any batch size and any height/width that are multiples
  of ``generator.size_multiple`` work.
- `onnx_model`: the same graph as an in-memory ``onnx.ModelProto``.

ONNX uses the current exporter, ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript), not the
deprecated TorchScript-based one. The generators' ``if h % m or w % m: raise`` size check is satisfied for every
size by declaring height and width as *derived* dims, ``m * Dim("hk")``, so torch.export can prove the check
false and drop it; the ONNX graph itself then has no size check (ONNX Runtime fails inside the graph on a bad
size). TorchScript uses ``torch.jit.script``, which keeps the check and its message. Both TorchScript APIs are
deprecated in PyTorch 2.x (a FutureWarning, suppressed here) but still the way to get a file for libtorch.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from .. import __version__
from ..utils.files import atomic_write, refuse_existing
from .fold import _inference_copy

log = logging.getLogger(__name__)
OPSET = 18                          # ONNX Runtime >= 1.14 runs it; the dynamo exporter's oldest native opset
INPUT_RANGE = "[-1, 1]"


def _check_target(path: str | Path, overwrite: bool) -> Path:
    if not overwrite:
        refuse_existing([path], "pass overwrite=True (CLI: --overwrite) to replace it")
    return Path(path)


def _channels(generator: Any) -> int:
    """Input channels of a generator (1 or 3); older objects without ``in_channels`` are RGB."""
    return getattr(generator, "in_channels", 3)


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


INSTALL_HINT = {"openvino": "openvino (or: pip install 'medgan_nb[openvino]')"}
