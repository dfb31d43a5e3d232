"""Figures of notebook 06 (CT, MRI and X-ray): the physics of each degradation, sliders, the
comparison with the classics and the DICOM output. Every function computes with `medgan_nb.degrade`,
`medgan_nb.data.scans`, `medgan_nb.data.dicom` and `medgan_nb.evaluation.scans` (no physics of its own) and returns
the matplotlib Figure; the notebook only calls them.

Images are shown as a reader sees them: CT in the soft-tissue window (40/400 HU), MR and X-ray in the
models' percentile window, X-ray with bone bright (the models see it inverted, see `medgan_nb.data.scans`).
PSNRs in titles are those of `medgan_nb.evaluation.scans` (CT: in the soft-tissue window), so a figure
and the evaluation's table agree.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..config.config import Config
from ..data.dicom import DicomImage, read_dicom
from ..data.scans import MODALITY_OF_DICOM, SAMPLE_SCANS, Slice, degrade_slice, from_model, sample_slices, window_of
from ..degrade.acquisition import ModalityDegradation
from ..degrade.mri import kspace, magnitude_image, motion_kspace, mri_acquire, rician_noise, tv_reconstruction
from ..degrade.xray import xray_degrade
from ..evaluation.scans import CONDITIONS, restore_all, score_slice
from ..utils.images import WINDOWS, window
from ..utils.text import markdown_table

SOFT = WINDOWS["soft_tissue"]
# The sliders' fixed stand-in without ipywidgets: three strengths per modality, mild to strong.
STATIC_STRENGTHS: dict[str, tuple[dict, ...]] = {
    "ct": (dict(dose=1e5), dict(dose=1e4), dict(dose=1e3)),
    "mri": (dict(noise_sigma=0.02), dict(acceleration=4.0), dict(noise_sigma=0.02, acceleration=6.0)),
    "xray": (dict(exposure=5000.0), dict(exposure=500.0), dict(exposure=100.0)),
}


# ------------------------------------------------------------------ helpers
def _gen(seed: int) -> torch.Generator:
    """A seeded CPU generator: the same noise on every run."""
    return torch.Generator().manual_seed(seed)


def _off(ax: plt.Axes) -> None:
    ax.set_xticks([]), ax.set_yticks([])


def _gray(ax: plt.Axes, img: np.ndarray, title: str, vmin: float = 0.0, vmax: float = 1.0, cmap: str = "gray"
          ) -> None:
    """One image panel without ticks."""
    ax.imshow(np.asarray(img), cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_title(title, fontsize=8)
    _off(ax)


def reader_view(modality: str, img: np.ndarray, s: Slice) -> np.ndarray:
    """A slice in model units [-1, 1] as a reader sees it, in [0, 1]: CT soft-tissue window, X-ray bone bright."""
    img = np.asarray(img, dtype=np.float64)
    if modality == "ct":
        return window(from_model(img, "ct", s.lo, s.hi), *SOFT)
    return np.clip((1 - img) / 2 if modality == "xray" else (img + 1) / 2, 0, 1)


def psnr_of(modality: str, out: np.ndarray, s: Slice) -> float:
    """PSNR (dB) of `out` against the slice's clean image, exactly as `evaluate_scans` scores it."""
    return score_slice(modality, np.asarray(out, dtype=np.float32), s)["psnr"]


def _unit(s: Slice) -> torch.Tensor:
    """The clean slice as a float64 batch (1, 1, H, W) in [0, 1]: MR magnitude, or the X-ray display inverted
    (rising with exposure)."""
    return ((torch.from_numpy(s.image).double() + 1) / 2).clamp(0, 1)[None, None]


def _model_units(unit: torch.Tensor | np.ndarray) -> np.ndarray:
    """[0, 1] -> [-1, 1] (clipped), as a float32 (H, W) array."""
    return (np.clip(np.asarray(unit, dtype=np.float64).squeeze(), 0, 1) * 2 - 1).astype(np.float32)


def scans_markdown() -> str:
    """`SAMPLE_SCANS` as a Markdown table: which file, which split, which rows."""
    rows = [(s.name, s.modality, s.file or "(scikit-image)", s.split,
             "all" if s.rows == (0.0, 1.0) else f"{s.rows[0]:.0%} – {s.rows[1]:.0%}", s.description)
            for s in SAMPLE_SCANS]
    return markdown_table(("scan", "modality", "file", "split", "rows used", "what"), rows)


# ---------------------------------------------------------------------- MRI
def mri_chain_figure(s: Slice, acceleration: float, noise: float, pattern: str = "random", seed: int = 0
                     ) -> plt.Figure:
    """MRI: image | log k-space | acquired lines | zero-filled reconstruction | TV reconstruction, PSNRs in titles."""
    x = _unit(s)
    k, params = mri_acquire(x, noise_sigma=noise, acceleration=acceleration, pattern=pattern, generator=_gen(seed))
    mask = params["mri_mask"][0]
    zero_filled = _model_units(magnitude_image(k[0]))
    tv = _model_units(tv_reconstruction(k[0], mask))
    full = torch.log10(kspace(x[0, 0]).abs() + 1e-6).numpy()
    lines = mask[:, None].expand(x.shape[-2:]).numpy()
    fig, axes = plt.subplots(1, 5, figsize=(16, 3.7))
    _gray(axes[0], reader_view("mri", s.image, s), f"{s.key}: the clean image")
    _gray(axes[1], full, "k-space, log |FFT| (DC in the centre)", float(np.percentile(full, 5)), float(full.max()),
          "magma")
    _gray(axes[2], lines, f"{pattern} mask over the {int(params['mri_acquired_lines'][0])} acquired lines:\n"
                          f"{acceleration:g}x nominal, "
                          f"{float(params['mri_effective_acceleration'][0]):.2f}x effective")
    _gray(axes[3], reader_view("mri", zero_filled, s), f"zero-filled, noise {noise:g}: "
                                                   f"{psnr_of('mri', zero_filled, s):.2f} dB")
    _gray(axes[4], reader_view("mri", tv, s), f"TV reconstruction: {psnr_of('mri', tv, s):.2f} dB")
    fig.tight_layout()
    return fig


def mri_motion_figure(s: Slice, shifts: Sequence[float] = (0.0, 2.0, 6.0), fraction_of_lines: float = 0.3,
                      seed: int = 0) -> plt.Figure:
    """Rigid motion between phase-encode lines: ghosts along the phase-encode (vertical) direction."""
    fig, axes = plt.subplots(1, len(shifts), figsize=(3.4 * len(shifts), 3.6), squeeze=False)
    for ax, shift in zip(axes[0], shifts):
        moved = _model_units(motion_kspace(_unit(s), shift, fraction_of_lines, generator=_gen(seed)).image)
        _gray(ax, reader_view("mri", moved, s), f"{fraction_of_lines:.0%} of lines moved up to {shift:g} px\n"
                                            f"{psnr_of('mri', moved, s):.2f} dB")
    fig.tight_layout()
    return fig


def rician_bias_figure(sigmas: Sequence[float] = tuple(np.linspace(0, 0.2, 9)), signal: float = 0.1,
                       size: int = 96, seed: int = 0) -> plt.Figure:
    """Mean magnitude of noisy zero / low / full signal against sigma: the Rician bias of magnitude images."""
    bands = (0.0, float(signal), 1.0)
    x = torch.zeros(1, 1, size, 3 * size, dtype=torch.float64)
    for i, a in enumerate(bands):
        x[..., i * size:(i + 1) * size] = a
    means, last = [], None
    for sigma in sigmas:
        last = rician_noise(x, float(sigma), generator=_gen(seed)).image[0, 0].numpy()
        means.append([float(last[:, i * size:(i + 1) * size].mean()) for i in range(3)])
    means = np.array(means)
    sig = np.asarray(sigmas, dtype=np.float64)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.9), gridspec_kw={"width_ratios": (1.2, 1)})
    _gray(axes[0], last, f"magnitude of 0 | {signal:g} | 1 plus complex noise, sigma {sig[-1]:g}", 0, 1.2)
    for i, (a, style) in enumerate(zip(bands[:2], ("o-", "s-"))):
        axes[1].plot(sig, means[:, i], style, label=f"measured mean, true signal {a:g}")
    axes[1].plot(sig, sig * math.sqrt(math.pi / 2), "k--", label="sigma sqrt(pi/2): the mean of pure noise")
    axes[1].axhline(signal, color="gray", lw=0.8, ls=":", label=f"true signal {signal:g}")
    axes[1].set_xlabel("noise sigma (of the image maximum)"), axes[1].set_ylabel("mean of the magnitude image")
    axes[1].set_title("the magnitude is biased upwards where the signal is low", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------- X-ray
def xray_figure(s: Slice, exposures: Sequence[float] = (30.0, 300.0), blur_sigma: float = 1.0, seed: int = 0
                ) -> plt.Figure:
    """X-ray: as displayed | as the model sees it (inverted: rises with exposure) | scintillator blur | blur and
    quantum noise."""
    x = _unit(s)
    blurred = _model_units(xray_degrade(x, math.inf, blur_sigma).image)     # blur in the exposure domain
    fig, axes = plt.subplots(1, 3 + len(exposures), figsize=(3.2 * (3 + len(exposures)), 3.7))
    _gray(axes[0], reader_view("xray", s.image, s), f"{s.key}: as displayed (bone bright)")
    _gray(axes[1], x[0, 0].numpy(), "as the model sees it: the display\ninverted, rising with exposure")
    _gray(axes[2], reader_view("xray", blurred, s), f"scintillator blur sigma {blur_sigma:g} px: "
                                                f"{psnr_of('xray', blurred, s):.2f} dB")
    for ax, e in zip(axes[3:], exposures):
        y = _model_units(xray_degrade(x, e, blur_sigma, generator=_gen(seed)).image)
        _gray(ax, reader_view("xray", y, s), f"blur + {e:g} photons per pixel\n{psnr_of('xray', y, s):.2f} dB")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ sliders
def explorer_slices(size: int = 128) -> dict[str, Slice]:
    """One held-out test slice per modality for the sliders, at most `size` pixels on a side."""
    return {m: sample_slices(m, "test", size)[0] for m in ("ct", "mri", "xray")}


def _degraded(modality: str, s: Slice, strengths: dict, seed: int) -> np.ndarray:
    """One slice degraded with fixed strengths, seeded, in model units."""
    return degrade_slice(s, ModalityDegradation(modality, seed, **strengths), f"{s.key} explorer {seed}")[0]


def modality_explorer(slices: dict[str, Slice], dose: float = 1e4, acceleration: float = 1.0, noise: float = 0.02,
                      exposure: float = 200.0, seed: int = 0) -> plt.Figure:
    """Clean (top) and degraded (bottom) slice of each modality for the sliders' settings, PSNRs in titles."""
    settings = {"ct": dict(dose=dose), "mri": dict(noise_sigma=noise, acceleration=acceleration),
                "xray": dict(exposure=exposure)}
    labels = {"ct": f"CT, dose {dose:.3g}", "mri": f"MRI, {acceleration:g}x, noise {noise:g}",
              "xray": f"X-ray, exposure {exposure:.3g}"}
    fig, axes = plt.subplots(2, 3, figsize=(10, 6.8))
    for col, m in enumerate(("ct", "mri", "xray")):
        s = slices[m]
        y = _degraded(m, s, settings[m], seed)
        _gray(axes[0, col], reader_view(m, s.image, s), f"{m}: {s.key}, clean")
        _gray(axes[1, col], reader_view(m, y, s), f"{labels[m]}: {psnr_of(m, y, s):.2f} dB")
    fig.tight_layout()
    return fig


def modality_strengths_figure(slices: dict[str, Slice], strengths: dict[str, Sequence[dict]] = STATIC_STRENGTHS,
                              seed: int = 0) -> plt.Figure:
    """The sliders' fixed stand-in: one row per modality, one panel per setting, PSNRs in titles."""
    cols = max(len(v) for v in strengths.values())
    fig, axes = plt.subplots(len(strengths), cols, figsize=(3.2 * cols, 3.4 * len(strengths)), squeeze=False)
    for row, (m, settings) in enumerate(strengths.items()):
        s = slices[m]
        for ax, setting in zip(axes[row], settings):
            y = _degraded(m, s, setting, seed)
            label = ", ".join(f"{k} {v:g}" for k, v in setting.items())
            _gray(ax, reader_view(m, y, s), f"{m}: {label}\n{psnr_of(m, y, s):.2f} dB")
        for ax in axes[row][len(settings):]:
            ax.axis("off")
    fig.tight_layout()
    return fig


def modality_widget(slices: dict[str, Slice]):
    """Sliders for CT dose, MRI acceleration and noise and X-ray exposure, redrawing on release (needs ipywidgets)."""
    import ipywidgets as w

    def show(**settings):
        modality_explorer(slices, **settings)
        plt.show()

    return w.interactive(
        show,
        dose=w.FloatLogSlider(value=1e4, base=10, min=2, max=6, step=0.1, description="CT dose",
                              continuous_update=False),
        acceleration=w.FloatSlider(value=1.0, min=1.0, max=8.0, step=0.5, description="MRI accel.",
                                   continuous_update=False),
        noise=w.FloatSlider(value=0.02, min=0.0, max=0.1, step=0.005, description="MRI noise",
                            continuous_update=False),
        exposure=w.FloatLogSlider(value=200, base=10, min=0.7, max=3.7, step=0.1, description="X-ray exp.",
                                  continuous_update=False),
        seed=w.fixed(0),
    )


def show_modality_explorer(slices: dict[str, Slice] | None = None) -> Any:
    """Notebook 06's slider cell: the `modality_widget` sliders, or `modality_strengths_figure`
    (`medgan_nb.figures.explorer.show_sliders`)."""
    from .explorer import show_sliders
    slices = explorer_slices() if slices is None else slices
    return show_sliders(lambda: modality_widget(slices), lambda: modality_strengths_figure(slices))


# ------------------------------------------------------------------ training and comparison
def val_psnr_figure(run: str | Path) -> plt.Figure:
    """Validation PSNR per epoch of a run (its ``val.csv``), next to the degraded input's."""
    from ..training.logs import read_log
    v = read_log(run, "val.csv", columns=True)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.plot(v["epoch"], v["psnr"], "o-", label="restored by the model")
    ax.plot(v["epoch"], v["psnr_degraded"], "s--", label="degraded input")
    ax.set_xlabel("epoch"), ax.set_ylabel("validation PSNR (dB)")
    ax.set_title(f"{Path(run).name}: validation PSNR", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def restorations(generator: torch.nn.Module, cfg: Config, condition: str | None = None, slice_index: int = 0,
                 realisation: int = 0, split: str = "test") -> tuple[Slice, dict[str, np.ndarray]]:
    """One test slice under one `CONDITIONS` entry restored by every method of `evaluate_scans`, on the very
    same degraded input (same key and seed): (the slice, {method: image in model units})."""
    from ..data.scans import modality_slices
    m = cfg.modality
    condition = condition or next(iter(CONDITIONS[m]))
    s = modality_slices(split, cfg)[slice_index]
    outputs = restore_all(generator, m, s, CONDITIONS[m][condition], f"{s.key} {condition} {realisation}", cfg.seed)
    return s, {method: out for method, (out, _) in outputs.items()}


def comparison_figure(generator: torch.nn.Module, cfg: Config, condition: str | None = None,
                      slice_index: int = 0) -> plt.Figure:
    """One test slice: degraded | each classic | the model | clean, PSNRs (as in the evaluation) in the titles."""
    m = cfg.modality
    condition = condition or next(iter(CONDITIONS[m]))
    s, images = restorations(generator, cfg, condition, slice_index)
    names = {"input": "degraded input", "nlm": "NLM (oracle sigma)", "bm3d": "BM3D (oracle sigma)",
             "fbp_hann": "FBP, Hann filter", "tv": "TV reconstruction", "model": "the model"}
    n = len(images) + 1
    fig, axes = plt.subplots(1, n, figsize=(3.1 * n, 3.6))
    for ax, (method, img) in zip(axes, images.items()):
        _gray(ax, reader_view(m, img, s), f"{names.get(method, method)}\n{psnr_of(m, img, s):.2f} dB")
    _gray(axes[-1], reader_view(m, s.image, s), "clean")
    fig.suptitle(f"{s.key}, condition '{condition}'", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


# ------------------------------------------------------------------ DICOM
def dicom_windows_figure(image: DicomImage, slice_index: int = 0) -> plt.Figure:
    """A CT slice's HU histogram with the three standard windows marked, and the slice in each window."""
    values = image.slices[slice_index]
    fig, axes = plt.subplots(1, 1 + len(WINDOWS), figsize=(3.3 * (1 + len(WINDOWS)), 3.5))
    axes[0].hist(values.ravel(), bins=120, color="dimgray", zorder=3)
    axes[0].set_yscale("log"), axes[0].set_xlabel("HU"), axes[0].set_ylabel("pixels")
    axes[0].set_title(f"{image.path.name}: HU {values.min():.0f} ... {values.max():.0f}", fontsize=8)
    for ax, (name, (center, width)), colour in zip(axes[1:], WINDOWS.items(), ("tab:red", "tab:blue", "tab:green")):
        axes[0].axvspan(center - width / 2, center + width / 2, alpha=0.15, color=colour, label=name)
        _gray(ax, window(values, center, width), f"{name}: {center:g} ± {width / 2:g} HU")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def dicom_pair_figure(original: str | Path, derived: str | Path, slice_index: int = 0) -> plt.Figure:
    """Source | AI-enhanced derived file | their difference, both files read back with `read_dicom`, one window."""
    src, out = read_dicom(original), read_dicom(derived)
    m = MODALITY_OF_DICOM.get(src.modality, "mri")
    a, b = src.slices[slice_index].astype(np.float64), out.slices[slice_index].astype(np.float64)
    if m == "ct":
        show = lambda v: window(v, *SOFT)      # noqa: E731
    else:
        lo, hi = window_of(m, src.slices)
        show = lambda v: np.clip((v - lo) / (hi - lo), 0, 1)      # noqa: E731
    diff = b - a
    lim = float(np.percentile(np.abs(diff), 99)) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.3))
    _gray(axes[0], show(a), f"original {src.modality}, {'x'.join(map(str, a.shape))}")
    _gray(axes[1], show(b), "derived (AI-enhanced),\nread back with read_dicom")
    _gray(axes[2], diff, f"enhanced - original (physical units)\n99th percentile of |diff|: {lim:.3g}",
          -lim, lim, "RdBu_r")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ sentences and tables for the notebook
NAMES = {"input": "the degraded input", "nlm": "NLM", "bm3d": "BM3D", "fbp_hann": "FBP-Hann", "tv": "TV",
         "model": "the model"}
DERIVED_TAGS = ("ImageType", "SOPInstanceUID", "SeriesInstanceUID", "SeriesDescription", "DerivationDescription",
                "BitsStored", "PhotometricInterpretation")


def comparison_sentences(result: dict) -> list[str]:
    """One sentence per condition of an `evaluate_scans` result: the model against its input and the best classic,
    on how many scans (and "n too small" where they are too few for an interval, see `verdicts`)."""
    out = []
    for condition, by_method in result["table"].items():
        verdict = result.get("verdicts", {}).get(condition)
        model, given = by_method["model"]["psnr"], by_method["input"]["psnr"]
        classics = {m: v["psnr"] for m, v in by_method.items() if m not in ("input", "model")}
        best = max(classics, key=classics.get)
        out.append(f"**{condition}**: the model is {model - given:+.2f} dB against its input "
                   f"({'better' if model > given else 'not better'}); the best classic is {NAMES.get(best, best)} "
                   f"at {classics[best]:.2f} dB, and the model is {abs(model - classics[best]):.2f} dB "
                   f"{'above' if model > classics[best] else 'below'} it"
                   + (f", on {verdict['n']} scan(s){': n too small for a general verdict' if verdict['note'] else ''}."
                      if verdict else "."))
    return out


def _tag(ds, keyword: str) -> str:
    """A header value as text; multi-valued tags joined with a backslash, as DICOM stores them."""
    from pydicom.multival import MultiValue
    value = ds.get(keyword)
    if value is None:
        return "(absent)"
    return "\\".join(map(str, value)) if isinstance(value, (list, tuple, MultiValue)) else str(value)


def dicom_tags_markdown(source: str | Path, derived: str | Path, keywords: Sequence[str] = DERIVED_TAGS) -> str:
    """A Markdown table of header tags of a source DICOM file and its derived file, read again with pydicom."""
    import pydicom
    a, b = (pydicom.dcmread(p, stop_before_pixels=True) for p in (source, derived))
    rows = [(k, f"`{_tag(a, k)}`", f"`{_tag(b, k)}`", "yes" if _tag(a, k) != _tag(b, k) else "no") for k in keywords]
    refs = [str(item.get("ReferencedSOPInstanceUID")) for item in b.get("SourceImageSequence", [])]
    rows.append(("SourceImageSequence → ReferencedSOPInstanceUID", "", f"`{', '.join(refs) or '(absent)'}`", ""))
    return markdown_table(("tag", "source", "derived", "changed"), rows)
