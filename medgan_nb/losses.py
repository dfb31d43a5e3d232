"""The losses of the conditional GAN.

- `GANLoss`: the adversarial term. "vanilla" is binary cross-entropy on logits
  (the original); "lsgan" is least squares, often more stable. Its targets take
  the shape of the discriminator's output, whatever the image size (the
  original hard-coded 30×30).
- L1 between restoration and clean image: keeps colours and low frequencies right.
- `VGGPerceptualLoss`: L1 between VGG19 features (up to relu4_1, ``features[:21]``)
  of restoration and clean image: rewards matching textures and edges.
- `GeneratorLoss`: the weighted sum, returned with its parts for logging.
- `term_grad_norms`: how hard each weighted term pulls on G's output (the size of its gradient there);
  training logs it as ``grad_adv``, ``grad_l1``, ``grad_perceptual`` in metrics.csv.

The objective, in the notation of pix2pix (x the degraded input, y the clean image, D's output a logit
per patch, sigma the sigmoid): D maximises, G minimises

    V(D, G) = E[log sigma(D(x, y))] + E[log(1 - sigma(D(x, G(x))))]

`discriminator_loss` is -V/2 (BCE against target 1 on real pairs, 0 on restored ones, halved). For G the
non-saturating form replaces min log(1 - sigma(D(x, G(x)))) by min -log sigma(D(x, G(x))) (`GANLoss(logits,
True)`: target *real* for G's restorations). `GeneratorLoss` adds the pixel and perceptual terms:

    L_G = lambda_adv * L_cGAN + lambda_l1 * E|y - G(x)|_1 + lambda_perceptual * E|VGG(y) - VGG(G(x))|_1

The VGG19 ImageNet weights come through torchvision's weights API and are read
from the local torch cache. Without them and without network, `load_vgg19_features`
raises `MissingWeightsError`, which says where the file belongs and how to fetch
it; set ``lambda_perceptual=0`` to train without the perceptual term.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config.config import Config
from .utils.images import to_unit

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FETCH_COMMAND = "python -m medgan_nb data download vgg19"


class MissingWeightsError(RuntimeError):
    """Pretrained weights are neither in the local cache nor downloadable."""


class GANLoss(nn.Module):
    """Adversarial loss against an all-real or all-fake target shaped like the prediction."""

    def __init__(self, mode: str = "vanilla"):
        super().__init__()
        if mode not in ("vanilla", "lsgan"):
            raise ValueError(f"gan mode must be 'vanilla' or 'lsgan', got {mode!r}")
        self.mode = mode

    def forward(self, logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
        if self.mode == "vanilla":
            return F.binary_cross_entropy_with_logits(logits, target)
        return F.mse_loss(logits, target)


def vgg19_weights_path() -> Path:
    """Where torchvision keeps the VGG19 ImageNet weights on this machine."""
    from torchvision.models import VGG19_Weights
    url = VGG19_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def fetch_vgg19_weights(progress: bool = True) -> Path:
    """Put the VGG19 ImageNet weights into the torch cache (downloads once); return their path."""
    from torchvision.models import VGG19_Weights
    path = vgg19_weights_path()
    if not path.exists():
        url = VGG19_Weights.IMAGENET1K_V1.url
        try:
            torch.hub.load_state_dict_from_url(url, progress=progress, check_hash=True)
        except (urllib.error.URLError, OSError, RuntimeError) as e:
            raise MissingWeightsError(
                f"VGG19 weights for the perceptual loss are not in the torch cache ({path}) and could not "
                f"be downloaded ({type(e).__name__}: {e}).\n"
                f"  - with network, run: {FETCH_COMMAND}\n"
                f"  - or download {url} elsewhere and copy it to {path}\n"
                f"  - or train without the perceptual term: lambda_perceptual=0"
            ) from e
    return path


def load_vgg19_features(weights: str | None = "IMAGENET1K_V1", layers: int = 21) -> nn.Sequential:
    """VGG19 ``features[:layers]``, frozen, in eval mode. ``weights=None``: random weights (tests).

    Builds the convolutional part only: the classifier (~120 M parameters) is never needed.
    """
    from torchvision.models.vgg import cfgs, make_layers
    features = make_layers(cfgs["E"])
    if weights is not None:
        if weights != "IMAGENET1K_V1":
            raise ValueError(f"unknown VGG19 weights {weights!r}; use 'IMAGENET1K_V1' or None")
        state = torch.load(fetch_vgg19_weights(), map_location="cpu", weights_only=True)
        features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()
                                  if k.startswith("features.")})
    features = features[:layers].eval()
    for p in features.parameters():
        p.requires_grad_(False)
    return features


class VGGPerceptualLoss(nn.Module):
    """L1 distance between VGG19 features of two image batches in [-1, 1]."""

    def __init__(self, weights: str | None = "IMAGENET1K_V1", layers: int = 21):
        super().__init__()
        # channels-last layout, which oneDNN's convolutions on the CPU and tensor cores on CUDA prefer.
        # Same numbers, other memory order.
        self.features = load_vgg19_features(weights, layers).to(memory_format=torch.channels_last)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> "VGGPerceptualLoss":
        super().train(mode)
        self.features.eval()      # a frozen feature extractor stays in eval mode
        return self

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        x = (to_unit(x) - self.mean) / self.std
        return self.features(x.contiguous(memory_format=torch.channels_last))

    @torch.no_grad()
    def target(self, real: torch.Tensor) -> torch.Tensor:
        """The features of the clean images: compute once per batch and pass as `target` to every G step."""
        return self._embed(real)

    def forward(self, fake: torch.Tensor, real: torch.Tensor | None = None,
                target: torch.Tensor | None = None) -> torch.Tensor:
        return F.l1_loss(self._embed(fake), self.target(real) if target is None else target)


LOG_L1_EPS = 1e-3     # ~ the L1 of a 60 dB image: below it, log_l1 stops rewarding improvements


def log_l1_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over images of log(L1_i + eps).

    Plain L1 over a batch is dominated by its most degraded images: a crop with noise 0.2 has an error
    many times that of a nearly clean crop, so the clean crop hardly shapes the weights, and the model learns to
    smooth every input a little. The gradient of log(L1_i) is grad(L1_i) / L1_i: each image counts by its
    relative error, as it does in mean PSNR, so "leave a clean image alone" is learned as firmly as
    "remove heavy noise".
    """
    per_image = (fake - real).abs().flatten(1).mean(1)
    return torch.log(per_image + LOG_L1_EPS).mean()


def pixel_loss_fn(name: str):
    """The pixel loss called `name` (`config.PIXEL_LOSSES`)."""
    return {"l1": F.l1_loss, "log_l1": log_l1_loss}[name]


class GeneratorLossParts(NamedTuple):
    """The generator's loss and its three terms, each already multiplied by its weight."""
    total: torch.Tensor
    adv: torch.Tensor
    l1: torch.Tensor
    perceptual: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """The parts as plain numbers, for logs (each already multiplied by its weight)."""
        return {k: float(v.detach()) for k, v in self._asdict().items()}


class GeneratorLoss(nn.Module):
    """lambda_adv * GAN + lambda_l1 * L1 + lambda_perceptual * VGG, built from a `Config`."""

    def __init__(self, cfg: Config, perceptual: nn.Module | None = None):
        super().__init__()
        self.gan = GANLoss(cfg.gan_mode)
        self.lambda_adv, self.lambda_l1, self.lambda_perceptual = cfg.lambda_adv, cfg.lambda_l1, cfg.lambda_perceptual
        self.pixel_loss = pixel_loss_fn(cfg.pixel_loss)
        if perceptual is None and self.lambda_perceptual > 0:
            perceptual = VGGPerceptualLoss()
        self.perceptual = perceptual

    @property
    def uses_perceptual(self) -> bool:
        return self.perceptual is not None and self.lambda_perceptual > 0

    def perceptual_target(self, real: torch.Tensor) -> torch.Tensor | None:
        """VGG features of the clean batch (None without the perceptual term).

        The original recomputed them in each of its 3 generator steps per batch;
        they do not change, so `Trainer` computes them once.
        """
        return self.perceptual.target(real) if self.uses_perceptual else None

    def forward(self, d_fake_logits: torch.Tensor | None, fake: torch.Tensor, real: torch.Tensor,
                perceptual_target: torch.Tensor | None = None) -> GeneratorLossParts:
        """d_fake_logits None: no adversarial term (L1 pre-training, ``lambda_adv = 0``)."""
        adv = (self.lambda_adv * self.gan(d_fake_logits, True) if d_fake_logits is not None
               else torch.zeros((), device=fake.device))
        l1 = self.lambda_l1 * self.pixel_loss(fake, real)
        if self.uses_perceptual:
            perceptual = self.lambda_perceptual * self.perceptual(fake, real, perceptual_target)
        else:
            perceptual = torch.zeros((), device=fake.device)
        return GeneratorLossParts(adv + l1 + perceptual, adv, l1, perceptual)


GRAD_TERMS = ("adv", "l1", "perceptual")      # the terms of GeneratorLossParts whose gradients are measured


def term_grad_norms(parts: GeneratorLossParts, fake: torch.Tensor, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """The L2 norm (over the whole batch) of each weighted term's gradient with respect to G's output `fake`.

    A term's share of the loss *value* says little about its influence: a constant added to a loss changes its
    value, not its gradient. What G's update sees is the gradient, and every term reaches G's weights through
    ``d term / d fake``, so the norms of these gradients compare the terms' pulls on the same tensor. One
    ``torch.autograd.grad`` per active term, with ``retain_graph=True`` so the training backward pass can follow;
    nothing is accumulated into any parameter's ``.grad``. A term that is off (a constant zero) gives 0.
    scale: multiply the terms by this before differentiating and divide after (AMP: float16 gradients would
    otherwise underflow). The norms are float64 tensors on `fake`'s device.
    """
    norms = {}
    for name in GRAD_TERMS:
        term = getattr(parts, name)
        grad = None
        if term.requires_grad:
            (grad,) = torch.autograd.grad(term * scale, fake, retain_graph=True, allow_unused=True)
        norms[name] = (grad.detach().double().norm() / scale if grad is not None      # float64: a float32 sum
                       else torch.zeros((), dtype=torch.float64, device=fake.device))   # of 1e5+ squares drifts
    return norms


def discriminator_loss(gan: GANLoss, d_real_logits: torch.Tensor, d_fake_logits: torch.Tensor) -> torch.Tensor:
    """Half the sum of the real and fake terms, as in pix2pix (-V(D, G) / 2 in the module docstring's notation).

    The half does not slow D down: Adam's step is m / (sqrt(v) + eps), and scaling the loss by c scales both
    m and sqrt(v) by c, so the step is the same (up to eps; notebook 03 checks it). What slows D relative to G
    is a lower learning rate (lr_d = lr_g / 2 in the original) or fewer D updates (g_steps > 1).
    """
    return 0.5 * (gan(d_real_logits, True) + gan(d_fake_logits, False))
