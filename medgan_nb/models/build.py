"""Building the networks from a `Config`: the generator (UNet or NAFNet) and the PatchGAN discriminator.

`build_generator(cfg)` picks the generator by ``cfg.generator`` ("unet" or "nafnet") and
`build_discriminator(cfg)` the PatchGAN, both initialised; `summary`, `receptive_field` and `layer_table`
describe a built model, `resolve_device` turns "auto" into a device. The networks live in `unet`,
`nafnet` and `discriminator`.

At the ``seed`` preset the UNet and the PatchGAN reproduce the original notebook layer for layer:

- `UNetGenerator`: 8 stride-2 convolutions take 256² down to 1² (channels
  64-128-256-512-512-512-512-512), 7 transposed convolutions bring it back up,
  each concatenated with the encoder output of the same size (the skip
  connections), and a last transposed convolution + Tanh gives the image.
  No BatchNorm on the first and the innermost layer; dropout 0.5 on encoder
  layers 4 and deeper and the 3 innermost decoder layers, as the original.
  Shallower `depth` serves smaller images. ~54.4 M parameters at the original preset.
- `PatchDiscriminator`: the 70×70 PatchGAN. It sees the degraded input and a
  candidate restoration side by side (6 channels) and scores each 70×70 patch
  as real or fake, so its output is a grid whose size follows from the input
  (30×30 for 256²). ~2.77 M parameters.

The ``lite`` preset builds the same UNet, scaled for real time on a CPU:
5 levels instead of 8, 16 base channels instead of 64, at most 128 channels
(no 512-wide bottleneck: the seed UNet's 512-to-512 layers hold 46 M of its 54 M
weights, all read for every frame), and no dropout. 1.04 M parameters.
With ``residual=True`` (the restoration presets) the UNet's last layer predicts
a correction that is added to its input instead of a Tanh image.

`NAFNetGenerator` (``generator="nafnet"``) is the NAFNet design (Chen et al. 2022):
blocks without activation functions (LayerNorm, depthwise 3×3, SimpleGate,
channel attention), an optional PixelUnshuffle stem, residual output, no
BatchNorm. The stem-2, width-24 version is the ``quality`` model, chosen by a
race at equal CPU time on real frames (``python -m benchmarks race``,
docs/model-zoo.md "Choosing the generators").
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..config.config import Config
from .discriminator import PatchDiscriminator
from .nafnet import NAFNetGenerator
from .unet import UNetGenerator


def init_weights(module: nn.Module) -> nn.Module:
    """The original's initialisation: conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02), biases 0.
    Spectrally normalised convolutions keep PyTorch's default: the normalisation sets their scale."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and not parametrize.is_parametrized(m):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def _unet(cfg: Config) -> nn.Module:
    return init_weights(UNetGenerator(cfg.channels, cfg.channels, cfg.depth, cfg.base_channels, cfg.max_channels,
                                      cfg.dropout, cfg.residual,
                                      cfg.noise_map_scales if cfg.noise_map else ()))


def _nafnet(cfg: Config) -> nn.Module:
    return NAFNetGenerator(cfg.channels, cfg.channels, cfg.base_channels, cfg.depth, cfg.blocks, cfg.stem,
                           cfg.residual)


# The generators by `Config.generator` name. To add one: its network in a file of its own under models/, a
# function here that builds it from a Config, and its name here (and in the names `Config` accepts).
GENERATORS: dict[str, Callable[[Config], nn.Module]] = {"unet": _unet, "nafnet": _nafnet}


def build_generator(cfg: Config) -> nn.Module:
    """The generator described by `cfg`, initialised (the UNet as the original; NAFNet with PyTorch's defaults
    and its blocks starting as the identity); ``generator.modality`` records ``cfg.modality``. ValueError for a
    name not in `GENERATORS`."""
    if cfg.generator not in GENERATORS:
        raise ValueError(f"unknown generator {cfg.generator!r}; choose one of {sorted(GENERATORS)}")
    generator = GENERATORS[cfg.generator](cfg)
    generator.modality = cfg.modality          # what it was trained on: enhance maps a DICOM's units by it
    return generator


def build_discriminator(cfg: Config) -> PatchDiscriminator:
    """The discriminator described by `cfg`, initialised."""
    return init_weights(PatchDiscriminator(cfg.channels, cfg.d_base_channels, cfg.d_layers, cfg.d_input == "detail",
                                           cfg.d_norm))


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """`model` in eval mode inside the block (dropout off, BatchNorm on its running statistics), then back in the
    mode it was in, also after an exception: for code that runs a model that may be in the middle of training."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def summary(model: nn.Module) -> str:
    """One line for notebooks and logs, e.g. 'UNetGenerator: 54.41 M parameters'."""
    return f"{type(model).__name__}: {count_parameters(model) / 1e6:.2f} M parameters"


def receptive_field(model: nn.Module) -> int:
    """Side in pixels of the input patch that one output value sees (70 for the 3-layer PatchGAN).

    Walks the convolutions in order: r += (kernel - 1) * jump; jump *= stride.
    """
    r, jump = 1, 1
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            r += (m.kernel_size[0] - 1) * jump
            jump *= m.stride[0]
    return r


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when present, else the CPU; otherwise the named device.

    ValueError, listing the devices this machine has (`available_devices`), for a name torch does not know,
    a CUDA device without CUDA, or a GPU index beyond the GPUs present.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    here = f"available here: {', '.join(available_devices())}"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {name!r} is not a device name; {here}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available on this machine; {here}")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} GPU(s); {here}")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r}: medgan_nb runs on the CPU or CUDA GPUs; {here}")
    return device


def available_devices() -> list[str]:
    """The device names `resolve_device` accepts here: "auto", "cpu" and, with CUDA, "cuda" and "cuda:<i>"."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["auto", "cpu", *(["cuda", *(f"cuda:{i}" for i in range(gpus))] if gpus else [])]


def layer_table(model: nn.Module, *inputs: torch.Tensor) -> list[tuple[str, str, tuple[int, ...], int]]:
    """(name, layer type, output shape, parameters) for every leaf layer, in the order they run.

    Uses forward hooks on one forward pass in eval mode, so it works for any model.
    """
    rows: list[tuple[str, str, tuple[int, ...], int]] = []
    hooks = [m.register_forward_hook(lambda mod, _, out, name=name: rows.append(
        (name, type(mod).__name__, tuple(out.shape), sum(p.numel() for p in mod.parameters()))))
        for name, m in model.named_modules() if not list(m.children())]
    try:
        with eval_mode(model), torch.no_grad():
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return rows
