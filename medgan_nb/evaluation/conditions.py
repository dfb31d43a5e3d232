"""What an evaluation degrades, and how: the conditions, the goal conditions and the noise × blur grid.

- `evaluation_config(cfg)`: the config the evaluation set is built from: the task of `cfg` (image size,
  data, degradations and their strengths) with the seeds and sizes that would change the test images
  fixed (`EVAL_SEED`, `EVAL_SYNTHETIC_FRAMES`), so two models of one task see the same degraded inputs.
- `conditions_of(cfg, breakdown)`: condition name -> degradation names: "all" of ``cfg.degradations``,
  then each one alone.
- `build_degraders(cfg, conditions, breakdown)`: condition name -> its `Degradation`; named conditions
  are `Config` overrides (`GOAL_CONDITIONS`, or `grid_conditions`' one per (noise σ, blur σ) cell).
  Raises ValueError for an empty set or for overrides of the fields in `NOT_CONDITION_FIELDS`, which
  choose the images rather than their degradation.

`GOAL_BASELINES`, `GRID_BASELINES` and `NO_HARM_DB` set which classics each kind of run compares with and
the grid's "does no harm" line, in dB of PSNR.
"""

from __future__ import annotations

from typing import Sequence

from ..config.config import DEGRADATION_SETS, Config
from ..degrade.pipeline import Degradation
from .baselines import FAST_BASELINES, NEEDS_BM3D

EVAL_SEED = 0                   # seeds the synthetic test frames and every image's degradation
EVAL_SYNTHETIC_FRAMES = 1000    # synthetic frames of all splits together, as the original preset: 100 test frames

# The goal conditions: Config overrides of the task's degradation settings. Every setting that
# decides the degraded inputs is given, so a checkpoint's own (e.g. its sp_amount_range) never leaks in.
GOAL_CONDITIONS: dict[str, dict] = {
    "blur_noise": dict(degradations=("blur", "noise"), degradation_order="physical", blur_sigma=(0.5, 1.5),
                       blur_kernel=9, noise_std=0.075, noise_std_range=0.0, degradation_p=1.0),
    "original": dict(degradations=("noise", "salt_pepper", "blur"), degradation_order="original",
                     noise_std=0.15, noise_std_range=0.05, blur_kernel=5, blur_sigma=(0.1, 2.0), sp_amount=0.01,
                     sp_amount_range=0.0, sp_salt_ratio=0.5, degradation_p=1.0),
    "light": dict(degradations=("blur", "noise"), degradation_order="physical", blur_sigma=(0.3, 0.8),
                  blur_kernel=5, noise_std=0.02, noise_std_range=0.0, degradation_p=1.0),
}
GOAL_BASELINES: tuple[str, ...] = (*FAST_BASELINES, *NEEDS_BM3D)    # the goals are stated against CBM3D
# Fields a condition may not override: they choose the evaluation images, not how they are degraded.
NOT_CONDITION_FIELDS = ("seed", "image_size", "data_dir", "split_ratios", "resize", "frame_size",
                        "synthetic_frames", "max_images", "cache_images")
GRID_NOISE_STDS: tuple[float, ...] = (0.0, 0.02, 0.05, 0.075, 0.1, 0.15, 0.2)
GRID_BLUR_SIGMAS: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
GRID_BLUR_KERNEL = 9
GRID_BASELINES: tuple[str, ...] = ("nlm", "tv", "bilateral", "median")     # milliseconds each; CBM3D on request
NO_HARM_DB = -0.1       # the grid's goal: the model's PSNR never more than 0.1 dB below its input's


def conditions_of(cfg: Config, breakdown: bool = True) -> dict[str, tuple[str, ...]]:
    """Condition name -> degradations applied: "all" of cfg.degradations, then (breakdown) each one alone,
    plus each of the original's four (noise, salt-and-pepper, blur, colour jitter) that training left out."""
    conditions = {"all": tuple(cfg.degradations)}
    if breakdown:
        for name in dict.fromkeys([*cfg.degradations, *DEGRADATION_SETS["original"]]):
            if len(cfg.degradations) > 1 or name not in cfg.degradations:
                conditions[name] = (name,)
    return conditions


def build_degraders(cfg: Config, conditions: dict[str, dict] | None = None,
                    breakdown: bool = True) -> dict[str, Degradation]:
    """Condition name -> its Degradation: `conditions_of` the task, or, given named conditions (name -> Config
    overrides of the degradation settings, e.g. `GOAL_CONDITIONS`), each of them with all its degradations."""
    if conditions is None:
        return {c: Degradation(cfg, names) for c, names in conditions_of(cfg, breakdown).items()}
    if not conditions:
        raise ValueError("no conditions to evaluate: give at least one name -> Config overrides")
    for name, overrides in conditions.items():
        wrong = [k for k in overrides if k in NOT_CONDITION_FIELDS]
        if wrong:
            raise ValueError(f"condition {name!r} overrides {wrong}, which choose the evaluation images, not "
                             f"their degradation; set them in cfg instead")
    return {name: Degradation(cfg.replace(**overrides)) for name, overrides in conditions.items()}


def grid_conditions(noise_stds: Sequence[float] = GRID_NOISE_STDS, blur_sigmas: Sequence[float] = GRID_BLUR_SIGMAS,
                    blur_kernel: int = GRID_BLUR_KERNEL) -> dict[str, dict]:
    """One named condition per (noise σ, blur σ) cell, noise rows first: fixed strengths, physical order,
    every degradation applied. A strength of 0 leaves that degradation out (0, 0: the clean image)."""
    for name, values in (("noise_stds", noise_stds), ("blur_sigmas", blur_sigmas)):
        if not values or len(set(values)) != len(values) or min(values) < 0:
            raise ValueError(f"{name} must be distinct values >= 0, at least one; got {list(values)}")
    return {_cell(n, b): dict(degradations=("blur",) * (b > 0) + ("noise",) * (n > 0), degradation_order="physical",
                              noise_std=float(n), noise_std_range=0.0, blur_sigma=(float(b), float(b)),
                              blur_kernel=blur_kernel, degradation_p=1.0)
            for n in noise_stds for b in blur_sigmas}


def _cell(noise_std: float, blur_sigma: float) -> str:
    return f"noise {noise_std:g}, blur {blur_sigma:g}"


def evaluation_config(cfg: Config | None = None) -> Config:
    """The config the evaluation set is built from: the task of `cfg` (or of `Config()`) on fixed evaluation data.

    What the evaluation uses of `cfg` is the task: image_size, resize, data_dir, split_ratios, the degradations
    with their strengths and order (and batch_size, num_workers, which change no score). The fields that belong
    to a training run and would otherwise change the test images or their degradations are replaced: ``seed``
    (synthetic test frames, per-image degradation seeds) by `EVAL_SEED`, ``synthetic_frames`` by
    `EVAL_SYNTHETIC_FRAMES`, ``max_images`` by 0 (all; `evaluate` has its own) and ``cache_images`` by False.
    """
    return (cfg or Config()).replace(seed=EVAL_SEED, synthetic_frames=EVAL_SYNTHETIC_FRAMES, max_images=0,
                                     cache_images=False)
