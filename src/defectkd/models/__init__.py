"""Model registry: `list_models()`, `build_model(name, **kw)`; every model is a plain nn.Module."""

from functools import partial

from .base import SegmentationNet, crack_probability
from .mcff import MCFFNet
from .pct import PCTNet
from .registry import ModelSpec, build_model, list_models, load_pretrained, model_spec, register
from .smp_teachers import SMPSegmenter

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

__all__ = [
    "MCFFNet", "ModelSpec", "PCTNet", "SMPSegmenter", "SegmentationNet", "build_model", "crack_probability",
    "list_models", "load_pretrained", "model_spec", "register",
]
