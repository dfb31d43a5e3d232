"""The PatchGAN discriminator of pix2pix.

From Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks" (pix2pix).

`PatchDiscriminator(in_ch, base_ch, n_layers)`: ``D(degraded, candidate)``, both (N, in_ch, H, W) in
[-1, 1], concatenated on the channels: the discriminator is conditional, it judges a restoration together
with its input. Returns logits (N, 1, H', W'), no sigmoid: one score per overlapping input patch (70×70
pixels for the default 3 layers; 30×30 scores for 256² inputs), real pairs high, restored pairs low.
Judging patches rather than whole images asks the generator for realistic local texture, while the L1
term takes care of the low frequencies.

``detail=True`` shows D only the fine detail of both images, x - GaussianBlur(x, sigma = 1 px), times 4 (to about
the images' range). ``norm`` is "batch" (pix2pix), "none" or "spectral". Without BatchNorm D no longer sees the
all-real and the all-fake batch with separate per-batch statistics, which let it tell the batches apart without
judging any one image. "spectral" divides the weight of each inner convolution by its largest singular value
(Miyato et al. 2018, "Spectral Normalization for Generative Adversarial Networks"); as in Real-ESRGAN's
discriminator the first and the last convolution stay plain, so D can still scale its input and its logits, while
the normalised layers limit how fast its slope, and with it the gradient it hands to G, can grow.
Fine-tuning a PSNR-trained generator, the clean frames and its outputs differ mostly in texture, under image
content that varies far more: with both options a D learnt to tell them apart on frames it had not trained on,
with either one alone it did not; without a bound on D's slope, fine-tunes ran stably for a while and then D
won and its gradient swamped L1's (docs/training.md, "GAN fine-tuning"). The L1 term keeps the rest.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from torchvision.transforms.functional import gaussian_blur

DETAIL_GAIN = 4.0          # detail=True: the high-pass images are scaled by this before D sees them
NORMS = ("batch", "none", "spectral")


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: scores overlapping patches of (input, candidate) pairs; logits, no sigmoid."""

    def __init__(self, in_ch: int = 3, base_ch: int = 64, n_layers: int = 3, detail: bool = False,
                 norm: str = "batch"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.detail = detail

        def conv(cin: int, cout: int, stride: int) -> nn.Module:      # an inner convolution
            layer = nn.Conv2d(cin, cout, 4, stride, 1, bias=False)
            return spectral_norm(layer) if norm == "spectral" else layer

        layers: list[nn.Module] = [nn.Conv2d(2 * in_ch, base_ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        width = base_ch
        for i in range(1, n_layers + 1):
            new_width = base_ch * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [conv(width, new_width, stride),
                       nn.BatchNorm2d(new_width) if norm == "batch" else nn.Identity(), nn.LeakyReLU(0.2, True)]
            width = new_width
        layers.append(nn.Conv2d(width, 1, 4, 1, 1, bias=False))
        self.model = nn.Sequential(*layers)

    def forward(self, degraded: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        pair = torch.cat([degraded, candidate], dim=1)
        if self.detail:                 # differentiable: G's gradient flows through the high-pass filter
            pair = (pair - gaussian_blur(pair, [5, 5], [1.0, 1.0])) * DETAIL_GAIN
        return self.model(pair)
