"""The named presets of `medgan_nb.config.Config`: each a dict of the fields that differ from the defaults.

``Config.from_preset(name, **overrides)`` builds one; ``Config()`` is ``original``. The presets:

- ``original``: exactly the original notebook's recipe (256², 8-level UNet, 50 epochs, ...).
  Meant for a GPU: on a CPU each of its training iterations takes seconds.
- ``realtime`` and ``quality``: the shipped models' recipe (`RESTORE_RECIPE`: L1 pre-training with an
  EMA on random crops of real frames, wide degradations) with the generators the race chose.
- ``sharp``: the quality model fine-tuned with the conditional GAN loss (`GAN_FINETUNE`), for sharper texture.
- ``demo``: the real-time model's recipe, from scratch on the shipped frames in minutes on a CPU.
- ``notebook``: the original's pix2pix recipe, small enough for the notebooks' training cells on a CPU.
- ``lite``: the earlier real-time GAN recipe (a small UNet at 256²).
- ``ct``, ``mri``, ``xray``: 1-channel models of the real-time size on patches of real scans (`medgan_nb.data.scans`).
- ``tiny``: seconds; used by the tests and by the notebooks under ``MEDGAN_TINY=1``.

The recipes they are built from (`WIDE_DEGRADATIONS`, `RESTORE_RECIPE`, `REALTIME_UNET`, `QUALITY_NAFNET`,
`SCAN_RECIPE`) are plain dicts too, so a script can combine them (``benchmarks/race.py`` does). Only field
names and values live here: `Config` checks them when a preset is built.
"""

from __future__ import annotations

from typing import Any

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
# GAN fine-tuning of a shipped L1 model (ESRGAN's two stages): the conditional PatchGAN loss next to L1, D shown
# only the fine detail of the images and without BatchNorm (only then did a D learn something that held on frames it
# had not seen: docs/training.md), its inner layers spectrally normalised (that delayed, not prevented, the collapse
# that ended every run whose D learnt, after 12-21 stable epochs: hence 20 epochs, a checkpoint every 2, chosen with
# scripts/gan_curve.py), no EMA (it would average the fine-tune away), Adam with beta1 = 0.5 as in pix2pix, a
# constant learning rate.
GAN_FINETUNE = dict(lambda_adv=0.1, lambda_l1=1.0, d_input="detail", d_norm="spectral", ema_decay=0.0, lr_g=1e-4,
                    lr_d=2e-4, beta1=0.5, beta2=0.999, epochs=20, lr_decay_start=20, save_every=2)
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
    # parameters), trained at 256² on the demo's data and degradations,
    # with a narrow discriminator (16 base channels: at 64 it would cost several times the generator) and
    # the images cached in memory after the first epoch. See medgan_nb.models for the design.
    "lite": dict(
        image_size=256, depth=5, base_channels=16, max_channels=128, dropout=0.0, d_base_channels=16,
        batch_size=8, epochs=10, lr_decay_start=5, g_steps=1, lambda_perceptual=0.0, synthetic_frames=800,
        resize="crop", degradation_order="physical", degradations=("blur", "noise", "salt_pepper"),
        cache_images=True, save_every=2, log_every=20,
    ),
    # The shipped models, trained on real frames with the restoration recipe (L1 pre-training + EMA):
    # real time: the lite UNet with a residual output (1.04 M parameters);
    # quality: a NAFNet-style UNet on 2×2-packed pixels (0.91 M parameters, slower per frame).
    "realtime": dict(**RESTORE_RECIPE, **REALTIME_UNET, epochs=400, lr_decay_start=200),
    "quality": dict(**RESTORE_RECIPE, **QUALITY_NAFNET, epochs=100, lr_decay_start=50),
    # sharp: the quality model fine-tuned with the GAN loss (same architecture: `--gan-weight` interpolates them).
    "sharp": {**RESTORE_RECIPE, **QUALITY_NAFNET, **GAN_FINETUNE, "init_generator": "quality"},
    # One per modality; CT works at 256² (a low-dose reconstruction there costs a fraction of one at 512²).
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
