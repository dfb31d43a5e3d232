"""Training: the original's conditional-GAN recipe, made resumable, reproducible and device-agnostic.

One iteration on a batch of clean images (`Trainer`):

1. degrade the batch on the training device (`medgan_nb.degrade`);
2. discriminator step: D learns to tell (degraded, clean) from (degraded, G(degraded));
3. ``g_steps`` generator steps (3 in the original, 1 in standard pix2pix): G learns to
   fool D while staying close to the clean image (L1, optionally VGG perceptual).

Learning rates stay constant until ``lr_decay_start`` and then fall linearly to zero
at the last epoch. A run lives in ``<output_dir>/runs/<name>/``:

    config.json     the settings         metrics.csv  losses, gradient norms, learning rates, images/s
    val.csv         PSNR/SSIM, CPU time  samples/     grids: rows degraded, restored, clean
    checkpoints/    last.pt (every epoch), epoch_NNN.pt (every save_every), best.pt (val PSNR);
                    each state is written once, the other names are hard links to it (or copies)
    parent.json     only in a run started from another run's checkpoint: which one
    skipped_images.csv  only with bad_images="skip": the unreadable files left out
    tensorboard/    only with tensorboard=True: the same numbers (and the sample grids) for TensorBoard

metrics.csv has a row every ``log_every`` steps: the losses (each term already weighted), and
``grad_adv``, ``grad_l1``, ``grad_perceptual``: the L2 norm, over the whole batch, of each weighted
term's gradient with respect to G's output image in that step's (last) generator update. A term's
share of the loss *value* says nothing about how hard it pulls on G; these norms do (0 for a term
that is off). They cost one extra backward pass per active term through D or VGG, on logging steps
only, and change nothing in training (tests/test_train.py checks the weights bit for bit).

Resuming (``resume=``):

- a run folder, or its ``checkpoints/last.pt``: the run continues in its own folder.
  Every epoch starts from random seeds derived from (seed, epoch) and checkpoints
  are written at epoch ends, so after a crash or kill the run continues exactly as
  if it had never stopped (same weights, bit for bit, on the same machine); the log
  rows of the interrupted epoch are redone.
- any other checkpoint (``best.pt``, ``epoch_NNN.pt``, a loose ``model.pt``): a new run
  folder starts from it and records it in ``parent.json``; the original run is not
  touched, so no better result is ever overwritten. The new folder's log files begin
  with the parent's rows up to that checkpoint, and its ``best.pt`` is the best of
  the epochs trained in it.

A run's length is its ``epochs``: a fixed number of steps, whatever the machine's
speed or load. ``max_minutes`` is only a safety stop (wall-clock time, so its effect
depends on the machine): the epoch in progress ends early and is validated and saved
as if complete, and the checkpoint lists it in ``capped_epochs`` so that reports can
say the run was cut short (`training_summary`). A resumed run then starts the next
epoch, so a run stopped this way and resumed differs from one uninterrupted run:
the stopped epoch saw fewer batches and its learning-rate step was taken.

``val.csv``'s ``cpu_s`` is the CPU time (all threads of the training process, summed
over resumes) the run has spent up to that epoch's end, validation included and
set-up excluded: the cost to compare runs by, which a busy machine does not inflate
the way it inflates wall-clock time.

Under ``torchrun`` the same function trains with DistributedDataParallel (NCCL on
GPUs, Gloo on the CPU); only rank 0 writes files. BatchNorm: by default each
process normalises with its own batch's statistics (what a single process with
that batch size does, and no extra communication per layer) and rank 0's running
statistics are copied to all ranks at each epoch end; ``sync_batchnorm=True``
computes the statistics over all processes' batches instead (PyTorch supports
that on GPUs only).
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler
from torchvision.utils import make_grid, save_image
from tqdm.auto import tqdm

from ..config.config import Config
from ..losses import GRAD_TERMS, GeneratorLossParts
from ..models.build import resolve_device
from ..models.checkpoint import (
    check_run_name,
    checkpoint_config,
    checkpoint_path,
    copy_checkpoint,
    run_folder_of,
    save_checkpoint,
)
from ..models.runner import restore
from ..utils.images import to_unit
from ..utils.seeding import seed_epoch, seed_for
from .logs import TB_TAGS
from .setup import _build, _Data, _load_data, _open_run, _resumable_state, _session, _Session, _write_skipped
from .trainer import TrainingDiverged, _check_in_sync, _scores, _unwrap

log = logging.getLogger(__name__)
TENSORBOARD_INSTALL = "pip install tensorboard"


@dataclass(frozen=True)
class StepEnd:
    """What a training callback is told after each optimisation step (on every process of a DDP run).

    run: the run folder; epoch: 1-based; step: batches trained so far, all epochs (the ``step`` of metrics.csv);
    logged: this step's metrics.csv row (losses, gradient norms, learning rates, images/s) when the step was
    logged (every ``log_every`` steps and the first), else None.
    """
    run: Path
    epoch: int
    step: int
    logged: dict[str, float] | None


Callback = Callable[[StepEnd], None]


def train(cfg: Config | None = None, *, resume: str | Path | None = None, name: str | None = None,
          quiet: bool = False, callbacks: Sequence[Callback] = ()) -> Path:
    """Train a generator/discriminator pair; return the run folder.

    cfg: the settings (ignored when resuming: the checkpoint's own config is used).
    resume: a run folder or checkpoint to continue from (see the module docstring for where results go).
    name: the new run folder's name under ``<output_dir>/runs/`` (default: a timestamp, or
    ``<parent>-from-<checkpoint>`` for a run started from another run's checkpoint); a taken
    name gets a suffix, earlier runs are never overwritten.
    callbacks: functions called with a `StepEnd` after every optimisation step, in order, on every process
    (to watch a run, stop it by raising, or crash it at a known step in a test). An exception from a callback
    ends training there; the last epoch-end checkpoint stays the one to resume from.
    """
    if name is not None:
        check_run_name(name)              # before any slow work: a path as a name would write outside runs/
    state = _resumable_state(resume) if resume is not None else None
    if state is not None:
        cfg = checkpoint_config(state, checkpoint_path(resume))
    elif cfg is None:
        raise ValueError("give a Config, or a run folder to resume")
    if cfg.tensorboard:
        _summary_writer_class()           # fail now, with the command that fixes it, not after the set-up
    device = resolve_device(cfg.device)
    if cfg.sync_batchnorm and device.type != "cuda":
        raise ValueError("sync_batchnorm=True needs CUDA (PyTorch's SyncBatchNorm runs on GPUs only); "
                         "on the CPU each process keeps its own BatchNorm statistics")
    rank, world, started = _start_processes(device)
    try:
        run = _train(cfg, state, resume, name, device, rank, world, quiet, tuple(callbacks))
        if started:
            dist.barrier()              # all ranks end together, after rank 0's last files
        return run
    finally:
        if started:                     # free DDP's pending work while the interpreter is whole: a Gloo thread
            gc.collect()                # left holding it can abort the process at exit ("terminate called ...")
            dist.destroy_process_group()


def _train(cfg: Config, state: dict | None, resume: str | Path | None, name: str | None, device: torch.device,
           rank: int, world: int, quiet: bool, callbacks: tuple[Callback, ...]) -> Path:
    """Set up, then train epoch by epoch: each epoch ends validated and saved."""
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    if state is not None and state["epoch"] >= cfg.epochs:
        run = run_folder_of(checkpoint_path(resume)) or checkpoint_path(resume).parent
        if rank == 0:
            print(f"{checkpoint_path(resume)} has finished all {cfg.epochs} epochs; nothing to train "
                  f"(to train longer, start a new run with more epochs)")
        return run
    data = _load_data(cfg, device, rank, world)            # every check first: the run folder comes last
    built = _build(cfg, device, world, state)
    run, in_place = _open_run(cfg, resume, state, name) if rank == 0 else (Path(), True)
    if rank == 0 and cfg.bad_images == "skip":
        _write_skipped(run / "skipped_images.csv", data.skipped)
    s = _session(cfg, run, device, rank, world, built, state, in_place)
    s.callbacks = callbacks
    if cfg.tensorboard and s.main:
        s.tb = _summary_writer_class()(str(run / "tensorboard"), purge_step=s.step + 1 if s.step else None)
    try:
        _train_epochs(s, data, quiet)
    finally:
        if s.tb is not None:
            s.tb.close()
    return run


def _train_epochs(s: _Session, data: _Data, quiet: bool) -> None:
    """Train from the session's epoch to the last (or the safety stop), then write the final samples."""
    cfg, run, device, world = s.cfg, s.run, s.device, s.world
    epochs = tqdm(range(s.epoch, cfg.epochs), desc="epochs", disable=quiet or not s.main,
                  initial=s.epoch, total=cfg.epochs)
    deadline = time.monotonic() + 60 * cfg.max_minutes if cfg.max_minutes else float("inf")
    s.cpu_mark = time.process_time()
    for epoch in epochs:
        out_of_time = _train_epoch(s, data, epoch, deadline, quiet)
        if out_of_time:
            s.capped_epochs.append(epoch + 1)
        _end_epoch(s, data, epoch)
        if s.main:
            epochs.set_postfix(val_psnr=f"{s.val_psnr:.2f}")
        if out_of_time:
            if s.main:
                log.warning("safety stop max_minutes=%g reached: training ended in epoch %d of %d after %d steps; "
                            "this model has had less training than its config asks for", cfg.max_minutes,
                            epoch + 1, cfg.epochs, s.step)
            break

    if world > 1:
        digest = _check_in_sync([_unwrap(s.trainer.G), _unwrap(s.trainer.D)], world)
        if s.main:
            print(f"weights identical on all {world} processes (sha256 {digest[:12]})")
    if s.main:
        _save_samples(s.trainer.shipped, data.val_clean, data.val_degraded, run / "samples" / "final.png", device,
                      writer=s.tb, step=s.step)
        if not quiet:
            print(f"run folder: {run}")


def _summary_writer_class() -> type:
    """torch.utils.tensorboard.SummaryWriter, or an ImportError that says how to install tensorboard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError(f"tensorboard=True needs the tensorboard package, which is not installed: run "
                          f"`{TENSORBOARD_INSTALL}`, or set tensorboard=False (metrics.csv and val.csv hold "
                          f"the same numbers)") from None
    return SummaryWriter


# ------------------------------------------------------------------ set-up
def _start_processes(device: torch.device) -> tuple[int, int, bool]:
    """(rank, world size, whether this call started the process group): under torchrun, join the others.

    The backend follows the configured device, not whether a GPU exists: NCCL for CUDA, Gloo for the CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    started = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        started = True
    return int(os.environ.get("RANK", "0")), world, started


# ------------------------------------------------------------------ one epoch
def _train_epoch(s: _Session, data: _Data, epoch: int, deadline: float, quiet: bool) -> bool:
    """Train on every batch of one epoch (or until `deadline`); True if the safety stop ended it."""
    cfg, device = s.cfg, s.device
    seed_epoch(cfg.seed, epoch, s.rank)
    data.order.manual_seed(seed_for(f"order {epoch}", cfg.seed))
    if isinstance(data.loader.sampler, DistributedSampler):
        data.loader.sampler.set_epoch(epoch)
    noise = torch.Generator(device).manual_seed(seed_for(f"degrade {epoch} rank {s.rank}", cfg.seed))
    memory = torch.channels_last if s.trainer.amp else torch.contiguous_format     # the models' layout
    s.trainer.G.train(), s.trainer.D.train()
    t0, seen = time.perf_counter(), 0
    batches = tqdm(data.loader, desc=f"epoch {epoch + 1}", leave=False, disable=quiet or not s.main)
    for batch in batches:
        clean = batch[0].to(device, non_blocking=True, memory_format=memory)
        degraded = (data.degrade(clean, generator=noise).image if data.degrade is not None
                    else batch[1].to(device, non_blocking=True, memory_format=memory))
        logged = (s.step + 1) % cfg.log_every == 0 or s.step == 0       # this step gets a row in metrics.csv
        loss_d, parts = s.trainer(clean, degraded, grad_norms=logged)
        s.step += 1
        seen += clean.shape[0] * s.world
        _stop_if_diverged(s, loss_d, parts, epoch)
        if logged:
            norms = s.trainer.grad_norms
            row = {"step": s.step, "epoch": epoch + 1, "loss_d": loss_d.item(), "loss_g": parts.total.item(),
                   "adv": parts.adv.item(), "l1": parts.l1.item(), "perceptual": parts.perceptual.item(),
                   "lr_g": s.trainer.opt_g.param_groups[0]["lr"], "lr_d": s.trainer.opt_d.param_groups[0]["lr"],
                   "images_per_s": seen / (time.perf_counter() - t0),
                   **{f"grad_{t}": norms[t].item() for t in GRAD_TERMS}}
            s.metrics.write(row)
            if s.tb is not None:
                for key, tag in TB_TAGS.items():
                    s.tb.add_scalar(tag, row[key], s.step)
            batches.set_postfix(D=f"{row['loss_d']:.3f}", G=f"{row['loss_g']:.2f}",
                                img_s=f"{row['images_per_s']:.0f}")
        if s.main and cfg.sample_every and s.step % cfg.sample_every == 0:
            _save_samples(s.trainer.shipped, data.val_clean, data.val_degraded,
                          s.run / "samples" / f"step_{s.step:06d}.png", device, writer=s.tb, step=s.step)
        if s.callbacks:
            event = StepEnd(s.run, epoch + 1, s.step, row if logged else None)
            for callback in s.callbacks:
                callback(event)
        if cfg.max_minutes and _all_agree(time.monotonic() > deadline, s):
            return True                       # this epoch ends here, and is validated and saved as done
    return False


def _all_agree(flag: bool | torch.Tensor, s: _Session) -> bool:
    """True on every rank if it is true on any (so all ranks stop at the same step, none waits forever).

    `flag` may be a tensor on the device: it is then read back once, after the all-reduce.
    """
    t = torch.as_tensor(flag, dtype=torch.float32, device=s.device)
    if s.world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _stop_if_diverged(s: _Session, loss_d: torch.Tensor, parts: GeneratorLossParts, epoch: int) -> None:
    if not _all_agree(~(torch.isfinite(loss_d.detach()) & torch.isfinite(parts.total.detach())), s):
        return
    last = s.run / "checkpoints" / "last.pt"
    raise TrainingDiverged(
        f"loss became {loss_d.item():.3g} (D) / {parts.total.item():.3g} (G) at epoch {epoch + 1}, "
        f"step {s.step}; nothing was saved after it. Last good checkpoint: "
        f"{last if last.exists() else 'none yet'}. Try a lower lr_g/lr_d, or amp=false.")


def _end_epoch(s: _Session, data: _Data, epoch: int) -> None:
    """Step the schedules, align BatchNorm statistics across ranks, validate and save (rank 0)."""
    s.sched_g.step()
    if s.trainer.adversarial:             # without D updates its schedule would warn of a step before the optimiser's
        s.sched_d.step()
    s.epoch = epoch + 1
    G, D = _unwrap(s.trainer.G), _unwrap(s.trainer.D)
    if s.world > 1:                       # BatchNorm statistics: make every rank hold rank 0's
        for model in (G, D):
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)
    if s.main:
        scores = {**_scores(restore(s.trainer.shipped, data.val_degraded, s.device), data.val_clean),
                  "psnr_degraded": data.val_input_scores["psnr"], "ssim_degraded": data.val_input_scores["ssim"]}
        psnr_out = scores["psnr"]
        now = time.process_time()
        s.cpu_s, s.cpu_mark = s.cpu_s + now - s.cpu_mark, now
        s.val_log.write({"step": s.step, "epoch": s.epoch, **scores, "cpu_s": s.cpu_s})
        if s.tb is not None:
            for key, value in scores.items():
                s.tb.add_scalar(f"val/{key}", value, s.step)
            s.tb.flush()
        s.val_psnr = psnr_out
        _save(s, scores, best=psnr_out > s.best_psnr)
    if s.world > 1:
        dist.barrier()


def _save(s: _Session, scores: dict[str, float], best: bool) -> None:
    """Write the training state once as last.pt; epoch_NNN.pt and best.pt are links to the same bytes."""
    s.best_psnr = max(s.best_psnr, scores["psnr"])
    opt_g, opt_d = s.trainer.opt_g, s.trainer.opt_d
    ema = s.trainer.ema
    state = {"config": s.cfg.to_dict(), "generator": _unwrap(s.trainer.G).state_dict(),
             "generator_ema": ema.state_dict() if ema is not None else None,
             "discriminator": _unwrap(s.trainer.D).state_dict(), "opt_g": opt_g.state_dict(),
             "opt_d": opt_d.state_dict(), "sched_g": s.sched_g.state_dict(), "sched_d": s.sched_d.state_dict(),
             "scaler_g": s.trainer.scaler_g.state_dict(), "scaler_d": s.trainer.scaler_d.state_dict(),
             "epoch": s.epoch, "step": s.step, "best_psnr": s.best_psnr, "val": scores,
             "cpu_s": s.cpu_s, "capped_epochs": list(s.capped_epochs)}
    folder = s.run / "checkpoints"
    last = save_checkpoint(state, folder / "last.pt")
    if s.epoch % s.cfg.save_every == 0 or s.epoch == s.cfg.epochs:
        copy_checkpoint(last, folder / f"epoch_{s.epoch:03d}.pt")
    if best:
        copy_checkpoint(last, folder / "best.pt")


def _save_samples(generator: torch.nn.Module, clean: torch.Tensor, degraded: torch.Tensor, path: Path,
                  device: torch.device, n: int = 4, writer: Any = None, step: int = 0) -> None:
    """A grid of the first `n` validation images as a PNG (and to TensorBoard): rows degraded, restored, clean."""
    restored = restore(generator, degraded[:n], device)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = to_unit(torch.cat([degraded[:n], restored, clean[:n]]).float()).clamp(0, 1)
    save_image(images, path, nrow=len(restored))
    if writer is not None:
        writer.add_image("samples/degraded_restored_clean", make_grid(images, nrow=len(restored)), step)
