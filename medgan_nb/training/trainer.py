"""One training iteration of the conditional GAN, and what it needs: networks, losses, optimisers, EMA.

- `make_trainer(cfg, device, perceptual)`: builds G and D (`medgan_nb.models.build`), the generator loss
  (`medgan_nb.losses`) and the two Adam optimisers of `cfg` on `device`, as a `Trainer`.
- `Trainer(clean, degraded)`: batches (N, C, H, W) in [-1, 1] on the device -> (D's loss, G's last
  `GeneratorLossParts`): one discriminator update, then ``g_steps`` generator updates on the same batch,
  and the EMA of G's weights after each (``shipped`` is the generator to validate and save). With
  ``lambda_adv = 0`` (L1 pre-training) D is neither run nor trained.
- `lr_factor(epoch, cfg)`: the learning-rate schedule, 1 until ``lr_decay_start``, then linear to 0.
- `TrainingDiverged`: raised by the loop when a loss becomes NaN or infinite.

The epoch loop and checkpoints are in `medgan_nb.training.loop`, a run's set-up in `medgan_nb.training.setup`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..config.config import Config
from ..losses import GeneratorLoss, GeneratorLossParts, discriminator_loss, term_grad_norms
from ..metrics import PSNR_CAP, psnr, ssim
from ..models.build import build_discriminator, build_generator
from ..sharpness import gradient_energy_ratio, hf_power_ratio


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


def lr_factor(epoch: int, cfg: Config) -> float:
    """1 before ``lr_decay_start``, then falling linearly towards 0 at the last epoch (the original's rule)."""
    if epoch < cfg.lr_decay_start:
        return 1.0
    return max(0.0, 1.0 - (epoch - cfg.lr_decay_start) / max(1, cfg.epochs - cfg.lr_decay_start))


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


@dataclass
class Trainer:
    """The models, losses and optimisers of a run; calling it runs one training iteration on a batch.

    One iteration, as in the original: one discriminator update, then
    ``g_steps`` generator updates on the same batch. What it does not repeat:

    - the generator forward made for D's update also serves the first G
      update (G has not changed in between), so ``g_steps`` forwards, not
      ``g_steps + 1``;
    - the VGG features of the clean batch are computed once, not per G update;
    - D's weights are frozen during G updates: no gradients are computed for
      them (the original computed and then threw them away);
    - VGG runs in the channels-last layout (see `VGGPerceptualLoss`), while G
      and D keep the default layout on the CPU, where channels-last is slower
      for their transposed convolutions;
    - gradients are released with ``set_to_none`` and Adam runs its
      multi-tensor (``foreach``) kernels; on CUDA, AMP with loss scaling.
    """
    G: nn.Module
    D: nn.Module
    loss_g: GeneratorLoss
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    g_steps: int
    amp: bool = False
    ema: nn.Module | None = None          # an exponential moving average of G's weights (cfg.ema_decay > 0)
    ema_decay: float = 0.0
    ema_updates: int = 0                  # G updates averaged so far (sets the warm-up of the decay)
    grad_norms: dict[str, torch.Tensor] | None = None   # of the last call with grad_norms=True (`term_grad_norms`)

    @property
    def shipped(self) -> nn.Module:
        """The generator that is validated and used: the EMA when there is one, else G itself."""
        return self.ema if self.ema is not None else _unwrap(self.G)

    @property
    def adversarial(self) -> bool:
        """False for L1 pre-training (lambda_adv = 0): D is neither run nor trained."""
        return self.loss_g.lambda_adv > 0

    def __call__(self, clean: torch.Tensor, degraded: torch.Tensor,
                 grad_norms: bool = False) -> tuple[torch.Tensor, GeneratorLossParts]:
        """Update D once and G `g_steps` times on one batch; returns D's loss and G's last loss parts.

        grad_norms: also measure, in the last G update, each weighted term's gradient norm with respect to G's
        output (`losses.term_grad_norms`) into ``self.grad_norms``. Extra backward passes that stop at G's
        output: G's parameter gradients, and so the update, are exactly the same.
        """
        G, D, loss_g = self.G, self.D, self.loss_g
        autocast = self._autocast()
        with autocast:
            target = loss_g.perceptual_target(clean)

        with autocast:
            fake = G(degraded)
        loss_d = self._update_d(clean, degraded, fake) if self.adversarial else torch.zeros((), device=fake.device)

        # generator: fool D, stay close to the clean image; D's weights are fixed meanwhile
        D.requires_grad_(False)
        for k in range(self.g_steps):
            with autocast:
                if k > 0:                 # the first update reuses the forward pass made for D
                    fake = G(degraded)
                parts = loss_g(_unwrap(D)(degraded, fake) if self.adversarial else None, fake, clean, target)
            if grad_norms and k == self.g_steps - 1:
                self.grad_norms = term_grad_norms(parts, fake, scale=self.scaler_g.get_scale()
                                                  if self.scaler_g.is_enabled() else 1.0)
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.scale(parts.total).backward()
            self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
            self._update_ema()
        return loss_d, parts

    def _update_d(self, clean: torch.Tensor, degraded: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """One discriminator update: real pairs -> 1, restored pairs -> 0."""
        D = self.D
        D.requires_grad_(True)
        with self._autocast():
            loss_d = discriminator_loss(self.loss_g.gan, D(degraded, clean), D(degraded, fake.detach()))
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(loss_d).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()
        return loss_d

    def _autocast(self) -> contextlib.AbstractContextManager:
        """float16 autocast on CUDA with AMP, else nothing."""
        return torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()

    @torch.no_grad()
    def _update_ema(self) -> None:
        """ema = d * ema + (1 - d) * G over weights and float buffers, d = min(ema_decay, (1 + n) / (10 + n))
        after n updates: early on the average follows G closely instead of remembering its random start."""
        if self.ema is None:
            return
        decay = min(self.ema_decay, (1 + self.ema_updates) / (10 + self.ema_updates))
        self.ema_updates += 1
        for e, g in zip(self.ema.state_dict().values(), _unwrap(self.G).state_dict().values()):
            if e.dtype.is_floating_point:
                e.lerp_(g, 1 - decay)
            else:
                e.copy_(g)


def make_trainer(cfg: Config, device: torch.device | str = "cpu", perceptual: nn.Module | None = None) -> Trainer:
    """Build G, D (initialised), the losses and the Adam optimisers of `cfg` on `device` as a `Trainer`.

    perceptual: a ready VGG loss module (e.g. ``VGGPerceptualLoss(weights=None)``
    for benchmarks without the weights); default: built from `cfg`.
    """
    device = torch.device(device)
    amp = cfg.amp and device.type == "cuda"
    memory = torch.channels_last if amp else torch.contiguous_format
    G = build_generator(cfg).to(device, memory_format=memory)
    D = build_discriminator(cfg).to(device, memory_format=memory)
    loss_g = GeneratorLoss(cfg, perceptual).to(device)
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    opt_g = torch.optim.Adam(G.parameters(), cfg.lr_g, betas=(cfg.beta1, cfg.beta2), **fast)
    opt_d = torch.optim.Adam(D.parameters(), cfg.lr_d, betas=(cfg.beta1, cfg.beta2), **fast)
    ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.ema_decay > 0 else None
    return Trainer(G, D, loss_g, opt_g, opt_d, torch.amp.GradScaler(device.type, enabled=amp),
                     torch.amp.GradScaler(device.type, enabled=amp), cfg.g_steps, amp, ema, cfg.ema_decay)


def _check_in_sync(models: list[torch.nn.Module], world: int) -> str:
    """Compare a hash of every weight and buffer across processes; raise if any rank differs."""
    h = hashlib.sha256()
    for model in models:
        for tensor in model.state_dict().values():
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digests: list[Any] = [None] * world
    dist.all_gather_object(digests, h.hexdigest())
    if len(set(digests)) != 1:
        raise RuntimeError(f"processes ended with different weights: {digests}")
    return digests[0]


def _scores(images: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """Means over a batch: PSNR (each capped at PSNR_CAP: an untouched clean input scores inf), SSIM, and the
    sharpness ratios against the clean images (`medgan_nb.sharpness`; 1.0 = as sharp as the truth)."""
    return {"psnr": float(np.minimum(psnr(images, clean), PSNR_CAP).mean()), "ssim": float(ssim(images, clean).mean()),
            "grad_ratio": float(np.nanmean(gradient_energy_ratio(images, clean))),
            "hf_ratio": float(np.nanmean(hf_power_ratio(images, clean)))}
