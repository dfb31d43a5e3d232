"""The two networks of pix2pix: a UNet generator and a PatchGAN discriminator.

At the ``seed`` preset both reproduce the original notebook layer for layer:

- `UNetGenerator`: 8 stride-2 convolutions take 256² down to 1² (channels
  64-128-256-512-512-512-512-512), 7 transposed convolutions bring it back up,
  each concatenated with the encoder output of the same size (the skip
  connections), and a last transposed convolution + Tanh gives the image.
  No BatchNorm on the first and the innermost layer; dropout 0.5 on encoder
  layers 4 and deeper and the 3 innermost decoder layers, as the original.
  Shallower `depth` serves smaller images. ~54.4 M parameters at the seed preset.
- `PatchDiscriminator`: the 70×70 PatchGAN. It sees the degraded input and a
  candidate restoration side by side (6 channels) and scores each 70×70 patch
  as real or fake, so its output is a grid whose size follows from the input
  (30×30 for 256²). ~2.77 M parameters.

The ``lite`` preset builds the same UNet, scaled for real time on a CPU
(8-15 ms per 256² frame on 2 cores against 110-200 ms for the seed UNet):
5 levels instead of 8, 16 base channels instead of 64, at most 128 channels
(no 512-wide bottleneck: the seed UNet's 512-to-512 layers hold 46 M of its 54 M
weights, all read for every frame), and no dropout. 1.04 M parameters.
With ``residual=True`` (the restoration presets) the UNet's last layer predicts
a correction that is added to its input instead of a Tanh image.

`NAFNetGenerator` (``generator="nafnet"``) is the NAFNet design (Chen et al. 2022):
blocks without activation functions (LayerNorm, depthwise 3×3, SimpleGate,
channel attention), an optional PixelUnshuffle stem, residual output, no
BatchNorm. Raced at equal CPU time on real frames (``python -m benchmarks race``,
README "Choosing the generator"), the stem-2, width-24 version tied with the
residual lite UNet at 5 CPU-minutes and became the ``quality`` model; with a
stem of 4 it plateaued about 5 dB lower.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import Config


def down_block(in_ch: int, out_ch: int, norm: bool = True, dropout: float = 0.0) -> nn.Sequential:
    """Conv 4×4 stride 2 (halves H and W) -> [BatchNorm] -> LeakyReLU(0.2) -> [Dropout]."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False)]
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(0.2))
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def up_block(in_ch: int, out_ch: int, dropout: float = 0.0) -> nn.Sequential:
    """Transposed conv 4×4 stride 2 (doubles H and W) -> BatchNorm -> ReLU -> [Dropout]."""
    layers: list[nn.Module] = [nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False),
                               nn.BatchNorm2d(out_ch), nn.ReLU(True)]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class UNetGenerator(nn.Module):
    """UNet with `depth` down-samplings; input sides must be multiples of 2**depth."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, depth: int = 8, base_ch: int = 64,
                 max_ch: int = 512, dropout: float = 0.5, residual: bool = False):
        super().__init__()
        if depth < 2:
            raise ValueError("depth must be >= 2")
        if residual and in_ch != out_ch:
            raise ValueError("a residual generator needs as many output channels as input channels")
        self.depth, self.residual, self.in_channels = depth, residual, in_ch
        self.size_multiple = 2**depth                    # input sides must be multiples of this
        ch = [min(base_ch * 2**i, max_ch) for i in range(depth)]   # encoder widths
        self.downs = nn.ModuleList()
        for i in range(depth):                           # no norm on the first and innermost layers
            self.downs.append(down_block(in_ch if i == 0 else ch[i - 1], ch[i], norm=0 < i < depth - 1,
                                         dropout=dropout if i >= 3 else 0.0))
        self.ups = nn.ModuleList()
        for j in range(depth - 1):                       # j = 0 is the innermost decoder block
            level = depth - 2 - j                        # the encoder level it joins
            in_width = ch[depth - 1] if j == 0 else 2 * ch[level + 1]
            self.ups.append(up_block(in_width, ch[level], dropout=dropout if j < 3 else 0.0))
        last = nn.ConvTranspose2d(2 * ch[0], out_ch, 4, 2, 1)
        self.final = nn.Sequential(last) if residual else nn.Sequential(last, nn.Tanh())   # residual: + input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2**self.depth
        if h % m or w % m:
            raise ValueError(f"input size {h}×{w} is not divisible by 2**depth = {m}: this UNet halves the "
                             f"image {self.depth} times. Resize, crop or pad the image to a multiple of {m}, "
                             f"or use a generator with a smaller depth.")
        skips, image = [], x
        for down in self.downs:
            x = down(x)
            skips.append(x)
        skips.pop()                                       # the innermost output is x itself
        for up in self.ups:
            x = torch.cat([up(x), skips.pop()], dim=1)
        return (image + self.final(x)).clamp(-1, 1) if self.residual else self.final(x)


# ------------------------------------------------------------------ NAFNet-style generator
class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel (NAFNet's normalisation): no batch statistics, so a model
    behaves the same in training and inference, for any batch size."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them: NAFNet's replacement for an activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """NAFNet's block (Chen et al. 2022), no activation functions: two residual halves.

    mixing: LayerNorm -> 1×1 (c->2c) -> depthwise 3×3 -> SimpleGate -> channel attention -> 1×1;
    feed-forward: LayerNorm -> 1×1 (c->2c) -> SimpleGate -> 1×1. Each half is scaled by a learnt
    per-channel factor that starts at 0, so a new block starts as the identity.
    """

    def __init__(self, c: int):
        super().__init__()
        self.mix = nn.Sequential(LayerNorm2d(c), nn.Conv2d(c, 2 * c, 1), nn.Conv2d(2 * c, 2 * c, 3, 1, 1, groups=2 * c),
                                 SimpleGate())
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1))
        self.mix_out = nn.Conv2d(c, c, 1)
        self.ffn = nn.Sequential(LayerNorm2d(c), nn.Conv2d(c, 2 * c, 1), SimpleGate(), nn.Conv2d(c, c, 1))
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mix(x)
        x = x + self.mix_out(h * self.attention(h)) * self.beta
        return x + self.ffn(x) * self.gamma


class NAFNetGenerator(nn.Module):
    """A NAFNet-style UNet: 3×3 stem -> `depth` levels of NAF blocks (2×2 stride-2 conv down, width ×2) ->
    middle blocks -> back up (1×1 conv + PixelShuffle, added skip) -> 3×3 head.

    stem > 1 packs stem×stem pixels into channels first (PixelUnshuffle) and unpacks them at the end:
    every layer then runs on stem² fewer positions, the cheapest way to real time on a CPU.
    Input sides must be multiples of ``stem * 2**depth``.
    """

    def __init__(self, in_ch: int = 3, out_ch: int = 3, width: int = 16, depth: int = 3, blocks: int = 1,
                 stem: int = 1, residual: bool = True):
        super().__init__()
        if residual and in_ch != out_ch:
            raise ValueError("a residual generator needs as many output channels as input channels")
        self.depth, self.residual, self.size_multiple = depth, residual, stem * 2**depth
        self.in_channels = in_ch
        self.intro = nn.Sequential(nn.PixelUnshuffle(stem), nn.Conv2d(in_ch * stem**2, width, 3, 1, 1))
        widths = [width * 2**i for i in range(depth + 1)]
        self.encoders = nn.ModuleList(nn.Sequential(*(NAFBlock(w) for _ in range(blocks))) for w in widths[:-1])
        self.downs = nn.ModuleList(nn.Conv2d(w, 2 * w, 2, 2) for w in widths[:-1])
        self.middle = nn.Sequential(*(NAFBlock(widths[-1]) for _ in range(2 * blocks)))
        self.ups = nn.ModuleList(nn.Sequential(nn.Conv2d(2 * w, 4 * w, 1, bias=False), nn.PixelShuffle(2))
                                 for w in widths[:-1])
        self.decoders = nn.ModuleList(nn.Sequential(*(NAFBlock(w) for _ in range(blocks))) for w in widths[:-1])
        self.head = nn.Sequential(nn.Conv2d(width, out_ch * stem**2, 3, 1, 1), nn.PixelShuffle(stem))
        if residual:                 # a new residual model returns its input unchanged: it starts doing no harm
            nn.init.zeros_(self.head[0].weight)
            nn.init.zeros_(self.head[0].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise ValueError(f"input size {h}×{w} is not divisible by {m} (stem × 2**depth): resize, crop or pad "
                             f"the image to a multiple of {m}")
        y, skips = self.intro(x), []
        for encoder, down in zip(self.encoders, self.downs):
            y = encoder(y)
            skips.append(y)
            y = down(y)
        y = self.middle(y)
        for up, decoder in zip(reversed(self.ups), reversed(self.decoders)):
            y = decoder(up(y) + skips.pop())
        y = self.head(y)
        return (x + y).clamp(-1, 1) if self.residual else torch.tanh(y)


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: scores overlapping patches of (input, candidate) pairs; logits, no sigmoid."""

    def __init__(self, in_ch: int = 3, base_ch: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(2 * in_ch, base_ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        width = base_ch
        for i in range(1, n_layers + 1):
            new_width = base_ch * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(width, new_width, 4, stride, 1, bias=False),
                       nn.BatchNorm2d(new_width), nn.LeakyReLU(0.2, True)]
            width = new_width
        layers.append(nn.Conv2d(width, 1, 4, 1, 1, bias=False))
        self.model = nn.Sequential(*layers)

    def forward(self, degraded: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([degraded, candidate], dim=1))


def init_weights(module: nn.Module) -> nn.Module:
    """The original's initialisation: conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def build_generator(cfg: Config) -> nn.Module:
    """The generator described by `cfg`, initialised (the UNet as the original; NAFNet with PyTorch's defaults
    and its blocks starting as the identity); ``generator.modality`` records ``cfg.modality``."""
    if cfg.generator == "nafnet":
        generator: nn.Module = NAFNetGenerator(cfg.channels, cfg.channels, cfg.base_channels, cfg.depth, cfg.blocks,
                                               cfg.stem, cfg.residual)
    else:
        generator = init_weights(UNetGenerator(cfg.channels, cfg.channels, cfg.depth, cfg.base_channels,
                                               cfg.max_channels, cfg.dropout, cfg.residual))
    generator.modality = cfg.modality          # what it was trained on: enhance maps a DICOM's units by it
    return generator


def build_discriminator(cfg: Config) -> PatchDiscriminator:
    """The discriminator described by `cfg`, initialised."""
    return init_weights(PatchDiscriminator(cfg.channels, cfg.d_base_channels, cfg.d_layers))


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
    """"auto" -> CUDA when present, else the CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but CUDA is not available; use device='cpu' or 'auto'")
    return device


def layer_table(model: nn.Module, *inputs: torch.Tensor) -> list[tuple[str, str, tuple[int, ...], int]]:
    """(name, layer type, output shape, parameters) for every leaf layer, in the order they run.

    Uses forward hooks on one forward pass in eval mode, so it works for any model.
    """
    rows: list[tuple[str, str, tuple[int, ...], int]] = []
    hooks = [m.register_forward_hook(lambda mod, _, out, name=name: rows.append(
        (name, type(mod).__name__, tuple(out.shape), sum(p.numel() for p in mod.parameters()))))
        for name, m in model.named_modules() if not list(m.children())]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows
