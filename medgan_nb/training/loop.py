"""Training: the original's conditional-GAN recipe, made resumable, reproducible and device-agnostic.

One iteration on a batch of clean images (`TrainStep`):

1. degrade the batch on the training device (`medgan_nb.degrade`);
2. discriminator step: D learns to tell (degraded, clean) from (degraded, G(degraded));
3. ``g_steps`` generator steps (3 in the original, 1 in standard pix2pix): G learns to
   fool D while staying close to the clean image (L1, optionally VGG perceptual).

Learning rates stay constant until ``lr_decay_start`` and then fall linearly to zero
at the last epoch. A run lives in ``<output_dir>/runs/<name>/``:

    config.json     the settings         metrics.csv  losses, gradient norms, learning rates, images/s
    val.csv         PSNR/SSIM, CPU time  samples/     degraded | restored | clean grids
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

import csv
import gc
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler
from tqdm.auto import tqdm

from ..config.config import Config
from ..data.datasets import default_dataset
from ..degrade.pipeline import Degradation
from ..losses import GRAD_TERMS, GeneratorLossParts
from ..metrics import PSNR_CAP, psnr, ssim
from ..models.build import resolve_device
from ..models.checkpoint import (
    CheckpointError,
    checkpoint_path,
    copy_checkpoint,
    load_checkpoint,
    make_run_dir,
    run_folder_of,
    save_checkpoint,
    weights_key,
)
from ..utils.images import to_unit
from ..utils.plots import image_grid
from ..utils.seeding import seed_epoch, seed_for
from .logs import METRIC_FIELDS, TB_TAGS, VAL_FIELDS, _CsvLog
from .trainer import (
    TrainingDiverged,
    TrainStep,
    _check_in_sync,
    _unwrap,
    lr_factor,
    make_step,
)

log = logging.getLogger(__name__)
TENSORBOARD_INSTALL = "pip install tensorboard"
TRAINING_STATE = ("generator", "discriminator", "opt_g", "opt_d", "sched_g", "sched_d", "scaler_g", "scaler_d",
                  "epoch", "step", "best_psnr")       # and "generator_ema" (None without EMA)
# Tests only: the process kills itself with SIGKILL right after this global step (a crash at a known point).
KILL_AT_STEP_ENV = "MEDGAN_TEST_KILL_AT_STEP"


# ------------------------------------------------------------------ the loop
@dataclass
class _Session:
    """One training process: its settings, where it writes, what it trains and how far it has got."""
    cfg: Config
    run: Path
    device: torch.device
    rank: int
    world: int
    step_fn: "TrainStep"
    sched_g: torch.optim.lr_scheduler.LambdaLR
    sched_d: torch.optim.lr_scheduler.LambdaLR
    epoch: int = 0                      # epochs completed
    step: int = 0                       # batches trained, all epochs
    best_psnr: float = -float("inf")
    val_psnr: float = float("nan")      # of the last epoch
    cpu_s: float = 0.0                  # CPU seconds of training so far, all sessions of the run (val.csv)
    cpu_mark: float = 0.0               # time.process_time() when cpu_s was last brought up to date
    capped_epochs: list[int] = field(default_factory=list)   # epochs that max_minutes ended early
    metrics: _CsvLog = field(init=False)
    val_log: _CsvLog = field(init=False)
    tb: Any = None                      # a SummaryWriter (rank 0, tensorboard=True), else None

    def __post_init__(self) -> None:
        self.metrics = _CsvLog(self.run / "metrics.csv", METRIC_FIELDS, self.main)
        self.val_log = _CsvLog(self.run / "val.csv", VAL_FIELDS, self.main)

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass
class _Data:
    """The training loader and the fixed validation batch (degraded once: identical every epoch and run)."""
    loader: DataLoader
    order: torch.Generator              # shuffles the training set, re-seeded each epoch
    degrade: Degradation | None         # None: the data set yields (clean, degraded, key) (CT, MRI, X-ray)
    val_clean: torch.Tensor
    val_degraded: torch.Tensor
    val_input_scores: tuple[float, float]


def train(cfg: Config | None = None, *, resume: str | Path | None = None, name: str | None = None,
          quiet: bool = False) -> Path:
    """Train a generator/discriminator pair; return the run folder.

    cfg: the settings (ignored when resuming: the checkpoint's own config is used).
    resume: a run folder or checkpoint to continue from (see the module docstring for where results go).
    name: the new run folder's name under ``<output_dir>/runs/`` (default: a timestamp, or
    ``<parent>-from-<checkpoint>`` for a run started from another run's checkpoint); a taken
    name gets a suffix, earlier runs are never overwritten.
    """
    state = _resumable_state(resume) if resume is not None else None
    if state is not None:
        cfg = Config.from_dict(state["config"])
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
        run = _train(cfg, state, resume, name, device, rank, world, quiet)
        if started:
            dist.barrier()              # all ranks end together, after rank 0's last files
        return run
    finally:
        if started:                     # free DDP's pending work while the interpreter is whole: a Gloo thread
            gc.collect()                # left holding it can abort the process at exit ("terminate called ...")
            dist.destroy_process_group()


def _train(cfg: Config, state: dict | None, resume: str | Path | None, name: str | None, device: torch.device,
           rank: int, world: int, quiet: bool) -> Path:
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
    run, in_place = _open_run(cfg, resume, state, name) if rank == 0 else (Path(), True)
    data = _load_data(cfg, run, device, rank, world)
    s = _build(cfg, run, device, rank, world, state, in_place)
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
        digest = _check_in_sync([_unwrap(s.step_fn.G), _unwrap(s.step_fn.D)], world)
        if s.main:
            print(f"weights identical on all {world} processes (sha256 {digest[:12]})")
    if s.main:
        _save_samples(s.step_fn.shipped, data.val_clean, data.val_degraded, run / "samples" / "final.png", device,
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


def _resumable_state(resume: str | Path) -> dict:
    """The checkpoint to resume from; it must hold a whole training state, not just weights."""
    state = load_checkpoint(resume)
    missing = [k for k in TRAINING_STATE if k not in state]
    if missing:
        raise CheckpointError(f"{checkpoint_path(resume)} holds no training state ({', '.join(missing)} missing), "
                              f"so training cannot continue from it; start a new run instead")
    return state


def _open_run(cfg: Config, resume: str | Path | None, state: dict | None, name: str | None) -> tuple[Path, bool]:
    """The run folder to write to, and whether it continues in place (see the module docstring)."""
    if state is None:
        return _new_run(cfg, name), False
    checkpoint = checkpoint_path(resume).resolve()
    parent = run_folder_of(checkpoint)
    if parent is not None and checkpoint == (parent / "checkpoints" / "last.pt").resolve():
        return parent, True
    label = f"{parent.name if parent else checkpoint.parent.name or 'checkpoint'}-from-{checkpoint.stem}"
    run = _new_run(cfg, name or label)
    record = {"checkpoint": str(checkpoint), "sha256": state["sha256"], "run": str(parent) if parent else None,
              "epoch": state["epoch"], "step": state["step"]}
    (run / "parent.json").write_text(json.dumps(record, indent=2) + "\n")
    if parent is not None:
        for log_name, fields in (("metrics.csv", METRIC_FIELDS), ("val.csv", VAL_FIELDS)):
            _CsvLog(run / log_name, fields, True).keep_until(state["step"], source=parent / log_name)
    log.info("new run %s starts from %s (epoch %d, step %d)", run, checkpoint, state["epoch"], state["step"])
    return run, False


def _new_run(cfg: Config, name: str | None) -> Path:
    run = make_run_dir(Path(cfg.output_dir) / "runs", name or time.strftime("%Y%m%d-%H%M%S"))
    cfg.save(run / "config.json")
    (run / "checkpoints").mkdir()
    return run


def _load_data(cfg: Config, run: Path, device: torch.device, rank: int, world: int) -> _Data:
    """The training loader (shuffled per epoch, sharded under torchrun) and the degraded validation batch."""
    train_set = default_dataset("train", cfg, on_error=cfg.bad_images)
    val_set = default_dataset("val", cfg, on_error=cfg.bad_images)
    if rank == 0 and cfg.bad_images == "skip":
        _write_skipped(run / "skipped_images.csv", [train_set, val_set])
    if len(train_set) < cfg.batch_size * world:
        raise ValueError(f"{len(train_set)} training images cannot fill one batch of {cfg.batch_size} × "
                         f"{world} processes; lower batch_size or add images")
    order = torch.Generator()
    sampler = (DistributedSampler(train_set, world, rank, shuffle=True, seed=cfg.seed, drop_last=True)
               if world > 1 else RandomSampler(train_set, generator=order))
    loader = DataLoader(train_set, cfg.batch_size, sampler=sampler, drop_last=True, num_workers=cfg.num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0)
    degrade = Degradation(cfg) if cfg.modality == "endoscopy" else None     # scans come degraded (scans.ScanPairs)
    val_items = [val_set[i] for i in range(len(val_set))]                    # each image decoded once
    val_clean = torch.stack([item[0] for item in val_items])
    val_degraded = (torch.stack([item[1] for item in val_items]) if degrade is None
                    else degrade(val_clean, keys=[item[-1] for item in val_items]).image)
    return _Data(loader, order, degrade, val_clean, val_degraded, _scores(val_degraded, val_clean))


def _write_skipped(path: Path, datasets: list[Dataset]) -> None:
    """List the files left out as unreadable (file, reason), once each; log how many."""
    rows = dict(item for ds in datasets for item in _skipped_files(ds))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "reason"])
        writer.writerows(sorted((str(p), reason) for p, reason in rows.items()))
    if rows:
        log.warning("left out %d unreadable image file(s); the list is in %s", len(rows), path)


def _skipped_files(dataset: Dataset) -> list[tuple[Path, str]]:
    """The (file, reason) pairs an ImageFolderDataset skipped, looking through Subset/Cached/Concat wrappers."""
    if hasattr(dataset, "skipped"):
        return list(dataset.skipped)
    inner = getattr(dataset, "datasets", None) or ([dataset.dataset] if hasattr(dataset, "dataset") else [])
    return [item for part in inner for item in _skipped_files(part)]


def _build(cfg: Config, run: Path, device: torch.device, rank: int, world: int, state: dict | None,
           in_place: bool) -> _Session:
    """Models, optimisers and schedulers, from scratch or from `state`; wrapped for DDP when world > 1."""
    torch.manual_seed(cfg.seed)
    step_fn = make_step(cfg, device)
    sched_g = torch.optim.lr_scheduler.LambdaLR(step_fn.opt_g, lambda e: lr_factor(e, cfg))
    sched_d = torch.optim.lr_scheduler.LambdaLR(step_fn.opt_d, lambda e: lr_factor(e, cfg))
    s = _Session(cfg, run, device, rank, world, step_fn, sched_g, sched_d)
    if state is None and cfg.init_generator:
        _init_generator(step_fn, cfg.init_generator)
    if state is not None:
        step_fn.G.load_state_dict(state["generator"])
        if step_fn.ema is not None:
            step_fn.ema.load_state_dict(state[weights_key(state)])
            step_fn.ema_updates = state["step"] * cfg.g_steps
        step_fn.D.load_state_dict(state["discriminator"])
        for obj, key in [(step_fn.opt_g, "opt_g"), (step_fn.opt_d, "opt_d"), (sched_g, "sched_g"),
                         (sched_d, "sched_d"), (step_fn.scaler_g, "scaler_g"), (step_fn.scaler_d, "scaler_d")]:
            obj.load_state_dict(state[key])
        s.epoch, s.step = state["epoch"], state["step"]
        s.cpu_s, s.capped_epochs = state.get("cpu_s", 0.0), list(state.get("capped_epochs", []))
        if in_place:                        # the run's own last.pt knows its best so far
            s.best_psnr = state["best_psnr"]
            s.metrics.keep_until(s.step)
            s.val_log.keep_until(s.step)
            if s.main:
                log.info("resuming %s at epoch %d, step %d", run, s.epoch + 1, s.step)
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        for attr in ("G", "D"):
            model = getattr(step_fn, attr)
            if cfg.sync_batchnorm:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)     # shares the optimiser's parameters
            setattr(step_fn, attr, DistributedDataParallel(model, device_ids=ids))
    return s


def _init_generator(step_fn: "TrainStep", path: str) -> None:
    """Start G (and its EMA) from another checkpoint's generator: GAN fine-tuning after L1 pre-training.

    The EMA weights are taken when the checkpoint has them (they are the better model). The architectures
    must match; the optimisers start fresh.
    """
    state = load_checkpoint(path)
    weights = state[weights_key(state)]
    try:
        step_fn.G.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"init_generator {path}: its generator does not fit this config's generator "
                              f"({str(e).splitlines()[0]}); use the same generator settings") from None
    if step_fn.ema is not None:
        step_fn.ema.load_state_dict(weights)
    log.info("generator initialised from %s (sha256 %s)", path, state["sha256"][:12])


# ------------------------------------------------------------------ one epoch
def _train_epoch(s: _Session, data: _Data, epoch: int, deadline: float, quiet: bool) -> bool:
    """Train on every batch of one epoch (or until `deadline`); True if the safety stop ended it."""
    cfg, device = s.cfg, s.device
    seed_epoch(cfg.seed, epoch, s.rank)
    data.order.manual_seed(seed_for(f"order {epoch}", cfg.seed))
    if isinstance(data.loader.sampler, DistributedSampler):
        data.loader.sampler.set_epoch(epoch)
    noise = torch.Generator(device).manual_seed(seed_for(f"degrade {epoch} rank {s.rank}", cfg.seed))
    memory = torch.channels_last if s.step_fn.amp else torch.contiguous_format     # the models' layout
    kill_at = int(os.environ.get(KILL_AT_STEP_ENV) or 0)
    s.step_fn.G.train(), s.step_fn.D.train()
    t0, seen = time.perf_counter(), 0
    batches = tqdm(data.loader, desc=f"epoch {epoch + 1}", leave=False, disable=quiet or not s.main)
    for batch in batches:
        clean = batch[0].to(device, non_blocking=True, memory_format=memory)
        degraded = (data.degrade(clean, generator=noise).image if data.degrade is not None
                    else batch[1].to(device, non_blocking=True, memory_format=memory))
        logged = (s.step + 1) % cfg.log_every == 0 or s.step == 0       # this step gets a row in metrics.csv
        loss_d, parts = s.step_fn(clean, degraded, grad_norms=logged)
        s.step += 1
        seen += clean.shape[0] * s.world
        _stop_if_diverged(s, loss_d, parts, epoch)
        if logged:
            norms = s.step_fn.grad_norms
            row = {"step": s.step, "epoch": epoch + 1, "loss_d": loss_d.item(), "loss_g": parts.total.item(),
                   "adv": parts.adv.item(), "l1": parts.l1.item(), "perceptual": parts.perceptual.item(),
                   "lr_g": s.step_fn.opt_g.param_groups[0]["lr"], "lr_d": s.step_fn.opt_d.param_groups[0]["lr"],
                   "images_per_s": seen / (time.perf_counter() - t0),
                   **{f"grad_{t}": norms[t].item() for t in GRAD_TERMS}}
            s.metrics.write(row)
            if s.tb is not None:
                for key, tag in TB_TAGS.items():
                    s.tb.add_scalar(tag, row[key], s.step)
            batches.set_postfix(D=f"{row['loss_d']:.3f}", G=f"{row['loss_g']:.2f}",
                                img_s=f"{row['images_per_s']:.0f}")
        if s.main and cfg.sample_every and s.step % cfg.sample_every == 0:
            _save_samples(s.step_fn.shipped, data.val_clean, data.val_degraded,
                          s.run / "samples" / f"step_{s.step:06d}.png", device, writer=s.tb, step=s.step)
        if s.step == kill_at:
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
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
    if s.step_fn.adversarial:             # without D updates its schedule would warn of a step before the optimiser's
        s.sched_d.step()
    s.epoch = epoch + 1
    G, D = _unwrap(s.step_fn.G), _unwrap(s.step_fn.D)
    if s.world > 1:                       # BatchNorm statistics: make every rank hold rank 0's
        for model in (G, D):
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)
    if s.main:
        psnr_out, ssim_out = _scores(restore(s.step_fn.shipped, data.val_degraded, s.device), data.val_clean)
        scores = {"psnr": psnr_out, "ssim": ssim_out, "psnr_degraded": data.val_input_scores[0],
                  "ssim_degraded": data.val_input_scores[1]}
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
    opt_g, opt_d = s.step_fn.opt_g, s.step_fn.opt_d
    ema = s.step_fn.ema
    state = {"config": s.cfg.to_dict(), "generator": _unwrap(s.step_fn.G).state_dict(),
             "generator_ema": ema.state_dict() if ema is not None else None,
             "discriminator": _unwrap(s.step_fn.D).state_dict(), "opt_g": opt_g.state_dict(),
             "opt_d": opt_d.state_dict(), "sched_g": s.sched_g.state_dict(), "sched_d": s.sched_d.state_dict(),
             "scaler_g": s.step_fn.scaler_g.state_dict(), "scaler_d": s.step_fn.scaler_d.state_dict(),
             "epoch": s.epoch, "step": s.step, "best_psnr": s.best_psnr, "val": scores,
             "cpu_s": s.cpu_s, "capped_epochs": list(s.capped_epochs)}
    folder = s.run / "checkpoints"
    last = save_checkpoint(state, folder / "last.pt")
    if s.epoch % s.cfg.save_every == 0 or s.epoch == s.cfg.epochs:
        copy_checkpoint(last, folder / f"epoch_{s.epoch:03d}.pt")
    if best:
        copy_checkpoint(last, folder / "best.pt")


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
    """Mean PSNR (each capped at PSNR_CAP: an untouched clean input scores inf) and SSIM of a batch."""
    return float(np.minimum(psnr(images, clean), PSNR_CAP).mean()), float(ssim(images, clean).mean())


def _save_samples(generator: torch.nn.Module, clean: torch.Tensor, degraded: torch.Tensor, path: Path,
                  device: torch.device, n: int = 4, writer: Any = None, step: int = 0) -> None:
    """A degraded | restored | clean grid of the first `n` validation images as a PNG (and to TensorBoard)."""
    restored = restore(generator, degraded[:n], device)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = image_grid({"degraded": degraded[:n], "restored": restored, "clean": clean[:n]})
    fig.savefig(path, dpi=72)
    plt.close(fig)
    if writer is not None:              # rows: degraded, restored, clean
        from torchvision.utils import make_grid
        images = to_unit(torch.cat([degraded[:n], restored, clean[:n]]).float()).clamp(0, 1)
        writer.add_image("samples/degraded_restored_clean", make_grid(images, nrow=len(restored)), step)
