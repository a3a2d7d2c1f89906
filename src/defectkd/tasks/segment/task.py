"""Crack segmentation as a task plug-in: pixel masks, F1/IoU/ODS, soft-label caches, k-fold, robustness."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from defectkd.core.errors import DataError
from defectkd.tasks.base import EvalImages, Task, TrainData, TrainSetup

log = logging.getLogger("defectkd")

DEFAULT_EXPORT_SIZE = 448  # the MCFF-L paper's input, when the training images are gone


def export_size(image: Path | None) -> int:
    """The square export size that matches the training images: the mean of their sides on the 32-px grid. A model
    trained on 128-px crops of 128-px images and run at 448 sees every crack 3.5x wider than it learnt them (the
    README tour's student: F1 0.74 at 128 px, 0.26 at 448)."""
    if image is None:
        return DEFAULT_EXPORT_SIZE
    from defectkd.data.io import read_image

    h, w = read_image(image).shape[:2]
    return max(64, int(round((h + w) / 2 / 32)) * 32)


CRACK_EVERYWHERE = 0.15  # precision under which recall 1 means "crack at every pixel" (crack sets: 2-10 %)
CALIBRATION_GAIN = 0.02  # validation F1 a calibrated threshold must add over the configured one to replace it


class SegmentTask(Task):
    name = "segment"
    label = "segmentation"
    metric_name = "F1"
    compares_per_image = True
    ensembles = True
    main_metric = "val/f1"
    degenerate_at = 0.01
    report_metrics = ("f1", "iou", "precision", "recall", "ods_f1", "ois_f1")
    int8_calibration = "minmax"
    offline_distillation = True
    evaluates_robustness = True
    kfold_ok = True
    reads_any_folder = True
    calibrates = True
    export_imgsz = True

    def train_config(self) -> type:
        from defectkd.tasks.segment.config import SegmentTrainConfig

        return SegmentTrainConfig

    def distill_config(self) -> type:
        from defectkd.tasks.segment.config import DistillSegmentConfig

        return DistillSegmentConfig

    def saved_schema(self, saved: dict) -> type:
        return self.distill_config() if saved.get("teacher") or saved.get("soft_labels") else self.train_config()

    # data
    def synth(self, out: Path, n: int, size: int, seed: int) -> Path:
        from defectkd.tasks.segment.synthetic import write_synthetic_segment

        if (out / "images").is_dir() and any((out / "images").iterdir()):
            raise DataError(f"{out}: already holds images/; choose another --out (nothing was overwritten)")
        return write_synthetic_segment(out, n, size, seed)

    def synth_message(self, path: Path, n: int, size: int) -> str:
        return f"wrote {n} image/mask pairs of {size}x{size} to {path}"

    def recognise(self, path):
        from defectkd.core.errors import DataError
        from defectkd.data.layouts import describe, discover
        from defectkd.tasks.base import Reading

        try:
            source = discover(path)
        except DataError:
            return None
        labelled = any(s.mask is not None for split in source.splits.values() for s in split)
        return Reading("segment", source.layout, describe(source), 3 if labelled else 1)

    def check(self, path, progress=None, classes=None) -> dict:
        from defectkd.tasks.segment.check import check_dataset

        if classes is not None:
            from defectkd.core.errors import ConfigError

            raise ConfigError("data check: --classes applies to --task detect")
        return check_dataset(path, progress)

    def split_size(self, data, split: str, config: dict | None = None) -> int:
        from defectkd.tasks.segment.dataset import scored_split

        return len(scored_split(data, split, config)[0])

    # training
    def prepare_data(self, cfg) -> TrainData:
        from defectkd.tasks.segment.train_data import checked_samples

        source, train, val, how, report = checked_samples(cfg)
        facts = {"validation_split": how, "train_pairs": len(train), "val_pairs": len(val),
                 "val_images": [str(s.image) for s in val],
                 "data_check": {k: report[k] for k in ("layout", "splits", "image_sizes", "crack_fraction")}}
        return TrainData(source, train, val, facts)

    def build(self, cfg, data: TrainData, resolved: dict) -> TrainSetup:
        from defectkd.tasks.segment.config import DistillSegmentConfig
        from defectkd.tasks.segment.dataset import SegmentationDataset, train_transform
        from defectkd.tasks.segment.module import SegmentModule

        if isinstance(cfg, DistillSegmentConfig):
            from defectkd.tasks.segment.distill_setup import prepare_distillation

            setup = prepare_distillation(cfg, data.train, data.source.root, resolved)
        else:
            module = SegmentModule(cfg.model, cfg.model_kwargs(), resolved, pretrained=cfg.pretrained)
            augment = train_transform(cfg.imgsz, cfg.seed, photometric=cfg.photometric)
            train_set = SegmentationDataset(data.train, augment, cfg.cache, cfg.mask_dilate)
            setup = TrainSetup(module, train_set)
        data.facts["train_images"] = len(setup.train_set)
        return setup

    def loaders(self, cfg, setup: TrainSetup, data: TrainData) -> tuple:
        from defectkd.tasks.segment.dataset import SegmentationDataset
        from defectkd.tasks.segment.train_data import loaders

        return loaders(cfg, setup.train_set, SegmentationDataset(data.val, None, cfg.cache, cfg.mask_dilate))

    def epoch_summary(self, run_dir: Path):
        from defectkd.engine.callbacks import EpochSummary

        return EpochSummary(run_dir)

    def monitor(self, cfg) -> str:
        return "val/f1"

    def degenerate(self, metrics: dict | None, classes: int = 2) -> str | None:
        """F1 at 0 (finds nothing), or crack everywhere: recall 1 at a precision no higher than a thin-crack set's
        crack fraction, what a constant "crack" answer scores (F1 = 2p / (1 + p), 0.05-0.2, above the F1 floor)."""
        found = super().degenerate(metrics, classes)
        if found or not metrics:
            return found
        recall, precision = (metrics.get(k, metrics.get(f"val/{k}")) for k in ("recall", "precision"))
        if recall is None or precision is None or float(recall) < 0.999 or float(precision) > CRACK_EVERYWHERE:
            return None
        return f"crack everywhere (recall {float(recall):.3f}, precision {float(precision):.3f}: a constant answer)"

    def default_name(self, cfg) -> str:
        if getattr(cfg, "method", None) is None:
            return cfg.model
        return f"{cfg.model}-{cfg.method}" + ("" if cfg.online else "-offline")

    def final_eval(self, best: Path, cfg, data: TrainData, run_dir: Path, val_dl) -> dict:
        from defectkd.tasks.segment.evaluate import evaluate_weights

        return evaluate_weights(best, val_dl.dataset.samples, threshold=cfg.threshold, tolerant=True)

    def operating_point(self, val: dict, cfg) -> dict | None:
        """The threshold with the best pooled F1 on the validation split (ODS), kept within [0.01, 0.99], when it
        beats the configured threshold there by at least `CALIBRATION_GAIN` F1 (a model that is under-confident on
        thin cracks gains far more; a small validation split's optimum otherwise chases noise: on DeepCrack, 30
        held-out images moved it to 0.76 for +1.3 points there and -1.7 on test, docs/benchmarks.md). Not when
        `calibrate` is off or `threshold` is set to another value than the default 0.5 (a resumed run's saved
        config names every field, so being named cannot tell). The test split never decides."""
        default = type(cfg).model_fields["threshold"].default
        if not getattr(cfg, "calibrate", False) or cfg.threshold != default or "ods_threshold" not in val:
            return None
        if val["ods_f1"] - val["f1"] < CALIBRATION_GAIN:
            return None
        from defectkd.tasks.segment.metrics import operating_threshold

        return {"threshold": operating_threshold(val)}

    def teacher_eval(self, setup: TrainSetup, cfg, data: TrainData) -> dict:
        from defectkd.distill.teacher import load_teacher
        from defectkd.models.info import count_parameters
        from defectkd.tasks.segment.evaluate import evaluate_model

        if setup.teacher is not None:  # online: the teacher that taught, already in memory
            teacher, name = setup.teacher.cpu().float(), setup.teacher_name
        else:  # offline: the cache's teacher, read from its files
            teacher, name = load_teacher(setup.teacher_weights)
        return {"weights": str(setup.teacher_weights), "model": name, "parameters": count_parameters(teacher),
                "val": evaluate_model(teacher, data.val, threshold=cfg.threshold, tolerant=True)}

    def kfold(self, cfg, k: int) -> dict:
        from defectkd.tasks.segment.kfold import run_kfold

        return run_kfold(self, cfg, k)

    # verbs on weights
    def val(self, model, hp, weights, data, split, threshold, save_dir, project, progress, **options) -> dict:
        from defectkd.tasks.segment.val import val_segment

        return val_segment(model, hp, weights, data, split, threshold, save_dir, project, progress, **options)

    def torch_runtime(self, weights: Path, imgsz: int | None = None):
        from defectkd.tasks.segment.runtime import TorchSegmenter

        return TorchSegmenter(weights, imgsz=imgsz)

    def export_onnx(self, model, hp, out, imgsz, dynamic, opset, image) -> dict:
        from defectkd.models.onnx import export_dense

        training = self.training_image(hp)
        if imgsz is None:
            imgsz = export_size(training)
            why = "the training images' size" if training else "the training images are gone"
            log.info(f"exporting at {imgsz} px ({why}; --imgsz sets it)")
        image = image or training
        # a dynamic export is checked at the image's own size, a static one at the export size
        parity = self.parity_rgb(image, None if dynamic and image is not None else (imgsz, imgsz))
        return export_dense(model, hp, out, imgsz, dynamic, opset, parity)

    def parity_sample(self, size: int):
        """A synthetic image to check an export on when no real one is at hand (RGB uint8, name)."""
        from defectkd.tasks.segment.synthetic import synth_crack_sample

        return synth_crack_sample(seed=0, size=size)[0], "synthetic crack image"

    def first_image(self, data: str | Path) -> Path | None:
        from defectkd.data.layouts import discover

        samples = [s for split in discover(data).splits.values() for s in split]
        return samples[0].image if samples else None

    def eval_images(self, hp: dict, data, split: str) -> EvalImages:
        from defectkd.data.layouts import discover
        from defectkd.tasks.segment.dataset import eval_samples, training_split

        source = discover(data)
        train, val, _ = training_split(source, hp.get("config", {}))
        samples = val if split == "val" else eval_samples(source, split)
        return EvalImages(self.name, [s.image for s in train], samples, ["background", "crack"])

    def score(self, runtime, images: EvalImages, progress: Callable[[], None] | None = None) -> float:
        return float(self.rows_metric(self.runtime_rows(runtime, images.samples, progress)))

    def image_rows(self, weights: Path, samples: list):
        return self.runtime_rows(self.torch_runtime(weights), samples)

    @staticmethod
    def runtime_rows(runtime, samples: list, progress: Callable[[], None] | None = None):
        """(true positive, false positive, false negative) crack pixels of each image at the runtime's threshold
        (any runtime: PyTorch, ONNX Runtime, OpenVINO)."""
        import numpy as np

        from defectkd.data.io import read_image, read_mask

        threshold = float(getattr(runtime, "threshold", 0.5))
        rows = []
        for s in samples:
            prob, _ = runtime.segment(read_image(s.image))
            pred, truth = prob >= threshold, read_mask(s.mask) > 0
            rows.append((np.sum(pred & truth), np.sum(pred & ~truth), np.sum(~pred & truth)))
            if progress:
                progress()
        return np.asarray(rows, dtype=np.float64).reshape(-1, 3)

    def rows_metric(self, rows):
        """Crack F1 pooled over the pixels of all the rows' images (as `val` reports it)."""
        import numpy as np

        tp, fp, fn = rows[..., 0].sum(-1), rows[..., 1].sum(-1), rows[..., 2].sum(-1)
        return 2 * tp / np.maximum(2 * tp + fp + fn, 1)

    def splits(self, data) -> list[str]:
        from defectkd.data.layouts import discover

        return list(discover(data).splits)

    def model_output(self, classes: int) -> str:
        return "softmax, 2 ch" if classes == 2 else "sigmoid, 1 ch"
