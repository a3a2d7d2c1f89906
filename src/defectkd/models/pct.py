"""PoolingCrack-Tiny (PCT): a ~0.5 M-parameter pooling-mixer student for crack segmentation.

Why: the RFKD paper (Chen et al. 2024, arXiv 2404.06258) distils into "PoolingCrack Tiny, 0.5 M
parameters, pooling-based token mixing". Pooling mixes tokens with no weights and no attention, so
nearly all parameters go into channel MLPs; that keeps the student under half of MCFF-L's size and
cheap on CPUs and edge runtimes, and every op (conv, GroupNorm, AvgPool, GELU, bilinear resize) exports
cleanly to ONNX. This is built from that description, not ported from published code: PoolFormer blocks
(Yu et al. 2022) in a 4-stage hierarchical encoder and a light SegFormer-style multi-scale decoder.

Layout (strides are relative to the padded input, which `SegmentationNet` pads to a multiple of 32):

    encoder.stem          two 3x3 stride-2 convs                 -> stride 4
    encoder.stages.0      2 PoolFormer blocks, 32 ch             -> stride 4
    encoder.downs.0       3x3 stride-2 conv 32 -> 48
    encoder.stages.1      2 PoolFormer blocks, 48 ch             -> stride 8
    encoder.downs.1       3x3 stride-2 conv 48 -> 72
    encoder.stages.2      4 PoolFormer blocks, 72 ch             -> stride 16
    encoder.downs.2       3x3 stride-2 conv 72 -> 96
    encoder.stages.3      2 PoolFormer blocks, 96 ch             -> stride 32
    decoder               1x1 conv per stage to 48 ch, upsample to stride 4, concat, 1x1 fuse
                          + 3x3 refine (BatchNorm, ReLU), 1x1 classifier, bilinear x4 -> logits

Feature taps for distillation hooks: the outputs of `encoder.stages.0` .. `encoder.stages.3`
(channels `dims`, strides 4, 8, 16, 32) and `decoder.fuse` / `decoder.refine` (48 ch, stride 4,
the fused multi-scale feature just before the classifier `decoder.classifier`; `decoder.refine` is the
default tap, `feature_layer`, like the 1/4-scale decoder taps of the smp teachers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defectkd.models.base import IMAGENET_MEAN, IMAGENET_STD, SegmentationNet


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Pooling(nn.Module):
    """PoolFormer token mixer: local average minus the token itself (the block adds it back)."""

    def __init__(self, pool_size: int = 3) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x


class Mlp(nn.Module):
    """Channel MLP of 1x1 convs: C -> ratio*C -> C."""

    def __init__(self, channels: int, ratio: float) -> None:
        super().__init__()
        hidden = int(channels * ratio)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PoolFormerBlock(nn.Module):
    """x + drop(ls1 * (pool(norm1 x) - norm1 x)); x + drop(ls2 * mlp(norm2 x)); norm = GroupNorm(1, C)."""

    def __init__(self, channels: int, mlp_ratio: float = 4.0, pool_size: int = 3, drop_path: float = 0.0,
                 layer_scale_init: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(1, channels)
        self.mixer = Pooling(pool_size)
        self.norm2 = nn.GroupNorm(1, channels)
        self.mlp = Mlp(channels, mlp_ratio)
        self.drop_path = DropPath(drop_path)
        self.layer_scale_1 = nn.Parameter(torch.full((channels, 1, 1), layer_scale_init))
        self.layer_scale_2 = nn.Parameter(torch.full((channels, 1, 1), layer_scale_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1 * self.mixer(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2 * self.mlp(self.norm2(x)))


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())  # not in place: a hook on the BatchNorm must keep its output


class PCTEncoder(nn.Module):
    """Stem to stride 4, then four stages of PoolFormer blocks with stride-2 conv downsampling between."""

    def __init__(self, dims: tuple[int, ...], depths: tuple[int, ...], mlp_ratio: float, drop_path: float,
                 layer_scale_init: float) -> None:
        super().__init__()
        if len(dims) != len(depths):
            raise ValueError(f"dims and depths must have the same length, got {dims} and {depths}")
        half = dims[0] // 2
        self.stem = nn.Sequential(
            nn.Conv2d(3, half, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(half), nn.GELU(),
            nn.Conv2d(half, dims[0], 3, stride=2, padding=1),
        )
        rates = torch.linspace(0, drop_path, sum(depths)).tolist()
        stages, start = [], 0
        for dim, depth in zip(dims, depths, strict=True):
            stages.append(nn.Sequential(*[
                PoolFormerBlock(dim, mlp_ratio, drop_path=rates[start + i], layer_scale_init=layer_scale_init)
                for i in range(depth)
            ]))
            start += depth
        self.stages = nn.ModuleList(stages)
        self.downs = nn.ModuleList(
            nn.Conv2d(cin, cout, 3, stride=2, padding=1) for cin, cout in zip(dims[:-1], dims[1:], strict=True)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.downs[i - 1](x)
            x = stage(x)
            features.append(x)
        return features


class PCTDecoder(nn.Module):
    """SegFormer-like: project every stage to `width`, upsample to stride 4, concat, fuse, refine, classify."""

    def __init__(self, dims: tuple[int, ...], width: int, classes: int) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv2d(d, width, 1) for d in dims)
        self.fuse = _conv_bn_relu(width * len(dims), width, 1)
        self.refine = _conv_bn_relu(width, width, 3)
        self.classifier = nn.Conv2d(width, classes, 1)

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        target = features[0].shape[-2:]
        projected = [self.proj[0](features[0])]
        for proj, f in zip(self.proj[1:], features[1:], strict=True):
            projected.append(F.interpolate(proj(f), size=target, mode="bilinear", align_corners=False))
        x = self.refine(self.fuse(torch.cat(projected, dim=1)))
        return F.interpolate(self.classifier(x), size=size, mode="bilinear", align_corners=False)


class PCTNet(SegmentationNet):
    """PoolingCrack-Tiny: PoolFormer encoder (dims 32/48/72/96, depths 2/2/4/2), light decoder. Head: out."""

    feature_layer = "decoder.refine"  # fused multi-scale feature: decoder_width channels at 1/4, as the teachers' taps

    def __init__(
        self,
        classes: int = 2,
        dims: tuple[int, ...] = (32, 48, 72, 96),
        depths: tuple[int, ...] = (2, 2, 4, 2),
        mlp_ratio: float = 4.0,
        decoder_width: int = 48,
        drop_path: float = 0.0,
        layer_scale_init: float = 1e-5,
    ) -> None:
        dims, depths = tuple(dims), tuple(depths)
        # stem to 1/4, then one 2x step per further stage; padding to this makes every size work
        super().__init__(classes=classes, stride=4 * 2 ** (len(dims) - 1), mean=IMAGENET_MEAN, std=IMAGENET_STD)
        self.encoder = PCTEncoder(dims, depths, mlp_ratio, drop_path, layer_scale_init)
        self.decoder = PCTDecoder(dims, decoder_width, classes)

    def _heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.decoder(self.encoder(x), x.shape[-2:])}
