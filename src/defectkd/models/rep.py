"""Structural re-parameterisation (RepVGG, MobileOne): train a conv with parallel linear branches, deploy one conv.

Why: an edge student's speed is fixed by its deployed graph, its accuracy partly by how easily it trains. A
k x k conv + BN trained beside a 1x1 conv + BN (at the kernel's centre) and a BN-only identity (when the shapes
allow) is, at inference, still one linear map of the same shape, so the three fold into a single k x k conv +
BN after training: the deployed graph, its parameters and its speed are exactly the plain model's, while
training sees extra, differently-normalised paths (MobileOne reports +0.5-1.5 top-1 for depthwise nets).

`ConvBN` names its children as the plain `Sequential(conv, bn[, relu])` does ("0", "1", "2"), so a folded model's
state dict is the plain model's and feature hooks by name still work. `fuse_branches(model)` folds every one
in place (eval only): `load_checkpoint_model` calls it, so predict, val, export and teachers run the plain graph.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _fold(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A bias-free conv's weight followed by an eval-mode BN, as one conv's (weight, bias)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return weight * scale.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (+ ReLU). With `rep`, two training-time branches are added to the BN output:
    `scale`, a 1x1 conv + BN with the same stride (as a slice) and groups (when the kernel is larger than 1x1), and
    `identity`, a BN of the input (when input and output channels match at stride 1)."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int], stride: int = 1, dilation: int = 1,
                 groups: int = 1, relu: bool = True, rep: bool = False) -> None:
        kh, kw = kernel
        pad = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
        super().__init__()
        self.add_module("0", nn.Conv2d(cin, cout, (kh, kw), stride=stride, padding=pad, dilation=dilation,
                                       groups=groups, bias=False))
        self.add_module("1", nn.BatchNorm2d(cout))
        self.relu = relu
        if relu:
            self.add_module("2", nn.ReLU())  # not in place: a hook on the BatchNorm must keep its output
        self.scale: nn.Module | None = None
        self.identity: nn.Module | None = None
        self.stride = stride
        if rep and (kh, kw) != (1, 1):
            self.scale = nn.Sequential(nn.Conv2d(cin, cout, 1, groups=groups, bias=False), nn.BatchNorm2d(cout))
        if rep and cin == cout and stride == 1:
            self.identity = nn.BatchNorm2d(cout)

    @property
    def branched(self) -> bool:
        return self.scale is not None or self.identity is not None

    def __getitem__(self, index: int) -> nn.Module:
        return self._modules[str(index)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self[1](self[0](x))
        if self.scale is not None:
            # a strided 1x1 conv is this slice; written so because PyTorch 2.14's CPU backward of a stride-2 1x1
            # conv on 3-channel channels_last input corrupted the heap (crash) on 128+ px
            y = y + self.scale(x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x)
        if self.identity is not None:
            y = y + self.identity(x)
        return self[2](y) if self.relu else y

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the branches into conv "0" and BN "1" (which then passes its input plus the summed bias)."""
        if not self.branched:
            return
        conv, bn = self[0], self[1]
        weight, bias = _fold(conv.weight, bn)
        kh, kw = conv.kernel_size
        if self.scale is not None:
            w1, b1 = _fold(self.scale[0].weight, self.scale[1])
            weight = weight + F.pad(w1, (kw // 2, kw // 2, kh // 2, kh // 2))
            bias = bias + b1
        if self.identity is not None:
            per_group = conv.in_channels // conv.groups
            eye = torch.zeros_like(conv.weight)
            idx = torch.arange(conv.out_channels)
            eye[idx, idx % per_group, kh // 2, kw // 2] = 1.0
            wi, bi = _fold(eye, self.identity)
            weight, bias = weight + wi, bias + bi
        conv.weight.copy_(weight)
        bn.weight.fill_(1.0)
        bn.bias.copy_(bias)
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        self.scale = self.identity = None


def fuse_branches(model: nn.Module) -> nn.Module:
    """Fold every `ConvBN`'s training branches in place (the model must be in eval mode); returns the model."""
    if model.training:
        raise ValueError("fuse_branches folds BatchNorm statistics: call model.eval() first")
    for module in model.modules():
        if isinstance(module, ConvBN):
            module.fuse()
    return model
