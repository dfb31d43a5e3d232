"""The words and tables of an evaluation: what report.md says, computed from the numbers alone.

All functions take the dict that `medgan_nb.evaluation.core.evaluate` writes as metrics.json (or parts of
it) and return text:

- `summarize(metrics)`: one sentence per condition: does the model beat the degraded input and the best
  baseline, by how many dB of PSNR; a baseline that wins is named as the winner.
- `summarize_lesions(metrics)`: the same inside the lesion masks, where the data has them.
- `report_markdown(metrics, shown)`: the whole of report.md.
- `psnr_table`, `condition_table`: Markdown tables per method, or per method and condition.
- `side_by_side(evaluations, condition)`: the scores of several evaluated models ready for `psnr_table`;
  raises ValueError when they did not score the very same degraded inputs (``inputs_sha256``).
- `mean_interval(values)`: the 95 % bootstrap interval of a mean (paired differences, per image or per scan).

`REFERENCE_PSNR` and `REFERENCE_SSIM` are the original notebook's "good" and "excellent" levels.
"""

from __future__ import annotations

from typing import Sequence

from ..metrics import PSNR_CAP
from ..utils.text import markdown_table
from .methods import LABELS

ERROR_QUANTILE = 0.99   # the error maps' colour scale ends at this quantile: a few salt-and-pepper specks aside
REFERENCE_PSNR = {"good": 25.0, "excellent": 30.0}     # dB, the original notebook's levels
REFERENCE_SSIM = {"good": 0.85, "excellent": 0.90}


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """(low, high): the `level` bootstrap confidence interval of the mean of `values` (``scipy.stats.bootstrap``,
    its default BCa method, 10,000 resamples, seeded so that the same values give the same interval)."""
    import numpy as np
    from scipy.stats import bootstrap
    ci = bootstrap((np.asarray(values, dtype=np.float64),), np.mean, confidence_level=level, n_resamples=10_000,
                   random_state=0).confidence_interval
    return float(ci.low), float(ci.high)


def _best_baseline(methods: dict[str, dict[str, float]]) -> str | None:
    """The baseline (not the GAN) with the highest mean PSNR; identity only if it is the only one."""
    candidates = [m for m in methods if m not in ("gan", "identity")] or [m for m in methods if m == "identity"]
    return max(candidates, key=lambda m: methods[m]["psnr_mean"]) if candidates else None


# ------------------------------------------------------------------ summary
def _where(cond: str, names: Sequence[str] | None) -> str:
    if cond == "all":
        return f"On all degradations together ({' + '.join(names)})" if names else "On all (no degradation)"
    if names is not None and list(names) == [cond]:
        return f"On {cond} alone"
    return f"On {cond} ({' + '.join(names) or 'no degradation'})" if names is not None else f"On {cond}"


def _versus(diff: float, what: str) -> str:
    """"2.10 dB above the degraded input", "0.30 dB below ...", or "level with ..."."""
    if abs(diff) < 0.005:
        return f"level with {what}"
    return f"{abs(diff):.2f} dB {'above' if diff > 0 else 'below'} {what}"


def summarize(metrics: dict) -> list[str]:
    """Plain sentences, computed from the numbers only: per condition, does the GAN beat the degraded
    input (identity) and the best baseline, by how many dB; a baseline that wins is named as the winner.
    A condition outside ``metadata["trained_degradations"]`` (the checkpoint's) is marked as such."""
    lines = []
    conditions = metrics.get("conditions", {})
    trained = metrics.get("metadata", {}).get("trained_degradations")     # the model's; None: no model
    for cond, methods in metrics["results"].items():
        where = _where(cond, conditions.get(cond))
        if trained is not None and cond != "all" and set(conditions.get(cond) or [cond]) - set(trained):
            where += " (not part of this model's training degradations)"
        p = {m: s["psnr_mean"] for m, s in methods.items()}
        best = _best_baseline({m: s for m, s in methods.items() if m != "gan"})
        best = best if best != "identity" else None
        ident = f"the degraded input ({p['identity']:.2f} dB)" if "identity" in p else None
        if "gan" in p:
            line = f"{where}, the model reaches {p['gan']:.2f} dB"
            if ident:
                line += ", " + _versus(p["gan"] - p["identity"], ident)
                if p["gan"] - p["identity"] <= -0.005:
                    line += ": it makes the images worse"
            if best:
                diff = p["gan"] - p[best]
                if diff >= 0.005:
                    line += (f"; it beats the best baseline, {LABELS.get(best, best)} ({p[best]:.2f} dB), "
                             f"by {diff:.2f} dB")
                elif diff <= -0.005:
                    line += (f"; {LABELS.get(best, best)} beats the model by {-diff:.2f} dB "
                             f"({p[best]:.2f} vs {p['gan']:.2f} dB)")
                else:
                    line += f"; it ties with the best baseline, {LABELS.get(best, best)} ({p[best]:.2f} dB)"
                if "identity" in p and p[best] - p["identity"] < 0.005:
                    line += "; no baseline improves on the degraded input"
        elif best:
            line = f"{where}, the best baseline is {LABELS.get(best, best)} at {p[best]:.2f} dB"
            if ident:
                line += ", " + _versus(p[best] - p["identity"], ident)
        else:
            continue
        top_psnr = max(p, key=p.get)
        top_ssim = max(methods, key=lambda m: methods[m]["ssim_mean"])
        if top_ssim != top_psnr:
            line += (f". By SSIM, {LABELS.get(top_ssim, top_ssim)} is best there "
                     f"({methods[top_ssim]['ssim_mean']:.3f} vs {methods[top_psnr]['ssim_mean']:.3f} "
                     f"for {LABELS.get(top_psnr, top_psnr)})")
        lines.append(line + ".")
    if any("color_jitter" in names for names in conditions.values()):
        note = ("Colour jitter changes global brightness, contrast, saturation and hue, which the clean target "
                "does not determine from the degraded image alone, so the PSNR of any method on it is bounded")
        alone = metrics["results"].get("color_jitter", {}).get("identity")
        if alone:
            note += (f"; evidence: on colour jitter alone the degraded input scores only "
                     f"{alone['psnr_mean']:.2f} dB, with every structure of the image still in place")
        lines.append(note + ".")
    return lines


def summarize_lesions(metrics: dict) -> list[str]:
    """Per condition with lesion masks: the GAN's (else the best baseline's) PSNR inside the masks against the
    input's and the best baseline's there, so a reader sees whether the lesions were restored or erased."""
    lines = []
    for cond, methods in (metrics.get("lesions") or {}).items():
        inside = {m: s["psnr_in_mean"] for m, s in methods.items() if s["psnr_in_mean"] is not None}
        rivals = {m: v for m, v in inside.items() if m not in ("gan", "identity")}
        if not inside:
            continue
        line = f"Inside the lesion masks ({cond})"
        if "gan" in inside:
            line += f", the model reaches {inside['gan']:.2f} dB"
            if "identity" in inside:
                line += ", " + _versus(inside["gan"] - inside["identity"], f"the input ({inside['identity']:.2f} dB)")
        if rivals:
            best = max(rivals, key=rivals.get)
            line += ("; " if "gan" in inside else ", ") + \
                f"the best baseline there is {LABELS.get(best, best)} at {rivals[best]:.2f} dB"
        lines.append(line + ".")
    return lines


# ------------------------------------------------------------------ report
def _methods_note(meta: dict) -> str:
    """Which methods were given the true noise std, which were skipped and why, whether CBM3D ran."""
    oracle = [LABELS[m] for m in ("nlm", "cbm3d", "median_cbm3d") if m in meta["methods"]]
    note = (f" {', '.join(oracle)} {'is' if len(oracle) == 1 else 'are'} given each image's true noise level when "
            "noise is applied (an oracle the GAN does not get)." if oracle else "")
    skipped = meta.get("skipped") or {}
    for reason in dict.fromkeys(skipped.values()):
        note += f" **{reason}** ({', '.join(m for m in skipped if skipped[m] == reason)})."
    if not any(m in meta["methods"] or m in skipped for m in ("cbm3d", "median_cbm3d")):
        note += (" CBM3D, the strongest classical denoiser, was not run (seconds per image): ask for it with "
                 "baselines including \"cbm3d\" (or `evaluate_goals`).")
    return note


def report_markdown(metrics: dict, shown: str | None = None) -> str:
    """The text of report.md: what was evaluated, the summary, a table per condition, lesions, the figures."""
    meta = metrics["metadata"]
    ckpt = (f"`{meta['checkpoint']}` (sha256 `{meta['checkpoint_sha256']}`, the bytes loaded), trained on "
            f"{', '.join(meta['trained_degradations']) or 'no degradation'}" if meta["checkpoint"]
            else "none (classical baselines only)")
    lines = [
        "# Evaluation report", "",
        f"- **Checkpoint:** {ckpt}",
        f"- **Data:** {meta['data']}: {meta['n_images']} images at {meta['image_size']}²",
        f"- **Degradations** ({meta['degradation_order']} order): {', '.join(meta['degradations']) or 'none'}. "
        "Each image is degraded with its own seed, taken from its key and the fixed evaluation seed, so every "
        "run, whatever model, scores identical inputs "
        f"(fingerprint of the clean and degraded images: sha256 `{meta['inputs_sha256']}`).",
        f"- **Methods:** {', '.join(meta['methods'])}." + _methods_note(meta)
        + f" **Metrics:** PSNR on images in [0, 1]; SSIM {meta['ssim']}.",
        f"- **Device:** {meta['device']}; {meta['torch_threads']} torch CPU thread(s) on {meta['cpu']}; "
        f"medgan_nb {meta['medgan_nb_version']}; {meta['created']}", "",
    ]
    for cond, overrides in (metrics.get("condition_overrides") or {}).items():
        lines.insert(-1, f"- **Condition {cond}:** " + ", ".join(f"{k}={v}" for k, v in overrides.items()))
    if meta.get("split") not in (None, "test"):
        lines += [f"> **Warning:** these are {meta['split']!r} images, not the held-out test split; "
                  "scores on images a model trained on are inflated.", ""]
    lines += ["## Summary", ""] + [f"- {s}" for s in summarize(metrics) + summarize_lesions(metrics)] + [
        "",
        f"Reference levels from the original notebook, as context and not as pass/fail (what is reachable depends "
        f"on the images and how strong the degradations are): PSNR {REFERENCE_PSNR['good']:g} dB \"good\", "
        f"{REFERENCE_PSNR['excellent']:g} dB \"excellent\"; SSIM {REFERENCE_SSIM['good']:.2f} / "
        f"{REFERENCE_SSIM['excellent']:.2f}.", "",
        "## Results", "",
        f"Mean ± standard deviation over images; higher is better; PSNR capped at {PSNR_CAP:g} dB (identical "
        "images). ms/image: the GAN timed per batch divided by its size, baselines per image on the CPU.", ""]
    for cond, methods in metrics["results"].items():
        names = metrics["conditions"].get(cond)
        lines += [f"### {_where(cond, names)[3:]}", "", psnr_table(methods), ""]
    lines += _lesion_tables(metrics.get("lesions"))
    first = next(iter(metrics["results"]))
    lines += ["## Figures", "", "![PSNR and SSIM by method and condition](psnr_ssim_bars.png)", ""]
    if shown is not None:
        lines += [f"Best, median and worst images for {shown} on {first} (degraded | {shown} | clean):",
                  "", "![best, median and worst cases](cases.png)", "",
                  f"Absolute error against the clean image, degraded input vs {shown}, for the first "
                  f"{min(3, meta['n_images'])} images; the colour scale ends at the {100 * ERROR_QUANTILE:.0f}th "
                  "percentile of these errors, so the few brighter pixels (salt-and-pepper specks) are clipped:",
                  "",
                  "![error maps](error_maps.png)", ""]
        if metrics.get("lesions"):
            lines += [f"Lesions (bounding box of the mask, padded; its outline drawn) on {first}: degraded | "
                      f"{shown} | clean:", "", "![lesion crops](lesions.png)", ""]
    return "\n".join(lines)


def _lesion_tables(lesions: dict | None) -> list[str]:
    """report.md's section on PSNR/SSIM inside and outside the lesion masks (nothing without masks)."""
    if not lesions:
        return []
    fmt = lambda v, spec: "–" if v is None else format(v, spec)  # noqa: E731
    lines = ["## Inside and outside the lesion masks", "",
             "Mean over the images whose mask (inside) or its complement (outside) is not empty; SSIM leaves "
             "out the 5-pixel border, as for the whole image. The detail kept on the lesions, against the clean "
             "frame's (1.0: as much): gradient energy inside the mask, high-frequency power in the mask's padded "
             "bounding box (a spectrum needs a rectangle). Per image: lesions.csv.", ""]
    for cond, methods in lesions.items():
        rows = [(m, fmt(s["psnr_in_mean"], ".2f"), fmt(s["ssim_in_mean"], ".3f"), fmt(s["psnr_out_mean"], ".2f"),
                 fmt(s["ssim_out_mean"], ".3f"), fmt(s["grad_ratio_in_mean"], ".2f"),
                 fmt(s["hf_ratio_box_mean"], ".2f"),
                 s["n_in"]) for m, s in methods.items()]
        lines += [f"### {cond}", "", markdown_table(("method", "PSNR inside (dB)", "SSIM inside", "PSNR outside (dB)",
                                                     "SSIM outside", "gradient energy inside", "HF power (box)",
                                                     "images"), rows), ""]
    return lines


# ------------------------------------------------------------------ results tables
def psnr_table(methods: dict[str, dict[str, float]]) -> str:
    """Markdown table of {method: scores of metrics.json} (psnr_mean/std, ssim_mean/std, the sharpness ratios
    and naturalness where measured, ms_per_image), best PSNR first."""
    def mean(s: dict, key: str, digits: int) -> str:
        return "–" if s.get(key) is None else f"{s[key]:.{digits}f}"
    rows = [(m, f"{s['psnr_mean']:.2f} ± {s['psnr_std']:.2f}", f"{s['ssim_mean']:.3f} ± {s['ssim_std']:.3f}",
             mean(s, "grad_ratio_mean", 2), mean(s, "hf_ratio_mean", 2), mean(s, "naturalness_mean", 2),
             f"{s['ms_per_image']:.2f}") for m, s in sorted(methods.items(), key=lambda kv: -kv[1]["psnr_mean"])]
    return markdown_table(("method", "PSNR (dB)", "SSIM", "gradient energy (clean = 1)", "HF power (clean = 1)",
                           "naturalness (lower: more natural)", "ms/image"), rows)


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

    return markdown_table(("method", *conds), [(m, *(cell(c, m) for c in conds)) for m in results[conds[0]]])


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
