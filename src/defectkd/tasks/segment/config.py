"""The segmentation run's fields (beyond `RunConfig`'s) and its distillation schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from defectkd.core.config import RunConfig
from defectkd.distill.config import DistillFields


class SegmentTrainConfig(RunConfig):
    """Everything that defines a segmentation training run (saved as the run's config.yaml)."""

    task: Literal["segment"] = Field("segment", description="fixed by the verb")
    model: str = Field("mcff-l", description="registered model name (see `defectkd models`)")
    classes: int = Field(2, ge=1, le=2, description="2: crack/background softmax; 1: sigmoid")
    norm: Literal["batch", "instance"] | None = Field(None, description="MCFF models only")
    imgsz: int = Field(256, ge=32, description="training crop size (validation uses full images)")
    optimizer: Literal["adamw", "rmsprop"] = Field("adamw", description="optimizer")
    lr: float = Field(2e-3, gt=0, description="peak learning rate")
    scheduler: Literal["cosine", "plateau", "none"] = Field(
        "cosine", description="learning-rate schedule over the epochs")
    patience: int = Field(30, ge=0, description="early-stopping patience in epochs (0: off)")
    loss: str = Field("ce+dice", description="task loss terms joined by '+': ce, dice, focal, tversky, mcff")
    pos_weight: float = Field(3.0, gt=0, description="crack-class weight of the ce term (3: best measured)")
    aux_weight: float = Field(0.4, ge=0, description="weight of non-main heads (MCFF's path heads)")
    photometric: Literal["basic", "wide"] = Field(
        "basic", description="training lighting augmentation: basic brightness/contrast, or wide (gamma, contrast, "
        "light colour, grey, shading: other cameras and days)")
    mask_dilate: int = Field(0, ge=0, description="dilate masks on load, 3x3 iterations (MCFF paper: 3)")
    threshold: float = Field(0.5, gt=0, lt=1, description="crack-probability threshold for P/R/F1/IoU")
    calibrate: bool = Field(True, description="after training, store the F1-optimal threshold on the validation split "
                            "in the weights (used by val, predict, export) unless threshold is set to another value")
    folds: int | None = Field(None, ge=2, description="k-fold cross-validation: number of folds (set by kfold)")
    fold: int | None = Field(None, ge=0, description="k-fold: which fold validates, 0-based")
    channels_last: bool = Field(True, description="NHWC memory format (faster on CPU)")
    grad_clip: float = Field(0.0, ge=0, description="clip the gradient norm to this (0: off)")
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="share of training pairs held out for validation when there is no val split")
    skip_bad: bool = Field(False, description="drop unreadable/mismatched pairs instead of refusing")

    @model_validator(mode="after")
    def _fold_in_range(self) -> SegmentTrainConfig:
        if self.fold is not None and (self.folds is None or self.fold >= self.folds):
            raise ValueError(f"fold {self.fold} needs folds > {self.fold} (got folds={self.folds})")
        return self

    def model_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"classes": self.classes}
        if self.norm is not None:
            kw["norm"] = self.norm
        return kw


class DistillSegmentConfig(DistillFields, SegmentTrainConfig):
    """A segmentation training run whose student also learns from a teacher (online) or from the
    teacher's cached soft labels (offline). `model` is the student.

    `method` names a recipe (defectkd.distill.recipes) that fills T, alpha, hard_weight, losses and
    noisy_fraction with the method's published defaults; anything set explicitly wins."""

    teacher: str | None = Field(None, description="teacher run folder or weights (online KD; optional offline)")
    soft_labels: str | None = Field(None, description="soft-label cache folder (offline KD, no teacher in memory)")
    method: str | None = Field(None, description="recipe: kd, fitnet, at, cwd, mgd, dkd, pairwise, rfkd (default: "
                               "rfkd online, the method that measured best on DeepCrack; kd offline)")
    T: float | None = Field(None, gt=0, description="temperature (kd: 10, MCFF-L's best of 5, 10, 15; others 4)")
    alpha: float | None = Field(None, ge=0, le=1, description="kd, rfkd: KD term weight; 1 - alpha on hard labels")
    hard_weight: float | None = Field(None, ge=0, description="weight of the hard-label loss (default: recipe)")
    noisy_fraction: float | None = Field(None, ge=0, lt=1, description="share of images the student sees "
                                         "corrupted, teacher clean (rfkd: 1/3, clean:noisy 2:1)")
    noise: list[str] = Field(default_factory=lambda: ["pepper", "salt", "crack-texture", "gaussian-blur"],
                             description="corruptions drawn for the noisy share")
    kd_pos_weight: float = Field(1.0, gt=0, description="KD pixel weight on the teacher's crack pixels (1: plain mean)")
    teacher_tta: Literal["none", "hflip", "flips"] = Field(
        "none", description="online: the teacher also sees mirrored images and teaches the average of its answers "
        "(hflip: 2 views; flips: both axes, 4 views), a stronger teacher for 2x / 4x its forward cost")
    teacher_mean: Literal["probs", "logits"] = Field(
        "probs", description="how an ensemble teacher (several --teacher files) averages its members: probs (the "
        "mean probability) or logits (mean log-probabilities, a geometric mean: sharper where members disagree)")
    kd_heads: Literal["auto", "by-name", "main"] = Field(
        "auto", description="by-name: each student head from the teacher head of that name; main: all from "
        "the teacher's main head; auto: by-name when the teacher has every student head")
    unlabelled: bool = Field(False, description="offline: also train on cached unlabelled images (KD term only)")
    pseudo_labels: bool = Field(False, description="offline, unlabelled: the task loss also scores those images "
                                "against the teacher's mask (crack probability at T=1 > 0.5)")

    @model_validator(mode="after")
    def _resolve_recipe(self) -> DistillSegmentConfig:
        if self.teacher is None and self.soft_labels is None:
            raise ValueError("give a teacher (online) or soft_labels (offline)")
        if self.teacher_mean != "probs" and self.soft_labels is not None:
            raise ValueError("teacher_mean: averaging is for a teacher in memory (online); soft_labels are "
                             "cached answers, drop one of the two")
        if self.teacher_tta != "none" and self.soft_labels is not None:
            raise ValueError("teacher_tta: mirror views are for a teacher in memory (online); soft_labels are "
                             "cached answers, drop one of the two")
        if self.method is None:
            self.method = "rfkd" if self.soft_labels is None else "kd"
        r = self.resolve_recipe(self.alpha)
        self.alpha = r["alpha"]
        if self.noisy_fraction is None:
            self.noisy_fraction = r["noisy_fraction"]
        if self.kd_pos_weight != 1.0:
            for term in self.losses:
                if term.method == "kd":
                    term.params.setdefault("pos_weight", self.kd_pos_weight)
        return self

    @property
    def online(self) -> bool:
        return self.soft_labels is None

    @property
    def uses_features(self) -> bool:
        return any(t.on == "features" for t in self.losses or [])
