"""The UNet generator of pix2pix.

The encoder-decoder with skip connections of Ronneberger et al. 2015 ("U-Net: Convolutional Networks for
Biomedical Image Segmentation"), in the form that Isola et al. 2017 ("Image-to-Image Translation with
Conditional Adversarial Networks", pix2pix) use as the generator:

- `down_block`: conv 4×4 stride 2 -> [BatchNorm] -> LeakyReLU(0.2) -> [Dropout]; halves H and W.
- `up_block`: transposed conv 4×4 stride 2 -> BatchNorm -> ReLU -> [Dropout]; doubles H and W.
- `UNetGenerator(in_ch, out_ch, depth, base_ch, max_ch, dropout, residual)`: (N, in_ch, H, W) in [-1, 1]
  -> (N, out_ch, H, W) in [-1, 1]. `depth` down blocks, each decoder output concatenated with the encoder
  output of the same size, a last transposed conv and Tanh; with ``residual=True`` the last layer's output
  is instead added to the input and clamped (in_ch must equal out_ch). H and W must be multiples of
  ``size_multiple`` = 2**depth, else ValueError. `medgan_nb.models.build` builds it from a `Config`.
  ``noise_map=(1,)`` (FFDNet's idea: Zhang, Zuo & Zhang 2018, "FFDNet: Toward a Fast and Flexible Solution for
  CNN based Image Denoising") gives the network one more input channel per scale, constant over each image: the
  noise std that `medgan_nb.models.guard.noise_levels` estimates from that very input at that scale, times
  `NOISE_MAP_SCALE`. The user still gives nothing; the network is told, rather than left to guess, how noisy its
  input is. Several scales, e.g. (1, 2, 4), let it tell noise that was blurred after it was added (which reads
  near 0 at scale 1) from a clean frame; ``noise_map=()`` (the default): no map.
"""

from __future__ import annotations

import torch
from torch import nn

from .guard import noise_levels

NOISE_MAP_SCALE = 10.0          # noise std in [0, 1] units (0 to 0.2 in training) -> the map's values (0 to 2)


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
                 max_ch: int = 512, dropout: float = 0.5, residual: bool = False, noise_map: tuple[int, ...] = ()):
        super().__init__()
        if depth < 2:
            raise ValueError("depth must be >= 2")
        if residual and in_ch != out_ch:
            raise ValueError("a residual generator needs as many output channels as input channels")
        self.depth, self.residual, self.in_channels = depth, residual, in_ch
        self.noise_map, self.noise_map_scales = bool(noise_map), tuple(noise_map)
        self.size_multiple = 2**depth                    # input sides must be multiples of this
        ch = [min(base_ch * 2**i, max_ch) for i in range(depth)]   # encoder widths
        self.downs = nn.ModuleList()
        for i in range(depth):                           # no norm on the first and innermost layers
            first = in_ch + len(self.noise_map_scales)    # the image's channels and the noise map's
            self.downs.append(down_block(first if i == 0 else ch[i - 1], ch[i], norm=0 < i < depth - 1,
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
        if self.noise_map:
            x = self.with_noise_map(x)
        for down in self.downs:
            x = down(x)
            skips.append(x)
        skips.pop()                                       # the innermost output is x itself
        for up in self.ups:
            x = torch.cat([up(x), skips.pop()], dim=1)
        return (image + self.final(x)).clamp(-1, 1) if self.residual else self.final(x)

    @torch.jit.unused
    def with_noise_map(self, x):              # no annotations: TorchScript reads them unresolved
        """x with one noise-map channel per scale appended (N, C + len(noise_map_scales), H, W). Not scripted
        (the estimator does not compile): a TorchScript export of a noise-map model raises when run. The exports
        (TorchScript, ONNX) do not support noise-map models yet; PyTorch runs them."""
        sigma = noise_levels(x.detach(), self.noise_map_scales).to(x.dtype)[..., None, None] * NOISE_MAP_SCALE
        return torch.cat([x, sigma.expand(-1, -1, x.shape[-2], x.shape[-1])], dim=1)
