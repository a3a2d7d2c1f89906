"""CMI student (Ma et al. 2022, docs/papers.md): MobileNetV2 inverted-residual blocks combined with
Inception-style multi-branch blocks, for fine-grained defect classification.

Layout (width 1.0; channels scale with `width`, rounded to multiples of 8):

| stage | blocks                                           | out ch | stride |
|-------|--------------------------------------------------|--------|--------|
| stem  | conv 3x3                                         | 32     | 2      |
| 1     | IR(t=1)                                          | 16     | 1      |
| 2     | IR(t=6) x 2                                      | 24     | 2      |
| 3     | IR(t=6) x 2 + Inception                          | 48     | 2      |
| 4     | IR(t=6) x 3 + Inception                          | 96     | 2      |
| 5     | IR(t=6) x 2 + Inception                          | 160    | 2      |
| head  | conv 1x1 -> global average pool -> dropout -> FC | 640    |        |

An Inception block runs four branches in parallel on the same input and concatenates them: 1x1;
1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 (a 5x5 receptive field as two 3x3); 3x3 max-pool -> 1x1. Its 3x3s
are depthwise-separable (depthwise 3x3 + pointwise), as everything else in a MobileNetV2, and it
adds its input back when the channel counts agree. About 1.0 M parameters with 6 classes; the
1x1 head conv (`head`, 640 channels) is the feature layer for feature distillation.
"""

from __future__ import annotations

import torch
from torch import nn

from defectkd.models.classify import ClassificationNet


def _div8(v: float) -> int:
    return max(8, int(v + 4) // 8 * 8)


def _cbr(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (t) -> depthwise 3x3 -> 1x1 linear projection; residual when shapes agree."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expand: int = 6) -> None:
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [_cbr(cin, hidden)]
        layers += [_cbr(hidden, hidden, 3, stride, groups=hidden), _cbr(hidden, cout, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


def _sep3(cin: int, cout: int) -> nn.Sequential:
    """Depthwise-separable 3x3: depthwise 3x3 + BN + ReLU6, pointwise 1x1 + BN + ReLU6."""
    return nn.Sequential(_cbr(cin, cin, 3, groups=cin), _cbr(cin, cout))


class InceptionBlock(nn.Module):
    """Parallel 1x1 / 1x1-3x3 / 1x1-3x3-3x3 / pool-1x1 branches, concatenated to `cout` channels."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        b = cout // 4
        sizes = [cout - 3 * b, b, b, b]
        reduce = _div8(cin / 2)
        self.b1 = _cbr(cin, sizes[0])
        self.b3 = nn.Sequential(_cbr(cin, reduce), _sep3(reduce, sizes[1]))
        self.b5 = nn.Sequential(_cbr(cin, reduce), _sep3(reduce, reduce), _sep3(reduce, sizes[2]))
        self.pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), _cbr(cin, sizes[3]))
        self.residual = cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], dim=1)
        return x + y if self.residual else y


# (expansion, out channels, IR blocks, first stride, Inception after)
_STAGES = ((1, 16, 1, 1, False), (6, 24, 2, 2, False), (6, 48, 2, 2, True), (6, 96, 3, 2, True),
           (6, 160, 2, 2, True))


class CMINet(ClassificationNet):
    """CMI: MobileNetV2 inverted residuals + Inception blocks; logits (N, classes)."""

    feature_layer = "head"

    def __init__(self, classes: int = 6, width: float = 1.0, dropout: float = 0.2, head_channels: int = 640) -> None:
        super().__init__(classes)
        if not 0 < width <= 2:
            raise ValueError(f"width must be in (0, 2], got {width}")
        cin = _div8(32 * width)
        self.stem = _cbr(3, cin, 3, 2)
        stages = []
        for t, c, n, s, inception in _STAGES:
            cout = _div8(c * width)
            blocks: list[nn.Module] = []
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
            if inception:
                blocks.append(InceptionBlock(cin, cout))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = _cbr(cin, _div8(head_channels * max(1.0, width)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(_div8(head_channels * max(1.0, width)), classes)
        self.init_fan_in()  # fan-in, not MobileNetV2's fan-out: see ClassificationNet.init_fan_in
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.stages(self.stem(x)))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))
