"""Common behaviour of every classification network, and the torchvision teacher/student wrappers.

As for segmentation (models/base.py), a classifier takes RGB float images in [0, 1], shape
(N, 3, H, W) with any H, W, scales them itself, and returns logits (N, classes). `forward_heads`
returns {"out": logits} so that layer listing and distillation treat both tasks alike, and
`feature_layer` names the last feature map (a `named_modules` path) for feature distillation.
No weights are downloaded (`weights=None`); `--pretrained FILE` loads a local torchvision file
(its 1000-class head is dropped when the class count differs).
"""

from __future__ import annotations

import torch
from torch import nn

from defectkd.models.base import IMAGENET_MEAN, IMAGENET_STD


class ClassificationNet(nn.Module):
    """Base class: subclasses implement `_logits(x)` on a normalised input."""

    main_head: str = "out"
    feature_layer: str | None = None

    def __init__(self, classes: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
        super().__init__()
        if classes < 2:
            raise ValueError(f"classes must be >= 2, got {classes}")
        self.classes = classes
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self._logits((x - self.mean) / self.std)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits((x - self.mean) / self.std)

    def init_fan_in(self) -> None:
        """Kaiming-normal fan-in init of every conv (forward-variance preserving), BatchNorm to 1 / 0.

        torchvision's fan-out init makes a depthwise 3x3 conv shrink the variance about C/2-fold; in eval
        mode, while BatchNorm's running variance still remembers its initial 1, the activations vanish
        layer by layer and a short run validates on one constant output. Fan-in keeps them at O(1)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def pretrained_state(self, state: dict) -> dict:
        """A local weights file in this model's key names: torchvision keys get the `net.` prefix, and
        tensors whose shape differs (an ImageNet head for another class count) are left out."""
        own = self.state_dict()
        out = {}
        for k, v in state.items():
            key = k if k in own else f"net.{k}"
            if key in own and isinstance(v, torch.Tensor) and tuple(own[key].shape) == tuple(v.shape):
                out[key] = v
        return out


class TorchvisionClassifier(ClassificationNet):
    """torchvision ResNet-50 (`arch="resnet50"`) or MobileNetV2 (`arch="mobilenet_v2"`, `width` = width_mult)."""

    def __init__(self, arch: str, classes: int = 6, width: float = 1.0, dropout: float = 0.2) -> None:
        import torchvision

        super().__init__(classes)
        if arch == "resnet50":
            if width != 1.0:
                raise TypeError("resnet50 has no width option")
            self.net = torchvision.models.resnet50(weights=None, num_classes=classes)
            self.feature_layer = "net.layer4"
        elif arch == "mobilenet_v2":
            if not 0 < width <= 2:
                raise ValueError(f"width must be in (0, 2], got {width}")
            self.net = torchvision.models.mobilenet_v2(weights=None, num_classes=classes, width_mult=width,
                                                       dropout=dropout)
            self.feature_layer = "net.features"
            self.init_fan_in()  # depthwise convs: see init_fan_in
        else:
            raise ValueError(f"unknown torchvision architecture {arch!r}")

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.float(), dim=1)
