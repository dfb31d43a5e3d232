"""Training: the original's conditional-GAN recipe, made resumable, reproducible and device-agnostic.

One iteration on a batch of clean images:

1. degrade the batch on the training device (`medgan_nb.degrade`);
2. discriminator step: D learns to tell (degraded, clean) from (degraded, G(degraded));
3. ``g_steps`` generator steps (3 in the original, 1 in standard pix2pix): G learns to
   fool D while staying close to the clean image (L1, optionally VGG perceptual).

Learning rates stay constant until ``lr_decay_start`` and then fall linearly to zero
at the last epoch. A run lives in ``output/runs/<name>/``:

    config.json     the settings         metrics.csv  losses, learning rates, images/s
    val.csv         PSNR/SSIM per epoch  samples/     degraded | restored | clean grids
    checkpoints/    last.pt (every epoch), epoch_NNN.pt (every save_every), best.pt (val PSNR)

``max_minutes`` stops a run after a time budget: the epoch in progress ends
early and is validated and saved as usual (a resumed run starts the next one).

Every epoch starts from random seeds derived from (seed, epoch), and checkpoints
are written at epoch ends, so a run resumed with ``resume=`` continues exactly as
if it had never stopped. Under ``torchrun`` the same function trains with
DistributedDataParallel; only rank 0 writes files.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, make_run_dir, rng_state, save_checkpoint, set_rng_state
from .config import Config
from .data import default_dataset
from .degrade import Degradation, seed_for
from .losses import GeneratorLoss, GeneratorLossParts, discriminator_loss
from .metrics import psnr, ssim
from .models import build_discriminator, build_generator, resolve_device
from .viz import image_grid

log = logging.getLogger(__name__)
METRIC_FIELDS = ["step", "epoch", "loss_d", "loss_g", "adv", "l1", "perceptual", "lr_g", "lr_d", "images_per_s"]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


def lr_factor(epoch: int, cfg: Config) -> float:
    """1 before ``lr_decay_start``, then falling linearly towards 0 at the last epoch (the original's rule)."""
    if epoch < cfg.lr_decay_start:
        return 1.0
    return max(0.0, 1.0 - (epoch - cfg.lr_decay_start) / max(1, cfg.epochs - cfg.lr_decay_start))


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> None:
    """Seed python, numpy and torch for one epoch of one process: resumes replay the same numbers."""
    s = seed_for(f"epoch {epoch} rank {rank}", seed) % 2**32
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size); starts the process group when run under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


class _CsvLog:
    """Append rows to a CSV file (header written once); does nothing on ranks other than 0."""

    def __init__(self, path: Path, fields: list[str], enabled: bool):
        self.path, self.fields, self.enabled = path, fields, enabled

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, self.fields)
            if new:
                writer.writeheader()
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    def drop_after(self, step: int) -> None:
        """On resume: forget rows logged after the checkpoint (training that is being redone)."""
        if not (self.enabled and self.path.exists()):
            return
        with self.path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)


def train(cfg: Config | None = None, *, resume: str | Path | None = None, name: str | None = None,
          quiet: bool = False) -> Path:
    """Train a generator/discriminator pair; return the run folder.

    cfg: the settings (ignored when resuming: the run's own config is used).
    resume: a run folder (or checkpoint file) to continue from its last checkpoint.
    name: the run folder's name under ``<output_dir>/runs/`` (default: a timestamp;
    a taken name gets a suffix, earlier runs are never overwritten).
    """
    rank, local_rank, world = _distributed()
    state = None
    if resume is not None:
        state = load_checkpoint(resume)
        cfg = Config.from_dict(state["config"])
        run = Path(resume) if Path(resume).is_dir() else Path(resume).parent.parent
    elif cfg is None:
        raise ValueError("give a Config, or a run folder to resume")
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    if state is None:
        run = _new_run(cfg, name) if rank == 0 else Path()
    main = rank == 0

    # ------------------------------------------------------------ data
    train_set = default_dataset("train", cfg)
    val_set = default_dataset("val", cfg)
    if len(train_set) < cfg.batch_size * world:
        raise ValueError(f"{len(train_set)} training images cannot fill one batch of {cfg.batch_size} × "
                         f"{world} processes; lower batch_size or add images")
    order = torch.Generator()
    sampler = (DistributedSampler(train_set, world, rank, shuffle=True, seed=cfg.seed, drop_last=True)
               if world > 1 else RandomSampler(train_set, generator=order))
    loader = DataLoader(train_set, cfg.batch_size, sampler=sampler, drop_last=True, num_workers=cfg.num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0)
    degrade = Degradation(cfg)
    val_clean = torch.stack([val_set[i][0] for i in range(len(val_set))])
    val_keys = [val_set[i][1] for i in range(len(val_set))]
    val_degraded = degrade(val_clean, keys=val_keys).image          # fixed: identical every epoch and run
    psnr_in, ssim_in = _scores(val_degraded, val_clean)             # the input's scores: computed once

    # ---------------------------------------------------------- models
    torch.manual_seed(cfg.seed)
    step_fn = make_step(cfg, device)
    memory = torch.channels_last if step_fn.amp else torch.contiguous_format   # the batches' layout, as the models'
    G, D, opt_g, opt_d = step_fn.G, step_fn.D, step_fn.opt_g, step_fn.opt_d
    scaler_g, scaler_d = step_fn.scaler_g, step_fn.scaler_d
    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, lambda e: lr_factor(e, cfg))
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, lambda e: lr_factor(e, cfg))
    start_epoch, step, best_psnr = 0, 0, -float("inf")
    if state is not None:
        G.load_state_dict(state["generator"])
        D.load_state_dict(state["discriminator"])
        for obj, key in [(opt_g, "opt_g"), (opt_d, "opt_d"), (sched_g, "sched_g"), (sched_d, "sched_d"),
                         (scaler_g, "scaler_g"), (scaler_d, "scaler_d")]:
            obj.load_state_dict(state[key])
        start_epoch, step, best_psnr = state["epoch"], state["step"], state["best_psnr"]
        set_rng_state(state["rng"])
    if world > 1:
        G = step_fn.G = DistributedDataParallel(G, device_ids=[device.index] if device.type == "cuda" else None)
        D = step_fn.D = DistributedDataParallel(D, device_ids=[device.index] if device.type == "cuda" else None)
    metrics = _CsvLog(run / "metrics.csv", METRIC_FIELDS, main)
    val_log = _CsvLog(run / "val.csv", ["step", "epoch", "psnr", "ssim", "psnr_degraded", "ssim_degraded"], main)
    if state is not None:
        metrics.drop_after(step)
        val_log.drop_after(step)
        if main:
            log.info("resuming %s at epoch %d, step %d", run, start_epoch + 1, step)

    # ------------------------------------------------------------ loop
    epochs = tqdm(range(start_epoch, cfg.epochs), desc="epochs", disable=quiet or not main,
                  initial=start_epoch, total=cfg.epochs)
    deadline = time.monotonic() + 60 * cfg.max_minutes if cfg.max_minutes else float("inf")
    out_of_time = False
    for epoch in epochs:
        seed_epoch(cfg.seed, epoch, rank)
        order.manual_seed(seed_for(f"order {epoch}", cfg.seed))
        if world > 1:
            sampler.set_epoch(epoch)
        noise = torch.Generator(device).manual_seed(seed_for(f"degrade {epoch} rank {rank}", cfg.seed))
        G.train(), D.train()
        t0, seen = time.perf_counter(), 0
        batches = tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=quiet or not main)
        for clean, _ in batches:
            clean = clean.to(device, non_blocking=True, memory_format=memory)
            degraded = degrade(clean, generator=noise).image

            loss_d, parts = step_fn(clean, degraded)

            step += 1
            seen += clean.shape[0] * world
            bad = (~torch.isfinite(loss_d.detach()) | ~torch.isfinite(parts.total.detach())).float()
            if world > 1:
                dist.all_reduce(bad, op=dist.ReduceOp.MAX)     # every rank stops, none waits forever
            if bad.item():
                raise TrainingDiverged(
                    f"loss became {loss_d.item():.3g} (D) / {parts.total.item():.3g} (G) at epoch {epoch + 1}, "
                    f"step {step}; nothing was saved after it. Last good checkpoint: "
                    f"{run / 'checkpoints' / 'last.pt' if (run / 'checkpoints' / 'last.pt').exists() else 'none yet'}. "
                    f"Try a lower lr_g/lr_d, or amp=false.")
            if step % cfg.log_every == 0 or step == 1:
                row = {"step": step, "epoch": epoch + 1, "loss_d": loss_d.item(), "loss_g": parts.total.item(),
                       "adv": parts.adv.item(), "l1": parts.l1.item(), "perceptual": parts.perceptual.item(),
                       "lr_g": opt_g.param_groups[0]["lr"], "lr_d": opt_d.param_groups[0]["lr"],
                       "images_per_s": seen / (time.perf_counter() - t0)}
                metrics.write(row)
                batches.set_postfix(D=f"{row['loss_d']:.3f}", G=f"{row['loss_g']:.2f}",
                                    img_s=f"{row['images_per_s']:.0f}")
            if main and cfg.sample_every and step % cfg.sample_every == 0:
                _save_samples(_unwrap(G), val_clean, val_degraded, run / "samples" / f"step_{step:06d}.png", device)
            if cfg.max_minutes:                # this epoch then ends here, is validated and saved as done
                late = torch.tensor(float(time.monotonic() > deadline), device=device)
                if world > 1:
                    dist.all_reduce(late, op=dist.ReduceOp.MAX)   # all ranks stop at the same step
                if late.item():
                    out_of_time = True
                    break

        sched_g.step()
        sched_d.step()
        if world > 1:                         # BatchNorm statistics: make every rank hold rank 0's
            for model in (G, D):
                for buffer in model.buffers():
                    dist.broadcast(buffer, 0)
        if main:
            psnr_out, ssim_out = _scores(restore(_unwrap(G), val_degraded, device), val_clean)
            scores = {"psnr": psnr_out, "ssim": ssim_out, "psnr_degraded": psnr_in, "ssim_degraded": ssim_in}
            val_log.write({"step": step, "epoch": epoch + 1, **scores})
            epochs.set_postfix(val_psnr=f"{scores['psnr']:.2f}")
            best = scores["psnr"] > best_psnr
            best_psnr = max(best_psnr, scores["psnr"])
            state = {"config": cfg.to_dict(), "generator": _unwrap(G).state_dict(),
                     "discriminator": _unwrap(D).state_dict(), "opt_g": opt_g.state_dict(),
                     "opt_d": opt_d.state_dict(), "sched_g": sched_g.state_dict(), "sched_d": sched_d.state_dict(),
                     "scaler_g": scaler_g.state_dict(), "scaler_d": scaler_d.state_dict(), "epoch": epoch + 1,
                     "step": step, "best_psnr": best_psnr, "val": scores, "rng": rng_state()}
            folder = run / "checkpoints"
            save_checkpoint(state, folder / "last.pt")
            if (epoch + 1) % cfg.save_every == 0 or epoch + 1 == cfg.epochs:
                save_checkpoint(state, folder / f"epoch_{epoch + 1:03d}.pt")
            if best:
                save_checkpoint(state, folder / "best.pt")
        if world > 1:
            dist.barrier()
        if out_of_time:
            if main:
                log.warning("max_minutes=%g reached: stopped in epoch %d after %d steps", cfg.max_minutes,
                            epoch + 1, step)
            break
    if world > 1:
        digest = _check_in_sync([_unwrap(G), _unwrap(D)], world)
        if main:
            print(f"weights identical on all {world} processes (sha256 {digest[:12]})")
    if main:
        _save_samples(_unwrap(G), val_clean, val_degraded, run / "samples" / "final.png", device)
        if not quiet:
            print(f"run folder: {run}")
    return run


@dataclass
class TrainStep:
    """The models, losses and optimisers of a run; calling it runs one training iteration on a batch.

    One iteration, as in the original: one discriminator update, then
    ``g_steps`` generator updates on the same batch. What it does not repeat:

    - the generator forward made for D's update also serves the first G
      update (G has not changed in between), so ``g_steps`` forwards, not
      ``g_steps + 1``;
    - the VGG features of the clean batch are computed once, not per G update;
    - D's weights are frozen during G updates: no gradients are computed for
      them (the original computed and then threw them away);
    - VGG runs in the channels-last layout (see `VGGPerceptualLoss`), while G
      and D keep the default layout on the CPU, where channels-last measured
      slower for their transposed convolutions;
    - gradients are released with ``set_to_none`` and Adam runs its
      multi-tensor (``foreach``) kernels; on CUDA, AMP with loss scaling.
    """
    G: nn.Module
    D: nn.Module
    loss_g: GeneratorLoss
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    g_steps: int
    amp: bool = False

    def __call__(self, clean: torch.Tensor, degraded: torch.Tensor) -> tuple[torch.Tensor, GeneratorLossParts]:
        """Update D once and G `g_steps` times on one batch; returns D's loss and G's last loss parts."""
        G, D, loss_g = self.G, self.D, self.loss_g
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()
        with autocast:
            target = loss_g.perceptual_target(clean)

        # discriminator: real pairs -> 1, restored pairs -> 0
        D.requires_grad_(True)
        with autocast:
            fake = G(degraded)
            loss_d = discriminator_loss(loss_g.gan, D(degraded, clean), D(degraded, fake.detach()))
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(loss_d).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()

        # generator: fool D, stay close to the clean image; D's weights are fixed meanwhile
        D.requires_grad_(False)
        for k in range(self.g_steps):
            with autocast:
                if k > 0:                 # the first update reuses the forward pass made for D
                    fake = G(degraded)
                parts = loss_g(_unwrap(D)(degraded, fake), fake, clean, target)
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.scale(parts.total).backward()
            self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
        return loss_d, parts


def make_step(cfg: Config, device: torch.device | str = "cpu", perceptual: nn.Module | None = None) -> TrainStep:
    """Build G, D (initialised), the losses and the Adam optimisers of `cfg` on `device` as a `TrainStep`.

    perceptual: a ready VGG loss module (e.g. ``VGGPerceptualLoss(weights=None)``
    for benchmarks without the weights); default: built from `cfg`.
    """
    device = torch.device(device)
    amp = cfg.amp and device.type == "cuda"
    memory = torch.channels_last if amp else torch.contiguous_format
    G = build_generator(cfg).to(device, memory_format=memory)
    D = build_discriminator(cfg).to(device, memory_format=memory)
    loss_g = GeneratorLoss(cfg, perceptual).to(device)
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    opt_g = torch.optim.Adam(G.parameters(), cfg.lr_g, betas=(cfg.beta1, cfg.beta2), **fast)
    opt_d = torch.optim.Adam(D.parameters(), cfg.lr_d, betas=(cfg.beta1, cfg.beta2), **fast)
    return TrainStep(G, D, loss_g, opt_g, opt_d, torch.amp.GradScaler(device.type, enabled=amp),
                     torch.amp.GradScaler(device.type, enabled=amp), cfg.g_steps, amp)


def _check_in_sync(models: list[torch.nn.Module], world: int) -> str:
    """Compare a hash of every weight and buffer across processes; raise if any rank differs."""
    h = hashlib.sha256()
    for model in models:
        for tensor in model.state_dict().values():
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digests: list[Any] = [None] * world
    dist.all_gather_object(digests, h.hexdigest())
    if len(set(digests)) != 1:
        raise RuntimeError(f"processes ended with different weights: {digests}")
    return digests[0]


def _new_run(cfg: Config, name: str | None) -> Path:
    run = make_run_dir(Path(cfg.output_dir) / "runs", name or time.strftime("%Y%m%d-%H%M%S"))
    cfg.save(run / "config.json")
    (run / "checkpoints").mkdir()
    return run


@torch.no_grad()
def restore(generator: torch.nn.Module, degraded: torch.Tensor, device: torch.device,
            batch_size: int = 32) -> torch.Tensor:
    """Run the generator in eval mode over a CPU batch, in chunks; returns a CPU tensor."""
    was_training = generator.training
    generator.eval()
    out = torch.cat([generator(degraded[i:i + batch_size].to(device)).float().cpu()
                     for i in range(0, len(degraded), batch_size)])
    generator.train(was_training)
    return out


def _scores(images: torch.Tensor, clean: torch.Tensor) -> tuple[float, float]:
    """Mean PSNR and SSIM of a batch against the clean images."""
    return float(psnr(images, clean).mean()), float(ssim(images, clean).mean())


def _save_samples(generator: torch.nn.Module, clean: torch.Tensor, degraded: torch.Tensor, path: Path,
                  device: torch.device, n: int = 4) -> None:
    restored = restore(generator, degraded[:n], device)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = image_grid({"degraded": degraded[:n], "restored": restored, "clean": clean[:n]})
    fig.savefig(path, dpi=72)
    plt.close(fig)

