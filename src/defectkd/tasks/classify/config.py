"""The classification run's fields (beyond `RunConfig`'s) and its distillation schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from defectkd.core.config import RunConfig
from defectkd.distill.config import DistillFields


class ClassifyTrainConfig(RunConfig):
    """Everything that defines a defect-classification training run (saved as the run's config.yaml)."""

    task: Literal["classify"] = Field("classify", description="fixed by the verb")
    data: str = Field(description="class folders (optionally in train/val/test), a path,label CSV, or "
                      "images/<class>_<n>.jpg (NEU-DET) with optional splits/*.txt")
    model: str = Field("cmi", description="registered classify model (see `defectkd models`)")
    class_names: list[str] | None = Field(None, description="recorded from the data by the run; if given, the "
                                          "data must have exactly these classes (this order is the output order)")
    width: float | None = Field(None, gt=0, le=2, description="width multiplier of mobilenetv2 / cmi")
    pretrained: str | None = Field(None, description="local weights file to start from (torchvision keys work)")
    epochs: int = Field(30, ge=1, description="training epochs")
    imgsz: int = Field(128, ge=32, description="every image is resized (validation) or crop-resized (training) "
                       "to imgsz x imgsz")
    batch: int = Field(32, ge=1, description="images per step (per process under DDP)")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="optimizer")
    lr: float = Field(1e-3, gt=0, description="adamw: 1e-3; sgd (momentum 0.9, nesterov): e.g. 0.05")
    scheduler: Literal["cosine", "none"] = Field("cosine", description="learning-rate schedule over the epochs")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross-entropy label smoothing")
    monitor: Literal["accuracy", "f1"] = Field("accuracy", description="validation metric for best.pt and "
                                               "early stopping (f1: macro)")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of each class drawn for validation when the "
                                "data set has no val split")
    channels_last: bool = Field(True, description="NHWC memory format (faster on CPU)")
    skip_bad: bool = Field(False, description="drop unreadable or missing images instead of refusing")

    def model_kwargs(self, classes: int) -> dict[str, Any]:
        kw: dict[str, Any] = {"classes": classes}
        if self.width is not None:
            kw["width"] = self.width
        return kw


class DistillClassifyConfig(DistillFields, ClassifyTrainConfig):
    """A classification run whose student (`model`) also learns from a frozen teacher (online only).

    `method` names a classification recipe (distill.recipes.CLASSIFY_RECIPES: kd, dkd, mgd, fitnet, at) that
    fills T, alpha, hard_weight and the loss terms; anything set explicitly wins. The CMI recipe is kd:
    high-temperature KD + ground truth, (1 - alpha) CE + alpha T^2 KL."""

    teacher: str = Field(description="teacher run folder or weights (several joined by commas: an ensemble)")
    method: str = Field("kd", description="recipe: kd, dkd, mgd, fitnet, at")
    T: float | None = Field(None, gt=0, description="temperature (kd: 10; dkd: 4)")
    alpha: float | None = Field(None, ge=0, le=1, description="kd: KD term weight; 1 - alpha on the hard labels")
    hard_weight: float | None = Field(None, ge=0, description="weight of the cross-entropy term (default: recipe)")
    feat: list[str] = Field(default_factory=list, description="feature pairs student.path:teacher.path "
                            "(default: each model's `feature_layer`, the last feature map)")

    @model_validator(mode="after")
    def _resolve_recipe(self) -> DistillClassifyConfig:
        from defectkd.distill.recipes import CLASSIFY_RECIPES

        self.alpha = self.resolve_recipe(self.alpha, CLASSIFY_RECIPES)["alpha"]
        return self
