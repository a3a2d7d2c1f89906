"""Model registry: `list_models()`, `build_model(name, **kw)`; every model is a plain nn.Module."""

from functools import partial

from defectkd.models.base import SegmentationNet, crack_probability
from defectkd.models.classify import ClassificationNet, TorchvisionClassifier
from defectkd.models.cmi import CMINet
from defectkd.models.detect import RetinaNetDetector
from defectkd.models.mcff import MCFFNet
from defectkd.models.mcff_edge import MCFFEdgeNet
from defectkd.models.pct import PCTNet
from defectkd.models.registry import (
    ModelSpec,
    build_deployed,
    build_model,
    list_models,
    load_pretrained,
    model_spec,
    register,
)
from defectkd.models.smp_teachers import SMPSegmenter

register(ModelSpec(
    "mcff-l", "segment", "student", MCFFNet,
    "MCFF-L Net: three receptive-field paths, four heads (mix deployed), dim 16, 4 blocks",
    {"dim": 16, "blocks": 4, "classes": 2},
))
register(ModelSpec(
    "pct-tiny", "segment", "student", PCTNet,
    "PoolingCrack-Tiny: ~0.5 M params, PoolFormer pooling mixer, 4-stage encoder (32/48/72/96), light decoder",
    {"classes": 2},
))
register(ModelSpec(
    "mcff-edge-n", "segment", "student", MCFFEdgeNet,
    "MCFF-Edge n: MCFF's three fields as depthwise blocks at 1/4-1/16, detail branch; 0.35 M params, 0.47 GMACs@448",
    {"widths": (32, 64, 176), "depths": (1, 2, 3), "decoder_width": 32, "classes": 2},
))
register(ModelSpec(
    "mcff-edge-s", "segment", "student", MCFFEdgeNet,
    "MCFF-Edge s (default edge student): widths 48/96/192, depths 1/2/4; 0.56 M params, 0.77 GMACs@448",
    {"widths": (48, 96, 192), "depths": (1, 2, 4), "decoder_width": 48, "classes": 2},
))
register(ModelSpec(
    "mcff-edge-m", "segment", "student", MCFFEdgeNet,
    "MCFF-Edge m: widths 64/128/320, depths 2/3/6; 2.11 M params, 2.26 GMACs@448",
    {"widths": (64, 128, 320), "depths": (2, 3, 6), "decoder_width": 64, "classes": 2},
))
for _size in ("n", "s"):
    register(ModelSpec(
        f"mcff-edge-{_size}-rep", "segment", "student", partial(MCFFEdgeNet, rep=True),
        f"MCFF-Edge {_size} trained with re-parameterisable branches (1x1 + identity, MobileOne-style), folded on "
        f"load: deploys as mcff-edge-{_size}, same graph and speed",
        dict(model_spec(f"mcff-edge-{_size}").defaults),
    ))
register(ModelSpec(
    "mcff-teacher", "segment", "teacher", MCFFNet,
    "MCFF Net teacher: dim 64, 8 blocks, dropout 0.5 before each upsampling",
    {"dim": 64, "blocks": 8, "dropout": 0.5, "classes": 2},
))
register(ModelSpec(
    "unet-r50", "segment", "teacher", partial(SMPSegmenter, "Unet"),
    "U-Net with ResNet-50 encoder (segmentation_models_pytorch)",
    {"encoder": "resnet50", "classes": 2},
))
register(ModelSpec(
    "deeplabv3p-r50", "segment", "teacher", partial(SMPSegmenter, "DeepLabV3Plus"),
    "DeepLabV3+ with ResNet-50 encoder (segmentation_models_pytorch)",
    {"encoder": "resnet50", "classes": 2},
))

register(ModelSpec(
    "resnet50", "classify", "teacher", partial(TorchvisionClassifier, "resnet50"),
    "ResNet-50 classifier (torchvision, no downloaded weights; --pretrained FILE for local ones)",
    {"classes": 6},
))
register(ModelSpec(
    "mobilenetv2", "classify", "student", partial(TorchvisionClassifier, "mobilenet_v2"),
    "MobileNetV2 classifier (torchvision), width multiplier `width` (1.0: 2.2 M params)",
    {"classes": 6, "width": 1.0},
))
register(ModelSpec(
    "cmi", "classify", "student", CMINet,
    "CMI: MobileNetV2 inverted residuals + Inception multi-branch blocks, ~1.0 M params (width 1.0)",
    {"classes": 6, "width": 1.0},
))

register(ModelSpec(
    "retinanet-r101", "detect", "teacher", partial(RetinaNetDetector, "resnet101"),
    "RetinaNet, ResNet-101-FPN (torchvision, no downloaded weights); input resized to 224 (min_size/max_size)",
    {"classes": 6, "min_size": 224, "max_size": 224},
))
register(ModelSpec(
    "retinanet-r50", "detect", "student", partial(RetinaNetDetector, "resnet50"),
    "RetinaNet, ResNet-50-FPN student (torchvision); input resized to 224",
    {"classes": 6, "min_size": 224, "max_size": 224},
))
register(ModelSpec(
    "retinanet-r18", "detect", "student", partial(RetinaNetDetector, "resnet18"),
    "RetinaNet, ResNet-18-FPN, two-conv heads: the light CPU student; input resized to 224",
    {"classes": 6, "min_size": 224, "max_size": 224, "head_depth": 2},
))
register(ModelSpec(
    "retinanet-mnv3", "detect", "student", partial(RetinaNetDetector, "mobilenet_v3_large"),
    "RetinaNet, MobileNetV3-Large backbone, 128-channel FPN, two-conv heads: the edge student; input resized to 224",
    {"classes": 6, "min_size": 224, "max_size": 224, "head_depth": 2, "fpn_channels": 128},
))

__all__ = [
    "CMINet", "ClassificationNet", "MCFFNet", "ModelSpec", "PCTNet", "RetinaNetDetector", "SMPSegmenter",
    "SegmentationNet", "TorchvisionClassifier", "build_deployed", "build_model", "crack_probability", "list_models",
    "load_pretrained", "model_spec", "register",
]
