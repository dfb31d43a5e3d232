"""Reading what runs, evaluations and enhancements wrote: the logic the notebooks used to carry in cells.

- `read_log`: a run's ``metrics.csv`` / ``val.csv`` as typed rows or columns (columns other helpers or
  later versions add, such as ``grad_adv``, come along; absent ones are simply absent);
- `latest_run`: the newest run folder under an output folder, optionally of one name and preset;
- `phase_means`: a noisy training curve summarised as the means of consecutive parts of the run;
- `psnr_table`, `condition_table`, `side_by_side`: Markdown tables of ``metrics.json`` results;
- `verify_audit`: recompute the SHA-256 of every input and output named in an ``audit.jsonl``;
- `plot_gradient_flow`: where the gradients of the D step and of the G step flow.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure

from .checkpoint import file_sha256

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
                                f"config.json); train one, e.g. medgan_nb.train.train(cfg, name=...)")
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


# ------------------------------------------------------------------ results tables
def psnr_table(methods: dict[str, dict[str, float]]) -> str:
    """Markdown table of {method: scores of metrics.json} (psnr_mean/std, ssim_mean/std, ms_per_image),
    best PSNR first."""
    rows = [f"| {m} | {s['psnr_mean']:.2f} ± {s['psnr_std']:.2f} | {s['ssim_mean']:.3f} ± {s['ssim_std']:.3f} | "
            f"{s['ms_per_image']:.2f} |" for m, s in sorted(methods.items(), key=lambda kv: -kv[1]["psnr_mean"])]
    return "| method | PSNR (dB) | SSIM | ms/image |\n|---|---|---|---|\n" + "\n".join(rows)


def condition_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown table of mean PSNR per method (rows, in the order of the first condition) and condition
    (columns); the best method of each column in bold."""
    conds = list(results)
    if not conds:
        raise ValueError("no conditions in these results")
    winner = {c: max(results[c], key=lambda m: results[c][m]["psnr_mean"]) for c in conds}

    def cell(c: str, m: str) -> str:
        if m not in results[c]:
            return "–"
        text = f"{results[c][m]['psnr_mean']:.2f}"
        return f"**{text}**" if winner[c] == m else text

    rows = [f"| {m} | " + " | ".join(cell(c, m) for c in conds) + " |" for m in results[conds[0]]]
    return "| method | " + " | ".join(conds) + " |\n|---" + "|---" * len(conds) + "|\n" + "\n".join(rows)


def side_by_side(evaluations: dict[str, dict], condition: str = "all", baselines: bool = True
                 ) -> dict[str, dict[str, float]]:
    """{label: scores} of the model ("gan") of each evaluation (label -> metrics.json dict), plus the
    baselines of the first one: ready for `psnr_table`.

    Raises ValueError if the evaluations did not score the very same degraded inputs (their
    ``inputs_sha256`` differ): numbers from different inputs are not comparable.
    """
    if not evaluations:
        raise ValueError("no evaluations given")
    prints = {label: m["metadata"]["inputs_sha256"] for label, m in evaluations.items()}
    if len(set(prints.values())) != 1:
        raise ValueError(f"these evaluations scored different inputs (inputs_sha256: "
                         f"{ {k: v[:12] for k, v in prints.items()} }); evaluate them on one task")
    table = {}
    for label, m in evaluations.items():
        if "gan" not in m["results"][condition]:
            raise ValueError(f"evaluation {label!r} has no model results (it scored baselines only)")
        table[label] = m["results"][condition]["gan"]
    if baselines:
        first = next(iter(evaluations.values()))["results"][condition]
        table.update({name: s for name, s in first.items() if name != "gan"})
    return table


# ------------------------------------------------------------------ audit logs
@dataclass(frozen=True)
class AuditMismatch:
    """One audit record whose file is missing or no longer has the recorded SHA-256."""
    line: int                   # 1-based line of audit.jsonl
    field: str                  # "input" or "output"
    path: str
    recorded: str
    actual: str | None          # None: the file is missing

    def __str__(self) -> str:
        what = "is missing" if self.actual is None else f"has SHA-256 {self.actual[:12]}…"
        return f"line {self.line}: {self.field} {self.path} {what}, the log records {self.recorded[:12]}…"


def verify_audit(path: str | Path, fields: Sequence[str] = ("input", "output")) -> list[AuditMismatch]:
    """Recompute the SHA-256 of the files every record of an enhance audit log names; return the mismatches
    (an empty list: every file is there and unchanged).

    path: the ``audit.jsonl`` file or the folder that holds it. Raises FileNotFoundError if there is no log,
    ValueError naming the line if a line is not a JSON record with the checked paths and hashes.
    """
    path = Path(path)
    log = path / "audit.jsonl" if path.is_dir() else path
    if not log.is_file():
        raise FileNotFoundError(f"no audit log {log}")
    problems = []
    for number, line in enumerate(log.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            checks = [(f, record[f], record[f"{f}_sha256"]) for f in fields]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{log}, line {number}: not an audit record ({type(e).__name__}: {e})") from None
        for field, file, recorded in checks:
            actual = file_sha256(file) if Path(file).is_file() else None
            if actual != recorded:
                problems.append(AuditMismatch(number, field, file, recorded, actual))
    return problems


# ------------------------------------------------------------------ figures
def plot_gradient_flow() -> Figure:
    """Two panels: the D step (its loss reaches D only: the restoration is detached) and the G step (the
    loss flows back through the frozen D into G, and through the L1 term straight into G).
    Black arrows: the forward pass; red arrows: where the gradient of the step's loss goes."""
    fig = Figure(figsize=(12, 3.8))
    forward = dict(arrowstyle="->", color="black", shrinkA=2, shrinkB=2)
    grad = dict(arrowstyle="->", color="crimson", lw=2, shrinkA=4, shrinkB=4, connectionstyle="arc3,rad=-0.5")
    for ax, g_step in zip(fig.subplots(1, 2), (False, True)):
        ax.set(xlim=(0, 1), ylim=(0, 1)), ax.axis("off")
        ax.set_title("G step: loss → through D (frozen) → G, and L1 → G" if g_step
                     else "D step: loss → D only (the fake is detached)", fontsize=10)

        def box(x: float, y: float, text: str, colour: str = "white"):
            return ax.text(x, y, text, ha="center", va="center", fontsize=9,
                           bbox=dict(boxstyle="round", fc=colour, ec="black"))

        x = box(0.07, 0.5, "x (degraded)")
        g = box(0.27, 0.5, "G" + (": updated" if g_step else ""), "#9ecae1" if g_step else "#eeeeee")
        fake = box(0.48, 0.5, "G(x)" if g_step else "G(x).detach()")
        d = box(0.7, 0.5, "D: frozen" if g_step else "D: updated", "#eeeeee" if g_step else "#fdae6b")
        loss = box(0.92, 0.5, "adv + λ·L1" if g_step else "D loss")
        cond = box(0.48, 0.85, "x (condition)" if g_step else "x, y: the real pair")
        for a, b in ((x, g), (g, fake), (fake, d), (d, loss)):
            ax.annotate("", xy=(0, 0.5), xycoords=b, xytext=(1, 0.5), textcoords=a, arrowprops=forward)
        ax.annotate("", xy=(0.5, 1), xycoords=d, xytext=(1, 0.5), textcoords=cond, arrowprops=forward)
        back = [(loss, d), (d, fake), (fake, g)] if g_step else [(loss, d)]
        for a, b in back:
            ax.annotate("", xy=(0.5, 0), xycoords=b, xytext=(0.5, 0), textcoords=a, arrowprops=grad)
        if g_step:
            ax.annotate("", xy=(0.5, 1), xycoords=fake, xytext=(0.5, 1), textcoords=loss,
                        arrowprops={**grad, "connectionstyle": "arc3,rad=0.35", "ls": "--"})
            ax.text(0.7, 0.76, "L1(G(x), y)", color="crimson", fontsize=8, ha="center")
            note = "D's weights get no gradient (requires_grad False) and are not stepped"
        else:
            ax.text(0.48, 0.3, "✕ stop", color="crimson", fontsize=14, ha="center", va="center")
            note = "the gradient stops at detach(): G is untouched"
        ax.text(0.5, 0.08, note, color="crimson", fontsize=8, ha="center")
    return fig
