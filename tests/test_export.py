"""Export (ONNX, TorchScript), BatchNorm folding and the inference backends (PyTorch fp32, channels-last and
bf16, ONNX Runtime, OpenVINO, int8).

ONNX exports cost ~5-10 s each on 2 CPU cores (mostly the exporter's fixed
overhead), so models and files are shared through module-scoped fixtures.
"""
import copy
import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import medgan_nb.inference.backends as inference_backends
import medgan_nb.inference.engines as inference_engines
import medgan_nb.utils.hardware as utils_hardware
from medgan_nb import __version__
from medgan_nb.cli import main
from medgan_nb.config import Config
from medgan_nb.inference import (
    BACKENDS,
    OWN_WEIGHTS,
    OnnxGenerator,
    auto_candidates,
    enhance_array,
    export_onnx,
    export_torchscript,
    fast_generator,
    fold_batchnorm,
    int8_generator,
    quantize_int8,
    verify_export,
)
from medgan_nb.models import UNetGenerator, build_generator, save_checkpoint
from medgan_nb.utils import file_sha256

TOL = 1e-4


def needs_onnx():
    for name in ("onnx", "onnxruntime", "onnxscript"):
        pytest.importorskip(name, reason=f"{name} is not installed (pip install {name})")


def randomize_bn(model, seed=0):
    """Give every BatchNorm non-trivial running statistics and affine parameters, so folding matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model


def image(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def eval_output(model, x):
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return randomize_bn(build_generator(Config.from_preset("tiny")))      # UNetGenerator, size_multiple 8


@pytest.fixture(scope="module")
def lite():
    torch.manual_seed(0)
    g = randomize_bn(build_generator(Config.from_preset("lite")))
    assert g.size_multiple == 32
    return g


@pytest.fixture(scope="module")
def seed_unet():
    torch.manual_seed(0)
    g = build_generator(Config.from_preset("original")).eval()
    assert isinstance(g, UNetGenerator) and g.size_multiple == 256
    assert sum(p.numel() for p in g.parameters()) > 54e6
    return g


@pytest.fixture(scope="module")
def lite_onnx(lite, tmp_path_factory):
    needs_onnx()
    return export_onnx(lite, tmp_path_factory.mktemp("lite") / "lite.onnx", checkpoint_sha256="ab" * 32)


# ------------------------------------------------------------ BN folding
@pytest.mark.parametrize("which", ["tiny", "lite"])
def test_fold_batchnorm_keeps_outputs_and_leaves_the_original_alone(which, request):
    model = request.getfixturevalue(which).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert n_bn > 0
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.Identity) for m in folded.modules()) == n_bn
    assert not folded.training and model.training                     # original: still training, still BN
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == n_bn
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    x = image(2, 3, 64, 64)
    expected = eval_output(model, x)
    with torch.no_grad():
        got = folded(x)
    assert (got - expected).abs().max().item() < 1e-5
    assert expected.std() > 0.01                                      # not a trivially flat output


def test_fold_batchnorm_handles_grouped_transposed_convs():
    model = nn.Sequential(nn.ConvTranspose2d(4, 6, 4, 2, 1, groups=2, bias=True), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.Conv2d(6, 6, 3, 1, 1, groups=3, bias=False), nn.BatchNorm2d(6))
    randomize_bn(model)
    x = image(1, 4, 8, 8)
    expected = eval_output(model, x)
    with torch.no_grad():
        got = fold_batchnorm(model)(x)
    assert (got - expected).abs().max().item() < 1e-5


# ------------------------------------------------------------------ ONNX
def test_onnx_lite_matches_pytorch_at_two_sizes_and_has_metadata(lite, lite_onnx):
    import onnx
    assert verify_export(lite_onnx, lite, image(1, 3, 256, 256)) < TOL
    assert verify_export(lite_onnx, lite, image(2, 3, 128, 96, seed=1)) < TOL          # dynamic batch/H/W
    proto = onnx.load(str(lite_onnx))
    assert not any(node.op_type == "BatchNormalization" for node in proto.graph.node)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["medgan_nb_version"] == __version__ and meta["size_multiple"] == "32"
    assert meta["input_range"] == "[-1, 1]" and meta["source_checkpoint_sha256"] == "ab" * 32
    g = OnnxGenerator(lite_onnx)                                      # size_multiple read from the metadata
    assert g.size_multiple == 32 and g.training is False
    assert g.eval() is g and g.train(True) is g and g.to("cpu") is g
    y = g(image(1, 3, 64, 64))
    assert y.shape == (1, 3, 64, 64) and y.dtype == torch.float32 and y.device.type == "cpu"


def test_seed_unet_54M_onnx_matches_pytorch(seed_unet, tmp_path):
    """SLOW (~15-25 s on 2 CPU cores): the full seed UNet, 54 M parameters, exported and run at 256² and 512×256."""
    needs_onnx()
    path = export_onnx(seed_unet, tmp_path / "seed.onnx")
    assert path.stat().st_size > 200e6                                # the 218 MB of weights are inside
    assert verify_export(path, seed_unet, image(1, 3, 256, 256)) < TOL
    assert verify_export(path, seed_unet, image(1, 3, 512, 256, seed=1)) < TOL


# ------------------------------------------------------------ TorchScript
@pytest.mark.parametrize("which, sizes", [("lite", [(1, 3, 256, 256), (2, 3, 128, 96)]),
                                          ("seed_unet", [(1, 3, 256, 256), (1, 3, 256, 512)])])
def test_torchscript_matches_pytorch_at_two_sizes(which, sizes, request, tmp_path):
    model = request.getfixturevalue(which)
    path = export_torchscript(model, tmp_path / f"{which}.ts.pt", checkpoint_sha256="cd" * 32)
    for i, shape in enumerate(sizes):
        assert verify_export(path, model, image(*shape, seed=i)) < TOL
    extra = {"medgan_nb.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["medgan_nb.json"])["size_multiple"] == str(model.size_multiple)
    m = model.size_multiple
    with pytest.raises(Exception, match=f"multiple of {m}"):           # scripting kept the size check
        loaded(image(1, 3, m + m // 2, m))


# ------------------------------------------------------ OnnxGenerator & backends
def test_onnx_backend_through_enhance_array(tiny):
    needs_onnx()
    fast = fast_generator(tiny, "onnxruntime")
    assert isinstance(fast, OnnxGenerator) and fast.size_multiple == tiny.size_multiple and fast.backend == "onnxruntime"
    img = np.random.default_rng(0).random((100, 70, 3), dtype=np.float32)
    out = enhance_array(fast, img)
    expected = enhance_array(tiny, img)
    assert out.shape == img.shape and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    assert np.abs(out - expected).max() < TOL
    assert np.abs(out - img).max() > 0.01                             # the model did something


def test_torch_backend_and_missing_onnxruntime(tiny, monkeypatch):
    fast = fast_generator(tiny, "torch")
    assert isinstance(fast, nn.Module) and not fast.training and fast.backend == "torch"
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)   # import onnxruntime -> ImportError
    monkeypatch.setitem(__import__("sys").modules, "openvino", None)
    assert isinstance(fast_generator(tiny, "auto"), nn.Module)         # falls back to PyTorch
    with pytest.raises(ImportError, match="pip install onnxruntime"):
        fast_generator(tiny, "onnxruntime")
    with pytest.raises(ValueError, match="backend"):
        fast_generator(tiny, "tensorrt")


# ---------------------------------------------------------- files & CLI
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_existing_files_are_not_overwritten(tiny, tmp_path, fmt):
    path = tmp_path / ("model.onnx" if fmt == "onnx" else "model.ts.pt")
    path.write_bytes(b"keep me")
    export = export_onnx if fmt == "onnx" else export_torchscript
    with pytest.raises(FileExistsError, match="model.*already exists.*overwrite"):
        export(tiny, path)
    assert path.read_bytes() == b"keep me"
    if fmt == "torchscript":                                          # cheap; ONNX replacing: see the CLI test
        assert export(tiny, path, overwrite=True) == path
        assert verify_export(path, tiny, image(1, 3, 16, 24)) < TOL
    assert [p.name for p in tmp_path.iterdir()] == [path.name]       # no temp files left behind


@pytest.fixture
def checkpoint(tmp_path, tiny):
    path = tmp_path / "ckpt" / "model.pt"
    save_checkpoint({"config": Config.from_preset("tiny").to_dict(), "generator": tiny.state_dict()}, path)
    return path


def test_cli_export_onnx_writes_verifies_and_refuses_to_overwrite(checkpoint, tmp_path, capsys):
    needs_onnx()
    import onnx
    out = tmp_path / "exported" / "tiny.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "MB" in printed and "max abs difference" in printed
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["source_checkpoint_sha256"] == file_sha256(checkpoint)
    before = out.read_bytes()
    assert main(["export", str(checkpoint), "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before


def test_cli_export_torchscript_default_path_and_overwrite(checkpoint, capsys):
    out = checkpoint.with_name("model.ts.pt")
    out.write_bytes(b"old")
    assert main(["export", str(checkpoint), "--format", "torchscript"]) == 1
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"old"
    assert main(["export", str(checkpoint), "--format", "torchscript", "--overwrite"]) == 0
    assert str(out) in capsys.readouterr().out and out.stat().st_size > 1000


def test_cli_export_refuses_a_foreign_checkpoint(tmp_path, capsys):
    path = tmp_path / "notes.pt"
    path.write_text("this is a text file, not a checkpoint\n")
    assert main(["export", str(path), "--format", "torchscript"]) != 0
    assert "not a medgan_nb checkpoint" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pt"]


def test_auto_backend_picks_a_measured_candidate_with_the_same_outputs(tiny):
    x = image(2, 3, 64, 48)
    with torch.no_grad():
        expected = tiny.eval()(x)
    cl = fast_generator(tiny, "torch-channels-last")
    assert cl.backend == "torch-channels-last" and (cl(x) - expected).abs().max() < TOL
    assert cl(x).is_contiguous()                                       # callers get ordinary NCHW tensors
    fast = fast_generator(tiny, "auto", probe_size=64)
    assert fast.backend in auto_candidates(tiny)
    assert (torch.as_tensor(fast(x)) - expected).abs().max() < TOL


def test_cli_export_names_the_checkpoint_bytes_that_were_loaded(checkpoint, tmp_path, monkeypatch):
    """Issue 9: export hashed the file after loading it; a training run may have replaced it meanwhile."""
    import json

    import medgan_nb.models.checkpoint as models_checkpoint
    loaded_sha = file_sha256(checkpoint)
    real = models_checkpoint.load_generator

    def load_then_replace(path, *args, **kwargs):
        result = real(path, *args, **kwargs)
        state = models_checkpoint.load_checkpoint(checkpoint)
        state["generator"] = {k: v + 1 if v.is_floating_point() else v for k, v in state["generator"].items()}
        models_checkpoint.save_checkpoint({k: v for k, v in state.items() if k not in ("format", "version")}, checkpoint)
        return result

    monkeypatch.setattr(models_checkpoint, "load_generator", load_then_replace)
    out = tmp_path / "tiny.ts.pt"
    assert main(["export", str(checkpoint), "--format", "torchscript", "--out", str(out)]) == 0
    extra = {"medgan_nb.json": ""}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
        torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["medgan_nb.json"])["source_checkpoint_sha256"] == loaded_sha != file_sha256(checkpoint)


# ------------------------------------------------- the other backends (bf16, OpenVINO, int8)
BF16_TOL = 0.02        # bf16 keeps 8 bits of mantissa: about 1/256 relative per layer; the residual sum stays fp32
INT8_TOL = 0.05        # 8-bit activations: a few grey levels at most on these small models
ENGINES = {"onnxruntime": ("onnxruntime", "onnx", "onnxscript"), "openvino": ("openvino", "onnx", "onnxscript"),
           "openvino-bf16": ("openvino", "onnx", "onnxscript")}


@pytest.fixture(scope="module", params=[3, 1], ids=["rgb", "gray"])
def small(request):
    """A tiny UNet with BatchNorm statistics, RGB or 1-channel (a CT model's input)."""
    torch.manual_seed(0)
    extra = {} if request.param == 3 else {"channels": 1, "modality": "ct"}
    g = randomize_bn(build_generator(Config.from_preset("tiny", **extra))).eval()
    assert g.in_channels == request.param
    return g


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "auto"])
def test_every_backend_matches_fp32_pytorch(small, backend):
    for name in ENGINES.get(backend, ()):
        pytest.importorskip(name, reason=f"{name} is not installed (pip install {name})")
    c = small.in_channels
    x = image(2, c, 64, 48)
    expected = eval_output(small, x)
    fast = fast_generator(small, backend)
    assert fast.backend == backend and fast.in_channels == c and fast.size_multiple == small.size_multiple
    with torch.inference_mode():
        got = torch.as_tensor(fast(x))
    assert got.shape == x.shape and got.dtype == torch.float32 and got.is_contiguous()
    assert (got - expected).abs().max().item() < (BF16_TOL if "bf16" in backend else TOL)


def test_int8_matches_fp32_and_is_refused_where_it_costs_too_much(small, monkeypatch):
    needs_onnx()
    c = small.in_channels
    x = image(2, c, 64, 48)
    calibration = image(8, c, 64, 48, seed=1)
    fast = quantize_int8(small, calibration)
    assert fast.backend == "onnxruntime-int8" and fast.in_channels == c
    assert (fast(x) - eval_output(small, x)).abs().max().item() < INT8_TOL
    clean = image(2, c, 64, 48, seed=2)
    monkeypatch.setattr(inference_engines, "psnr_cost", lambda *args: 0.25)
    with pytest.raises(ValueError, match=r"int8 costs 0\.250 dB .* more than the 0\.1 dB allowed"):
        int8_generator(small, calibration, x, clean)
    monkeypatch.setattr(inference_engines, "psnr_cost", lambda *args: 0.05)
    assert int8_generator(small, calibration, x, clean).psnr_cost_db == 0.05


def test_psnr_cost_of_a_backend_is_measured_against_fp32(tiny):
    clean = image(3, 3, 32, 32)
    degraded = (clean + 0.2 * image(3, 3, 32, 32, seed=1)).clamp(-1, 1)
    assert inference_engines.psnr_cost(fold_batchnorm(tiny), tiny, degraded, clean) == 0.0
    near_clean = iter((clean + 0.01 * image(3, 3, 32, 32, seed=2)).split(1))      # far better than the model
    assert inference_engines.psnr_cost(lambda x: next(near_clean), tiny, degraded, clean) < -10
    noisy = iter((eval_output(tiny, degraded) + 0.5 * image(3, 3, 32, 32, seed=3)).clamp(-1, 1).split(1))
    assert inference_engines.psnr_cost(lambda x: next(noisy), tiny, degraded, clean) > 0.1


def test_missing_openvino_names_the_install_command(tiny, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "openvino", None)
    for backend in ("openvino", "openvino-bf16"):
        with pytest.raises(ImportError, match=r"openvino is not installed.*pip install openvino"):
            fast_generator(tiny, backend)
    assert not any(b.startswith("openvino") for b in auto_candidates(tiny))


def test_auto_leaves_bf16_out_without_native_bf16(tiny, monkeypatch):
    monkeypatch.setattr(utils_hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_vnni"}))
    names = auto_candidates(tiny)
    assert "torch" in names and not any("bf16" in n for n in names)
    monkeypatch.setattr(inference_backends, "onnx_available", lambda: False)         # no exports: seconds, not a minute
    monkeypatch.setattr(inference_backends, "openvino_available", lambda: False)
    assert auto_candidates(tiny) == ["torch", "torch-channels-last"]
    assert fast_generator(tiny, "auto", probe_size=32).backend in ("torch", "torch-channels-last")
    monkeypatch.setattr(utils_hardware, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert "torch-bf16" in auto_candidates(tiny)
    monkeypatch.setattr(utils_hardware, "cpu_flags", lambda: frozenset({"amx_bf16", "amx_tile"}))
    assert "torch-bf16" in auto_candidates(tiny)


def test_cpu_flags_reads_proc_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert utils_hardware.cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    info.write_text("processor\t: 0\n")
    assert utils_hardware.cpu_flags(info) == frozenset() and utils_hardware.cpu_flags(tmp_path / "missing") == frozenset()


def test_auto_keeps_large_models_in_their_own_weights(tiny, monkeypatch):
    """A model over the limit is timed only in backends that share its weights: no second copy."""
    monkeypatch.setattr(inference_backends, "AUTO_OWN_WEIGHTS_MAX_MB", 0)
    names = auto_candidates(tiny)
    assert names and not set(names) & set(OWN_WEIGHTS) and set(names) <= {"torch", "torch-bf16"}
    fast = fast_generator(tiny, "auto", probe_size=32)
    assert fast.backend in names


def test_fold_batchnorm_shares_unchanged_weights_and_folds_in_place(tiny):
    model = build_generator(Config.from_preset("tiny", generator="nafnet")).eval()      # LayerNorm, no BatchNorm
    copy_ = fold_batchnorm(model)
    assert all(a.data_ptr() == b.data_ptr() for a, b in zip(model.parameters(), copy_.parameters()))
    assert all(p.requires_grad for p in model.parameters()) and not any(p.requires_grad for p in copy_.parameters())
    owned = copy.deepcopy(tiny)
    x = image(2, 3, 32, 32)
    expected = eval_output(tiny, x)
    assert fold_batchnorm(owned, inplace=True) is owned
    assert not any(isinstance(m, nn.BatchNorm2d) for m in owned.modules())
    with torch.no_grad():
        assert (owned(x) - expected).abs().max().item() < 1e-5
    fast = fast_generator(model, "torch-bf16")                        # bf16 copies the convs' weights only
    convs = {id(p) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for p in m.parameters()}
    others = {p.data_ptr() for p in model.parameters() if id(p) not in convs}      # LayerNorm's, SimpleGate scales
    assert others and others <= {p.data_ptr() for p in fast.parameters()}


def test_bf16_keeps_channels_last_bf16_conv_weights_with_the_numbers_autocast_makes(tiny):
    model = fold_batchnorm(tiny)
    fast = fast_generator(model, "torch-bf16")                        # conv weights cast once, kept channels-last
    convs = [m for m in fast.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert convs and all(m.weight.dtype == torch.bfloat16 for m in convs)
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert all(p.dtype == torch.float32 for p in model.parameters())                  # the caller's model unchanged
    x = image(2, 3, 32, 32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
        cast_each_time = model(x.contiguous(memory_format=torch.channels_last)).float()
    with torch.inference_mode():
        assert torch.equal(fast(x), cast_each_time.contiguous())

