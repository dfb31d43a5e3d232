"""Using a trained generator: the tiled runner, fast CPU backends (BatchNorm folding, channels-last,
bf16, ONNX Runtime, OpenVINO), export, labelled outputs, `enhance` and its audit log.
"""
from ..models.runner import enhance_array
from .fold import fold_batchnorm
from .backends import (OWN_WEIGHTS, ENGINES, AUTO_OWN_WEIGHTS_MAX_MB, ChannelsLast, Bf16Autocast, BACKENDS,
                       time_in_turns, weights_mb, auto_candidates, fast_generator)
from .export import OPSET, INPUT_RANGE, onnx_model, export_onnx, export_torchscript
from .engines import (OnnxGenerator, OpenVinoGenerator, onnx_available, openvino_available, INT8_MAX_COST_DB,
                      verify_export, quantize_int8, psnr_cost, int8_generator)
from .outputs import LABEL_TEXT, DESCRIPTION, burn_label, png_metadata, path_text, save_png
from .audit import AuditMismatch, verify_audit
from .files import (AUDIT_LOG, AUTO_MIN_PIXELS, NonFiniteOutputError, OutputBusyError, enhance_dicom,
                    load_weights, enhance)
