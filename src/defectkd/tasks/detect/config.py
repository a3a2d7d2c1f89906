"""The detection run's fields (beyond `RunConfig`'s) and its distillation schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from defectkd.core.config import RunConfig
from defectkd.distill.config import DistillFields


class DetectTrainConfig(RunConfig):
    """Everything that defines a defect-detection training run (saved as the run's config.yaml)."""

    task: Literal["detect"] = Field("detect", description="fixed by the verb")
    data: str = Field(description="Pascal VOC (images/ + annotations/*.xml, NEU-DET), COCO JSON or YOLO txt "
                      "(images/ + labels/), with optional splits")
    model: str = Field("retinanet-r18", description="registered detect model (see `defectkd models`)")
    class_names: list[str] | None = Field(None, description="recorded from the data by the run; if given, these "
                                          "classes in this order (an object of another class is a data problem)")
    pretrained: str | None = Field(None, description="local weights to start from (a torchvision RetinaNet or "
                                   "ImageNet ResNet state dict works)")
    epochs: int = Field(30, ge=1, description="training epochs")
    imgsz: int = Field(224, ge=32, description="images are resized so that their longer side is imgsz (the "
                       "detector's min_size = max_size), then padded to a multiple of 32")
    anchor_base: int | None = Field(None, ge=4, description="smallest anchor size (P3; default 32, torchvision's)")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="optimizer")
    lr: float = Field(1e-4, gt=0, description="adamw: 1e-4; sgd (momentum 0.9): e.g. 0.01")
    scheduler: Literal["cosine", "none"] = Field("cosine", description="learning-rate schedule over the epochs")
    grad_clip: float = Field(10.0, ge=0, description="gradient-norm clipping (0: off); RetinaNet from random weights "
                             "has large box gradients in its first steps")
    monitor: Literal["map_50", "map"] = Field("map_50", description="validation metric for best.pt and early "
                                              "stopping (map: COCO mAP 0.5:0.95)")
    threshold: float = Field(0.25, gt=0, lt=1, description="score threshold of predict and of the drawn examples "
                             "(mAP uses every box above the detector's 0.05)")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of the training images drawn for validation "
                                "when the data set has no val split")
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = Field(
        "32", description="32 by default: box decoding and NMS in bf16 move boxes by pixels")
    skip_bad: bool = Field(False, description="drop images with problems (unreadable, unknown class) instead of "
                           "refusing")

    def model_kwargs(self, classes: int) -> dict[str, Any]:
        kw: dict[str, Any] = {"classes": classes, "min_size": self.imgsz, "max_size": self.imgsz}
        if self.anchor_base is not None:
            kw["anchor_base"] = self.anchor_base
        return kw


class DistillDetectConfig(DistillFields, DetectTrainConfig):
    """A detection run whose student (`model`) also learns from a frozen teacher detector's FPN levels.

    `method` names a detection recipe (distill.recipes.DETECT_RECIPES: mgd, cwd, fitnet), a term on every FPN
    level pair (`fpn_levels.p3` ... `p7`, by name); anything set explicitly wins."""

    teacher: str = Field(description="teacher detector: run folder or weights file")
    method: str = Field("mgd", description="recipe: mgd (one-stage preset), cwd, fitnet")
    T: float | None = Field(None, gt=0, description="cwd temperature (default 1)")
    hard_weight: float | None = Field(None, ge=0, description="weight of the detection losses (default: 1)")
    feat: list[str] = Field(default_factory=list, description="feature pairs student.path:teacher.path "
                            "(default: every FPN level, fpn_levels.p3:fpn_levels.p3 ... p7)")

    @model_validator(mode="after")
    def _resolve_recipe(self) -> DistillDetectConfig:
        from defectkd.distill.recipes import DETECT_RECIPES

        self.resolve_recipe(None, DETECT_RECIPES)
        return self
