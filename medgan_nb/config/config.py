"""One place for every knob: the `Config` dataclass, its checks, and the values some fields choose from
(degradation sets and orders, modalities, pixel losses, inference backends).

The original notebook kept its settings in a class of globals. Here they live in
one dataclass that can be printed, saved next to a run, loaded again and edited
field by field. ``Config.from_preset(name, **overrides)`` starts from one of the named
presets (`PRESETS`, defined in `medgan_nb.config.presets`); every config is validated
when it is made, so a bad value fails early with a message that names the field.

Intensities of the degradations (``noise_std``, ``sp_amount``, ...) are in
units of the [0, 1] image range, as in the original notebook, even though the
models see images in [-1, 1].
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .presets import PRESETS

# Named sets of degradations (see medgan_nb.degrade for what each one does).
DEGRADATION_SETS: dict[str, tuple[str, ...]] = {
    "original": ("noise", "salt_pepper", "blur", "color_jitter"),
    "endoscopy": ("glare", "motion_blur", "vignetting", "low_light", "noise", "jpeg"),
}
# The order each ``degradation_order`` applies them in (see medgan_nb.degrade for why).
DEGRADATION_ORDERS: dict[str, tuple[str, ...]] = {
    "original": ("noise", "salt_pepper", "blur", "color_jitter"),
    "physical": ("glare", "blur", "motion_blur", "vignetting", "color_jitter", "low_light",
                 "noise", "salt_pepper", "jpeg"),
    "mixed": ("noise", "salt_pepper", "blur", "color_jitter"),   # per image: the original or the physical order
}
KNOWN_DEGRADATIONS = DEGRADATION_ORDERS["physical"]
MODALITIES = ("endoscopy", "ct", "mri", "xray")
# Values renamed since configs and checkpoints were first saved: (field, old value) -> new value, applied on loading.
RENAMED_VALUES = {("preset", "seed"): "original", ("degradation_order", "seed"): "original",
                  ("degradations", "seed"): "original"}
PIXEL_LOSSES = ("l1", "log_l1")
# Inference engines of `medgan_nb.inference.backends.fast_generator` (and `enhance --backend`); "auto" measures them here.
INFERENCE_BACKENDS = ("auto", "torch", "torch-channels-last", "torch-bf16", "onnxruntime", "openvino", "openvino-bf16")
OUTPUT_ENV = "MEDGAN_OUTPUT"      # environment variable: where runs go when a config does not say (tests set it)


def default_output_dir() -> str:
    """``$MEDGAN_OUTPUT`` if set, else ``output`` (relative to the working directory)."""
    return os.environ.get(OUTPUT_ENV) or "output"


@dataclass
class Config:
    """Every setting of a run. Build one with ``Config.from_preset(name, **overrides)``; ``Config()`` is the original preset."""

    preset: str = "original"                 # the preset these values started from (`from_preset`)

    # data
    image_size: int = 256
    channels: int = 3                      # 3 (RGB endoscopy) or 1 (the CT, MRI and X-ray models)
    modality: str = "endoscopy"            # "endoscopy" (RGB frames, medgan_nb.degrade) or "ct", "mri", "xray"
                                           # (1-channel scans, medgan_nb.degrade and medgan_nb.data.scans)
    data_dir: str | None = None            # None: the shipped Kvasir-SEG frames (data/kvasir-sample); "synthetic":
                                           # scikit-image's patches + procedural frames; or any folder of images
                                           # (a Kvasir-SEG folder with images/ + masks/ also gives polyp masks)
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train / val / test
    resize: str = "squash"                 # "squash" (original) or "crop" (keep aspect ratio)
    frame_size: int = 0                    # frames are first scaled so their shorter side is this (0: image_size);
                                           # val/test then take the centre image_size crop
    train_crop: str = "none"               # "none" (the whole frame, resized by `resize`) or "random": random
                                           # image_size crops at ×1-×2 of frame_size scale, flips and rot90
    crops_per_frame: int = 1               # train_crop="random": crops of each frame per epoch (small data sets)
    train_scale: tuple[float, float] = (1.0, 2.0)  # train_crop="random": the crops' scale, in multiples of the test
                                           # scale (frame_size): 1 the same, 2 twice as fine, 0.5 twice as coarse
    soft_p: float = 0.0                    # train_crop="random": share of crops made soft like an upscaled
    soft_factor: tuple[float, float] = (1.5, 3.0)  # standard-definition frame: scaled down by a factor in
                                           # soft_factor and back up, clean target included (see random_crop)
    white_balance: float = 0.0             # train_crop="random": each colour channel of the clean crop times a gain
                                           # in [1 - w, 1 + w] (other cameras' colour; see random_crop); 0: off
    synthetic_frames: int = 1000           # procedural endoscopy frames, all splits together
    max_images: int = 0                    # use at most this many images per split, evenly spread (0: all)
    num_workers: int = 0
    cache_images: bool = False             # keep loaded images in memory (float16) after the first epoch
    bad_images: str = "raise"              # unreadable files in data_dir: "raise" (stop, naming the file) or
                                           # "skip" (leave out, count, list in the run's skipped_images.csv)

    # models
    generator: str = "unet"                # "unet" (pix2pix: 4×4 stride-2 convs, BatchNorm) or "nafnet" (NAFNet
                                           # blocks: LayerNorm, depthwise 3×3, SimpleGate; pixel-(un)shuffle)
    residual: bool = False                 # the generator predicts a correction that is added to its input
    noise_map: bool = False                # unet: a further input channel, the noise std estimated from the
                                           # input itself (FFDNet-style; see medgan_nb.models.unet)
    noise_map_scales: tuple[int, ...] = (1,)   # noise_map: one channel per scale (1, 2, 4: estimated on 2×2 and
                                           # 4×4 block averages too, which see noise blurred after it was added)
    blocks: int = 1                        # nafnet: blocks per encoder/decoder level (the middle gets 2×)
    stem: int = 1                          # nafnet: pack stem×stem pixels into channels first (1, 2 or 4)
    depth: int = 8                         # UNet down-samplings; image_size % 2**depth == 0
    base_channels: int = 64
    max_channels: int = 512
    dropout: float = 0.5
    d_base_channels: int = 64
    d_layers: int = 3                      # 3 -> the 70x70 PatchGAN
    d_input: str = "image"                 # what D sees of each image: "image" (pix2pix) or "detail" (x minus a
                                           # 1-pixel Gaussian blur of x: texture only; for GAN fine-tuning)
    d_norm: str = "batch"                  # D's normalisation: "batch" (pix2pix), "none" or "spectral" (inner
                                           # convs divided by their largest singular value: limits D's slope)

    # optimisation
    batch_size: int = 4
    epochs: int = 50
    lr_g: float = 2e-4
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    g_steps: int = 3                       # generator updates per discriminator update
    lr_decay_start: int = 30               # linear decay to 0 from this epoch to the end
    gan_mode: str = "vanilla"              # "vanilla" (BCE with logits) or "lsgan"
    lambda_adv: float = 1.0
    lambda_l1: float = 70.0
    pixel_loss: str = "l1"                 # "l1" (mean over the batch) or "log_l1" (mean over images of
                                           # log(L1 + 1e-3): light and heavy degradations weigh alike, as in mean PSNR)
    lambda_perceptual: float = 10.0
    ema_decay: float = 0.0                 # keep an exponential moving average of G's weights (0: off); validation,
                                           # best.pt and enhance then use the average
    init_generator: str | None = None      # start G from this checkpoint's (EMA) weights or a shipped model's
                                           # (its name, e.g. "quality"): L1 pre-training -> GAN fine-tuning
    seed: int = 42
    device: str = "auto"                   # "auto" (CUDA if present), "cpu", "cuda", "cuda:1", ...
    amp: bool = True                       # mixed precision + channels_last on CUDA (ignored on the CPU)
    deterministic: bool = False            # torch.use_deterministic_algorithms (bit-exact resume, slower)
    sync_batchnorm: bool = False           # torchrun on GPUs: BatchNorm statistics over all processes (see train)

    # bookkeeping
    max_minutes: float = 0.0               # safety stop: end training after this many wall-clock minutes even if
                                           # epochs remain (0: none); the run records it (train.training_summary)
    save_every: int = 5                    # epochs between kept checkpoints (last.pt is written every epoch)
    log_every: int = 10                    # batches between log lines
    sample_every: int = 200                # steps between sample grids of fixed validation images (0: none)
    tensorboard: bool = False              # also log to <run>/tensorboard (needs `pip install tensorboard`);
                                           # metrics.csv and val.csv are written either way
    output_dir: str = field(default_factory=default_output_dir)   # runs go to <output_dir>/runs/<name>/

    # degradations
    degradations: tuple[str, ...] = DEGRADATION_SETS["original"]
    degradation_order: str = "original"    # "original" (noise, s&p, blur, jitter), "physical" or "mixed" (each image
                                           # one of the two, at random: blurred noise and noisy blur)
    noise_std: float = 0.15
    noise_std_range: float = 0.05          # std drawn from noise_std ± noise_std_range
    degradation_p: float = 1.0             # each enabled degradation is applied to an image with this probability
    noise_reuse: int = 1                   # 1: fresh random numbers for every pixel of every batch; k > 1: training
                                           # batches take their noise from a bank of normals where each value is
                                           # drawn once and used by about k images (k times fewer draws; evaluation
                                           # keeps fresh per-image draws); see degrade.NoiseBank
    sp_amount: float = 0.01                # fraction of pixels hit by salt-and-pepper
    sp_amount_range: float = 0.0           # amount drawn from sp_amount ± sp_amount_range
    sp_salt_ratio: float = 0.5
    blur_kernel: int = 5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.05
    jpeg_quality: tuple[int, int] = (15, 50)
    motion_blur_length: tuple[float, float] = (3.0, 9.0)  # pixels at 256², scaled with size
    low_light_gain: tuple[float, float] = (0.35, 0.8)
    low_light_gamma: tuple[float, float] = (1.0, 1.6)
    glare_spots: tuple[int, int] = (0, 3)
    vignetting: tuple[float, float] = (0.2, 0.6)

    # CT, MRI and X-ray (modality != "endoscopy"; see medgan_nb.degrade): (low, high) ranges drawn per slice
    scan_size: int = 256                   # slices are resized to this side (CT: square) before degradation
    scan_realisations: int = 16            # degraded copies of each training slice, made once (see scans.ScanPairs)
    ct_dose: tuple[float, float] = (2e3, 1e5)        # photons per detector bin and view (log-uniform); as HU
                                                     # noise: medgan_nb.degrade.ct.water_cylinder_noise
    ct_views: tuple[int, int] = (0, 0)               # projection angles; (0, 0): a full scan (no sparse views)
    mri_noise: tuple[float, float] = (0.01, 0.06)    # Rician noise sigma, relative to the slice's maximum
    mri_acceleration: tuple[float, float] = (1.0, 4.0)  # k-space undersampling factor (1: fully sampled)
    mri_motion_px: tuple[float, float] = (0.0, 0.0)  # largest motion shift in pixels (0: no motion)
    xray_exposure: tuple[float, float] = (100.0, 5000.0)  # photons per pixel at the most exposed end (log-uniform)
    xray_blur: tuple[float, float] = (0.0, 1.5)     # detector blur sigma in pixels

    def __post_init__(self) -> None:
        self.validate()

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this: the generator's stem × 2**depth."""
        return (self.stem if self.generator == "nafnet" else 1) * 2**self.depth

    def replace(self, **changes: Any) -> "Config":
        """A copy with some fields changed (validated like any config)."""
        return Config.from_dict({**self.to_dict(), **changes})

    # ------------------------------------------------------------ validation
    def validate(self) -> None:
        """Coerce JSON/YAML types (lists -> tuples) and reject values that cannot work (ValueError naming the
        field). Values renamed since configs were first saved (`RENAMED_VALUES`) take their new name."""
        self._coerce_fields()
        unknown = [d for d in self.degradations if d not in KNOWN_DEGRADATIONS]
        if unknown:
            raise ValueError(f"degradations: unknown {unknown}; known: {list(KNOWN_DEGRADATIONS)}")
        for ok, message in _value_checks(self):
            if not ok:
                raise ValueError(message)

    def _coerce_fields(self) -> None:
        """Each field to its declared type, renamed values to their new name, a named degradation set to its
        degradations."""
        hints = typing.get_type_hints(Config)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                value = RENAMED_VALUES.get((f.name, value), value)
            if f.name == "degradations" and isinstance(value, str):
                if value not in DEGRADATION_SETS:
                    raise ValueError(f"degradations: unknown set {value!r}; "
                                     f"use one of {sorted(DEGRADATION_SETS)} or a list of names")
                value = DEGRADATION_SETS[value]
            setattr(self, f.name, _coerce(f.name, value, hints[f.name]))

    # ------------------------------------------------------------ file I/O
    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "Config":
        """The named preset (`PRESETS`) with some fields changed, e.g. ``Config.from_preset("demo", epochs=2)``;
        ValueError for an unknown name. A renamed preset's old name (`RENAMED_VALUES`) gives the new one."""
        name = RENAMED_VALUES.get(("preset", name), name)
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name], "preset": name, **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        """Build from a plain dict; an unknown key is an error that names it. Configs saved before a rename
        (`RENAMED_VALUES`, e.g. the preset "seed", now "original") load with the new name."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise KeyError(f"unknown config key(s) {unknown}; valid keys: {sorted(names)}")
        return cls(**data)

    def save(self, path: str | Path) -> Path:
        """Write as JSON, or YAML when the file name ends in .yaml/.yml; atomically (`atomic_write`: a full disk
        leaves no half-written file)."""
        from ..utils.files import atomic_write      # here: importing the config loads no image libraries
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml
            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        with atomic_write(path) as f:
            f.write(text.encode())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """Read a JSON or YAML file written by `save` (or by hand: missing keys take the defaults of its preset).

        FileNotFoundError for a missing file, ValueError naming the file for one that is not valid JSON/YAML or
        holds a bad value.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found; give an existing JSON or YAML file, "
                                    f"or a named preset with --preset")
        text = path.read_text()
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml
                try:
                    data = yaml.safe_load(text) or {}
                except yaml.YAMLError as e:
                    raise ValueError(" ".join(str(e).split())) from None
            else:
                data = json.loads(text)
        except ValueError as e:                         # json.JSONDecodeError is one
            raise ValueError(f"{path} is not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'}: "
                             f"{e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
        try:
            return cls.from_preset(data.pop("preset", "original"), **data)
        except (KeyError, ValueError) as e:
            raise type(e)(f"{path}: {e.args[0]}") from None


def _value_checks(cfg: Config) -> list[tuple[bool, str]]:
    """(ok, message) for every rule a config's values must keep, in the order they are reported; the fields
    already have their declared types."""
    order = DEGRADATION_ORDERS.get(cfg.degradation_order, ())
    misplaced = [d for d in cfg.degradations if d not in order]
    return [
        *_kind_checks(cfg),
        (cfg.image_size >= 8, "image_size must be >= 8"),
        (cfg.depth >= 2, "depth must be >= 2"),
        (cfg.image_size % cfg.size_multiple == 0,
         f"image_size {cfg.image_size} is not divisible by {cfg.size_multiple} (the generator halves it "
         f"{cfg.depth} times{' after its stem' if cfg.stem > 1 else ''}); use depth <= "
         f"{_max_depth(cfg.image_size // cfg.stem if cfg.image_size % cfg.stem == 0 else 1)} or an "
         f"image_size that is a multiple of {cfg.size_multiple}"),
        (cfg.stem in (1, 2, 4) and (cfg.generator == "nafnet" or cfg.stem == 1),
         "stem must be 1, 2 or 4, and only the nafnet generator has a stem"),
        (abs(sum(cfg.split_ratios) - 1) < 1e-6 and min(cfg.split_ratios) > 0,
         "split_ratios must be three positive numbers summing to 1 (train, validation and test each need "
         "images)"),
        (cfg.resize in ("squash", "crop"), "resize must be 'squash' or 'crop'"),
        (cfg.train_crop in ("none", "random"), "train_crop must be 'none' or 'random'"),
        (cfg.frame_size == 0 or cfg.frame_size >= cfg.image_size,
         f"frame_size must be 0 or >= image_size ({cfg.image_size}): val/test take image_size crops of frames"),
        (cfg.generator in ("unet", "nafnet"), "generator must be 'unet' or 'nafnet'"),
        (0 <= cfg.ema_decay < 1, "ema_decay must be in [0, 1) (0: no EMA)"),
        (0 <= cfg.degradation_p <= 1, "degradation_p must be in [0, 1]"),
        (0 <= cfg.soft_p <= 1, "soft_p must be in [0, 1]"),
        (0 <= cfg.white_balance < 1, "white_balance must be in [0, 1)"),
        (not cfg.noise_map or cfg.generator == "unet", "noise_map: only the unet generator takes a noise map"),
        (len(cfg.noise_map_scales) >= 1 and all(isinstance(v, int) and v >= 1 for v in cfg.noise_map_scales)
         and len(set(cfg.noise_map_scales)) == len(cfg.noise_map_scales),
         f"noise_map_scales must be distinct integers >= 1, at least one; got {cfg.noise_map_scales}"),
        (cfg.noise_reuse >= 1, "noise_reuse must be >= 1 (1: fresh noise for every batch)"),
        (0 <= cfg.sp_amount_range <= cfg.sp_amount,
         "need 0 <= sp_amount_range <= sp_amount (the amount is drawn from sp_amount ± sp_amount_range)"),
        (cfg.gan_mode in ("vanilla", "lsgan"), "gan_mode must be 'vanilla' or 'lsgan'"),
        (cfg.d_input in ("image", "detail"), f"d_input must be 'image' or 'detail', got {cfg.d_input!r}"),
        (cfg.d_norm in ("batch", "none", "spectral"),
         f"d_norm must be 'batch', 'none' or 'spectral', got {cfg.d_norm!r}"),
        (cfg.degradation_order in DEGRADATION_ORDERS,
         f"degradation_order must be one of {sorted(DEGRADATION_ORDERS)}"),
        (not misplaced, f"degradation(s) {misplaced} have no place in the {cfg.degradation_order!r} order "
                        f"{order}; use degradation_order='physical'"),
        (cfg.bad_images in ("raise", "skip"), "bad_images must be 'raise' or 'skip'"),
        (cfg.blur_kernel % 2 == 1 and cfg.blur_kernel > 0, "blur_kernel must be a positive odd number"),
        (0 <= cfg.noise_std_range <= cfg.noise_std <= 1,
         "need 0 <= noise_std_range <= noise_std <= 1 (the std is drawn from noise_std ± noise_std_range)"),
        *_range_checks(cfg),
        (0 <= cfg.dropout < 1, "dropout must be in [0, 1)"),
        (0 <= cfg.sp_amount <= 1 and 0 <= cfg.sp_salt_ratio <= 1, "sp_amount and sp_salt_ratio must be in [0, 1]"),
        (cfg.pixel_loss in PIXEL_LOSSES, f"pixel_loss must be one of {PIXEL_LOSSES}"),
        (cfg.modality in MODALITIES, f"modality must be one of {MODALITIES}"),
        (cfg.channels == (3 if cfg.modality == "endoscopy" else 1),
         f"channels must be {3 if cfg.modality == 'endoscopy' else 1} for modality {cfg.modality!r}"),
        (cfg.scan_size >= cfg.image_size and cfg.scan_realisations >= 1,
         "need scan_size >= image_size and scan_realisations >= 1"),
        (cfg.ct_views == (0, 0) or cfg.ct_views[0] >= 1, "ct_views must be (0, 0) (full scan) or >= 1"),
    ]


# One rule per kind of field; the more specific rules of `_value_checks` come after these.
POSITIVE_INTS = ("base_channels", "max_channels", "d_base_channels", "d_layers", "blocks",
                 "crops_per_frame", "batch_size", "epochs", "g_steps", "save_every", "log_every",
                 "scan_size", "scan_realisations")
NON_NEGATIVE_INTS = ("frame_size", "synthetic_frames", "max_images", "num_workers", "lr_decay_start", "sample_every")
NON_NEGATIVE_FLOATS = ("lr_g", "lr_d", "lambda_adv", "lambda_l1", "lambda_perceptual", "max_minutes",
                       "noise_std", "noise_std_range", "sp_amount", "sp_amount_range", "brightness", "contrast",
                       "saturation", "hue")
SEED_RANGE = (0, 2**32 - 1)             # what numpy's and torch's generators both accept


def _kind_checks(cfg: Config) -> list[tuple[bool, str]]:
    """Positive integers (counts, sizes, intervals), non-negative integers (0: off or all), non-negative finite
    floats (rates, weights, strengths), every other float finite (JSON's NaN and Infinity are refused), and the
    seed within `SEED_RANGE`."""
    not_finite = [f.name for f in dataclasses.fields(cfg) if any(
        isinstance(v, float) and not math.isfinite(v) for v in _values(getattr(cfg, f.name)))]
    return [
        *((getattr(cfg, n) >= 1, f"{n} must be an integer >= 1, got {getattr(cfg, n)}") for n in POSITIVE_INTS),
        *((getattr(cfg, n) >= 0, f"{n} must be an integer >= 0 (0: none or all), got {getattr(cfg, n)}")
          for n in NON_NEGATIVE_INTS),
        *((math.isfinite(getattr(cfg, n)) and getattr(cfg, n) >= 0,
           f"{n} must be a finite number >= 0, got {getattr(cfg, n)}") for n in NON_NEGATIVE_FLOATS),
        (not not_finite, f"{', '.join(not_finite)}: NaN and Infinity are not settings; give finite numbers"),
        (SEED_RANGE[0] <= cfg.seed <= SEED_RANGE[1],
         f"seed must be between {SEED_RANGE[0]} and {SEED_RANGE[1]}, got {cfg.seed}"),
        (cfg.output_dir.strip() != "", "output_dir must name a folder (runs go to <output_dir>/runs/); "
                                       "drop the setting for the default"),
    ]


def _values(value: Any) -> tuple:
    """A field's values: the items of a tuple field, else the value alone."""
    return value if isinstance(value, tuple) else (value,)


# (low, high) fields and the bounds their values must keep.
_RANGES: dict[str, tuple[float, float]] = {
    "blur_sigma": (0.0, 10.0), "jpeg_quality": (1, 100), "motion_blur_length": (0.0, 64.0),
    "low_light_gain": (0.01, 1.0), "low_light_gamma": (0.1, 5.0), "glare_spots": (0, 20), "vignetting": (0.0, 1.0),
    "ct_dose": (1.0, float("inf")), "ct_views": (0, 100000), "mri_noise": (0.0, 1.0), "mri_acceleration": (1.0, 64.0),
    "mri_motion_px": (0.0, 64.0), "xray_exposure": (1e-3, float("inf")), "xray_blur": (0.0, 10.0),
    "train_scale": (0.125, 2.0), "soft_factor": (1.0, 8.0),     # frames are kept at twice frame_size at most
}


def _range_checks(cfg: Config) -> list[tuple[bool, str]]:
    """Each (low, high) field must satisfy bound_low <= low <= high <= bound_high."""
    return [(lo_bound <= getattr(cfg, name)[0] <= getattr(cfg, name)[1] <= hi_bound,
             f"{name} must be (low, high) with {lo_bound} <= low <= high <= {hi_bound}, got {getattr(cfg, name)}")
            for name, (lo_bound, hi_bound) in _RANGES.items()]


def _max_depth(size: int) -> int:
    depth = 0
    while size % 2 == 0 and size > 1:
        size //= 2
        depth += 1
    return depth


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Turn a JSON/YAML value into the field's declared type, or raise naming the field."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}: expected a list, got {value!r}")
        if args and args[-1] is Ellipsis:
            return tuple(_coerce(name, v, args[0]) for v in value)
        if len(value) != len(args):
            raise ValueError(f"{name}: expected {len(args)} values, got {list(value)!r}")
        return tuple(_coerce(name, v, a) for v, a in zip(value, args))
    if args and type(None) in args:             # Optional[X]
        return None if value is None else _coerce(name, value, next(a for a in args if a is not type(None)))
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is bool and isinstance(value, bool):
        return value
    if hint in (int, str) and isinstance(value, hint) and not isinstance(value, bool):
        return value
    raise ValueError(f"{name}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
