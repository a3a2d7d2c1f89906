"""What a task plug-in provides. The engine, `export`, `api` and the CLI ask the task for each step instead of
branching on its name; `defectkd.tasks.TASKS` maps a name to one instance.

A task answers three kinds of question:
- data: its synthetic generator, `data check`, its reading of a data folder, how many images a split has;
- training (for `defectkd.engine.fit.run`, the one fit loop): its configs, checked data, LightningModule and
  loaders, the epoch line, the monitored metric, the final evaluation of best.pt and of the teacher;
- verbs on weights: `val`, the PyTorch runtime of `predict`, ONNX export, and the one metric of an export.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defectkd.core.errors import ConfigError


@dataclass
class Reading:
    """One task's reading of a data folder: its layout, the evidence in words, and how strongly it fits
    (3: annotation files or image/mask pairs only this task reads; 2: a structure another task could share, such
    as class folders; 1: images and nothing else)."""

    task: str
    layout: str
    evidence: str
    strength: int

    def line(self) -> str:
        return f"{self.task} ({self.layout}: {self.evidence})"


@dataclass
class TrainData:
    """A task's checked training data: the samples, how validation was split, facts for data.json."""

    source: Any
    train: list
    val: list
    facts: dict  # recorded in the run's data.json
    resolved: dict = field(default_factory=dict)  # added to the resolved config (e.g. class_names)
    summary: dict = field(default_factory=dict)  # added to results.json


@dataclass
class TrainSetup:
    """The LightningModule and training set built from a config (and the teacher, when distilling)."""

    module: Any
    train_set: Any
    teacher_weights: str | None = None  # files joined by commas; None: no teacher to compare with
    teacher_name: str | None = None
    teacher: Any = None  # the teacher model for the side-by-side evaluation (None: load from teacher_weights)
    teacher_class_names: list[str] | None = None


@dataclass
class EvalImages:
    """Images an export is calibrated and checked on: training images and a split's labelled samples."""

    task: str
    calibration: list[Path]
    samples: list
    class_names: list[str]


class Task:
    """Base of every task; a subclass fills the hooks. Names and flags below are read by the engine and verbs."""

    name: str = ""
    label: str = ""  # "segmentation": in messages
    metric_name: str = ""  # the one figure of an export: F1, accuracy, mAP50
    main_metric: str = ""  # the validation value a report plots first (val/f1, val/accuracy, val/map_50)
    report_metrics: tuple[str, ...] = ()  # the metrics a report's tables show
    # INT8 activation ranges (benchmarks/int8_variants.py; docs/benchmarks.md): min-max keeps crack F1 within 0.1
    # point but costs a NEU-DET classifier 5.6 accuracy points and a RetinaNet 8 mAP50 points, which the 99.999th
    # percentile brings back to 0.7 and 0.1
    int8_calibration: str = "percentile"
    offline_distillation: bool = False  # soft-label caches (segmentation)
    evaluates_robustness: bool = False  # `defectkd robustness` (Dice under corruptions)
    kfold_ok: bool = False  # `defectkd kfold` (its `kfold` hook)
    compares_per_image: bool = False  # `distill --baseline` (its `image_rows` and `rows_metric` hooks)
    export_imgsz: bool = False  # `benchmark --imgsz` sets the export size (else the model's own)
    reads_any_folder: bool = False  # `data check` falls back to this task when no task claims a folder
    ensembles: bool = False  # weights joined by commas average into one model (teachers, `val`)
    calibrates: bool = False  # `val --calibrate` copies the weights with the threshold of best F1 on a split
    degenerate_at: float = 0.0  # the main metric at or below this: the model finds nothing (teacher check, guard)

    def degenerate(self, metrics: dict | None, classes: int = 2) -> str | None:
        """'F1 0.0000' when `metrics` (validation values, with or without the 'val/' prefix) say the model finds
        nothing, else None. Classification overrides it: a constant answer scores the chance level, not 0."""
        key = self.main_metric.removeprefix("val/")
        value = None if not metrics else metrics.get(key, metrics.get(self.main_metric))
        if value is None or float(value) > self.degenerate_at:
            return None
        return f"{self.metric_name} {float(value):.4f}"

    # configuration
    def train_config(self) -> type:
        raise NotImplementedError

    def distill_config(self) -> type:
        raise NotImplementedError

    def saved_schema(self, saved: dict) -> type:
        """The schema a saved run's config.yaml validates against (distillation when it names a teacher)."""
        return self.distill_config() if saved.get("teacher") else self.train_config()

    # data
    def synth(self, out: Path, n: int, size: int, seed: int) -> Path:
        raise NotImplementedError

    def synth_message(self, path: Path, n: int, size: int) -> str:
        return f"wrote {n} images of {size}x{size} to {path}"

    def recognise(self, path: Path) -> Reading | None:
        """This task's reading of a data folder, or None when nothing there is its kind of data. Cheap: lists files,
        decodes nothing (tasks/recognise.py ranks the readings of every task)."""
        return None

    def check(self, path: str | Path, progress: Callable[[], None] | None = None,
              classes: list[str] | None = None) -> dict:
        raise NotImplementedError

    def split_size(self, data: str | Path, split: str, config: dict | None = None) -> int:
        """How many images `val` scores on SPLIT (a progress bar's total); `config`: the weights' training config."""
        raise NotImplementedError

    # training (engine.fit.run)
    def prepare_data(self, cfg) -> TrainData:
        raise NotImplementedError

    def build(self, cfg, data: TrainData, resolved: dict) -> TrainSetup:
        raise NotImplementedError

    def loaders(self, cfg, setup: TrainSetup, data: TrainData) -> tuple:
        raise NotImplementedError

    def epoch_summary(self, run_dir: Path):
        raise NotImplementedError

    def monitor(self, cfg) -> str:
        return f"val/{cfg.monitor}"

    def default_name(self, cfg) -> str:
        return f"{cfg.model}-{cfg.method}" if getattr(cfg, "teacher", None) else cfg.model

    def final_eval(self, best: Path, cfg, data: TrainData, run_dir: Path, val_dl) -> dict:
        raise NotImplementedError

    def operating_point(self, val: dict, cfg) -> dict | None:
        """Config values to store in the finished run's weights, chosen on its validation split (segmentation: the
        F1-optimal threshold); None keeps the config's."""
        return None

    def teacher_eval(self, setup: TrainSetup, cfg, data: TrainData) -> dict | None:
        raise NotImplementedError

    def kfold(self, cfg, k: int) -> dict:
        raise ConfigError(f"kfold: task {self.name!r} not available yet")  # `kfold_ok` tells the verbs first

    # verbs on weights
    def val(self, model, hp: dict, weights, data, split: str, threshold: float | None, save_dir, project,
            progress: Callable[[], None] | None, **options: Any) -> dict:
        raise NotImplementedError

    def torch_runtime(self, weights: Path, imgsz: int | None = None):
        raise NotImplementedError

    def export_onnx(self, model, hp: dict, out: Path, imgsz: int | None, dynamic: bool, opset: int,
                    image) -> dict:
        raise NotImplementedError

    def parity_sample(self, size: int) -> tuple[Any, str]:
        """A synthetic image (RGB uint8, its name) to check an export on when no real one is at hand."""
        raise NotImplementedError

    def first_image(self, data: str | Path) -> Path | None:
        """The first image of a data set in this task's layouts (None: none)."""
        raise NotImplementedError

    def training_image(self, hp: dict) -> Path | None:
        """The first image of the data the model was trained on, when it is still there."""
        from defectkd.core.errors import DataError

        data = hp.get("config", {}).get("data")
        if not data or not Path(data).exists():
            return None
        try:
            return self.first_image(data)
        except DataError:
            return None

    def parity_rgb(self, image, size: tuple[int, int] | None) -> tuple[Any, str]:
        """RGB uint8 of `size` (H, W; None: as it is): the given image, or a synthetic one of this task."""
        import cv2

        if image is not None:
            from defectkd.data.io import read_image

            rgb, name = read_image(image), str(image)
        else:
            rgb, name = self.parity_sample(max(size or (256,)))
        if size is not None and rgb.shape[:2] != size:
            rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        return rgb, name

    def parity_input(self, runtime, hp: dict, image) -> Any:
        """The input an exported file is run on once after writing: the runtime's `prepare` of the given image,
        else the training data's first, else a synthetic one."""
        image = image or self.training_image(hp)
        rgb, _ = self.parity_rgb(image, None if image else (256, 256))
        return runtime.prepare(rgb)

    def eval_images(self, hp: dict, data: str | Path, split: str) -> EvalImages:
        raise NotImplementedError

    def score(self, runtime, images: EvalImages, progress: Callable[[], None] | None = None) -> float:
        raise NotImplementedError

    def splits(self, data: str | Path) -> list[str]:
        """The split names a data set has in this task's layouts (`all` for a set without splits)."""
        raise NotImplementedError

    def comparison_images(self, hp: dict, data: str | Path) -> tuple[str, list]:
        """The images two models are compared on: the data's test split when it has one, else the validation split
        training held out (never images a model trained on)."""
        split = "test" if "test" in self.splits(data) else "val"
        return split, self.eval_images(hp, data, split).samples

    def image_rows(self, weights: Path, samples: list):
        """One row of numbers per image for a paired comparison (`engine.compare`), when `compares_per_image`."""
        raise NotImplementedError(f"{self.name}: no per-image comparison")

    def rows_metric(self, rows):
        """The task's metric of rows (..., images, k), vectorised over the leading axes."""
        raise NotImplementedError(f"{self.name}: no per-image comparison")

    def model_output(self, classes: int) -> str:
        """What a model of this task returns, for `defectkd models`."""
        return f"{classes} classes"
