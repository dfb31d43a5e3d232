"""The speed sections of ``python -m benchmarks``: each returns a dict for results.json.

Every section runs the original's code (`benchmarks.seed_reference`) and the
project's on the same inputs, in this process, one after the other.
"""
from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from medgan_nb.config import Config
from medgan_nb.data import ImageFolderDataset, default_dataset
from medgan_nb.degrade import Degradation
from medgan_nb.evaluation import GOAL_CONDITIONS, evaluation_config
from medgan_nb.inference import BACKENDS, INT8_MAX_COST_DB, auto_candidates, fold_batchnorm, quantize_int8
from medgan_nb.inference.backends import _build
from medgan_nb.utils import bf16_native
from medgan_nb.losses import VGGPerceptualLoss
from medgan_nb.metrics import psnr
from medgan_nb.models import build_generator
from medgan_nb.models import load_model
from medgan_nb.training import make_trainer

from . import seed_reference as ref
from .common import measure

ROOT = Path(__file__).resolve().parent.parent


def _ms(stats: dict) -> dict:
    return {"min_ms": round(1000 * stats["min_s"], 2), "median_ms": round(1000 * stats["median_s"], 2)}


# ------------------------------------------------------------ 1. degradation: benchmarks/degradation.py


# ------------------------------------------------------------ 2. training iteration
def training(device: torch.device, size: int = 256, batch: int = 4, reps: int = 3, channels_last: bool = True) -> dict:
    """Seconds per iteration (1 D + 3 G updates, L1 + VGG + BCE) at the seed model and batch."""
    torch.manual_seed(0)
    clean = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    degraded = (clean + 0.3 * torch.randn_like(clean)).clamp(-1, 1)
    trainer = ref.Trainer(device=str(device), vgg_weights=None)       # random VGG19 weights: same layers, same cost
    cfg = Config.from_preset("original", device=str(device))
    step = make_trainer(cfg, device, perceptual=VGGPerceptualLoss(weights=None))
    fns = {"seed": lambda: trainer.iteration(degraded, clean), "project": lambda: step(clean, degraded)}
    if channels_last and device.type == "cpu":            # the project's models in channels-last too: measured, not assumed
        cl_step = make_trainer(cfg, device, perceptual=VGGPerceptualLoss(weights=None))
        cl_step.G.to(memory_format=torch.channels_last)
        cl_step.D.to(memory_format=torch.channels_last)
        fns["project_channels_last"] = lambda: cl_step(clean.contiguous(memory_format=torch.channels_last),
                                                       degraded.contiguous(memory_format=torch.channels_last))
    t = measure(fns, reps, device=device)
    seed, project = t["seed"], t["project"]
    result = {"what": f"seconds per iteration, seed models, {size}², batch {batch}, 1 D + {cfg.g_steps} G updates"
                      f"{' (AMP)' if step.amp else ''}",
              "seed_s": round(seed["median_s"], 3), "project_s": round(project["median_s"], 3),
              "ratio": round(seed["median_s"] / project["median_s"], 2), "target": ">= 1.3x",
              "seed": seed, "project": project}
    if "project_channels_last" in t:
        result["project_channels_last_s"] = round(t["project_channels_last"]["median_s"], 3)
    return result


# ------------------------------------------------------------ 3. data loading
def make_jpegs(folder: Path, n: int = 200, size: tuple[int, int] = (622, 530), seed: int = 0) -> list[Path]:
    """n smooth colour JPEGs of Kvasir-SEG's typical size (622×530), quality 90."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        small = rng.uniform(0, 255, (12, 14, 3)).astype(np.uint8)
        img = Image.fromarray(small).resize(size, Image.BICUBIC)
        arr = np.asarray(img).astype(np.int16) + rng.integers(-8, 9, (size[1], size[0], 3))
        path = folder / f"frame_{i:03d}.jpg"
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def data_loading(n: int = 200, size: int = 256, batch: int = 32, reps: int = 2) -> dict:
    """Images/s from JPEG files: decode + resize (+ degradation) through a DataLoader, num_workers=0 as the original."""
    with tempfile.TemporaryDirectory() as tmp:
        make_jpegs(Path(tmp), n)

        def drain(dataset, degrade=None):
            for clean, _ in DataLoader(dataset, batch_size=batch, num_workers=0):
                if degrade is not None:
                    degrade(clean)

        seed_plain = ref.KvasirSEGDataset(tmp, size)
        seed_degr = ref.KvasirSEGDataset(tmp, size, degradation_transform=ref.apply_degradation)
        ours = ImageFolderDataset(tmp, size, resize="squash")
        pipeline = Degradation(Config.from_preset("original"))
        runs = measure({"seed_load": lambda: drain(seed_plain), "project_load": lambda: drain(ours),
                        "seed_load_degrade": lambda: drain(seed_degr),
                        "project_load_degrade": lambda: drain(ours, lambda x: pipeline(x))}, reps)
    rates = {f"{k}_images_per_s": round(n / v["median_s"], 1) for k, v in runs.items()}
    return {"what": f"images/s, {n} JPEGs of 622×530 on disk -> {size}² batches of {batch}", **rates,
            "ratio_load": round(runs["seed_load"]["median_s"] / runs["project_load"]["median_s"], 2),
            "ratio_load_degrade": round(runs["seed_load_degrade"]["median_s"] / runs["project_load_degrade"]["median_s"], 2),
            "runs": runs}


# ------------------------------------------------------------ 4. inference latency
INFERENCE_MODELS = ("shipped_realtime", "shipped_quality", "seed_architecture")
TARGETS = {"shipped_realtime": "≤ 8 ms", "seed_architecture": "≤ 0.6× the reference"}
SEED_FRAMES = 8          # the seed architecture's weights are random: its PSNR difference only checks agreement


def real_frames(cfg: Config, n: int, size: int, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """(clean, degraded) (n, C, size, size) in [-1, 1]: an evenly spread subset of a split of the config's
    real frames (its data_dir where present, else the shipped sample), degraded as in evaluate's headline
    condition (blur + noise 0.075) with per-image seeds, as `medgan_nb.evaluation` does."""
    data_dir = cfg.data_dir if cfg.data_dir and Path(cfg.data_dir).is_dir() else None
    task = evaluation_config(cfg.replace(image_size=size, frame_size=size, data_dir=data_dir))
    task = task.replace(max_images=n, **GOAL_CONDITIONS["blur_noise"])
    dataset = default_dataset(split, task)
    clean, keys = zip(*(dataset[i] for i in range(len(dataset))))
    clean = torch.stack(clean)
    return clean, Degradation(task)(clean, keys=list(keys)).image


def _mean_psnr(fn, degraded: torch.Tensor, clean: torch.Tensor) -> float:
    """Mean PSNR (dB) of fn's restorations of the degraded frames, one frame at a time."""
    with torch.inference_mode():
        restored = torch.cat([torch.as_tensor(fn(x)).float().cpu() for x in degraded.split(1)])
    return float(psnr(restored, clean).mean())


def _prepare(build) -> tuple[object, float | str]:
    """(the built backend, seconds to build it) or (None, the error): a missing optional package or an
    engine that cannot run a model is a result here, not a crash."""
    t = time.perf_counter()
    try:
        return build(), time.perf_counter() - t
    except Exception as e:
        return None, f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def _in_inference_mode(fn, x: torch.Tensor):
    def run():
        with torch.inference_mode():
            return fn(x)
    return run


def _guard_ms(model: torch.nn.Module, x: torch.Tensor, reps: int) -> float | None:
    """Median ms of the model's noise guard on x (shipped models carry one, which enhance runs too), or None."""
    guard = getattr(model, "guard", None)
    if guard is None:
        return None
    with torch.inference_mode():
        y = model(x)
    return _ms(measure({"guard": lambda: guard(x, y)}, reps, warmup=2, device=x.device)["guard"])["median_ms"]


def _compiled(model: torch.nn.Module):
    """torch.compile of the BN-folded model with frozen weights (inductor pre-packs them)."""
    import torch._inductor.config as inductor
    inductor.freezing = True
    return torch.compile(fold_batchnorm(model))


def _benchmark_model(name: str, model: torch.nn.Module, cfg: Config, backends: tuple[str, ...], size: int,
                     reps: int, frames: int, reference, compile_: bool) -> dict:
    """Every backend of one model, timed in turns (with the seed reference when given), and what each costs
    in PSNR against fp32 PyTorch on real test frames; int8 is calibrated on the validation split."""
    device = next(model.parameters()).device
    clean, degraded = real_frames(cfg, frames, size)
    degraded = degraded.to(device)
    x = degraded[:1]
    built = {b: _prepare(lambda b=b: _build(model, b)) for b in backends}
    if compile_:
        built["torch.compile"] = _prepare(lambda: _compiled(model))
    if "onnxruntime" in backends:
        calibration = real_frames(cfg, frames, size, split="val")[1]
        built["onnxruntime-int8"] = _prepare(lambda: quantize_int8(model, calibration))
    rows = {b: {"error": prep} for b, (fn, prep) in built.items() if fn is None}
    fns = {b: _in_inference_mode(fn, x) for b, (fn, _) in built.items() if fn is not None}
    if reference is not None:
        fns["reference"] = lambda: reference(x)          # the seed notebook's eval: eval() + no_grad
    timed = measure(fns, reps, warmup=2, device=device)
    ref_ms = 1000 * timed.pop("reference")["median_s"] if reference is not None else None
    fp32 = _mean_psnr(built["torch"][0], degraded, clean) if built.get("torch", (None,))[0] is not None else None
    for b, stats in timed.items():
        fn, prep = built[b]
        rows[b] = {**_ms(stats), "prepare_s": round(prep, 2)}
        if ref_ms:
            rows[b]["ratio_vs_reference"] = round(rows[b]["median_ms"] / ref_ms, 2)
        if fp32 is not None:
            rows[b]["psnr_diff_db"] = round(_mean_psnr(fn, degraded, clean) - fp32, 3) + 0.0   # no -0.0
    if "psnr_diff_db" in rows.get("onnxruntime-int8", {}):
        rows["onnxruntime-int8"]["kept"] = -rows["onnxruntime-int8"]["psnr_diff_db"] <= INT8_MAX_COST_DB
    auto = [b for b in auto_candidates(model) if "median_ms" in rows.get(b, {})]
    pick = min(auto, key=lambda b: rows[b]["median_ms"]) if auto else None
    result = {"backends": rows, "auto": pick, "auto_ms": rows[pick]["median_ms"] if pick else None,
              "guard_ms": _guard_ms(model, x, reps),
              "fp32_psnr_db": round(fp32, 3) if fp32 is not None else None, "frames": len(clean),
              "parameters": sum(p.numel() for p in model.parameters()), "target": TARGETS.get(name, "-")}
    if ref_ms:
        result.update(reference_ms=round(ref_ms, 2), auto_ratio=round(result["auto_ms"] / ref_ms, 2) if pick else None)
    return result


def inference(device: torch.device, size: int = 256, reps: int = 25, frames: int = 36,
              models: tuple[str, ...] = INFERENCE_MODELS, backends: tuple[str, ...] | None = None,
              compile_: bool = False) -> dict:
    """Per-frame latency (batch 1, median of `reps` taking turns, after 2 warm-up runs) of every inference
    backend for the shipped realtime and quality models and the seed architecture (random weights; timed
    with the seed notebook's own generator, `benchmarks.seed_reference`, in the same turns), and the PSNR
    each backend gains or loses against fp32 PyTorch on `frames` real test frames of ``size``² (`SEED_FRAMES`
    for the seed architecture).

    "auto" is what `medgan_nb.inference.backends.fast_generator` would keep: the fastest of its candidates for the model
    on this machine (`auto_candidates`), read off these timings. The backends are CPU engines: on a GPU only
    "torch" runs (on the GPU). Rows that are no backend: "onnxruntime-int8" (`quantize_int8`, calibrated on
    the validation split; ``kept`` says whether its PSNR cost is within `INT8_MAX_COST_DB`) and, with
    `compile_`, "torch.compile".
    """
    torch.manual_seed(0)
    if backends is None:
        backends = tuple(b for b in BACKENDS if b != "auto") if device.type == "cpu" else ("torch",)
    result: dict = {"what": f"ms per {size}² frame, batch 1, median of {reps} taking turns after 2 warm-up runs; "
                            f"PSNR difference vs fp32 PyTorch on {frames} real test frames (blur + noise 0.075)",
                    "device": str(device), "bf16_native": bf16_native(), "int8_max_cost_db": INT8_MAX_COST_DB,
                    "models": {}}
    for name in models:
        if name == "seed_architecture":
            model, cfg = build_generator(Config.from_preset("original")).eval(), Config.from_preset("original")
            seed_g = ref.UnetGenerator().to(device)
            seed_g.apply(ref.weights_init)
            reference = lambda x, g=seed_g: ref.enhance(g, x)  # noqa: E731
        else:
            model, cfg, _ = load_model(name.removeprefix("shipped_"))
            reference = None
        model, start = model.to(device), time.perf_counter()
        n = frames if reference is None else min(frames, SEED_FRAMES)
        result["models"][name] = _benchmark_model(name, model, cfg, backends, size, reps, n, reference, compile_)
        result["models"][name]["seconds"] = round(time.perf_counter() - start, 1)
        del model, reference
        gc.collect()
    return result


# ------------------------------------------------------------ 5. peak memory (one subprocess per case)
MEMORY_CASES = ("train_seed_reference", "train_project", "infer_seed_reference", "infer_project_seed", "infer_lite")


def memory(device: torch.device) -> dict:
    """Peak memory of one training iteration / one inference frame, each in a fresh process."""
    result = {"what": ("peak RSS in MB of a fresh process (CPU)" if device.type == "cpu"
                       else "max allocated CUDA memory in MB"),
              "inference": "from files: the original's state_dict file, the project's training checkpoint "
                           "through enhance; one 256² frame"}
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "benchmarks.memory", "prepare", str(device), folder], cwd=ROOT,
                       check=True, timeout=900)
        for case in MEMORY_CASES:
            out = subprocess.run([sys.executable, "-m", "benchmarks.memory", case, str(device), folder], cwd=ROOT,
                                 capture_output=True, text=True, timeout=900)
            if out.returncode != 0:
                result[case] = {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
            else:
                result[case] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
