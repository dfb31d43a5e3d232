"""Setting a training run up: its folder, its data, its networks and optimisers, and the state it resumes from.

`training.loop.train` calls these in order: `_resumable_state` (a checkpoint to continue from), `_load_data` (the
training loader and a fixed, degraded validation batch), `_build` (the trainer and schedulers, restored from the
checkpoint when resuming), `_open_run` (the run folder: the resumed one, or a new one that never replaces an
earlier run) and `_session` (a `_Session`: all of it with its logs). The run folder comes last, so a start that
fails on its data, its networks or its checkpoint leaves no folder behind. Raises `CheckpointError` for a
checkpoint that cannot be resumed.
"""
from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from ..config.config import Config
from ..data.datasets import default_dataset
from ..degrade.pipeline import Degradation
from ..models.checkpoint import (
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    make_run_dir,
    remove_if_empty,
    run_folder_of,
    weights_key,
)
from ..models.zoo import list_models, load_model
from .logs import METRIC_FIELDS, VAL_FIELDS, _CsvLog
from .trainer import Trainer, _scores, lr_factor, make_trainer

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ the loop
@dataclass
class _Session:
    """One training process: its settings, where it writes, what it trains and how far it has got."""
    cfg: Config
    run: Path
    device: torch.device
    rank: int
    world: int
    trainer: "Trainer"
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
    callbacks: tuple = ()               # called after every step (`loop.StepEnd`)

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
    val_input_scores: dict[str, float]        # `_scores` of the degraded validation images
    skipped: list[tuple[Path, str]] = field(default_factory=list)   # (file, reason) left out (bad_images="skip")


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
    """A new run folder under <output_dir>/runs/ with config.json and checkpoints/. If writing them fails (a full
    or read-only disk), the folder this call made is removed again while it is still empty, and the OSError
    goes on."""
    run = make_run_dir(Path(cfg.output_dir) / "runs", name or time.strftime("%Y%m%d-%H%M%S"))
    try:
        cfg.save(run / "config.json")
        (run / "checkpoints").mkdir()
    except OSError:
        remove_if_empty(run / "checkpoints", run)
        raise
    return run


def _load_data(cfg: Config, device: torch.device, rank: int, world: int) -> _Data:
    """The training loader (shuffled per epoch, sharded under torchrun), the degraded validation batch and the
    files left out as unreadable (`_write_skipped` lists them in the run folder)."""
    train_set = default_dataset("train", cfg, on_error=cfg.bad_images)
    val_set = default_dataset("val", cfg, on_error=cfg.bad_images)
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
    skipped = list(dict(item for ds in (train_set, val_set) for item in _skipped_files(ds)).items())
    return _Data(loader, order, degrade, val_clean, val_degraded, _scores(val_degraded, val_clean), skipped)


def _write_skipped(path: Path, skipped: list[tuple[Path, str]]) -> None:
    """List the files left out as unreadable (file, reason), once each; log how many."""
    rows = dict(skipped)
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


def _build(cfg: Config, device: torch.device, world: int, state: dict | None) -> tuple[Trainer, Any, Any]:
    """(trainer, G's scheduler, D's scheduler): models, optimisers and schedulers, from scratch or from `state`;
    wrapped for DDP when world > 1. Writes nothing: it runs before the run folder is made."""
    torch.manual_seed(cfg.seed)
    trainer = make_trainer(cfg, device)
    sched_g = torch.optim.lr_scheduler.LambdaLR(trainer.opt_g, lambda e: lr_factor(e, cfg))
    sched_d = torch.optim.lr_scheduler.LambdaLR(trainer.opt_d, lambda e: lr_factor(e, cfg))
    if state is None and cfg.init_generator:
        _init_generator(trainer, cfg.init_generator)
    if state is not None:
        try:
            trainer.G.load_state_dict(state["generator"])
            if trainer.ema is not None:
                trainer.ema.load_state_dict(state[weights_key(state)])
                trainer.ema_updates = state["step"] * cfg.g_steps
            trainer.D.load_state_dict(state["discriminator"])
            for obj, key in [(trainer.opt_g, "opt_g"), (trainer.opt_d, "opt_d"), (sched_g, "sched_g"),
                             (sched_d, "sched_d"), (trainer.scaler_g, "scaler_g"), (trainer.scaler_d, "scaler_d")]:
                obj.load_state_dict(state[key])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"the checkpoint's training state does not fit the networks of its own config "
                                  f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                                  f"it is damaged: resume from another checkpoint or start a new run") from None
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        for attr in ("G", "D"):
            model = getattr(trainer, attr)
            if cfg.sync_batchnorm:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)     # shares the optimiser's parameters
            setattr(trainer, attr, DistributedDataParallel(model, device_ids=ids))
    return trainer, sched_g, sched_d


def _session(cfg: Config, run: Path, device: torch.device, rank: int, world: int,
             built: tuple[Trainer, Any, Any], state: dict | None, in_place: bool) -> _Session:
    """The `_Session` of `_build`'s trainer and schedulers in `run`, at the counters of `state` when resuming."""
    s = _Session(cfg, run, device, rank, world, *built)
    if state is not None:
        s.epoch, s.step = state["epoch"], state["step"]
        s.cpu_s, s.capped_epochs = state.get("cpu_s", 0.0), list(state.get("capped_epochs", []))
        if in_place:                        # the run's own last.pt knows its best so far
            s.best_psnr = state["best_psnr"]
            s.metrics.keep_until(s.step)
            s.val_log.keep_until(s.step)
            if s.main:
                log.info("resuming %s at epoch %d, step %d", run, s.epoch + 1, s.step)
    return s


def _init_generator(trainer: "Trainer", source: str) -> None:
    """Start G (and its EMA) from another generator: GAN fine-tuning after L1 pre-training.

    source: a checkpoint (its EMA weights when it has them: they are the better model) or the name of a
    shipped model (`medgan_nb.models.zoo.list_models`, e.g. ``"quality"``). The architectures must match,
    except that a UNet with a noise map (``noise_map``) may start from one without: its first layer's weights
    for the map's channels start at zero, so it computes what the source did until training teaches it to read
    the map. The optimisers start fresh. CheckpointError if they do not fit.
    """
    if source in list_models():
        generator, _, card = load_model(source)
        weights, digest = generator.state_dict(), card["weights_sha256"]
    else:
        state = load_checkpoint(source)
        weights, digest = state[weights_key(state)], state["sha256"]
    weights = _with_noise_map_inputs(trainer.G, weights, source)
    try:
        trainer.G.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"init_generator {source}: its generator does not fit this config's generator "
                              f"({str(e).splitlines()[0]}); use the same generator settings") from None
    if trainer.ema is not None:
        trainer.ema.load_state_dict(weights)
    log.info("generator initialised from %s (sha256 %s)", source, digest[:12])


def _with_noise_map_inputs(generator: torch.nn.Module, weights: dict, source: str) -> dict:
    """`weights` with the first layer of a noise-map UNet widened by zero weights for the map's channels, when
    `weights` come from the same UNet without them; else `weights` unchanged."""
    key = "downs.0.0.weight"
    scales = getattr(generator, "noise_map_scales", ())
    target = generator.state_dict().get(key)
    if not scales or target is None or key not in weights or weights[key].shape == target.shape:
        return weights
    w = weights[key]
    if w.shape[0] != target.shape[0] or w.shape[1] + len(scales) != target.shape[1] or w.shape[2:] != target.shape[2:]:
        return weights                          # some other difference: load_state_dict names it
    log.info("init_generator %s has no noise map: its first layer gets zero weights for the map's %d channel(s)",
             source, len(scales))
    return {**weights, key: torch.cat([w, w.new_zeros(w.shape[0], len(scales), *w.shape[2:])], dim=1)}


TRAINING_STATE = ("generator", "discriminator", "opt_g", "opt_d", "sched_g", "sched_d", "scaler_g", "scaler_d",
                  "epoch", "step", "best_psnr")       # and "generator_ema" (None without EMA)
