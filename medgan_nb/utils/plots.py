"""Matplotlib helpers that show batches of images side by side.

- `to_image(x)`: one image (C, H, W) in [-1, 1] -> a numpy (H, W, C) array in [0, 1], ready for ``imshow``.
- `image_grid(columns, row_labels)`: a figure with one column per named batch (N, 3, H, W) in [-1, 1] and
  one row per image; every batch must hold the same N. Returns the figure; the caller saves or closes it.

Not re-exported by `medgan_nb.utils`, so that importing the helpers does not import matplotlib.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import torch

from .images import to_numpy_images


def to_image(x: torch.Tensor):
    """(3, H, W) in [-1, 1] -> (H, W, 3) numpy array in [0, 1] for imshow."""
    return to_numpy_images(x)


def image_grid(columns: dict[str, torch.Tensor], row_labels: Sequence[str] | None = None,
               size: float = 2.6) -> plt.Figure:
    """One column per named batch (N, 3, H, W), one row per image; returns the figure."""
    names = list(columns)
    n = columns[names[0]].shape[0]
    fig, axes = plt.subplots(n, len(names), figsize=(size * len(names), size * n), squeeze=False)
    for r in range(n):
        for c, name in enumerate(names):
            ax = axes[r, c]
            ax.imshow(to_image(columns[name][r]))
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(name)
            if c == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[r], fontsize=8)
    fig.tight_layout()
    return fig
