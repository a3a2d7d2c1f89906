"""MCFF-Edge: defectkd's own edge students (mcff-edge-n / -s / -m), one design scaled in width and depth.

Why: MCFF-L fuses standard, dilated and strip (rectangular) receptive fields, which suits long thin
cracks, but it runs 16-channel 7x7, dilated and strip convolutions at full resolution in three whole
encoder-decoder paths: 35 GMACs at 448x448, about 1 FPS on two CPU threads. MCFF-Edge keeps the three
receptive fields and spends the compute at low resolution, with edge-friendly ops only:

- a cheap stem downsamples at once: 3x3 stride-2 conv (1/2), 3x3 stride-2 conv (1/4);
- multi-path blocks at 1/4, 1/8 and 1/16 run the three fields as depthwise convolutions, each + BN + ReLU:
  a 3x3 ("standard"), a dilated 3x3 ("dilated") and a cross of 1xk + kx1 strips ("rect", MCFF's
  rectangular field); fused by add (1x1 C -> C) where memory traffic is what costs (1/4, 1/8) or by concat
  (1x1 3C -> C) at 1/16 where 1x1 convs are cheap, + BN, added to the block input (residual), ReLU;
- a high-resolution detail branch: the stem's 1/2 output (16 ch) and one depthwise 3x3 on it, added to the
  upsampled decoder feature at 1/2, so 1-2 px wide cracks survive;
- a light decoder: 1x1 laterals, top-down x2 upsample + add to 1/4, one multi-path block there, 1x1 to the
  detail width, x2 + detail, ReLU, depthwise 3x3, 1x1 classifier at 1/2, logits x2 (bilinear) to full size.

Ops: Conv2d (dense, depthwise, dilated), BatchNorm2d (folded into the convs on export), ReLU, bilinear
resize (fixed x2 / x4 scales), add, concat. No GroupNorm/LayerNorm, no pooling, no GELU, no transposed
convs: the ONNX graph is Conv/Relu/Add/Concat/Resize plus the input scaling and pad/crop of
`SegmentationNet`, which ONNX Runtime fuses well (Conv+BN+ReLU, Conv+Add) and INT8 quantisers handle.
Channel counts are multiples of 16 (ONNX Runtime's NCHWc block on AVX-512): no padded channels.

Heads. `forward_heads` returns "standard", "dilated", "rect" and "mix" (main, deployed), MCFF-L's head names
in MCFF-L's order, so distillation from an MCFF-style teacher pairs them by name (kd_heads=auto): each
student branch learns from the teacher path with the same receptive field. The three auxiliary heads are
1x1 convs on the three branch outputs of the decoder's multi-path block at 1/4 (each branch already sees
the multi-scale context of the top-down path), upsampled x4: three 1x1 convs at 1/4. Unlike MCFF-L, "mix"
is not the sum of the other three (that would take three full-resolution decoders): it is the decoder's
output with the detail branch. `forward` (deploy, export) computes "mix" only, so the auxiliary heads cost
nothing at inference. With a single-head teacher every head learns from its main head (and all heads from
the labels, `aux_weight`); `aux_heads=False` leaves the single head "mix".

Layout (strides of the padded input; `SegmentationNet` pads to a multiple of 16):

    stem.0              3x3 s2 conv 3 -> 16                                   1/2
    detail              dw 3x3 (16 ch), BN                                    1/2  (high-resolution branch)
    stem.1              3x3 s2 conv 16 -> widths[0]                           1/4
    stages.0            depths[0] multi-path blocks, add, widths[0]           1/4  (dilation 2, strips 11)
    downs.0, stages.1   dw 3x3 s2 + 1x1; depths[1] blocks, add, widths[1]     1/8  (dilation 3, strips 9)
    downs.1, stages.2   dw 3x3 s2 + 1x1; depths[2] blocks, concat, widths[2]  1/16 (dilation 4, strips 7)
    decoder.lateral     1x1 to decoder_width; top-down x2 + add; ReLU (decoder.merge)             1/4
    decoder.block       multi-path block (add, dilation 2, strips 11); branches -> decoder.aux     1/4
    decoder.to_detail   1x1 to 16, x2, + detail, ReLU (decoder.detail_act)                        1/2
    decoder.refine, decoder.classifier   dw 3x3, 1x1 -> classes; bilinear x2                      1/2 -> 1/1

Variants (models/__init__.py): n = widths 32/64/176, depths 1/2/3, decoder 32 (0.35 M params, 0.47 GMACs
at 448x448); s = 48/96/192, 1/2/4, decoder 48 (0.56 M, 0.77 GMACs); m = 64/128/320, 2/3/6, decoder 64
(2.11 M, 2.26 GMACs). Feature tap (`feature_layer`): `decoder.block.act`, the fused multi-scale decoder
feature at 1/4 (decoder_width channels), like the 1/4-scale decoder taps of pct-tiny and the smp teachers.

`rep=True` (mcff-edge-n-rep / -s-rep) trains every conv + BN with re-parameterisable branches (a 1x1 conv + BN
at the kernel's centre, a BN-only identity where shapes allow; the strip cross gets them on its horizontal
strip only); loading folds them (models/rep.py), so the deployed model is mcff-edge-n / -s, tensor for tensor.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from defectkd.models.base import SegmentationNet
from defectkd.models.rep import ConvBN

BRANCHES = ("standard", "dilated", "rect")


def _conv_bn(cin: int, cout: int, k: int | tuple[int, int] = 1, stride: int = 1, dilation: int = 1,
             groups: int = 1, relu: bool = True, rep: bool = False) -> ConvBN:
    """Conv (no bias) + BatchNorm (+ ReLU); `rep` adds training-time branches folded away on load (models/rep.py)."""
    return ConvBN(cin, cout, (k, k) if isinstance(k, int) else k, stride=stride, dilation=dilation, groups=groups,
                  relu=relu, rep=rep)


def _separable(cin: int, cout: int, stride: int = 1, rep: bool = False) -> nn.Sequential:
    """Depthwise 3x3 (stride) + BN + ReLU, then 1x1 + BN + ReLU."""
    return nn.Sequential(_conv_bn(cin, cin, 3, stride=stride, groups=cin, rep=rep), _conv_bn(cin, cout, 1, rep=rep))


def _up(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class StripBranch(nn.Module):
    """MCFF's rectangular field as depthwise strips: ReLU(BN(1 x k) + BN(k x 1)), a cross of long thin lines."""

    def __init__(self, channels: int, k: int, rep: bool = False) -> None:
        super().__init__()
        self.horizontal = _conv_bn(channels, channels, (1, k), groups=channels, relu=False, rep=rep)
        self.vertical = _conv_bn(channels, channels, (k, 1), groups=channels, relu=False)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.horizontal(x) + self.vertical(x))


class MultiPathBlock(nn.Module):
    """Three depthwise branches, each BN + ReLU: standard (3x3), dilated (3x3, dilation d) and rect (1xk + kx1);
    fused by `add` (sum, then 1x1 C -> C) or `cat` (concat, then 1x1 3C -> C), BN, residual add, ReLU."""

    def __init__(self, channels: int, dilation: int, strip: int, fusion: str = "add", rep: bool = False) -> None:
        super().__init__()
        if fusion not in ("add", "cat"):
            raise ValueError(f"fusion must be 'add' or 'cat', got {fusion!r}")
        self.fusion = fusion
        self.standard = _conv_bn(channels, channels, 3, groups=channels, rep=rep)
        self.dilated = _conv_bn(channels, channels, 3, dilation=dilation, groups=channels, rep=rep)
        self.rect = StripBranch(channels, strip, rep)
        self.fuse = _conv_bn((3 if fusion == "cat" else 1) * channels, channels, 1, relu=False, rep=rep)
        self.act = nn.ReLU()

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.standard(x), self.dilated(x), self.rect(x)]

    def merge(self, x: torch.Tensor, parts: list[torch.Tensor]) -> torch.Tensor:
        mixed = torch.cat(parts, dim=1) if self.fusion == "cat" else parts[0] + parts[1] + parts[2]
        return self.act(x + self.fuse(mixed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(x, self.branches(x))


class EdgeDecoder(nn.Module):
    """Top-down 1/16 -> 1/4 (1x1 laterals, x2 upsample + add), a multi-path block at 1/4 (+ auxiliary heads on
    its branches), x2 + detail branch at 1/2, depthwise 3x3 refine, 1x1 classifier, logits x2 to full size."""

    def __init__(self, widths: tuple[int, ...], width: int, detail: int, classes: int, dilation: int, strip: int,
                 aux_heads: bool, rep: bool = False) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(_conv_bn(c, width, 1, relu=False, rep=rep) for c in widths)
        self.merge = nn.ReLU()
        self.block = MultiPathBlock(width, dilation, strip, "add", rep)
        self.aux = nn.ModuleDict({name: nn.Conv2d(width, classes, 1) for name in BRANCHES}) if aux_heads else None
        self.to_detail = _conv_bn(width, detail, 1, relu=False, rep=rep)
        self.detail_act = nn.ReLU()
        self.refine = _conv_bn(detail, detail, 3, groups=detail, rep=rep)
        self.classifier = nn.Conv2d(detail, classes, 1)

    def forward(self, features: list[torch.Tensor], detail: torch.Tensor, aux: bool) -> dict[str, torch.Tensor]:
        x = self.lateral[-1](features[-1])
        for lateral, f in zip(self.lateral[-2::-1], features[-2::-1], strict=True):
            x = lateral(f) + _up(x, 2)
        x = self.merge(x)
        parts = self.block.branches(x)
        x = self.block.merge(x, parts)
        x = self.detail_act(detail + _up(self.to_detail(x), 2))
        heads = {}
        if aux and self.aux is not None:  # MCFF-L's head order: standard, dilated, rect, mix
            heads = {name: _up(self.aux[name](part), 4) for name, part in zip(BRANCHES, parts, strict=True)}
        heads["mix"] = _up(self.classifier(self.refine(x)), 2)
        return heads


class MCFFEdgeNet(SegmentationNet):
    """MCFF-Edge student. Heads: standard, dilated, rect (auxiliary, from 1/4) and mix (main, deployed)."""

    main_head = "mix"
    feature_layer = "decoder.block.act"  # fused multi-scale decoder feature at 1/4, decoder_width channels
    # bf16 autocast made mcff-edge-s diverge (NaN weights) at epochs 3-5 on DeepCrack, alone and distilled;
    # fp32 trains it stably and as fast on this CPU (depthwise convolutions gain nothing from bf16).
    autocast_ok = False

    def __init__(
        self,
        classes: int = 2,
        widths: tuple[int, ...] = (48, 96, 192),
        depths: tuple[int, ...] = (1, 2, 4),
        decoder_width: int = 48,
        detail: int = 16,
        dilations: tuple[int, ...] = (2, 3, 4),
        strips: tuple[int, ...] = (11, 9, 7),
        fusions: tuple[str, ...] = ("add", "add", "cat"),
        aux_heads: bool = True,
        rep: bool = False,
    ) -> None:
        widths, depths, dilations, strips, fusions = map(tuple, (widths, depths, dilations, strips, fusions))
        if not len(widths) == len(depths) == len(dilations) == len(strips) == len(fusions):
            raise ValueError(f"widths, depths, dilations, strips and fusions need one entry per stage, got "
                             f"{widths}, {depths}, {dilations}, {strips}, {fusions}")
        # stem to 1/4, one 2x step per further stage; padding to this makes every size work
        super().__init__(classes=classes, stride=4 * 2 ** (len(widths) - 1))
        self.stem = nn.Sequential(_conv_bn(3, detail, 3, stride=2, rep=rep),
                                  _conv_bn(detail, widths[0], 3, stride=2, rep=rep))
        # added to the decoder at 1/2
        self.detail = _conv_bn(detail, detail, 3, groups=detail, relu=False, rep=rep)
        self.stages = nn.ModuleList(
            nn.Sequential(*[MultiPathBlock(c, d, k, fu, rep) for _ in range(n)])
            for c, n, d, k, fu in zip(widths, depths, dilations, strips, fusions, strict=True)
        )
        self.downs = nn.ModuleList(_separable(cin, cout, stride=2, rep=rep)
                                   for cin, cout in zip(widths[:-1], widths[1:], strict=True))
        self.decoder = EdgeDecoder(widths, decoder_width, detail, classes, dilations[0], strips[0], aux_heads, rep)
        self._aux = True  # forward() turns it off: the deployed graph computes the main head only

    @property
    def heads(self) -> tuple[str, ...]:
        """Head names of `forward_heads`, main head last."""
        return (*BRANCHES, "mix") if self.decoder.aux is not None else ("mix",)

    def _heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        half = self.stem[0](x)
        f = self.stem[1](half)
        features = []
        for i, stage in enumerate(self.stages):
            if i:
                f = self.downs[i - 1](f)
            f = stage(f)
            features.append(f)
        return self.decoder(features, self.detail(half), aux=self._aux)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The main head only: the auxiliary heads are skipped (deploy form, ONNX export, PyTorch inference)."""
        self._aux = False
        try:
            return super().forward(x)
        finally:
            self._aux = True
