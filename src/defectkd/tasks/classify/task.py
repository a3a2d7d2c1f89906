"""Defect classification as a task plug-in: class folders, CSVs or NEU-DET names; accuracy and macro F1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from defectkd.core.errors import ConfigError
from defectkd.tasks.base import EvalImages, Task, TrainData, TrainSetup


class ClassifyTask(Task):
    name = "classify"
    label = "classification"
    metric_name = "accuracy"
    compares_per_image = True
    ensembles = True
    main_metric = "val/accuracy"
    report_metrics = ("accuracy", "precision", "recall", "f1")

    def degenerate(self, metrics: dict | None, classes: int = 2) -> str | None:
        """Accuracy within 2 points of chance (1 / classes): what a constant answer scores on balanced classes."""
        value = None if not metrics else metrics.get("accuracy", metrics.get("val/accuracy"))
        if value is None or float(value) > 1 / max(classes, 1) + 0.02:
            return None
        return f"accuracy {float(value):.4f} (chance {1 / max(classes, 1):.4f})"

    def train_config(self) -> type:
        from defectkd.tasks.classify.config import ClassifyTrainConfig

        return ClassifyTrainConfig

    def distill_config(self) -> type:
        from defectkd.tasks.classify.config import DistillClassifyConfig

        return DistillClassifyConfig

    # data
    def synth(self, out: Path, n: int, size: int, seed: int) -> Path:
        from defectkd.core.runs import fresh_dir
        from defectkd.tasks.classify.synthetic import write_synthetic_classify

        return write_synthetic_classify(fresh_dir(out), n, size, seed)

    def synth_message(self, path: Path, n: int, size: int) -> str:
        classes = sorted(d.name for d in path.iterdir() if d.is_dir())
        return f"wrote {n} images of {size}x{size} in {len(classes)} classes ({', '.join(classes)}) to {path}/<class>/"

    def recognise(self, path):
        from defectkd.tasks.classify.data import classify_reading

        return classify_reading(path)

    def check(self, path, progress=None, classes=None) -> dict:
        from defectkd.tasks.classify.data import check_classify

        if classes is not None:
            raise ConfigError("data check: --classes applies to --task detect")
        return check_classify(path, progress)

    def split_size(self, data, split: str, config: dict | None = None) -> int:
        from defectkd.tasks.classify.val import classify_split_size

        return classify_split_size(data, split)

    # training
    def prepare_data(self, cfg) -> TrainData:
        from defectkd.tasks.classify.train import checked_data

        source, train, val, how, report = checked_data(cfg)
        facts = {"validation_split": how, "train_images": len(train), "val_images": len(val),
                 "val_files": [str(s.image) for s in val],
                 "data_check": {k: report[k] for k in ("layout", "classes", "splits", "image_sizes")}}
        names = list(source.classes)
        return TrainData(source, train, val, facts, resolved={"class_names": names}, summary={"class_names": names})

    def build(self, cfg, data: TrainData, resolved: dict) -> TrainSetup:
        from defectkd.tasks.classify.module import ClassifyDistillModule, ClassifyModule

        kwargs = cfg.model_kwargs(len(data.source.classes))
        if getattr(cfg, "teacher", None):
            from defectkd.tasks.classify.train import load_classify_teacher

            teacher, name, files = load_classify_teacher(cfg, data.source)
            module = ClassifyDistillModule(cfg.model, kwargs, resolved, teacher, pretrained=cfg.pretrained)
            return TrainSetup(module, None, files, name, teacher)
        return TrainSetup(ClassifyModule(cfg.model, kwargs, resolved, pretrained=cfg.pretrained), None)

    def loaders(self, cfg, setup: TrainSetup, data: TrainData) -> tuple:
        from defectkd.tasks.classify.train import loaders

        return loaders(cfg, data.train, data.val)

    def epoch_summary(self, run_dir: Path):
        from defectkd.tasks.classify.train import ClassifyEpochSummary

        return ClassifyEpochSummary(run_dir)

    def final_eval(self, best: Path, cfg, data: TrainData, run_dir: Path, val_dl) -> dict:
        from defectkd.models.loading import load_checkpoint_model
        from defectkd.tasks.classify.evaluate import evaluate_classifier

        model, _ = load_checkpoint_model(best)
        return evaluate_classifier(model, data.val, data.source.classes, cfg.imgsz, cfg.batch,
                                   confusion_png=run_dir / "confusion.png", title=f"{cfg.model}, validation")

    def teacher_eval(self, setup: TrainSetup, cfg, data: TrainData) -> dict:
        from defectkd.models.info import count_parameters
        from defectkd.tasks.classify.evaluate import evaluate_classifier

        teacher = setup.teacher.cpu().float()
        return {"weights": setup.teacher_weights, "model": setup.teacher_name, "parameters": count_parameters(teacher),
                "val": evaluate_classifier(teacher, data.val, data.source.classes, cfg.imgsz, cfg.batch)}

    # verbs on weights
    def val(self, model, hp, weights, data, split, threshold, save_dir, project, progress, **options) -> dict:
        from defectkd.tasks.classify.val import val_classify

        return val_classify(model, hp, weights, data, split, threshold, save_dir, project, progress)

    def torch_runtime(self, weights: Path, imgsz: int | None = None):
        from defectkd.tasks.classify.evaluate import TorchClassifier

        return TorchClassifier(weights)

    def export_onnx(self, model, hp, out, imgsz, dynamic, opset, image) -> dict:
        from defectkd.models.onnx import export_dense
        from defectkd.tasks.classify.evaluate import model_class_names

        config = hp.get("config", {})
        size = imgsz or int(config.get("imgsz", 224))
        meta = {"task": "classify", "output": "logits NC (softmax: class probabilities)", "threshold": None,
                "class_names": model_class_names(hp), "train_imgsz": int(config.get("imgsz", size))}
        image = image or self.training_image(hp)
        parity = self.parity_rgb(image, None if dynamic and image is not None else (size, size))
        return export_dense(model, hp, out, size, dynamic, opset, parity, meta=meta, spatial_output=False)

    def parity_sample(self, size: int):
        from defectkd.tasks.classify.synthetic import synth_defect_sample

        return synth_defect_sample("scratches", seed=0, size=size), "synthetic defect image"

    def first_image(self, data) -> Path | None:
        from defectkd.tasks.classify.data import discover_classify

        samples = [s for split in discover_classify(data).splits.values() for s in split]
        return samples[0].image if samples else None

    def eval_images(self, hp: dict, data, split: str) -> EvalImages:
        from defectkd.tasks.classify.data import discover_classify, eval_split, split_train_val_classify
        from defectkd.tasks.classify.evaluate import model_class_names, samples_for_model

        config = hp.get("config", {})
        source = discover_classify(data)
        names = model_class_names(hp, source.classes)
        train, val, _ = split_train_val_classify(source, float(config.get("val_fraction", 0.1)),
                                                 int(config.get("split_seed", 0)))
        samples = val if split == "val" else eval_split(source, split)
        return EvalImages(self.name, [s.image for s in train], samples_for_model(source, samples, names), names)

    def score(self, runtime, images: EvalImages, progress: Callable[[], None] | None = None) -> float:
        return float(self.rows_metric(self.runtime_rows(runtime, images.samples, progress)))

    def image_rows(self, weights: Path, samples: list):
        return self.runtime_rows(self.torch_runtime(weights), samples)

    @staticmethod
    def runtime_rows(runtime, samples: list, progress: Callable[[], None] | None = None):
        """1 where the top class is right, else 0, per image (any runtime: PyTorch, ONNX Runtime, OpenVINO)."""
        import numpy as np

        from defectkd.data.io import read_image

        rows = []
        for s in samples:
            rows.append([float(np.argmax(runtime.classify(read_image(s.image))[0]) == s.label)])
            if progress:
                progress()
        return np.asarray(rows, dtype=np.float64).reshape(-1, 1)

    def rows_metric(self, rows):
        """Top-1 accuracy of the rows' images."""
        return rows[..., 0].mean(-1)

    def splits(self, data) -> list[str]:
        from defectkd.tasks.classify.data import discover_classify

        return list(discover_classify(data).splits)

    def model_output(self, classes: int) -> str:
        return f"softmax, {classes} classes"
