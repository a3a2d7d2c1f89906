"""Teachers from segmentation_models_pytorch, wrapped to the defectkd model interface.

No pretrained weights are downloaded: `encoder_weights=None` always; a local file can be loaded
afterwards with `load_pretrained` (a full-model or an encoder-only state dict).
"""

from __future__ import annotations

import torch

from defectkd.models.base import IMAGENET_MEAN, IMAGENET_STD, SegmentationNet


class SMPSegmenter(SegmentationNet):
    """A smp architecture (Unet, DeepLabV3Plus, ...) with a ResNet-style encoder."""

    def __init__(self, arch: str, encoder: str = "resnet50", classes: int = 2) -> None:
        import segmentation_models_pytorch as smp

        super().__init__(classes=classes, stride=32 if arch == "Unet" else 16, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        self.net = getattr(smp, arch)(encoder_name=encoder, encoder_weights=None, classes=classes)
        # default feature tap at 1/4 scale: U-Net's 64-channel decoder stage, DeepLabV3+'s decoder output
        self.feature_layer = "net.decoder.blocks.2" if arch == "Unet" else "net.decoder"

    def _heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.net(x)}
