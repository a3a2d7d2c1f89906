"""Defect detection as a task plug-in: VOC / COCO / YOLO boxes, RetinaNet, COCO mAP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from defectkd.tasks.base import EvalImages, Task, TrainData, TrainSetup

DETECT_SCORE_FLOOR = 0.05  # boxes scored for mAP50, as for a PR curve


class DetectTask(Task):
    name = "detect"
    label = "detection"
    metric_name = "mAP50"
    main_metric = "val/map_50"
    compares_per_image = True  # mAP50 per resample from matches cached per image (tasks/detect/compare.py)
    degenerate_at = 0.001
    report_metrics = ("map", "map_50", "map_75", "mar_100")

    def train_config(self) -> type:
        from defectkd.tasks.detect.config import DetectTrainConfig

        return DetectTrainConfig

    def distill_config(self) -> type:
        from defectkd.tasks.detect.config import DistillDetectConfig

        return DistillDetectConfig

    # data
    def synth(self, out: Path, n: int, size: int, seed: int) -> Path:
        from defectkd.core.runs import fresh_dir
        from defectkd.tasks.detect.synthetic import write_synthetic_detect

        return write_synthetic_detect(fresh_dir(out), n, size, seed)

    def synth_message(self, path: Path, n: int, size: int) -> str:
        from defectkd.tasks.detect.synthetic import DETECT_CLASSES

        return (f"wrote {n} images of {size}x{size} with boxes of {len(DETECT_CLASSES)} classes "
                f"({', '.join(DETECT_CLASSES)}) to {path}/images + annotations/ (VOC) + splits/")

    def recognise(self, path):
        from defectkd.tasks.detect.data import detect_reading

        return detect_reading(path)

    def check(self, path, progress=None, classes=None) -> dict:
        from defectkd.tasks.detect.data import check_detect

        return check_detect(path, progress, classes)

    def split_size(self, data, split: str, config: dict | None = None) -> int:
        from defectkd.tasks.detect.val import detect_split_size

        return detect_split_size(data, split)

    # training
    def prepare_data(self, cfg) -> TrainData:
        from defectkd.tasks.detect.train import checked_data

        source, train, val, how, report = checked_data(cfg)
        keys = ("layout", "classes", "splits", "per_class", "background_images", "boxes_clipped", "boxes_dropped",
                "image_sizes")
        facts = {"validation_split": how, "train_images": len(train), "val_images": len(val),
                 "val_files": [str(s.image) for s in val], "data_check": {k: report[k] for k in keys}}
        names = list(source.classes)
        return TrainData(source, train, val, facts, resolved={"class_names": names}, summary={"class_names": names})

    def build(self, cfg, data: TrainData, resolved: dict) -> TrainSetup:
        from defectkd.tasks.detect.module import DetectDistillModule, DetectModule

        kwargs = cfg.model_kwargs(len(data.source.classes))
        if getattr(cfg, "teacher", None):
            from defectkd.tasks.detect.train import load_detect_teacher

            teacher, name, files, names = load_detect_teacher(cfg)
            module = DetectDistillModule(cfg.model, kwargs, resolved, teacher, pretrained=cfg.pretrained)
            return TrainSetup(module, None, files, name, teacher, names)
        return TrainSetup(DetectModule(cfg.model, kwargs, resolved, pretrained=cfg.pretrained), None)

    def loaders(self, cfg, setup: TrainSetup, data: TrainData) -> tuple:
        from defectkd.tasks.detect.train import loaders

        return loaders(cfg, data.train, data.val)

    def epoch_summary(self, run_dir: Path):
        from defectkd.tasks.detect.train import DetectEpochSummary

        return DetectEpochSummary(run_dir)

    def final_eval(self, best: Path, cfg, data: TrainData, run_dir: Path, val_dl) -> dict:
        from defectkd.models.loading import load_checkpoint_model
        from defectkd.tasks.detect.evaluate import evaluate_detector

        model, _ = load_checkpoint_model(best)
        return evaluate_detector(model, data.val, data.source.classes, cfg.batch, pr_png=run_dir / "pr_curve.png",
                                 examples=run_dir / "examples", draw_threshold=cfg.threshold,
                                 title=f"{cfg.model}, validation")

    def teacher_eval(self, setup: TrainSetup, cfg, data: TrainData) -> dict:
        from defectkd.models.info import count_parameters
        from defectkd.tasks.detect.evaluate import evaluate_detector

        teacher = setup.teacher.cpu().float()
        names = setup.teacher_class_names
        same = names == list(data.source.classes)  # otherwise its mAP on these images means nothing
        return {"weights": setup.teacher_weights, "model": setup.teacher_name, "parameters": count_parameters(teacher),
                "val": evaluate_detector(teacher, data.val, names, cfg.batch) if same else None}

    # verbs on weights
    def val(self, model, hp, weights, data, split, threshold, save_dir, project, progress, **options) -> dict:
        from defectkd.tasks.detect.val import val_detect

        return val_detect(model, hp, weights, data, split, threshold, save_dir, project, progress)

    def torch_runtime(self, weights: Path, imgsz: int | None = None):
        from defectkd.tasks.detect.evaluate import TorchDetector

        return TorchDetector(weights)

    def export_onnx(self, model, hp, out, imgsz, dynamic, opset, image) -> dict:
        from defectkd.tasks.detect.export import export_detector

        image = image or self.training_image(hp)  # else a synthetic image at the detector's own size
        parity = self.parity_rgb(image, None) if image else self.parity_sample(model.post["max_size"])
        return export_detector(model, hp, out, parity, imgsz=imgsz, opset=opset)

    def parity_sample(self, size: int):
        from defectkd.tasks.detect.synthetic import synth_detect_sample

        return synth_detect_sample(0, size)[0], "synthetic defect image"

    def first_image(self, data) -> Path | None:
        from defectkd.tasks.detect.data import discover_detect

        source = discover_detect(data)
        return next((s.image for split in source.splits.values() for s in split if s.image.is_file()), None)

    def eval_images(self, hp: dict, data, split: str) -> EvalImages:
        from defectkd.tasks.detect.data import eval_split, load_detect, split_train_val_detect, usable
        from defectkd.tasks.detect.evaluate import model_class_names

        config = hp.get("config", {})
        names = model_class_names(hp)
        source, _ = load_detect(data, names)
        train, val, _ = split_train_val_detect(source, float(config.get("val_fraction", 0.1)),
                                               int(config.get("split_seed", 0)))
        samples = val if split == "val" else usable(source, eval_split(source, split))
        return EvalImages(self.name, [s.image for s in train], samples, names)

    def score(self, runtime, images: EvalImages, progress: Callable[[], None] | None = None) -> float:
        import torch

        from defectkd.data.io import read_image
        from defectkd.tasks.detect.metrics import DetectionMetrics

        metrics = DetectionMetrics(images.class_names)
        for s in images.samples:
            dets, _ = runtime.detect(read_image(s.image), threshold=DETECT_SCORE_FLOOR)
            pred = {"boxes": torch.as_tensor(dets["boxes"], dtype=torch.float32).reshape(-1, 4),
                    "scores": torch.as_tensor(dets["scores"], dtype=torch.float32),
                    "labels": torch.as_tensor(dets["labels"], dtype=torch.int64)}
            truth = {"boxes": torch.as_tensor(s.boxes, dtype=torch.float32).reshape(-1, 4),
                     "labels": torch.as_tensor(s.labels, dtype=torch.int64)}
            metrics.update([pred], [truth])
            if progress:
                progress()
        return float(metrics.compute().get("map_50", 0.0))

    def image_rows(self, weights: Path, samples: list):
        """Each test image's detections matched to its true boxes once (COCO's rule at IoU 0.5): a paired bootstrap
        then recomputes mAP50 on every resample from the matches (tasks/detect/compare.py)."""
        from defectkd.data.io import read_image
        from defectkd.tasks.detect.compare import image_rows, match_image

        runtime = self.torch_runtime(weights)
        classes = len(runtime.class_names)
        matches = []
        for s in samples:
            dets, _ = runtime.detect(read_image(s.image), threshold=DETECT_SCORE_FLOOR)
            matches.append(match_image(dets["boxes"], dets["scores"], dets["labels"], s.boxes, s.labels, classes))
        return image_rows(matches, classes)

    def rows_metric(self, rows):
        """COCO mAP50 of the rows' images (one set, or one per resample)."""
        from defectkd.tasks.detect.compare import rows_map50

        return rows_map50(rows)

    def splits(self, data) -> list[str]:
        from defectkd.tasks.detect.data import discover_detect

        return list(discover_detect(data).splits)

    def model_output(self, classes: int) -> str:
        return f"boxes, {classes} classes"
