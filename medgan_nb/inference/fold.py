"""BatchNorm folded into the convolution before it: the same outputs with fewer layers at inference.

`fold_batchnorm(model, inplace)`: an eval-mode copy of `model` in which each BatchNorm2d that directly
follows a Conv2d (or an ungrouped ConvTranspose2d) inside an ``nn.Sequential`` is folded into that layer,
w' = w·s and b' = (b - mean)·s + beta with s = gamma / sqrt(var + eps), and replaced by ``nn.Identity``.
Outputs equal ``model.eval()``'s up to float rounding. The copy shares every weight that folding leaves
unchanged with `model` and needs no gradients; `model` itself is not changed unless ``inplace=True``.
The torch backends run this copy, and the ONNX and TorchScript exports are made from it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


# ------------------------------------------------------------ BN folding
def fold_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """An eval-mode copy of `model` with each BatchNorm2d that directly follows a conv folded into it.

    Only pairs inside an ``nn.Sequential`` are folded (Conv2d, or ConvTranspose2d without groups,
    then BatchNorm2d with running statistics), one layer at a time (`_fold_into`); the BatchNorm becomes
    ``nn.Identity``. Outputs equal ``model.eval()``'s up to float rounding.
    Parameters of the copy need no gradients. `model` itself is not changed, but the copy shares the storage
    of every weight that folding leaves as it is (a model without BatchNorm costs no second copy of its
    weights), so later in-place changes to those weights of `model` show in the copy too.
    inplace: fold into `model` itself and return it (for a caller that owns the model and only runs it
    from now on: then no second copy of the folded weights exists at any time).
    """
    if not inplace:
        shared = {id(t): nn.Parameter(t.detach(), requires_grad=False) if isinstance(t, nn.Parameter) else t
                  for t in (*model.parameters(), *model.buffers())}
        model = copy.deepcopy(model, shared)
    model.eval().requires_grad_(False)
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            transpose = isinstance(conv, nn.ConvTranspose2d)
            if (isinstance(conv, nn.Conv2d) or (transpose and conv.groups == 1)) and type(bn) is nn.BatchNorm2d \
                    and bn.running_mean is not None and bn.num_features == conv.out_channels:
                _fold_into(conv, bn, transpose, inplace)
                seq[i + 1] = nn.Identity()
    return model


def _fold_into(conv: nn.Module, bn: nn.BatchNorm2d, transpose: bool, inplace: bool) -> None:
    """Fold eval-mode `bn` into `conv`: w' = w·s, b' = (b - mean)·s + beta with s = gamma / sqrt(var + eps).

    inplace: scale conv's weight tensor itself (no new allocation: freeing a large block makes glibc keep
    later ones on its heap, which raises resident memory); else new tensors (the old may be shared).
    """
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var + bn.eps) * (bn.weight if bn.weight is not None else 1)
        bias = (conv.bias if conv.bias is not None else 0) - bn.running_mean
        bias = bias * scale + (bn.bias if bn.bias is not None else 0)
        scale = scale.reshape((1, -1, 1, 1) if transpose else (-1, 1, 1, 1)).to(conv.weight.dtype)
        weight = conv.weight.mul_(scale) if inplace else conv.weight * scale
    conv.weight = nn.Parameter(weight, requires_grad=False)
    conv.bias = nn.Parameter(bias.to(weight.dtype), requires_grad=False)


def _inference_copy(generator: nn.Module) -> nn.Module:
    """The BN-folded eval copy on the CPU in float32: what gets exported."""
    return fold_batchnorm(generator).cpu().float()
