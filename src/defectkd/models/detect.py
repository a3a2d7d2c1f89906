"""RetinaNet defect detectors (torchvision): ResNet-101/50/18 + FPN (P3-P7, 256 channels), no downloaded weights.

`RetinaNetDetector` wraps torchvision's `RetinaNet` so that it fits the project's contracts:
- input: RGB float images in [0, 1], a (N, 3, H, W) tensor or a list of (3, H, W) tensors of any sizes;
  torchvision's own transform normalises (ImageNet mean/std) and resizes them (shorter side to `min_size`,
  longer side at most `max_size`; both = `imgsz` in a run: the longer side becomes imgsz), then pads to a
  multiple of 32 (value 0 after normalising);
- train mode with targets (`[{"boxes": (n, 4) xyxy pixels, "labels": (n,) 0-based}]`): torchvision's loss dict
  {"classification" (sigmoid focal loss), "bbox_regression" (L1)}; eval mode: one dict per image with
  "boxes" (xyxy, in the input image's pixels), "scores", "labels" (0-based class indices, `class_names[i]`);
- every FPN level passes through an Identity module `fpn_levels.p3` ... `fpn_levels.p7`, so FeatureTaps
  (forward hooks by module path) capture one (N, 256, H/2^l, W/2^l) tensor per level; `feature_layers` lists
  them and feature distillation pairs teacher and student levels by name;
- `head_outputs(x)` runs normalise + backbone + heads on an already resized and padded batch and returns the
  raw `cls_logits` (N, A, classes) and `bbox_regression` (N, A, 4) over all anchors (levels in order, then
  y, x, anchor): what the ONNX export holds; anchors, box decoding, score threshold, top-k and NMS are
  defectkd.deploy.detect_post's numpy twin of torchvision's post-processing.

Weights are never downloaded (`weights=None, weights_backbone=None`): BatchNorm layers are ordinary (trainable)
ones, every layer is trainable. `retinanet-r18` trims each head to `head_depth=2` convs (torchvision: 4), half
the head's MACs, for CPUs. `retinanet-mnv3` goes further for CPU training and edge devices: a MobileNetV3-Large
backbone, a 128-channel FPN and two-conv heads. Feature distillation pairs its 128-channel levels with a
teacher's 256-channel ones through the usual 1x1 adapters.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torchvision
from torch import nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

LEVELS = ("p3", "p4", "p5", "p6", "p7")
ASPECT_RATIOS = (0.5, 1.0, 2.0)
ARCHS = ("resnet18", "resnet50", "resnet101", "mobilenet_v3_large")
# mobilenet_v3_large.features: the last block of each stride-8 / 16 / 32 stage (40, 112 and 960 channels)
MOBILENET_STAGES = {"6": "0", "12": "1", "16": "2"}


def fpn_backbone(arch: str, fpn_channels: int) -> BackboneWithFPN:
    """Backbone (random weights) + FPN of `fpn_channels` over its stride-8/16/32 outputs, P6/P7 from P5: the
    torchvision RetinaNet layout, with the channel width and the backbone chosen here."""
    extra = LastLevelP6P7(fpn_channels, fpn_channels)
    if arch == "mobilenet_v3_large":
        features = torchvision.models.mobilenet_v3_large(weights=None).features
        return BackboneWithFPN(features, MOBILENET_STAGES, [40, 112, 960], fpn_channels, extra_blocks=extra)
    body = getattr(torchvision.models, arch)(weights=None, norm_layer=nn.BatchNorm2d)
    layer2 = body.inplanes // 4  # layer2's output channels (128 for resnet18, 512 for resnet50/101)
    return BackboneWithFPN(body, {"layer2": "0", "layer3": "1", "layer4": "2"}, [layer2, layer2 * 2, layer2 * 4],
                           fpn_channels, extra_blocks=extra)


def anchor_sizes(base: int) -> tuple[tuple[int, int, int], ...]:
    """torchvision's RetinaNet anchors, (s, s 2^(1/3), s 2^(2/3)) for s = base * 2^level (base 32: 32 ... 512)."""
    return tuple((s, int(s * 2 ** (1.0 / 3)), int(s * 2 ** (2.0 / 3))) for s in (base * 2 ** i for i in range(5)))


class _TappedFPN(nn.Module):
    """torchvision's BackboneWithFPN (body + fpn) whose five outputs pass through the detector's `fpn_levels`."""

    def __init__(self, inner: nn.Module, levels: nn.ModuleDict) -> None:
        super().__init__()
        self.body = inner.body
        self.fpn = inner.fpn
        self.out_channels = inner.out_channels
        object.__setattr__(self, "_levels", levels)  # owned and named by the detector: `fpn_levels.p3`

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.fpn(self.body(x))
        return OrderedDict((name, self._levels[name](f)) for name, f in zip(LEVELS, feats.values(), strict=True))


class RetinaNetDetector(nn.Module):
    """torchvision RetinaNet with a ResNet (`arch`) FPN backbone; see the module docstring."""

    main_head = "detections"
    feature_layers = tuple(f"fpn_levels.{level}" for level in LEVELS)
    feature_layer = "fpn_levels.p3"  # the finest level (what `defectkd layers` marks)

    def __init__(self, arch: str = "resnet50", classes: int = 6, min_size: int = 224, max_size: int = 224,
                 anchor_base: int = 32, head_depth: int = 4, fpn_channels: int = 256, score_thresh: float = 0.05,
                 nms_thresh: float = 0.5, detections_per_img: int = 100, topk_candidates: int = 1000) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown backbone {arch!r} (known: {', '.join(ARCHS)})")
        if classes < 1:
            raise ValueError(f"classes must be >= 1, got {classes}")
        if not 1 <= head_depth <= 4:
            raise ValueError(f"head_depth must be 1..4, got {head_depth}")
        if min_size < 32 or max_size < min_size:
            raise ValueError(f"need 32 <= min_size <= max_size, got {min_size}, {max_size}")
        if fpn_channels < 8:
            raise ValueError(f"fpn_channels must be >= 8, got {fpn_channels}")
        self.classes = classes
        self.arch = arch
        self.fpn_levels = nn.ModuleDict({level: nn.Identity() for level in LEVELS})
        inner = fpn_backbone(arch, fpn_channels)
        anchors = AnchorGenerator(anchor_sizes(anchor_base), (ASPECT_RATIOS,) * len(LEVELS))
        self.net = RetinaNet(_TappedFPN(inner, self.fpn_levels), classes, min_size=min_size, max_size=max_size,
                             anchor_generator=anchors, score_thresh=score_thresh, nms_thresh=nms_thresh,
                             detections_per_img=detections_per_img, topk_candidates=topk_candidates)
        if head_depth < 4:
            for head in (self.net.head.classification_head, self.net.head.regression_head):
                head.conv = nn.Sequential(*list(head.conv)[:head_depth])
        self.post = {"min_size": min_size, "max_size": max_size, "size_divisible": 32,
                     "anchor_sizes": [list(s) for s in anchor_sizes(anchor_base)],
                     "aspect_ratios": list(ASPECT_RATIOS), "score_thresh": score_thresh, "nms_thresh": nms_thresh,
                     "detections_per_img": detections_per_img, "topk_candidates": topk_candidates,
                     "bbox_xform_clip": float(self.net.box_coder.bbox_xform_clip),
                     "image_mean": list(self.net.transform.image_mean),
                     "image_std": list(self.net.transform.image_std)}

    def forward(self, images, targets: list[dict[str, torch.Tensor]] | None = None):
        """Training: loss dict; eval: detections per image (see the module docstring). On the meta device (MAC
        counting, shapes only) the network part only: transform, backbone and heads, no anchors and no NMS."""
        images = list(images)
        if images and images[0].is_meta:
            batch, _ = self.net.transform(images)
            return self.head_outputs(batch.tensors, normalised=True)
        return self.net(images, targets)

    def head_outputs(self, x: torch.Tensor, normalised: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (cls_logits (N, A, classes), bbox_regression (N, A, 4)) of a resized, padded [0, 1] batch."""
        if not normalised:
            mean = torch.as_tensor(self.net.transform.image_mean, dtype=x.dtype, device=x.device)
            std = torch.as_tensor(self.net.transform.image_std, dtype=x.dtype, device=x.device)
            x = (x - mean[:, None, None]) / std[:, None, None]
        out = self.net.head(list(self.net.backbone(x).values()))
        return out["cls_logits"], out["bbox_regression"]

    def features(self, images) -> OrderedDict[str, torch.Tensor]:
        """FPN levels of images as the model sees them (eval-mode resize, normalise, pad): the teacher's side
        of feature distillation, without heads, anchors or NMS. The `fpn_levels` taps fire."""
        batch, _ = self.net.transform(list(images))
        return self.net.backbone(batch.tensors)

    def pretrained_state(self, state: dict) -> dict:
        """A local weights file in this model's key names: a torchvision RetinaNet state dict (keys without
        `net.`) or an ImageNet ResNet one (keys of `net.backbone.body`, its `fc` dropped); tensors whose
        shape differs (another class count's classification head) are left out."""
        own = self.state_dict()
        out = {}
        for k, v in state.items():
            for key in (k, f"net.{k}", f"net.backbone.body.{k}", f"net.backbone.body.{k.removeprefix('features.')}"):
                if key in own and isinstance(v, torch.Tensor) and tuple(own[key].shape) == tuple(v.shape):
                    out[key] = v
                    break
        return out


class ExportHead(nn.Module):
    """What the ONNX graph holds: `images` (resized, padded, RGB [0, 1]) -> (cls_logits, bbox_regression)."""

    def __init__(self, detector: RetinaNetDetector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.detector.head_outputs(images)


__all__ = ["LEVELS", "ExportHead", "RetinaNetDetector", "anchor_sizes"]
