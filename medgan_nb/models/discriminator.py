"""TODO docstring (models)."""

from __future__ import annotations

import torch
from torch import nn


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
