"""The restorer app: one real endoscopy frame, degradation sliders, a shipped model's output beside it.

A view that a student or a clinician opens without reading code, in a notebook (ipywidgets) or as a small local
web page (``make app``: Voilà serves ``app/restorer.ipynb``, which calls `restorer_app`, on 127.0.0.1, offline).

- `load_frame(name)`: a frame of the shipped Kvasir-SEG sample (``data/kvasir-sample``) as (1, 3, 256, 256) in
  [-1, 1], scaled and centre-cropped as evaluation does; by default the frame the model cards use (`REFERENCE`).
- `generator_for(model, gan_weight)`: a shipped model (``realtime``, ``quality``, ``sharp``), loaded once per
  model and gan-weight step and kept (`medgan_nb.models.zoo.load_model`; for ``sharp`` the weights mixed with
  its L1 parent ``quality``: 0 is ``quality``, 1 is ``sharp``).
- `restore_view(clean, ...)`: the update behind the sliders, a plain function: the frame degraded in the
  physical order (blur with training's kernel, Gaussian noise, salt-and-pepper; fixed seed, so the same sliders
  always give the same input: `medgan_nb.figures.explorer.explorer_degrade`), restored by the model, the
  model's guard applied as ``enhance`` applies it (`medgan_nb.models.guard`), and the scores of input and
  output against the clean frame: PSNR (dB), SSIM and detail (`medgan_nb.sharpness.gradient_energy_ratio`,
  1 = as sharp as the clean frame), with the guard's strength and what it measured.
- `RestorerApp` / `restorer_app()`: the sliders, the three images (input | output | clean) and the scores;
  redrawn when a slider is released (``continuous_update=False``).
"""

from __future__ import annotations

import html
import io
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..data.datasets import SHIPPED_DATA
from ..data.decode import list_images, load_image
from ..data.transforms import to_tensor
from ..metrics import psnr, ssim
from ..models.zoo import load_model
from ..sharpness import gradient_energy_ratio
from ..utils.images import to_numpy_images
from .explorer import explorer_degrade

MODELS = ("quality", "realtime", "sharp")     # the shipped models; "sharp" has the L1 <-> GAN knob
GAN_MODEL = "sharp"
SIZE = 256                                    # the models' training and evaluation size
REFERENCE = "cju14pxbaoksp0835qzorx6g6.jpg"   # the frame the model cards' reference images show
GAN_STEP = 0.1                                # the gan-weight slider's step: at most 11 mixes are kept
SEED = 0                                      # the degradation's random numbers: the same sliders, the same input
DISCLAIMER = ("A teaching and research demo, not a medical device: do not use its output for diagnosis. "
              "The frame comes from Kvasir-SEG (see data/kvasir-sample/NOTICE.md).")


# ------------------------------------------------------------ the computation
def sample_frames() -> list[str]:
    """File names of the shipped sample's frames, the reference frame first."""
    names = sorted(p.name for p in list_images(SHIPPED_DATA / "images"))
    return sorted(names, key=lambda n: n != REFERENCE)


@lru_cache(maxsize=8)
def load_frame(name: str = REFERENCE, size: int = SIZE) -> torch.Tensor:
    """Frame `name` of ``data/kvasir-sample/images`` as (1, 3, size, size) in [-1, 1] (shorter side scaled to
    `size`, centre crop: the evaluation's geometry)."""
    return to_tensor(load_image(SHIPPED_DATA / "images" / name), size)[None]


def generator_for(model: str, gan_weight: float | None = None) -> torch.nn.Module:
    """Shipped model `model` in eval mode on the CPU; for the GAN model, mixed with its L1 parent at `gan_weight`
    (rounded to the slider's step, so each step is loaded once). Kept: moving a slider back costs nothing."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if model != GAN_MODEL:
        return _loaded(model, None)
    return _loaded(model, 1.0 if gan_weight is None else round(round(float(gan_weight) / GAN_STEP) * GAN_STEP, 6))


@lru_cache(maxsize=16)
def _loaded(model: str, gan_weight: float | None) -> torch.nn.Module:
    return load_model(model, gan_weight=gan_weight)[0]


@dataclass
class View:
    """What the app shows for one setting of the sliders: images (1, 3, H, W) in [-1, 1] and the scores."""
    clean: torch.Tensor
    degraded: torch.Tensor
    restored: torch.Tensor
    scores: dict[str, Any] = field(default_factory=dict)


def _scores(x: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    return {"psnr": float(psnr(x, clean)[0]), "ssim": float(ssim(x, clean)[0]),
            "detail": float(gradient_energy_ratio(x, clean)[0])}


def restore_view(clean: torch.Tensor, model: str = "quality", gan_weight: float = 1.0, blur_sigma: float = 1.0,
                 noise_std: float = 0.05, sp_amount: float = 0.0, guard: bool = True, seed: int = SEED) -> View:
    """The frame `clean` (1, 3, H, W) degraded by the sliders' settings and restored by `model` (with its
    guard unless guard=False). Deterministic: the same arguments give the same images and scores.

    scores: "input" and "output" ({psnr, ssim, detail} against the clean frame), "guard" (strength in [0, 1],
    noise_level and change as `Guard.measure` reports them; None without a guard), "model" (its name as
    recorded, e.g. "sharp@gan_weight=0.5") and "ms" (the model and guard's time on this machine)."""
    degraded = explorer_degrade(clean, noise_std=noise_std, sp_amount=sp_amount, blur_sigma=blur_sigma, seed=seed)
    generator = generator_for(model, gan_weight if model == GAN_MODEL else None)
    start = time.perf_counter()
    with torch.inference_mode():
        raw = generator(degraded)
        g = getattr(generator, "guard", None) if guard else None
        measured = {k: float(v[0]) for k, v in g.measure(degraded, raw).items()} if g is not None else None
        restored = g.blend(degraded, raw, measured["strength"]) if measured else raw   # as `enhance` blends
    ms = 1000 * (time.perf_counter() - start)
    restored = restored.clamp(-1, 1)
    return View(clean, degraded, restored, {"input": _scores(degraded, clean), "output": _scores(restored, clean),
                                            "guard": measured, "model": generator.model_name, "ms": ms})


def png(x: torch.Tensor) -> bytes:
    """An image (1, 3, H, W) or (3, H, W) in [-1, 1] as PNG bytes."""
    img = (to_numpy_images(x[0] if x.ndim == 4 else x) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def scores_html(scores: dict[str, Any]) -> str:
    """The scores of `restore_view` as a small HTML table with one line on the guard."""
    cell = "<td style='padding:2px 12px 2px 0'>"
    rows = "".join(f"<tr>{cell}{name}</td>{cell}{s['psnr']:.2f} dB</td>{cell}{s['ssim']:.3f}</td>"
                   f"{cell}{s['detail']:.2f}</td></tr>"
                   for name, s in (("degraded input", scores["input"]), ("model output", scores["output"])))
    g = scores["guard"]
    guard = ("guard off: the model's whole correction is shown" if g is None else
             f"guard strength <b>{g['strength']:.2f}</b> (0 = input left as it is, 1 = the model's whole "
             f"correction); it estimated noise std {g['noise_level']:.4f} and a median correction of "
             f"{g['change']:.4f}")
    head = "".join(f"<th align='left'>{h}</th>" for h in ("", "PSNR", "SSIM", "detail"))
    return (f"<table class='medgan-scores' style='border-collapse:collapse'><tr>{head}</tr>{rows}</table>"
            f"<p class='medgan-guard'>{guard}<br>model {scores['model']}, {scores['ms']:.0f} ms on this machine. "
            f"PSNR and SSIM: higher is closer to the clean frame; detail: gradient energy against the clean "
            f"frame (1 = as sharp, below 1 smoother, above 1 noisier or invented texture).</p>")


# ------------------------------------------------------------ the widgets
class RestorerApp:
    """The sliders, images and scores; ``.widget`` is what a notebook displays. Every control redraws on
    release; `update` is the callback (tests call it, or set a slider's ``.value``)."""

    def __init__(self, frame: str = REFERENCE, model: str = "quality"):
        import ipywidgets as w
        slider = dict(continuous_update=False, style={"description_width": "130px"},
                      layout=w.Layout(width="420px"))
        self.frame = w.Dropdown(options=sample_frames(), value=frame, description="frame",
                                style=slider["style"], layout=slider["layout"])
        self.model = w.ToggleButtons(options=list(MODELS), value=model, description="model",
                                     tooltips=["L1-trained, best PSNR", "small and fast", "GAN fine-tuned"],
                                     style={"description_width": "130px", "button_width": "90px"})
        self.gan_weight = w.FloatSlider(value=1.0, min=0, max=1, step=GAN_STEP, description="L1 ↔ GAN (α)",
                                        **slider)
        self.blur_sigma = w.FloatSlider(value=1.0, min=0, max=2, step=0.1, description="blur sigma (px)", **slider)
        self.noise_std = w.FloatSlider(value=0.05, min=0, max=0.2, step=0.01, description="noise std",
                                       readout_format=".2f", **slider)
        self.sp_amount = w.FloatSlider(value=0.0, min=0, max=0.05, step=0.005, description="salt & pepper",
                                       readout_format=".3f", **slider)
        self.guard = w.Checkbox(value=True, description="apply the model's guard", indent=False)
        box = w.Layout(width="256px", height="256px")
        self.images = {k: w.Image(format="png", layout=box) for k in ("degraded", "restored", "clean")}
        self.captions = {k: w.HTML() for k in self.images}
        self.scores = w.HTML()
        self.controls = [self.frame, self.model, self.gan_weight, self.blur_sigma, self.noise_std, self.sp_amount,
                         self.guard]
        columns = [w.VBox([self.captions[k], self.images[k]]) for k in self.images]
        self.widget = w.VBox([
            w.HTML("<h3>Endoscopy frame restorer</h3><p>Move a slider and let go: the frame is degraded as set, "
                   f"the chosen model restores it, and the scores update.</p><p><small>{DISCLAIMER}</small></p>"),
            w.HBox([w.VBox(self.controls[:3]), w.VBox(self.controls[3:])]),
            w.HBox(columns), self.scores])
        for c in self.controls:
            c.observe(self.update, names="value")
        self.update()

    def settings(self) -> dict[str, Any]:
        return dict(model=self.model.value, gan_weight=self.gan_weight.value, blur_sigma=self.blur_sigma.value,
                    noise_std=self.noise_std.value, sp_amount=self.sp_amount.value, guard=self.guard.value)

    def update(self, change: Any = None) -> View:
        """Recompute and redraw for the current settings; returns the `View`."""
        self.gan_weight.disabled = self.model.value != GAN_MODEL
        try:
            view = restore_view(load_frame(self.frame.value), **self.settings())
        except Exception as e:                        # shown where the scores go, not only in the kernel's log
            self.scores.value = f"<p style='color:#b00020'>could not restore this frame: {html.escape(str(e))}</p>"
            raise
        out = view.scores["output"]
        titles = {"degraded": f"degraded input: {view.scores['input']['psnr']:.2f} dB",
                  "restored": f"{view.scores['model']}: {out['psnr']:.2f} dB", "clean": "clean frame"}
        for k, img in (("degraded", view.degraded), ("restored", view.restored), ("clean", view.clean)):
            self.images[k].value = png(img)
            self.captions[k].value = f"<b>{titles[k]}</b>"
        self.scores.value = scores_html(view.scores)
        self.view = view
        return view


def restorer_app(frame: str = REFERENCE, model: str = "quality") -> Any:
    """Display the app in a notebook (or Voilà) and return the `RestorerApp`."""
    from IPython.display import display
    app = RestorerApp(frame, model)
    display(app.widget)
    return app
