"""Score a model on frames from other centres (one sub-folder each) against every classic, with paired intervals.

A model trained on one hospital's frames is scored on clean frames from others: each sub-folder of ``root`` is a
centre (e.g. PolypGen C1, C2, C3), whose frames get the same seeded degradations as any evaluation
(`medgan_nb.evaluation.core.evaluate`, per centre, into ``out_dir/<centre>``).

- `evaluate_centres(checkpoint, root, out_dir)`: that evaluation, then `centre_tables` of its per-image rows,
  written as ``centres.json`` and ``centres.md``. ``half="report"`` (the default) scores only the report half of
  each centre (`medgan_nb.evaluation.core.half_of`), so that choices made on the selection half are not reported
  on the frames they were made on. ``classics_from``: take the classics' rows from an earlier centre evaluation of
  the very same inputs (checked by each centre's ``inputs_sha256``) instead of running them again: CBM3D costs
  seconds per frame, the model milliseconds.
- `centre_tables(rows)`: per condition, one row per centre and one for all frames pooled: the mean PSNR of the
  input, every classic and the model; the model's paired per-frame difference to CBM3D and to the best classic
  (the classic with the highest mean on that centre), each with its 95 % bootstrap interval (`mean_interval`);
  and how many frames the model left more than `NO_HARM_DB` below their degraded input.

Pooled frames weigh centres by their number of frames; the per-centre rows are what a goal "on each centre" reads.
"""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.decode import list_images
from ..utils.text import markdown_table
from .conditions import GOAL_BASELINES, GOAL_CONDITIONS, NO_HARM_DB
from .core import evaluate
from .methods import LABELS
from .report import mean_interval

ALL = "all frames"


def centre_folders(root: str | Path) -> list[Path]:
    """The sub-folders of `root` that hold images, sorted by name; ValueError when there are none."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of centre folders")
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and list_images(p)]
    if not folders:
        raise ValueError(f"no sub-folder of {root} holds images: give a folder with one sub-folder of clean frames "
                         f"per centre (e.g. C1/, C2/, C3/)")
    return folders


def read_rows(folder: Path) -> list[dict]:
    """An evaluation folder's per_image.csv as dicts (PSNR etc. as floats)."""
    with open(folder / "per_image.csv", newline="") as f:
        return [{k: (v if k in ("condition", "method", "key") else float(v)) for k, v in row.items()}
                for row in csv.DictReader(f)]


def _fingerprint(folder: Path) -> str:
    return json.loads((folder / "metrics.json").read_text())["metadata"]["inputs_sha256"]


def evaluate_centres(checkpoint: str | Path | None, root: str | Path, out_dir: str | Path, *,
                     half: str = "report", conditions: dict[str, dict] = GOAL_CONDITIONS,
                     baselines: Sequence[str] = GOAL_BASELINES, classics_from: str | Path | None = None,
                     **kwargs) -> dict:
    """`evaluate` on each centre folder of `root` (`centre_folders`), then `centre_tables`; returns the tables.

    out_dir: a new or empty folder; gets one evaluation folder per centre, centres.json and centres.md.
    classics_from: an earlier `evaluate_centres` folder of the same centres, half and conditions: its classics'
    rows are reused (ValueError if a centre's degraded inputs differ: ``inputs_sha256``), only the model runs.
    kwargs: passed to `evaluate` (cfg, model, max_images, device, quiet, guard, gan_weight).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; evaluation never overwrites results")
    folders = centre_folders(root)
    if classics_from is not None:
        missing = [f.name for f in folders if not (Path(classics_from) / f.name / "per_image.csv").is_file()]
        if missing:
            raise FileNotFoundError(f"{classics_from} has no evaluation of centre(s) {missing}")
    rows: dict[str, list[dict]] = {}
    for folder in folders:
        done = evaluate(checkpoint, out_dir / folder.name, data_dir=folder, half=half, conditions=conditions,
                        baselines=() if classics_from is not None else baselines, **kwargs)
        rows[folder.name] = read_rows(out_dir / folder.name)
        if classics_from is not None:
            earlier = Path(classics_from) / folder.name
            if _fingerprint(earlier) != done["metadata"]["inputs_sha256"]:
                raise ValueError(f"{earlier} scored other inputs than this evaluation of {folder} (inputs_sha256 "
                                 f"differs: another half, image size or condition); run the classics again")
            rows[folder.name] += [r for r in read_rows(earlier) if r["method"] != "gan"]
    tables = centre_tables(rows)
    tables["metadata"] = {"root": str(root), "half": half, "checkpoint": str(checkpoint) if checkpoint else None,
                          "model": kwargs.get("model"), "classics_from": str(classics_from) if classics_from else None,
                          "no_harm_db": NO_HARM_DB}
    (out_dir / "centres.json").write_text(json.dumps(tables, indent=2) + "\n")
    (out_dir / "centres.md").write_text(centres_markdown(tables))
    return tables


def _gap(model: dict[str, float], other: dict[str, float]) -> dict:
    """The paired per-frame difference model − other: mean and 95 % bootstrap interval (None for < 2 frames)."""
    diffs = [model[k] - other[k] for k in model]
    low, high = mean_interval(diffs) if len(diffs) > 1 and np.ptp(diffs) > 0 else (None, None)
    return {"mean": float(np.mean(diffs)), "low": low, "high": high}


def _centre_row(psnr: dict[str, dict[str, float]]) -> dict:
    """One centre's (or all frames') row: psnr is method -> frame key -> PSNR."""
    means = {m: float(np.mean(list(v.values()))) for m, v in psnr.items()}
    classics = {m: v for m, v in means.items() if m not in ("gan", "identity")}
    best = max(classics, key=classics.get) if classics else None
    row = {"n": len(next(iter(psnr.values()))), "psnr": means, "best_classic": best}
    if "gan" in psnr:
        model = psnr["gan"]
        row["vs_best_classic"] = _gap(model, psnr[best]) if best else None
        row["vs_cbm3d"] = _gap(model, psnr["cbm3d"]) if "cbm3d" in psnr else None
        if "identity" in psnr:
            below = [model[k] - psnr["identity"][k] for k in model]
            row["below_input"] = int(sum(d < NO_HARM_DB for d in below))
            row["worst_vs_input"] = float(min(below))
    return row


def centre_tables(rows: dict[str, list[dict]]) -> dict:
    """condition -> {centre or `ALL` -> `_centre_row`} from each centre's per-image rows (`read_rows`).

    Every method must have scored every frame of a centre (ValueError naming what is missing): the differences
    are paired, frame by frame.
    """
    psnr: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))   # condition, centre, method, key
    for centre, centre_rows in rows.items():
        for r in centre_rows:
            psnr[r["condition"]][centre][r["method"]][r["key"]] = r["psnr"]
    out = {}
    for cond, centres in psnr.items():
        pooled: dict = defaultdict(dict)
        for centre, methods in centres.items():
            keys = [set(v) for v in methods.values()]
            if any(k != keys[0] for k in keys):
                raise ValueError(f"{centre}, {cond}: the methods scored different frames; the rows are not paired")
            for m, v in methods.items():
                pooled[m].update({f"{centre}/{k}": p for k, p in v.items()})
        out[cond] = {c: _centre_row(m) for c, m in centres.items()}
        if len(centres) > 1:
            out[cond][ALL] = _centre_row(pooled)
    return {"conditions": out}


def _interval(gap: dict | None) -> str:
    if gap is None:
        return ""
    ci = f" [{gap['low']:+.2f}, {gap['high']:+.2f}]" if gap["low"] is not None else ""
    return f"{gap['mean']:+.2f}{ci}"


def centres_markdown(tables: dict) -> str:
    """centres.md: per condition a table of centres (mean PSNR in dB of each method; the model's paired
    differences with their 95 % intervals; frames the model left below their input)."""
    lines = ["# Scores per centre", "",
             "Mean PSNR (dB) per centre; the model's paired per-frame differences with their 95 % bootstrap "
             f"intervals; 'below input': frames the model left more than {-NO_HARM_DB:g} dB below their degraded "
             "input. The best classic is the one with the highest mean on that centre.", ""]
    for cond, centres in tables["conditions"].items():
        methods = list(dict.fromkeys(m for row in centres.values() for m in row["psnr"]))
        has_model, has_cbm3d = "gan" in methods, "cbm3d" in methods
        header = ["centre", "n", *(LABELS.get(m, m) for m in methods), "best classic"]
        if has_model:
            header += [*(["model − CBM3D"] if has_cbm3d else []), "model − best classic", "below input"]
        body = []
        for centre, row in centres.items():
            cells = [centre, row["n"], *(f"{row['psnr'][m]:.2f}" if m in row["psnr"] else "" for m in methods),
                     LABELS.get(row["best_classic"], row["best_classic"] or "")]
            if has_model:
                cells += [*([_interval(row.get("vs_cbm3d"))] if has_cbm3d else []),
                          _interval(row.get("vs_best_classic")), row.get("below_input", "")]
            body.append(cells)
        lines += [f"## {cond}", "", markdown_table(header, body), ""]
    return "\n".join(lines)
