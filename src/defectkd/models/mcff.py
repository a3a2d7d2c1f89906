"""MCFF-L Net (multi-path crack feature fusion), a faithful PyTorch port of the published design.

Three parallel encoder-decoder paths see the image through different receptive fields:
standard (dilated 3x3 + 7x7), dilated (dilation 3 and 2) and rectangular (strip convolutions,
7x3 / 3x7, which follow long thin cracks). Each path downsamples twice, runs residual blocks at
1/4 resolution, upsamples with transposed convolutions and ends in its own head; the mixed head
is the sum of the three path logits and is the only one kept for deployment.
All convolutions are bias-free, as in the original Keras code.
"""

from __future__ import annotations

import torch
from torch import nn

from defectkd.models.base import SegmentationNet


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f"norm must be 'batch' or 'instance', got {kind!r}")


def _conv(cin: int, cout: int, k: int | tuple[int, int], dilation: int = 1, stride: int = 1) -> nn.Conv2d:
    kh, kw = (k, k) if isinstance(k, int) else k
    pad = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
    return nn.Conv2d(cin, cout, (kh, kw), stride=stride, padding=pad, dilation=dilation, bias=False)


class _Sum(nn.Module):
    """Sum of parallel branches (the rectangular path's vertical + horizontal strips)."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


def _strips(cin: int, cout: int, long: int) -> _Sum:
    """(long x 3 -> 3 x 1) + (3 x long -> 1 x 3): the rectangular receptive field of MCFF."""
    return _Sum(
        nn.Sequential(_conv(cin, cout, (long, 3)), _conv(cout, cout, (3, 1))),
        nn.Sequential(_conv(cin, cout, (3, long)), _conv(cout, cout, (1, 3))),
    )


def _stem(path: str, cin: int, cout: int) -> nn.Sequential:
    """Full-resolution feature extractor of one path (also the shape of its head)."""
    if path == "standard":
        return nn.Sequential(_conv(cin, cout, 3, dilation=2), _conv(cout, cout, 7))
    if path == "dilated":
        return nn.Sequential(_conv(cin, cout, 3, dilation=3), _conv(cout, cout, 3, dilation=2))
    return nn.Sequential(_strips(cin, cout, 7), _conv(cout, cout, 7))


def _down(path: str, cin: int, cout: int) -> nn.Sequential:
    """One 2x downsampling step with the path's own receptive field."""
    if path == "standard":
        return nn.Sequential(_conv(cin, cout, 3, dilation=2), _conv(cout, cout, 3, stride=2))
    if path == "dilated":
        return nn.Sequential(_conv(cin, cout, 3, dilation=3), _conv(cout, cout, 3, dilation=2), nn.MaxPool2d(2))
    strips = _Sum(
        nn.Sequential(_conv(cin, cout, (3, 1)), _conv(cout, cout, (3, 1))),
        nn.Sequential(_conv(cin, cout, (1, 3)), _conv(cout, cout, (1, 3))),
    )
    return nn.Sequential(strips, nn.MaxPool2d(2))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with norm and an identity skip."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels, 3), _norm(norm, channels), nn.ReLU(inplace=True),
            _conv(channels, channels, 3), _norm(norm, channels),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class MCFFPath(nn.Module):
    """One encoder-decoder path: stem, two downsamplings, residual blocks, two upsamplings, head."""

    def __init__(self, path: str, dim: int, blocks: int, classes: int, norm: str, dropout: float) -> None:
        super().__init__()

        def block(*layers: nn.Module, channels: int) -> nn.Sequential:
            return nn.Sequential(*layers, _norm(norm, channels), nn.ReLU(inplace=True))

        self.stem = block(_stem(path, 3, dim), channels=dim)
        self.down1 = block(_down(path, dim, 2 * dim), channels=2 * dim)
        self.down2 = block(_down(path, 2 * dim, 4 * dim), channels=4 * dim)
        self.blocks = nn.Sequential(*[ResidualBlock(4 * dim, norm) for _ in range(blocks)])

        def up(cin: int, cout: int) -> nn.Sequential:
            layers: list[nn.Module] = [nn.Dropout2d(dropout)] if dropout > 0 else []
            layers.append(nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False))
            return block(*layers, channels=cout)

        self.up1 = up(4 * dim, 2 * dim)
        self.up2 = up(2 * dim, dim)
        head = _stem(path, dim, dim)
        last = head[-1]
        head[-1] = _conv(dim, classes, last.kernel_size, dilation=last.dilation[0])
        self.head = nn.Sequential(*head[:-1], _norm(norm, dim), nn.ReLU(inplace=True), head[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down2(self.down1(self.stem(x)))
        x = self.up2(self.up1(self.blocks(x)))
        return self.head(x)


class MCFFNet(SegmentationNet):
    """MCFF-L Net. Heads: standard, dilated, rect and mix (= their sum, the deployed output)."""

    main_head = "mix"
    paths = ("standard", "dilated", "rect")
    feature_layer = "standard.blocks"  # end of the standard path's encoder: 4*dim channels at 1/4

    def __init__(
        self,
        classes: int = 2,
        dim: int = 16,
        blocks: int = 4,
        norm: str = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(classes=classes, stride=4)
        self.standard = MCFFPath("standard", dim, blocks, classes, norm, dropout)
        self.dilated = MCFFPath("dilated", dim, blocks, classes, norm, dropout)
        self.rect = MCFFPath("rect", dim, blocks, classes, norm, dropout)

    def _heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        heads = {name: getattr(self, name)(x) for name in self.paths}
        heads["mix"] = heads["standard"] + heads["dilated"] + heads["rect"]
        return heads
