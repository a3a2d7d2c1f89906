"""Validated configuration: pydantic schemas, YAML files and key=value overrides.

Precedence: schema defaults < --config FILE.yaml < CLI options < key=value overrides.
Any unknown key or badly typed value is reported as one line naming the key and its source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from defectkd.core.errors import ConfigError


class ScaleOut(BaseModel):
    """Multi-process training through Lightning: processes per node, nodes, and the strategy (PyTorch DDP)."""

    devices: int = Field(1, ge=1, description="processes (CPU) or GPUs per node; >1 trains with DDP")
    num_nodes: int = Field(1, ge=1, description="machines; >1 needs a launcher (torchrun, SLURM) on each node")
    strategy: Literal["auto", "ddp", "ddp_spawn"] = Field(
        "auto", description="auto: one process, or ddp when devices/num_nodes ask for more")


class SegmentTrainConfig(ScaleOut):
    """Everything that defines a segmentation training run (saved as the run's config.yaml)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    task: Literal["segment"] = Field("segment", description="fixed by the verb")
    data: str = Field(description="data set folder (any supported layout)")
    model: str = Field("mcff-l", description="registered model name (see `defectkd models`)")
    classes: int = Field(2, ge=1, le=2, description="2: crack/background softmax; 1: sigmoid")
    norm: Literal["batch", "instance"] | None = Field(None, description="MCFF models only")
    pretrained: str | None = Field(None, description="local weights file to start from")
    epochs: int = Field(50, ge=1, description="training epochs")
    imgsz: int = Field(256, ge=32, description="training crop size (validation uses full images)")
    batch: int = Field(8, ge=1, description="images per step (per process under DDP)")
    workers: int = Field(2, ge=0, description="DataLoader worker processes (0: load in the training process)")
    optimizer: Literal["adamw", "rmsprop"] = Field("adamw", description="optimizer")
    lr: float = Field(2e-3, gt=0, description="peak learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW/RMSprop weight decay")
    scheduler: Literal["cosine", "plateau", "none"] = Field(
        "cosine", description="learning-rate schedule over the epochs")
    patience: int = Field(30, ge=0, description="early-stopping patience in epochs (0: off)")
    loss: str = Field("ce+dice", description="task loss terms joined by '+': ce, dice, focal, tversky, mcff")
    pos_weight: float = Field(3.0, gt=0, description="crack-class weight of the ce term (3: best measured)")
    aux_weight: float = Field(0.4, ge=0, description="weight of non-main heads (MCFF's path heads)")
    mask_dilate: int = Field(0, ge=0, description="dilate masks on load, 3x3 iterations (MCFF paper: 3)")
    threshold: float = Field(0.5, gt=0, lt=1, description="crack-probability threshold for P/R/F1/IoU")
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="share of training pairs held out for validation when there is no val split")
    split_seed: int = Field(0, description="seed of the train/validation split")
    folds: int | None = Field(None, ge=2, description="k-fold cross-validation: number of folds (set by kfold)")
    fold: int | None = Field(None, ge=0, description="k-fold: which fold validates, 0-based")
    seed: int = Field(
        0, description="seed of weights, batches, augmentation and noise (a resumed run continues the same streams)")
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = Field(
        "auto", description="auto: bf16 autocast on CPUs/GPUs that have it, else 32")
    channels_last: bool = Field(True, description="NHWC memory format (faster on CPU)")
    cache: bool = Field(True, description="keep decoded images in memory")
    time_limit: float | None = Field(None, gt=0, description="stop training after this many minutes")
    grad_clip: float = Field(0.0, ge=0, description="clip the gradient norm to this (0: off)")
    skip_bad: bool = Field(False, description="drop unreadable/mismatched pairs instead of refusing")
    device: Literal["auto", "cpu", "gpu"] = Field("auto", description="auto: a GPU when there is one")
    project: str = Field("runs", description="root folder of runs (runs/<task>/<name>)")
    name: str | None = Field(
        None, description="run name (default: from model and method); an existing run is never overwritten")

    @model_validator(mode="after")
    def _fold_in_range(self) -> SegmentTrainConfig:
        if self.fold is not None and (self.folds is None or self.fold >= self.folds):
            raise ValueError(f"fold {self.fold} needs folds > {self.fold} (got folds={self.folds})")
        return self

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v  # `precision=32` on the command line parses as int

    def model_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"classes": self.classes}
        if self.norm is not None:
            kw["norm"] = self.norm
        return kw


class LossTerm(BaseModel):
    """One weighted distillation term: a registered method on logits (every head) or on features
    (every `feat` pair, or this term's own)."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="a method of defectkd.distill.list_methods()")
    on: Literal["logits", "features"] = Field(
        "logits", description="logits (every head) or features (the `feat` pairs)")
    weight: float = Field(
        1.0, ge=0, description="config-level weight of this term (the loss keeps its own coefficients)")
    params: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of build_loss")
    feat: list[str] | None = Field(None, description="this term's student.path:teacher.path pairs")


class DistillSegmentConfig(SegmentTrainConfig):
    """A segmentation training run whose student also learns from a teacher (online) or from the
    teacher's cached soft labels (offline). `model` is the student.

    `method` names a recipe (defectkd.distill.recipes) that fills T, alpha, hard_weight, losses and
    noisy_fraction with the method's published defaults; anything set explicitly wins."""

    teacher: str | None = Field(None, description="teacher run folder or weights (online KD; optional offline)")
    soft_labels: str | None = Field(None, description="soft-label cache folder (offline KD, no teacher in memory)")
    method: str = Field("kd", description="recipe: kd, fitnet, at, cwd, mgd, dkd, pairwise, rfkd")
    T: float | None = Field(None, gt=0, description="temperature (kd: 10, MCFF-L's best of 5, 10, 15; others 4)")
    alpha: float | None = Field(None, ge=0, le=1, description="kd, rfkd: KD term weight; 1 - alpha on hard labels")
    hard_weight: float | None = Field(None, ge=0, description="weight of the hard-label loss (default: recipe)")
    losses: list[LossTerm] | None = Field(None, description="explicit weighted terms instead of the recipe's")
    feat: list[str] = Field(default_factory=list, description="feature pairs student.path:teacher.path "
                            "(default: each model's `feature_layer`)")
    noisy_fraction: float | None = Field(None, ge=0, lt=1, description="share of images the student sees "
                                         "corrupted, teacher clean (rfkd: 1/3, clean:noisy 2:1)")
    noise: list[str] = Field(default_factory=lambda: ["pepper", "salt", "crack-texture", "gaussian-blur"],
                             description="corruptions drawn for the noisy share")
    kd_pos_weight: float = Field(1.0, gt=0, description="KD pixel weight on the teacher's crack pixels (1: plain mean)")
    kd_heads: Literal["auto", "by-name", "main"] = Field(
        "auto", description="by-name: each student head from the teacher head of that name; main: all from "
        "the teacher's main head; auto: by-name when the teacher has every student head")
    unlabelled: bool = Field(False, description="offline: also train on cached unlabelled images (KD term only)")

    @model_validator(mode="after")
    def _resolve_recipe(self) -> DistillSegmentConfig:
        from defectkd.distill.recipes import expand

        if self.teacher is None and self.soft_labels is None:
            raise ValueError("give a teacher (online) or soft_labels (offline)")
        given = [t.model_dump() for t in self.losses] if self.losses is not None else None
        r = expand(self.method, self.T, self.alpha, given, epochs=self.epochs)
        self.T, self.alpha = r["T"], r["alpha"]
        if self.hard_weight is None:
            self.hard_weight = r["hard_weight"]
        if self.noisy_fraction is None:
            self.noisy_fraction = r["noisy_fraction"]
        self.losses = [LossTerm(**t, feat=(g or {}).get("feat")) for t, g in
                       zip(r["losses"], given or [None] * len(r["losses"]), strict=True)]
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


class ClassifyTrainConfig(ScaleOut):
    """Everything that defines a defect-classification training run (saved as the run's config.yaml)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

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
    workers: int = Field(2, ge=0, description="DataLoader worker processes (0: load in the training process)")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="optimizer")
    lr: float = Field(1e-3, gt=0, description="adamw: 1e-3; sgd (momentum 0.9, nesterov): e.g. 0.05")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW/RMSprop weight decay")
    scheduler: Literal["cosine", "none"] = Field("cosine", description="learning-rate schedule over the epochs")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross-entropy label smoothing")
    monitor: Literal["accuracy", "f1"] = Field("accuracy", description="validation metric for best.pt and "
                                               "early stopping (f1: macro)")
    patience: int = Field(20, ge=0, description="early-stopping patience in epochs (0: off)")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of each class drawn for validation when the "
                                "data set has no val split")
    split_seed: int = Field(0, description="seed of the train/validation split")
    seed: int = Field(
        0, description="seed of weights, batches, augmentation and noise (a resumed run continues the same streams)")
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = Field(
        "auto", description="auto: bf16 autocast on CPUs/GPUs that have it, else 32")
    channels_last: bool = Field(True, description="NHWC memory format (faster on CPU)")
    cache: bool = Field(True, description="keep decoded images in memory")
    time_limit: float | None = Field(None, gt=0, description="stop training after this many minutes")
    skip_bad: bool = Field(False, description="drop unreadable or missing images instead of refusing")
    device: Literal["auto", "cpu", "gpu"] = Field("auto", description="auto: a GPU when there is one")
    project: str = Field("runs", description="root folder of runs (runs/<task>/<name>)")
    name: str | None = Field(
        None, description="run name (default: from model and method); an existing run is never overwritten")

    _precision_as_text = field_validator("precision", mode="before")(
        SegmentTrainConfig._precision_as_text.__func__)

    def model_kwargs(self, classes: int) -> dict[str, Any]:
        kw: dict[str, Any] = {"classes": classes}
        if self.width is not None:
            kw["width"] = self.width
        return kw


class DistillClassifyConfig(ClassifyTrainConfig):
    """A classification run whose student (`model`) also learns from a frozen teacher (online only).

    `method` names a classification recipe (distill.recipes.CLASSIFY_RECIPES: kd, dkd, mgd, fitnet, at) that
    fills T, alpha, hard_weight and the loss terms; anything set explicitly wins. The CMI recipe is kd:
    high-temperature KD + ground truth, (1 - alpha) CE + alpha T^2 KL."""

    teacher: str = Field(description="teacher run folder or weights (several joined by commas: an ensemble)")
    method: str = Field("kd", description="recipe: kd, dkd, mgd, fitnet, at")
    T: float | None = Field(None, gt=0, description="temperature (kd: 10; dkd: 4)")
    alpha: float | None = Field(None, ge=0, le=1, description="kd: KD term weight; 1 - alpha on the hard labels")
    hard_weight: float | None = Field(None, ge=0, description="weight of the cross-entropy term (default: recipe)")
    losses: list[LossTerm] | None = Field(None, description="explicit weighted terms instead of the recipe's")
    feat: list[str] = Field(default_factory=list, description="feature pairs student.path:teacher.path "
                            "(default: each model's `feature_layer`, the last feature map)")

    @model_validator(mode="after")
    def _resolve_recipe(self) -> DistillClassifyConfig:
        from defectkd.distill.recipes import CLASSIFY_RECIPES, expand

        given = [t.model_dump() for t in self.losses] if self.losses is not None else None
        r = expand(self.method, self.T, self.alpha, given, recipes=CLASSIFY_RECIPES, epochs=self.epochs)
        self.T, self.alpha = r["T"], r["alpha"]
        if self.hard_weight is None:
            self.hard_weight = r["hard_weight"]
        self.losses = [LossTerm(**t, feat=(g or {}).get("feat")) for t, g in
                       zip(r["losses"], given or [None] * len(r["losses"]), strict=True)]
        return self


class DetectTrainConfig(ScaleOut):
    """Everything that defines a defect-detection training run (saved as the run's config.yaml)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

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
    batch: int = Field(8, ge=1, description="images per step (per process under DDP)")
    workers: int = Field(2, ge=0, description="DataLoader worker processes (0: load in the training process)")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="optimizer")
    lr: float = Field(1e-4, gt=0, description="adamw: 1e-4; sgd (momentum 0.9): e.g. 0.01")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW/RMSprop weight decay")
    scheduler: Literal["cosine", "none"] = Field("cosine", description="learning-rate schedule over the epochs")
    grad_clip: float = Field(10.0, ge=0, description="gradient-norm clipping (0: off); RetinaNet from random weights "
                             "has large box gradients in its first steps")
    monitor: Literal["map_50", "map"] = Field("map_50", description="validation metric for best.pt and early "
                                              "stopping (map: COCO mAP 0.5:0.95)")
    patience: int = Field(20, ge=0, description="early-stopping patience in epochs (0: off)")
    threshold: float = Field(0.25, gt=0, lt=1, description="score threshold of predict and of the drawn examples "
                             "(mAP uses every box above the detector's 0.05)")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of the training images drawn for validation "
                                "when the data set has no val split")
    split_seed: int = Field(0, description="seed of the train/validation split")
    seed: int = Field(
        0, description="seed of weights, batches, augmentation and noise (a resumed run continues the same streams)")
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = Field(
        "32", description="32 by default: box decoding and NMS in bf16 move boxes by pixels")
    cache: bool = Field(True, description="keep decoded images in memory")
    time_limit: float | None = Field(None, gt=0, description="stop training after this many minutes")
    skip_bad: bool = Field(False, description="drop images with problems (unreadable, unknown class) instead of "
                           "refusing")
    device: Literal["auto", "cpu", "gpu"] = Field("auto", description="auto: a GPU when there is one")
    project: str = Field("runs", description="root folder of runs (runs/<task>/<name>)")
    name: str | None = Field(
        None, description="run name (default: from model and method); an existing run is never overwritten")

    _precision_as_text = field_validator("precision", mode="before")(
        SegmentTrainConfig._precision_as_text.__func__)

    def model_kwargs(self, classes: int) -> dict[str, Any]:
        kw: dict[str, Any] = {"classes": classes, "min_size": self.imgsz, "max_size": self.imgsz}
        if self.anchor_base is not None:
            kw["anchor_base"] = self.anchor_base
        return kw


class DistillDetectConfig(DetectTrainConfig):
    """A detection run whose student (`model`) also learns from a frozen teacher detector's FPN levels.

    `method` names a detection recipe (distill.recipes.DETECT_RECIPES: mgd, cwd, fitnet), a term on every FPN
    level pair (`fpn_levels.p3` ... `p7`, by name); anything set explicitly wins."""

    teacher: str = Field(description="teacher detector: run folder or weights file")
    method: str = Field("mgd", description="recipe: mgd (one-stage preset), cwd, fitnet")
    T: float | None = Field(None, gt=0, description="cwd temperature (default 1)")
    hard_weight: float | None = Field(None, ge=0, description="weight of the detection losses (default: 1)")
    losses: list[LossTerm] | None = Field(None, description="explicit weighted terms instead of the recipe's")
    feat: list[str] = Field(default_factory=list, description="feature pairs student.path:teacher.path "
                            "(default: every FPN level, fpn_levels.p3:fpn_levels.p3 ... p7)")

    @model_validator(mode="after")
    def _resolve_recipe(self) -> DistillDetectConfig:
        from defectkd.distill.recipes import DETECT_RECIPES, expand

        given = [t.model_dump() for t in self.losses] if self.losses is not None else None
        r = expand(self.method, self.T, None, given, recipes=DETECT_RECIPES, epochs=self.epochs)
        self.T = r["T"]
        if self.hard_weight is None:
            self.hard_weight = r["hard_weight"]
        self.losses = [LossTerm(**t, feat=(g or {}).get("feat")) for t, g in
                       zip(r["losses"], given or [None] * len(r["losses"]), strict=True)]
        return self


def _describe(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if not key:  # a rule across keys (model_validator)
        return f"{source}: {err['msg'].removeprefix('Value error, ')}"
    if err["type"] == "extra_forbidden":
        return f"{source}: unknown key {key!r}"
    if err["type"] == "missing":
        return f"{source}: required key {key!r} is missing"
    return f"{source}: key {key!r}: {err['msg']} (got {err.get('input')!r})"


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a mapping of key: value")
    return data


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """["lr=0.01", "loss=ce+dice"] -> {"lr": 0.01, "loss": "ce+dice"} (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def build_config(schema: type[BaseModel], file: str | Path | None = None, options: dict[str, Any] | None = None,
                 overrides: list[str] | None = None) -> BaseModel:
    """Merge defaults, a YAML file, CLI options (None = not given) and overrides, then validate."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    layers = [
        (load_yaml(file) if file else {}, str(file)),
        ({k: v for k, v in (options or {}).items() if v is not None}, "option"),
        (parse_overrides(overrides), "override"),
    ]
    for layer, source in layers:
        for key, value in layer.items():
            merged[key] = value
            sources[key] = source
    try:
        return schema(**merged)
    except ValidationError as exc:
        key = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else ""
        raise ConfigError(_describe(exc, sources.get(key, "config"))) from None
