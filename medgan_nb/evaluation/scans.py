"""A 1-channel model on held-out CT, MR and X-ray slices against the classics of each field.

For every condition (fixed strengths, `CONDITIONS`), every test slice is degraded `realisations` times
(seeded by slice, condition and realisation, so every method sees the same images) and restored by:
- ``input``: the degraded image itself (for CT the standard ramp-filtered back-projection; for
  undersampled MRI the zero-filled reconstruction);
- ``nlm``, ``bm3d``: non-local means and grayscale BM3D (optional package ``bm3d``, non-commercial
  licence) given the true noise std (the RMS of degraded - clean: an oracle the model does not get);
- CT ``fbp_hann``: the same noisy projections reconstructed with a Hann-windowed ramp filter, the
  scanner-side answer to noise; MRI ``tv``: total-variation reconstruction (`medgan_nb.degrade.mri.tv_reconstruction`);
- ``model``: the generator (reflect-padded to its size multiple, cropped back).

Scores: PSNR/SSIM in the window a reader uses (CT: soft tissue, 40/400 HU; MR and X-ray: the
percentile window the models see) and, for CT, the RMSE in HU inside the scanned circle; ms per
slice for each method, on this machine's CPU threads.

A verdict rests on scans, not on realisations of one scan: `per_scan` keeps every scan's means, and `verdicts`
states the model's PSNR gap to the best classic scan by scan, "on n scans", with a 95 % bootstrap interval of
the mean gap only where n >= `MIN_SCANS_FOR_INTERVAL` ("n too small" otherwise). Between scans of one modality
the gap between two classics can change sign, so one test scan supports no general claim.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config.config import Config
from ..data.scans import Slice, ct_degradation, degrade_slice, from_model, modality_slices
from ..degrade.acquisition import ModalityDegradation
from ..degrade.ct import outside_circle
from ..degrade.mri import mri_acquire, tv_reconstruction
from ..metrics import psnr, ssim
from ..models.runner import enhance_array
from ..utils.files import atomic_write
from ..utils.images import WINDOWS, window
from ..utils.seeding import seed_for
from ..utils.text import markdown_table
from .baselines import _bm3d, nlm
from .report import mean_interval

CONDITIONS: dict[str, dict[str, dict]] = {
    "ct": {"dose 5e3": dict(dose=5e3), "dose 3e4": dict(dose=3e4)},
    "mri": {"noise 0.03": dict(noise_sigma=0.03), "4x undersampled, noise 0.01": dict(noise_sigma=0.01,
                                                                                      acceleration=4.0)},
    "xray": {"exposure 200": dict(exposure=200.0), "exposure 1000, blur 1": dict(exposure=1000.0, blur_sigma=1.0)},
}
MIN_SCANS_FOR_INTERVAL = 5      # fewer scans: no interval, the verdict says "n too small"
READER_WINDOW = {"ct": "soft_tissue 40/400 HU", "mri": "percentile 0.5-99.5", "xray": "percentile 0.5-99.5"}


def run_model(generator: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """One slice (H, W) in [-1, 1] through the generator (`medgan_nb.models.runner.enhance_array`: reflect-padded
    to its size multiple, in eval mode, tiled above 512 pixels); float32 (H, W), clamped to [-1, 1]."""
    return enhance_array(generator, ((image + 1) / 2)[..., None])[..., 0] * 2 - 1


def _unit_std(degraded: np.ndarray, clean: np.ndarray) -> float:
    """The oracle noise std in [0, 1] units: RMS of degraded - clean (the models' range is 2 wide)."""
    return float(np.sqrt(np.mean((degraded - clean) ** 2)) / 2)


def _grey(fn: Callable[[np.ndarray, float], np.ndarray]) -> Callable[[np.ndarray, float], np.ndarray]:
    """A denoiser of (H, W, C) [0, 1] images applied to a [-1, 1] slice."""
    def apply(x: np.ndarray, sigma: float) -> np.ndarray:
        out = fn(((x + 1) / 2)[..., None].astype(np.float64), sigma)      # some filters drop the channel axis
        return (out.reshape(x.shape) * 2 - 1).astype(np.float32)
    return apply


def _bm3d_grey(img: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(_bm3d().bm3d(img[..., 0], sigma_psd=sigma), 0, 1)


def methods_for(modality: str) -> list[str]:
    """The methods compared for a modality, in the order tables show them (bm3d only when installed)."""
    special = {"ct": ["fbp_hann"], "mri": ["tv"], "xray": []}[modality]
    return ["input", "nlm", *(["bm3d"] if _bm3d() is not None else []), *special, "model"]


def _special(modality: str, s: Slice, strengths: dict, key: str, seed: int) -> np.ndarray:
    """The modality's own classic on the very same measurement as the degraded slice."""
    if modality == "ct":
        hann = ct_degradation(s, seed, filter_name="hann", **strengths)
        return hann(torch.from_numpy(s.source)[None, None], keys=[key]).image[0, 0].numpy()
    g = torch.Generator().manual_seed(seed_for(key, seed))        # as ModalityDegradation seeds this key
    k, params = mri_acquire(((torch.from_numpy(s.image) + 1) / 2)[None, None].double().clamp(0, 1),
                            generator=g, **strengths)
    return (tv_reconstruction(k[0], params["mri_mask"][0]).numpy() * 2 - 1).clip(-1, 1).astype(np.float32)


def score_slice(modality: str, out: np.ndarray, s: Slice) -> dict[str, float]:
    """PSNR/SSIM in the reader's window (CT: soft tissue), and CT's RMSE in HU inside the scanned circle."""
    if modality != "ct":
        a, b = (torch.from_numpy(np.clip(v, -1, 1))[None, None] for v in (out, s.image))
        return {"psnr": float(psnr(a, b)[0]), "ssim": float(ssim(a, b)[0])}
    hu_out, hu_clean = (from_model(v, "ct", s.lo, s.hi) for v in (out, s.image))
    a, b = (torch.from_numpy(window(v, *WINDOWS["soft_tissue"]) * 2 - 1)[None, None] for v in (hu_out, hu_clean))
    inside = ~outside_circle(s.image.shape[0])
    rmse = float(np.sqrt(np.mean((hu_out - hu_clean)[inside] ** 2)))
    return {"psnr": float(psnr(a, b)[0]), "ssim": float(ssim(a, b)[0]), "rmse_hu": rmse}


def evaluate_scans(generator: torch.nn.Module, cfg: Config, split: str = "test", realisations: int = 3,
                   conditions: dict[str, dict] | None = None, quiet: bool = False) -> dict:
    """Scores of `generator` and the classics on one split's slices; see the module docstring.

    Returns {"modality", "split", "slices", "realisations", "window", "methods", "rows": one per slice,
    realisation, condition and method, "table": {condition: {method: {"psnr", "ssim", ["rmse_hu"], "ms"}}}}.
    """
    modality = cfg.modality
    conditions = conditions or CONDITIONS[modality]
    slices = modality_slices(split, cfg)
    rows = []
    jobs = [(c, s, r) for c in conditions for s in slices for r in range(realisations)]
    for condition, s, r in tqdm(jobs, desc=f"evaluating {modality}", disable=quiet):
        outputs = restore_all(generator, modality, s, conditions[condition], f"{s.key} {condition} {r}", cfg.seed)
        rows += [{"condition": condition, "slice": s.key, "realisation": r, "method": method, "ms": ms,
                  **score_slice(modality, out, s)} for method, (out, ms) in outputs.items()]
    per_scan = {key: _table([r for r in rows if r["slice"] == key]) for key in dict.fromkeys(s.key for s in slices)}
    return {"modality": modality, "split": split, "slices": [s.key for s in slices], "realisations": realisations,
            "window": READER_WINDOW[modality], "methods": methods_for(modality), "rows": rows,
            "table": _table(rows), "per_scan": per_scan, "verdicts": verdicts(per_scan)}


def verdicts(per_scan: dict[str, dict]) -> dict[str, dict]:
    """Per condition: the model's PSNR minus the best classic's, scan by scan (`per_scan`: {scan: `_table`}).

    Returns {condition: {"n": scans, "gaps": {scan: dB}, "mean": dB, "wins": scans where the gap > 0,
    "interval": [low, high] (95 % bootstrap of the mean, `medgan_nb.evaluation.report.mean_interval`) or None,
    "note": "" or "n too small" (fewer than `MIN_SCANS_FOR_INTERVAL` scans)}}. "input" is not a classic.
    """
    out: dict[str, dict] = {}
    for condition in next(iter(per_scan.values()), {}):
        gaps = {}
        for scan, table in per_scan.items():
            by_method = table[condition]
            classics = [v["psnr"] for m, v in by_method.items() if m not in ("input", "model")]
            if "model" in by_method and classics:
                gaps[scan] = by_method["model"]["psnr"] - max(classics)
        values = np.array(list(gaps.values()), dtype=np.float64)
        interval = None
        if len(values) >= MIN_SCANS_FOR_INTERVAL:
            interval = list(mean_interval(values))
        out[condition] = {"n": len(values), "gaps": gaps, "mean": float(values.mean()) if len(values) else float("nan"),
                          "wins": int((values > 0).sum()), "interval": interval,
                          "note": "" if interval is not None else "n too small"}
    return out


def restore_all(generator: torch.nn.Module | None, modality: str, s: Slice, strengths: dict, key: str, seed: int,
                methods: list[str] | None = None) -> dict[str, tuple[np.ndarray, float]]:
    """One slice degraded with `strengths` (seeded by `key`) and restored by every method of `methods` (default
    `methods_for`; without "model" the generator may be None): {method: (image in [-1, 1], ms)}; "input" is
    the degraded slice itself."""
    degraded = degrade_slice(s, ModalityDegradation(modality, seed, **strengths), key)[0]
    sigma = _unit_std(degraded, s.image)
    denoisers = {"nlm": _grey(nlm), "bm3d": _grey(_bm3d_grey)}
    outputs = {}
    for method in methods or methods_for(modality):
        t = time.perf_counter()
        if method == "input":
            out = degraded
        elif method == "model":
            out = run_model(generator, degraded)
        elif method in denoisers:
            out = denoisers[method](degraded, sigma)
        else:
            out = _special(modality, s, strengths, key, seed)
        outputs[method] = (out, (time.perf_counter() - t) * 1000)
    return outputs


def _table(rows: list[dict]) -> dict:
    """Means per condition and method (ms: the median)."""
    table: dict = {}
    for row in rows:
        table.setdefault(row["condition"], {}).setdefault(row["method"], []).append(row)
    return {c: {m: {k: (statistics.median if k == "ms" else statistics.fmean)([r[k] for r in rs])
                    for k in rs[0] if k not in ("condition", "slice", "realisation", "method")}
                for m, rs in by_method.items()} for c, by_method in table.items()}


def markdown(result: dict) -> str:
    """Markdown: the verdict per condition on n scans, then one row per scan, condition and method."""
    ct = result["modality"] == "ct"
    lines = []
    for condition, v in result["verdicts"].items():
        spread = (f"95 % interval [{v['interval'][0]:+.2f}, {v['interval'][1]:+.2f}] dB" if v["interval"]
                  else f"{v['note']} for an interval (fewer than {MIN_SCANS_FOR_INTERVAL})")
        lines.append(f"- {condition}: model − best classic on {v['n']} scan(s): mean {v['mean']:+.2f} dB, the model "
                     f"ahead on {v['wins']} of {v['n']}; {spread}")
    header = ("scan", "condition", "method", "PSNR (dB)", "SSIM", *(("RMSE (HU)",) if ct else ()), "ms / slice")
    rows = [(scan, condition, method, f"{v['psnr']:.2f}", f"{v['ssim']:.3f}",
             *((f"{v['rmse_hu']:.1f}",) if ct else ()), f"{v['ms']:.0f}")
            for scan, table in result["per_scan"].items() for condition, by_method in table.items()
            for method, v in by_method.items()]
    return "\n".join(lines) + "\n\n" + markdown_table(header, rows)



def write_report(result: dict, out: str | Path, source: str) -> Path:
    """``out/scans.json`` (every row) and ``out/report.md`` (the table, with what, where and when); returns the report."""
    import json

    from ..utils.hardware import cpu_model
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "scans.json") as f:
        f.write((json.dumps(result, indent=1) + "\n").encode())
    head = (f"# {result['modality']} on the {result['split']} slices ({', '.join(result['slices'])}), "
            f"{result['realisations']} realisation(s) per condition\n\n"
            f"Model: {source}. Window: {result['window']}. Machine: {cpu_model()}, "
            f"{torch.get_num_threads()} torch thread(s); {time.strftime('%Y-%m-%d %H:%M %Z')}.\n"
            "NLM and BM3D get the true noise std (an oracle); ms: median per slice.\n\n")
    with atomic_write(out / "report.md") as f:
        f.write((head + markdown(result) + "\n").encode())
    return out / "report.md"
