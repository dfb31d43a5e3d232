"""The speed sections of ``python -m benchmarks``: each returns a dict for results.json.

Every section runs the original's code (`benchmarks.seed_reference`) and the
project's on the same inputs, in this process, one after the other.
"""
from __future__ import annotations

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
from medgan_nb.data import ImageFolderDataset
from medgan_nb.degrade import Degradation
from medgan_nb.export import OnnxGenerator, fold_batchnorm
from medgan_nb.losses import VGGPerceptualLoss
from medgan_nb.models import build_generator
from medgan_nb.pretrained import list_models, load_model
from medgan_nb.train import make_step

from . import seed_reference as ref
from .common import measure

ROOT = Path(__file__).resolve().parent.parent


def _ms(stats: dict) -> dict:
    return {"min_ms": round(1000 * stats["min_s"], 2), "median_ms": round(1000 * stats["median_s"], 2)}


# ------------------------------------------------------------ 1. degradation
def degradation(size: int = 256, batch: int = 32, reps: int = 5) -> dict:
    """Images/s: the original's per-image loop vs the batched pipeline, the same four degradations (seed order)."""
    torch.manual_seed(0)
    unit = torch.rand(batch, 3, size, size)                  # the original works on [0, 1] images
    pipeline = Degradation(Config.preset("seed"))            # noise, salt-and-pepper, blur, colour jitter
    t = measure({"seed": lambda: [ref.apply_degradation(img) for img in unit],
                 "project": lambda: pipeline(unit * 2 - 1),
                 "randn": lambda: torch.randn(batch, 3, size, size)}, reps)
    seed, project, floor = t["seed"], t["project"], t["randn"]
    rate = lambda s: batch / s["median_s"]  # noqa: E731
    return {
        "what": f"images/s at {size}², batch {batch}: noise, salt-and-pepper, blur, colour jitter",
        "seed_images_per_s": round(rate(seed), 1), "project_images_per_s": round(rate(project), 1),
        "ratio": round(seed["median_s"] / project["median_s"], 2), "target": ">= 20x", "seed": seed, "project": project,
        "randn_only_images_per_s": round(rate(floor), 1),
        "ratio_bound_by_randn": round(seed["median_s"] / floor["median_s"], 2),
        "note": "ratio_bound_by_randn: the ratio if everything but drawing the Gaussian noise were free",
    }


# ------------------------------------------------------------ 2. training iteration
def training(device: torch.device, size: int = 256, batch: int = 4, reps: int = 3, channels_last: bool = True) -> dict:
    """Seconds per iteration (1 D + 3 G updates, L1 + VGG + BCE) at the seed model and batch."""
    torch.manual_seed(0)
    clean = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    degraded = (clean + 0.3 * torch.randn_like(clean)).clamp(-1, 1)
    trainer = ref.Trainer(device=str(device), vgg_weights=None)       # random VGG19 weights: same layers, same cost
    cfg = Config.preset("seed", device=str(device))
    step = make_step(cfg, device, perceptual=VGGPerceptualLoss(weights=None))
    fns = {"seed": lambda: trainer.iteration(degraded, clean), "project": lambda: step(clean, degraded)}
    if channels_last and device.type == "cpu":            # the project's models in channels-last too: measured, not assumed
        cl_step = make_step(cfg, device, perceptual=VGGPerceptualLoss(weights=None))
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
        pipeline = Degradation(Config.preset("seed"))
        runs = measure({"seed_load": lambda: drain(seed_plain), "project_load": lambda: drain(ours),
                        "seed_load_degrade": lambda: drain(seed_degr),
                        "project_load_degrade": lambda: drain(ours, lambda x: pipeline(x))}, reps)
    rates = {f"{k}_images_per_s": round(n / v["median_s"], 1) for k, v in runs.items()}
    return {"what": f"images/s, {n} JPEGs of 622×530 on disk -> {size}² batches of {batch}", **rates,
            "ratio_load": round(runs["seed_load"]["median_s"] / runs["project_load"]["median_s"], 2),
            "ratio_load_degrade": round(runs["seed_load_degrade"]["median_s"] / runs["project_load_degrade"]["median_s"], 2),
            "runs": runs}


# ------------------------------------------------------------ 4. inference latency
def _variants(model: torch.nn.Module, x: torch.Tensor, compile_: bool) -> dict:
    """Every way the project can run `model` on x: name -> (callable, seconds to prepare)."""
    out: dict = {}

    def add(name, build):
        t = time.perf_counter()
        try:
            fn = build()
            fn()                          # first call: compiles / allocates
            out[name] = (fn, time.perf_counter() - t)
        except Exception as e:            # an optional backend missing or failing here is a result, not a crash
            out[name] = (None, f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")

    def under(mode, m, inp):
        def run():
            with mode():
                return m(inp)
        return run

    add("no_grad", lambda: under(torch.no_grad, model, x))
    add("inference_mode", lambda: under(torch.inference_mode, model, x))
    add("bn_folded", lambda: under(torch.inference_mode, fold_batchnorm(model), x))
    if x.device.type == "cpu":
        add("channels_last", lambda: under(torch.inference_mode, fold_batchnorm(model).to(memory_format=torch.channels_last),
                                           x.contiguous(memory_format=torch.channels_last)))
        add("onnxruntime", lambda: (lambda g: lambda: g(x))(OnnxGenerator.from_module(model)))
    if compile_:
        def compiled():
            import torch._inductor.config as inductor
            inductor.freezing = True                  # constant weights: lets inductor pre-pack them
            return under(torch.no_grad, torch.compile(fold_batchnorm(model)), x)
        add("torch.compile", compiled)
    return out


def inference(device: torch.device, size: int = 256, reps: int = 25, compile_: bool = True) -> dict:
    """Per-frame latency, batch 1, median of `reps` runs after warm-up: seed architecture and lite."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, size, size, device=device) * 2 - 1
    seed_g = ref.UnetGenerator().to(device)
    seed_g.apply(ref.weights_init)
    result: dict = {"what": f"ms per {size}² frame, batch 1, median of {reps} (taking turns) after 2 warm-up runs",
                    "target_seed": "<= 0.7x the reference", "target_lite": "<= 10 ms",
                    "target_shipped_realtime": "<= 10 ms"}
    models = {"seed_architecture": build_generator(Config.preset("seed")), "lite": build_generator(Config.preset("lite")),
              **{f"shipped_{n}": load_model(n)[0] for n in list_models()}}     # the weights enhance uses
    for name, model in models.items():
        model = model.to(device).eval()
        fns = {"reference": lambda: ref.enhance(seed_g, x)} if name == "seed_architecture" else {}
        rows, prep = {}, {}
        for variant, (fn, setup) in _variants(model, x, compile_).items():
            if fn is None:
                rows[variant] = {"error": setup}
            else:
                fns[variant], prep[variant] = fn, round(setup, 2)
        for variant, stats in measure(fns, reps, warmup=2, device=device).items():
            rows[variant] = _ms(stats)
        if name == "seed_architecture":
            result["seed_reference_no_grad"] = rows.pop("reference")
        # backend="auto" (enhance's default for folders) times these three and keeps the fastest
        auto = [v for v in ("bn_folded", "channels_last", "onnxruntime") if "median_ms" in rows.get(v, {})]
        default_name = min(auto, key=lambda v: rows[v]["median_ms"])
        result[name] = {"variants": rows, "prepare_s": prep, "default_backend": default_name,
                        "default_ms": rows[default_name].get("median_ms")}
        if getattr(model, "guard", None) is not None:     # shipped models: enhance also runs the noise guard
            y = model(x).detach()
            guard_ms = _ms(measure({"guard": lambda: model.guard(x, y)}, reps, warmup=2, device=device)["guard"])
            result[name]["guard_ms"] = guard_ms["median_ms"]
            result[name]["default_ms_with_guard"] = round(result[name]["default_ms"] + guard_ms["median_ms"], 2)
    reference = result["seed_reference_no_grad"]
    seed_default = result["seed_architecture"]["default_ms"]
    result["ratio_seed_default_vs_reference"] = round(seed_default / reference["median_ms"], 2) if seed_default else None
    return result


# ------------------------------------------------------------ 5. peak memory (one subprocess per case)
MEMORY_CASES = ("train_seed_reference", "train_project", "infer_seed_reference", "infer_project_seed", "infer_lite")


def memory(device: torch.device) -> dict:
    """Peak memory of one training iteration / one inference frame, each in a fresh process."""
    result = {"what": ("peak RSS in MB of a fresh process (CPU)" if device.type == "cpu"
                       else "max allocated CUDA memory in MB")}
    for case in MEMORY_CASES:
        out = subprocess.run([sys.executable, "-m", "benchmarks.memory", case, str(device)], cwd=ROOT,
                             capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            result[case] = {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
        else:
            result[case] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
