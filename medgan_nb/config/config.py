"""One place for every knob: the `Config` dataclass and its named presets.

The original notebook kept its settings in a class of globals. Here they live in
one dataclass that can be printed, saved next to a run, loaded again and edited
field by field. The presets:

- ``original``: exactly the original notebook's recipe (256², 8-level UNet, 50 epochs, ...).
  Meant for a GPU: on a CPU each of its training iterations takes seconds.
- ``realtime`` and ``quality``: the shipped models' recipe (`RESTORE_RECIPE`: L1 pre-training with an
  EMA on random crops of real frames, wide degradations) with the generators the race chose.
- ``demo``: the real-time model's recipe, from scratch on the shipped frames in minutes on a CPU.
- ``lite``: the earlier real-time GAN recipe (a small UNet at 256²).
- ``ct``, ``mri``, ``xray``: 1-channel models of the real-time size on patches of real scans (`medgan_nb.data.scans`).
- ``tiny``: seconds; used by the tests and by the notebooks under ``MEDGAN_TINY=1``.

Intensities of the degradations (``noise_std``, ``sp_amount``, ...) are in
units of the [0, 1] image range, as in the original notebook, even though the
models see images in [-1, 1].
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    """Every setting of a run. Build one with ``Config.preset(name, **overrides)``; ``Config()`` is the original preset."""

    preset: str = "original"                 # the preset these values started from (the classmethod is set below)

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
    blocks: int = 1                        # nafnet: blocks per encoder/decoder level (the middle gets 2×)
    stem: int = 1                          # nafnet: pack stem×stem pixels into channels first (1, 2 or 4)
    depth: int = 8                         # UNet down-samplings; image_size % 2**depth == 0
    base_channels: int = 64
    max_channels: int = 512
    dropout: float = 0.5
    d_base_channels: int = 64
    d_layers: int = 3                      # 3 -> the 70x70 PatchGAN

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
    init_generator: str | None = None      # start G from this checkpoint's (EMA) weights: L1 pre-training -> GAN
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
    sample_every: int = 200                # steps between sample grids of fixed validation images
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
    ct_dose: tuple[float, float] = (2e3, 1e5)        # photons per detector bin and view (log-uniform)
    ct_views: tuple[int, int] = (0, 0)               # projection angles; (0, 0): a full scan (no sparse views)
    mri_noise: tuple[float, float] = (0.01, 0.06)    # Rician noise sigma, relative to the slice's maximum
    mri_acceleration: tuple[float, float] = (1.0, 4.0)  # k-space undersampling factor (1: fully sampled)
    mri_motion_px: tuple[float, float] = (0.0, 0.0)  # largest motion shift in pixels (0: no motion)
    xray_exposure: tuple[float, float] = (20.0, 1000.0)  # photons per pixel at full transmission (log-uniform)
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
        """Coerce JSON/YAML types (lists -> tuples) and reject values that cannot work."""
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
        unknown = [d for d in self.degradations if d not in KNOWN_DEGRADATIONS]
        if unknown:
            raise ValueError(f"degradations: unknown {unknown}; known: {list(KNOWN_DEGRADATIONS)}")
        order = DEGRADATION_ORDERS.get(self.degradation_order, ())
        misplaced = [d for d in self.degradations if d not in order]
        checks = [
            (self.image_size >= 8, "image_size must be >= 8"),
            (self.depth >= 2, "depth must be >= 2"),
            (self.image_size % self.size_multiple == 0,
             f"image_size {self.image_size} is not divisible by {self.size_multiple} (the generator halves it "
             f"{self.depth} times{' after its stem' if self.stem > 1 else ''}); use depth <= "
             f"{_max_depth(self.image_size // self.stem if self.image_size % self.stem == 0 else 1)} or an "
             f"image_size that is a multiple of {self.size_multiple}"),
            (self.stem in (1, 2, 4) and (self.generator == "nafnet" or self.stem == 1),
             "stem must be 1, 2 or 4, and only the nafnet generator has a stem"),
            (abs(sum(self.split_ratios) - 1) < 1e-6 and min(self.split_ratios) > 0,
             "split_ratios must be three positive numbers summing to 1 (train, validation and test each need "
             "images)"),
            (self.resize in ("squash", "crop"), "resize must be 'squash' or 'crop'"),
            (self.train_crop in ("none", "random"), "train_crop must be 'none' or 'random'"),
            (self.frame_size == 0 or self.frame_size >= self.image_size,
             f"frame_size must be 0 or >= image_size ({self.image_size}): val/test take image_size crops of frames"),
            (self.generator in ("unet", "nafnet"), "generator must be 'unet' or 'nafnet'"),
            (self.blocks >= 1 and self.crops_per_frame >= 1, "blocks and crops_per_frame must be >= 1"),
            (0 <= self.ema_decay < 1, "ema_decay must be in [0, 1) (0: no EMA)"),
            (0 <= self.degradation_p <= 1, "degradation_p must be in [0, 1]"),
            (self.noise_reuse >= 1, "noise_reuse must be >= 1 (1: fresh noise for every batch)"),
            (0 <= self.sp_amount_range <= self.sp_amount,
             "need 0 <= sp_amount_range <= sp_amount (the amount is drawn from sp_amount ± sp_amount_range)"),
            (self.gan_mode in ("vanilla", "lsgan"), "gan_mode must be 'vanilla' or 'lsgan'"),
            (self.degradation_order in DEGRADATION_ORDERS,
             f"degradation_order must be one of {sorted(DEGRADATION_ORDERS)}"),
            (not misplaced, f"degradation(s) {misplaced} have no place in the {self.degradation_order!r} order "
                            f"{order}; use degradation_order='physical'"),
            (self.bad_images in ("raise", "skip"), "bad_images must be 'raise' or 'skip'"),
            (self.blur_kernel % 2 == 1 and self.blur_kernel > 0, "blur_kernel must be a positive odd number"),
            (0 <= self.noise_std_range <= self.noise_std <= 1,
             "need 0 <= noise_std_range <= noise_std <= 1 (the std is drawn from noise_std ± noise_std_range)"),
            *_range_checks(self),
            (self.max_images >= 0 and self.synthetic_frames >= 0, "max_images and synthetic_frames must be >= 0"),
            (self.max_minutes >= 0, "max_minutes must be >= 0 (0: no time limit)"),
            (self.batch_size >= 1 and self.epochs >= 1 and self.g_steps >= 1,
             "batch_size, epochs and g_steps must be >= 1"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (0 <= self.sp_amount <= 1 and 0 <= self.sp_salt_ratio <= 1, "sp_amount and sp_salt_ratio must be in [0, 1]"),
            (min(self.lambda_l1, self.lambda_perceptual, self.lambda_adv) >= 0, "loss weights must be >= 0"),
            (self.pixel_loss in PIXEL_LOSSES, f"pixel_loss must be one of {PIXEL_LOSSES}"),
            (self.modality in MODALITIES, f"modality must be one of {MODALITIES}"),
            (self.channels == (3 if self.modality == "endoscopy" else 1),
             f"channels must be {3 if self.modality == 'endoscopy' else 1} for modality {self.modality!r}"),
            (self.scan_size >= self.image_size and self.scan_realisations >= 1,
             "need scan_size >= image_size and scan_realisations >= 1"),
            (self.ct_views == (0, 0) or self.ct_views[0] >= 1, "ct_views must be (0, 0) (full scan) or >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    # ------------------------------------------------------------ file I/O
    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

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
        """Write as JSON, or YAML when the file name ends in .yaml/.yml."""
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml
            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        path.write_text(text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """Read a JSON or YAML file written by `save` (or by hand: missing keys take the defaults of its preset)."""
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
        try:
            return cls.preset(data.pop("preset", "original"), **data)
        except (KeyError, ValueError) as e:
            raise type(e)(f"{path}: {e.args[0]}") from None


def _preset(cls: type[Config], name: str, **overrides: Any) -> Config:
    """The named preset with some fields changed, e.g. ``Config.preset("demo", epochs=2)``."""
    name = RENAMED_VALUES.get(("preset", name), name)
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return cls.from_dict({**PRESETS[name], "preset": name, **overrides})


# Set after the class is made: defined in its body, the method would replace the field's default ("original").
Config.preset = classmethod(_preset)  # type: ignore[assignment,method-assign]

# (low, high) fields and the bounds their values must keep.
_RANGES: dict[str, tuple[float, float]] = {
    "blur_sigma": (0.0, 10.0), "jpeg_quality": (1, 100), "motion_blur_length": (0.0, 64.0),
    "low_light_gain": (0.01, 1.0), "low_light_gamma": (0.1, 5.0), "glare_spots": (0, 20), "vignetting": (0.0, 1.0),
    "ct_dose": (1.0, float("inf")), "ct_views": (0, 100000), "mri_noise": (0.0, 1.0), "mri_acceleration": (1.0, 64.0),
    "mri_motion_px": (0.0, 64.0), "xray_exposure": (1e-3, float("inf")), "xray_blur": (0.0, 10.0),
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


_ORIGINAL = {}  # the dataclass defaults are the original recipe
# Restoration training: a wide range of degradations, each present with probability 0.7, so light
# and clean inputs occur (the model must learn to leave them alone); both orders of noise and blur.
WIDE_DEGRADATIONS = dict(degradations=("blur", "noise", "salt_pepper"), degradation_order="mixed",
                         degradation_p=0.7, blur_sigma=(0.0, 2.0), blur_kernel=9, noise_std=0.1, noise_std_range=0.1,
                         sp_amount=0.01, sp_amount_range=0.01)
# PSNR-oriented pre-training on random 128² crops of real frames (L1 only: D is not run), with an EMA of G.
RESTORE_RECIPE = dict(image_size=128, frame_size=256, train_crop="random", cache_images=True, resize="crop",
                      batch_size=16, g_steps=1, lambda_adv=0.0, lambda_l1=1.0, lambda_perceptual=0.0, lr_g=1e-3,
                      beta1=0.9, beta2=0.99, ema_decay=0.999, dropout=0.0, d_base_channels=32,
                      save_every=5, log_every=20, **WIDE_DEGRADATIONS)
# The generators `python -m benchmarks race` chose at equal CPU time (see docs/model-zoo.md, "Choosing the generators").
REALTIME_UNET = dict(generator="unet", residual=True, depth=5, base_channels=16, max_channels=128)
QUALITY_NAFNET = dict(generator="nafnet", residual=True, base_channels=24, depth=3, stem=2, blocks=1)
# CT, MRI and X-ray: the real-time UNet with one channel and the restoration recipe (L1 + EMA) on random
# 128² patches of the real sample scans (medgan_nb.data.scans), each training slice degraded scan_realisations times.
SCAN_RECIPE = dict(channels=1, image_size=128, batch_size=16, g_steps=1, lambda_adv=0.0, lambda_l1=1.0,
                   lambda_perceptual=0.0, lr_g=1e-3, beta1=0.9, beta2=0.99, ema_decay=0.999, dropout=0.0,
                   d_base_channels=32, save_every=10, log_every=20, epochs=300, lr_decay_start=150,
                   max_minutes=12.0, **REALTIME_UNET)
PRESETS: dict[str, dict[str, Any]] = {
    "original": _ORIGINAL,
    # Minutes on 2 CPU cores: the real-time model's architecture and recipe, trained from scratch on the
    # shipped real frames (random 128² crops, 8 per frame and epoch) for a fixed 80 epochs; the 120-minute
    # safety stop only ends a run on a machine several times slower than 2 quiet cores, and the demo says so.
    "demo": {**RESTORE_RECIPE, **REALTIME_UNET, "crops_per_frame": 8, "epochs": 80, "lr_decay_start": 40,
             "max_minutes": 120.0, "save_every": 10},
    # Minutes on 2 CPU cores, for the notebooks: the original's pix2pix recipe (adversarial + L1 x 70, no VGG
    # term: its weights need a download) at 64², a 5-level UNet with 32 base channels, on the shipped real
    # frames (random crops, 4 per frame and epoch), 12 epochs; a 10-minute safety stop per run.
    "notebook": dict(
        image_size=64, frame_size=128, train_crop="random", crops_per_frame=4, cache_images=True, resize="crop",
        depth=5, base_channels=32, max_channels=256, d_base_channels=32, batch_size=16, epochs=12,
        lr_decay_start=6, g_steps=1, lambda_perceptual=0.0, degradation_order="physical",
        degradations=("blur", "noise", "salt_pepper"), max_minutes=10.0, save_every=2, log_every=20,
    ),
    # Real time on a CPU: the original's UNet scaled down (5 levels, 16-128 channels, no dropout; 1.04 M
    # parameters, ~8-15 ms per 256² frame on 2 cores), trained at 256² on the demo's data and degradations,
    # with a narrow discriminator (16 base channels: at 64 it would cost several times the generator) and
    # the images cached in memory after the first epoch. See medgan_nb.models for the design.
    "lite": dict(
        image_size=256, depth=5, base_channels=16, max_channels=128, dropout=0.0, d_base_channels=16,
        batch_size=8, epochs=10, lr_decay_start=5, g_steps=1, lambda_perceptual=0.0, synthetic_frames=800,
        resize="crop", degradation_order="physical", degradations=("blur", "noise", "salt_pepper"),
        cache_images=True, save_every=2, log_every=20,
    ),
    # The shipped models, trained on real frames with the restoration recipe (L1 pre-training + EMA):
    # real time: the lite UNet with a residual output (1.04 M parameters, 6-11 ms per 256² frame on 2 cores);
    # quality: a NAFNet-style UNet on 2×2-packed pixels (0.91 M parameters, 2.5-7× the time per frame).
    "realtime": dict(**RESTORE_RECIPE, **REALTIME_UNET, epochs=400, lr_decay_start=200),
    "quality": dict(**RESTORE_RECIPE, **QUALITY_NAFNET, epochs=100, lr_decay_start=50),
    # One per modality; CT works at 256² (a low-dose reconstruction costs ~0.6 s there, 4 s at 512²).
    "ct": dict(**SCAN_RECIPE, modality="ct", scan_size=256, scan_realisations=24, crops_per_frame=4),
    "mri": dict(**SCAN_RECIPE, modality="mri", scan_size=512, scan_realisations=24, crops_per_frame=4),
    "xray": dict(**SCAN_RECIPE, modality="xray", scan_size=512, scan_realisations=24, crops_per_frame=8),
    # Seconds: for tests and notebooks in tiny mode; still learns enough to beat its degraded input.
    "tiny": dict(
        image_size=32, depth=3, base_channels=8, max_channels=32, d_base_channels=8, d_layers=2, residual=True,
        batch_size=4, epochs=3, lr_decay_start=2, lr_g=1e-3, lr_d=5e-4, g_steps=1, lambda_perceptual=0.0,
        synthetic_frames=40, max_images=48, resize="crop", degradation_order="physical",
        degradations=("blur", "noise", "salt_pepper"), save_every=1, log_every=1,
    ),
}
