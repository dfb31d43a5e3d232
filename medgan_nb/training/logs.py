"""A run's logs: writing its CSV files, and reading runs back.

A run folder holds metrics.csv (a row every ``log_every`` steps: `METRIC_FIELDS`) and val.csv (a row per
validation: `VAL_FIELDS`); `TB_TAGS` names the same numbers for TensorBoard.

- `read_log(path, name, columns)`: a run's CSV, typed (``step`` and ``epoch`` int, the rest float, empty
  cells NaN); FileNotFoundError naming the file when it is missing.
- `training_summary(run)`: a `TrainingSummary` from ``checkpoints/last.pt``: steps, G and D updates, CPU
  minutes, epochs cut by the ``max_minutes`` safety stop. Compare runs by updates, not by wall time.
- `run_complete(run)`, `latest_run(output_dir, name)`: whether training ended normally, and the newest
  run folder that matches (FileNotFoundError saying what was looked for when none does).
- `phase_means(columns, keys, parts)`: a noisy curve read as the means of its early ... late parts.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..config.config import Config
from ..losses import GRAD_TERMS
from ..models.checkpoint import load_checkpoint

METRIC_FIELDS = ["step", "epoch", "loss_d", "loss_g", "adv", "l1", "perceptual", "lr_g", "lr_d", "images_per_s",
                 *(f"grad_{t}" for t in GRAD_TERMS)]     # grad_adv, grad_l1, grad_perceptual
# metrics.csv column -> TensorBoard tag (tensorboard=True)
TB_TAGS = {"loss_d": "loss/d", "loss_g": "loss/g", "adv": "loss/adv", "l1": "loss/l1", "perceptual": "loss/perceptual",
           **{f"grad_{t}": f"grad_norm/{t}" for t in GRAD_TERMS}, "lr_g": "lr/g", "lr_d": "lr/d",
           "images_per_s": "speed/images_per_s"}
VAL_FIELDS = ["step", "epoch", "psnr", "ssim", "grad_ratio", "hf_ratio", "psnr_degraded", "ssim_degraded", "cpu_s"]


class _CsvLog:
    """Append rows to a CSV file (header written once); does nothing on ranks other than 0."""

    def __init__(self, path: Path, fields: list[str], enabled: bool):
        self.path, self.fields, self.enabled = path, fields, enabled
        self._columns: list[str] | None = None       # the file's columns, read once

    def write(self, row: dict[str, Any]) -> None:
        """Append `row`; a file begun by an older version keeps its own columns (a resumed run's new
        columns are left out there rather than shifting the old ones)."""
        if not self.enabled:
            return
        new = not self.path.exists()
        if new:
            self._columns = self.fields
        elif self._columns is None:
            self._columns = self._header()
        fields = self._columns
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})

    def _header(self) -> list[str]:
        with self.path.open(newline="") as f:
            return next(csv.reader(f), None) or self.fields

    def keep_until(self, step: int, source: Path | None = None) -> None:
        """Keep only the rows up to `step`, read from `source` (default: this file), written atomically.

        In place: a resumed run forgets rows of the epoch it redoes. From another file: a run started
        from another run's checkpoint begins with that run's history.
        """
        source = source or self.path
        if not (self.enabled and source.exists()):
            return
        with source.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.fields)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)
        self._columns = self.fields


@dataclass
class TrainingSummary:
    """How much training a run has had, read from its ``checkpoints/last.pt`` (`training_summary`).

    Compare runs by their updates, not by minutes: on a busy or slower machine the same minutes hold fewer
    steps. ``g_updates`` = steps × g_steps; ``d_updates`` = steps, or 0 when D is not trained (lambda_adv = 0).
    ``cpu_minutes``: the training process's CPU time (all threads), summed over resumes; NaN for runs written
    before it was recorded. ``capped_epochs``: epochs that the ``max_minutes`` safety stop ended early.
    """
    epochs: int
    epochs_planned: int
    steps: int
    g_updates: int
    d_updates: int
    cpu_minutes: float
    max_minutes: float
    capped_epochs: list[int]

    @property
    def cut_short(self) -> bool:
        """True when the safety stop ended an epoch early: the model has had less training than planned."""
        return bool(self.capped_epochs)

    def __str__(self) -> str:
        cpu = (f"{self.cpu_minutes:.1f} CPU-minutes" if self.cpu_minutes >= 2 else
               f"{60 * self.cpu_minutes:.0f} CPU-seconds")
        text = (f"{self.epochs} of {self.epochs_planned} epochs, {self.steps:,} step{'s' * (self.steps != 1)} "
                f"({self.g_updates:,} G and {self.d_updates:,} D updates), {cpu}")
        if self.cut_short:
            text += (f"; CUT SHORT by the max_minutes={self.max_minutes:g} safety stop in epoch "
                     f"{self.capped_epochs[-1]}: fewer steps than its config asks for")
        return text


def training_summary(run: str | Path) -> TrainingSummary:
    """The `TrainingSummary` of a run folder (or of a checkpoint holding a training state)."""
    state = load_checkpoint(run)
    cfg = Config.from_dict(state["config"])
    return TrainingSummary(
        epochs=state["epoch"], epochs_planned=cfg.epochs, steps=state["step"], g_updates=state["step"] * cfg.g_steps,
        d_updates=state["step"] if cfg.lambda_adv > 0 else 0, cpu_minutes=state.get("cpu_s", float("nan")) / 60,
        max_minutes=cfg.max_minutes, capped_epochs=list(state.get("capped_epochs", [])))

INT_FIELDS = ("step", "epoch")          # logged as integers; every other column is a float


def _log_path(path: str | Path, name: str) -> Path:
    path = Path(path)
    return path / name if path.is_dir() else path


def read_log(path: str | Path, name: str = "metrics.csv", *, columns: bool = False
             ) -> list[dict[str, float | int]] | dict[str, list[float | int]]:
    """The rows of a run's CSV log, typed: ``step`` and ``epoch`` as int, every other column as float.

    path: a run folder (then `name` is read in it: "metrics.csv" or "val.csv") or the CSV file itself.
    columns: return {column: [values]} instead of a list of row dicts. Empty cells read as NaN.
    Raises FileNotFoundError naming the file when it is missing (a run that has not logged a step yet).
    """
    file = _log_path(path, name)
    if not file.is_file():
        raise FileNotFoundError(f"no log {file}: not a run folder, or the run has not logged anything yet")
    with file.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = [{k: _typed(k, v, file) for k, v in r.items()} for r in reader]
    if columns:
        return {k: [r[k] for r in rows] for k in fields}
    return rows


def _typed(key: str, value: str | None, file: Path) -> float | int:
    if value is None or value == "":
        return math.nan
    try:
        return int(value) if key in INT_FIELDS else float(value)
    except ValueError:
        raise ValueError(f"{file}: column {key!r} holds {value!r}, not a number") from None


def run_complete(run: str | Path) -> bool:
    """Whether `train` returned normally for this run: it writes ``samples/final.png`` last, after the best
    checkpoint. A run ended by the ``max_minutes`` safety stop is complete (`train.training_summary` says it was cut
    short); one that crashed or was killed is not."""
    run = Path(run)
    return (run / "samples" / "final.png").is_file() and (run / "checkpoints" / "best.pt").is_file()


def latest_run(output_dir: str | Path, name: str | None = None, *, preset: str | None = None,
               complete: bool = True) -> Path:
    """The newest run folder under ``<output_dir>/runs`` (by the time its config.json was written).

    name: only runs called `name` or `name` with the suffix `make_run_dir` adds to a taken name
    (``notebook-04``, ``notebook-04-1``, ...; not ``notebook-04-resume``). preset: only runs of this preset.
    complete: only runs whose training ended normally (`run_complete`).
    Raises FileNotFoundError saying what was looked for when no run qualifies.
    """
    runs = Path(output_dir) / "runs"
    pattern = re.compile(re.escape(name) + r"(-\d+)?") if name is not None else None
    found = []
    for run in runs.iterdir() if runs.is_dir() else ():
        config = run / "config.json"
        if not config.is_file() or (pattern is not None and not pattern.fullmatch(run.name)):
            continue
        if preset is not None and json.loads(config.read_text()).get("preset") != preset:
            continue
        if complete and not run_complete(run):
            continue
        found.append((config.stat().st_mtime, run.name, run))
    if not found:
        wanted = " ".join(filter(None, ["complete" if complete else "", f"preset {preset!r}" if preset else "",
                                        f"named {name!r}" if name else ""]))
        raise FileNotFoundError(f"no {wanted + ' ' if wanted else ''}run folder under {runs} (a run folder holds "
                                f"config.json); train one, e.g. medgan_nb.training.train(cfg, name=...)")
    return max(found)[2]


def phase_means(columns: dict[str, Sequence[float]], keys: Sequence[str], parts: int = 4
                ) -> dict[str, list[float]]:
    """For each key, the means of its values over `parts` consecutive, equally long parts of the log
    (the last part takes the remainder): a noisy GAN curve read as "early ... late". NaNs are left out."""
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    out = {}
    for key in keys:
        if key not in columns:
            raise KeyError(f"no column {key!r} in this log; it has {list(columns)}")
        values = list(columns[key])
        if len(values) < parts:
            raise ValueError(f"{len(values)} rows cannot be split into {parts} parts")
        size = len(values) // parts
        chunks = [values[i * size:(i + 1) * size if i < parts - 1 else len(values)] for i in range(parts)]
        out[key] = [_mean([v for v in c if not math.isnan(v)]) for c in chunks]
    return out


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan
