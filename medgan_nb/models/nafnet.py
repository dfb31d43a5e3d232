"""A NAFNet-style generator: Chen et al. 2022, "Simple Baselines for Image Restoration" (NAFNet).

- `LayerNorm2d`: LayerNorm over each pixel's channels; no batch statistics, so the model behaves the same
  in training and inference, for any batch size.
- `SimpleGate`: splits the channels in two halves and multiplies them, in place of an activation.
- `NAFBlock(c)`: (N, c, H, W) -> (N, c, H, W), two residual halves (spatial mixing with channel attention,
  then a feed-forward), each scaled by a learnt factor that starts at 0: a new block is the identity.
- `NAFNetGenerator(in_ch, out_ch, width, depth, blocks, stem, residual)`: (N, in_ch, H, W) in [-1, 1] ->
  (N, out_ch, H, W) in [-1, 1], a UNet of NAF blocks; ``stem`` > 1 packs stem × stem pixels into channels
  first (PixelUnshuffle), so every layer runs on stem² fewer positions. With ``residual=True`` (the
  default) it predicts a correction added to its input and clamped, and starts as the identity. H and W
  must be multiples of ``size_multiple`` = stem * 2**depth, else ValueError.
"""

from __future__ import annotations

import torch
from torch import nn


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
