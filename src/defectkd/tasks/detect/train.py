"""`train detect` and `distill detect`: data checks, run folder, Lightning fit, final evaluation of best.pt (and of
the teacher, for distillation) with PR curves and drawn examples, student-only deploy file."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from rich.console import Console
from torch.utils.data import DataLoader

from defectkd.config import DetectTrainConfig, DistillDetectConfig
from defectkd.core.checkpoint import save_deploy_file
from defectkd.core.errors import ConfigError, DataError
from defectkd.distill.teacher import join_files, teacher_files
from defectkd.engine.callbacks import EpochSummary, fmt
from defectkd.engine.ddp import open_run_dir, secondary_summary
from defectkd.engine.fit import fit_lightning, start_run
from defectkd.info import count_parameters
from defectkd.models import model_spec
from defectkd.models.loading import load_checkpoint_model
from defectkd.tasks.detect.data import load_detect, split_train_val_detect
from defectkd.tasks.detect.dataset import DetectAugment, DetectDataset, collate_detect
from defectkd.tasks.detect.evaluate import evaluate_detector, model_class_names
from defectkd.tasks.detect.module import DetectDistillModule, DetectModule
from defectkd.tasks.segment.dataset import seed_augmentation_worker


class DetectEpochSummary(EpochSummary):
    columns = ("epoch", "train/loss", "train/hard", "train/kd", "val/loss", "val/map", "val/map_50", "val/map_75",
               "val/mar_100", "lr", "seconds")  # hard/kd: distillation runs only; val/loss: none (eval = boxes)
    curve_keys = ("val/map", "val/map_50", "val/map_75", "val/mar_100")
    curve_title = "validation: COCO mAP and recall"

    def describe(self, row: dict, trainer) -> str:
        return (f"epoch {row['epoch']}/{trainer.max_epochs}  loss {fmt(row['train/loss'])}  "
                f"val mAP {fmt(row['val/map'])}  mAP50 {fmt(row['val/map_50'])}  AR100 {fmt(row['val/mar_100'])}  "
                f"lr {row['lr']:.2e}  {row['seconds']}s")


def _checked_data(cfg: DetectTrainConfig, console: Console):
    """Discover, read every image, refuse blocking problems unless skip_bad (the bad images are then left out)."""
    source, report = load_detect(cfg.data, cfg.class_names)
    check = f"`defectkd data check {cfg.data} --task detect`"
    blocking = source.blocking
    if blocking and not cfg.skip_bad:
        more = f" (and {len(blocking) - 1} more problems)" if len(blocking) > 1 else ""
        raise DataError(f"{blocking[0]}{more}; see {check} or pass --skip-bad")
    if blocking:
        console.print(f"skipping {len(source.bad)} bad images (--skip-bad)", highlight=False)
    if not source.classes:
        raise DataError(f"{cfg.data}: no object classes found; see {check}")
    train, val, how = split_train_val_detect(source, cfg.val_fraction, cfg.split_seed)
    if not train or not val:
        raise DataError(f"{cfg.data}: no usable images for training and validation")
    if not any(s.boxes for s in train):
        raise DataError(f"{cfg.data}: the training images hold no boxes; see {check}")
    return source, train, val, how, report


def _teacher(cfg: DistillDetectConfig) -> tuple[torch.nn.Module, str, str, list[str]]:
    """(frozen teacher detector, its name, its weights file, its class names). Feature terms need no common classes:
    a teacher trained on other classes still teaches its FPN features."""
    files = teacher_files(cfg.teacher)
    if len(files) != 1:
        raise ConfigError("distill detect: give one teacher (ensembles are for segmentation and classification)")
    teacher, hp = load_checkpoint_model(files[0])
    if model_spec(hp["model_name"]).task != "detect":
        raise ConfigError(f"{files[0]}: teacher {hp['model_name']!r} is not a detection model")
    return teacher, hp["model_name"], join_files(files), model_class_names(hp)


def _default_name(cfg: DetectTrainConfig) -> str:
    return f"{cfg.model}-{cfg.method}" if isinstance(cfg, DistillDetectConfig) else cfg.model


def fit_detect(cfg: DetectTrainConfig, resume: Path | None = None, run_dir: Path | None = None,
               console: Console | None = None) -> dict:
    """Train (or distil) a detector; returns the summary also written to results.json."""
    console = console or Console(stderr=True)
    accelerator = start_run(cfg, "detect", "detection", resume)
    source, train, val, how, report = _checked_data(cfg, console)
    resolved = cfg.model_dump()
    resolved["class_names"] = list(source.classes)
    kwargs = cfg.model_kwargs(len(source.classes))
    teacher_file = teacher_name = teacher_names = None
    try:
        if isinstance(cfg, DistillDetectConfig):  # checked before the run folder exists
            teacher, teacher_name, teacher_file, teacher_names = _teacher(cfg)
            module = DetectDistillModule(cfg.model, kwargs, resolved, teacher, pretrained=cfg.pretrained)
        else:
            module = DetectModule(cfg.model, kwargs, resolved, pretrained=cfg.pretrained)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    keys = ("layout", "classes", "splits", "per_class", "background_images", "boxes_clipped", "boxes_dropped",
            "image_sizes")
    run_dir = open_run_dir(cfg, _default_name(cfg), resolved, {
        "validation_split": how, "train_images": len(train), "val_images": len(val),
        "val_files": [str(s.image) for s in val], "data_check": {k: report[k] for k in keys}}, run_dir, resume)
    weights = run_dir / "weights"
    train_dl, val_dl = _loaders(cfg, train, val)

    trainer, best_file = fit_lightning(module, train_dl, val_dl, cfg, run_dir, DetectEpochSummary(run_dir, console),
                                       accelerator, f"val/{cfg.monitor}", resume)
    if not trainer.is_global_zero:
        return secondary_summary(run_dir, trainer)
    deploy = save_deploy_file(best_file, weights / "deploy.pt")
    model, _ = load_checkpoint_model(best_file)
    final = evaluate_detector(model, val, source.classes, cfg.batch, pr_png=run_dir / "pr_curve.png",
                              examples=run_dir / "examples", draw_threshold=cfg.threshold,
                              title=f"{cfg.model}, validation")
    summary = {"run": str(run_dir), "task": "detect", "model": cfg.model, "epochs_run": trainer.current_epoch,
               "best": str(best_file), "deploy": str(deploy), "parameters": count_parameters(module.model),
               "class_names": list(source.classes), "val": final}
    if teacher_file is not None:  # side-by-side: the teacher on the same validation images
        teacher = module.teacher.cpu().float()
        same = teacher_names == list(source.classes)  # otherwise its mAP on these images means nothing
        summary["teacher"] = {"weights": teacher_file, "model": teacher_name, "parameters": count_parameters(teacher),
                              "val": evaluate_detector(teacher, val, teacher_names, cfg.batch) if same else None}
    (run_dir / "results.json").write_text(json.dumps(summary, indent=1))
    return summary


def _loaders(cfg: DetectTrainConfig, train, val) -> tuple[DataLoader, DataLoader]:
    train_ds = DetectDataset(train, DetectAugment(cfg.seed), cfg.cache)
    val_ds = DetectDataset(val, None, cfg.cache)
    common = {"num_workers": cfg.workers, "persistent_workers": cfg.workers > 0, "collate_fn": collate_detect}
    batch = min(cfg.batch, len(train_ds))
    # training order: fit_lightning's epoch-seeded sampler (by seed and epoch, sharded under DDP)
    return (DataLoader(train_ds, batch_size=batch, drop_last=len(train_ds) > batch,
                       worker_init_fn=seed_augmentation_worker, **common),
            DataLoader(val_ds, batch_size=cfg.batch, **common))

