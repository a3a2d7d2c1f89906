"""Classification training pieces the engine asks for: checked data, the teacher, the epoch line, loaders."""

from __future__ import annotations

import logging

import torch
from torch.utils.data import DataLoader

from defectkd.core.errors import ConfigError, DataError
from defectkd.distill.teacher import join_files, teacher_files, teacher_from
from defectkd.engine.callbacks import EpochSummary, fmt
from defectkd.engine.epoch_seed import seed_augmentation_worker
from defectkd.models.loading import load_checkpoint_model, model_task
from defectkd.tasks.classify.data import ClassifySource, discover_classify, split_train_val_classify, validate_classify
from defectkd.tasks.classify.dataset import ClassifyDataset, classify_train_transform
from defectkd.tasks.classify.evaluate import model_class_names

log = logging.getLogger("defectkd")


class ClassifyEpochSummary(EpochSummary):
    columns = ("epoch", "train/loss", "train/hard", "train/kd", "val/loss", "val/accuracy", "val/precision",
               "val/recall", "val/f1", "lr", "seconds")  # hard/kd: distillation runs only
    curve_keys = ("val/accuracy", "val/f1", "val/precision", "val/recall")
    curve_title = "validation: accuracy and macro P/R/F1"

    def describe(self, row: dict, trainer) -> str:
        return (f"epoch {row['epoch']}/{trainer.max_epochs}  loss {fmt(row['train/loss'])}  "
                f"val acc {fmt(row['val/accuracy'])}  macro F1 {fmt(row['val/f1'])}  "
                f"P {fmt(row['val/precision'])}  R {fmt(row['val/recall'])}  "
                f"lr {row['lr']:.2e}  {row['seconds']}s")


def checked_data(cfg):
    """Discover, read every image, refuse blocking problems (bad images: unless skip_bad; bad classes: always)."""
    source = discover_classify(cfg.data)
    report = validate_classify(source)
    blocking = source.blocking
    class_problems = [p for p in blocking if p.kind == "class"]  # not skippable: the class list depends on them
    if class_problems:
        more = f" (and {len(class_problems) - 1} more)" if len(class_problems) > 1 else ""
        raise DataError(f"{class_problems[0]}{more}; see `defectkd data check {cfg.data} --task classify`")
    if blocking and not cfg.skip_bad:
        more = f" (and {len(blocking) - 1} more problems)" if len(blocking) > 1 else ""
        raise DataError(f"{blocking[0]}{more}; see `defectkd data check {cfg.data} --task classify` "
                        "or pass --skip-bad")
    if blocking:
        log.info("skipping %d bad images (--skip-bad)", len(report["bad_images"]))
    if len(source.classes) < 2:
        raise DataError(f"{cfg.data}: classification needs at least 2 classes, found {source.classes}")
    if cfg.class_names is not None and list(cfg.class_names) != source.classes:
        raise ConfigError(f"class_names {cfg.class_names} differ from the data's classes {source.classes}")
    train, val, how = split_train_val_classify(source, cfg.val_fraction, cfg.split_seed)
    bad = set(report["bad_images"])
    train = [s for s in train if str(s.image) not in bad]
    val = [s for s in val if str(s.image) not in bad]
    if not train or not val:
        raise DataError(f"{cfg.data}: no usable images for training and validation")
    return source, train, val, how, report


def load_classify_teacher(cfg, source: ClassifySource) -> tuple[torch.nn.Module, str, str]:
    """(frozen teacher, its name, its weights files joined by commas); every member must be a classifier
    trained on the data's classes (when its file records them)."""
    files = teacher_files(cfg.teacher)
    loaded = [load_checkpoint_model(f) for f in files]
    for f, (_, hp) in zip(files, loaded, strict=True):
        if model_task(hp["model_name"]) != "classify":
            raise ConfigError(f"{f}: teacher {hp['model_name']!r} is not a classification model")
        names = model_class_names(hp, source.classes)
        if names != source.classes:
            raise ConfigError(f"{f}: teacher classes {names} differ from the data's {source.classes}")
    return (*teacher_from(loaded), join_files(files))


def loaders(cfg, train, val) -> tuple[DataLoader, DataLoader]:
    train_ds = ClassifyDataset(train, cfg.imgsz, classify_train_transform(cfg.imgsz, cfg.seed), cfg.cache)
    val_ds = ClassifyDataset(val, cfg.imgsz, None, cfg.cache)
    common = {"num_workers": cfg.workers, "persistent_workers": cfg.workers > 0}
    batch = min(cfg.batch, len(train_ds))
    # training order: fit_lightning's epoch-seeded sampler (by seed and epoch, sharded under DDP)
    return (DataLoader(train_ds, batch_size=batch, drop_last=len(train_ds) > batch,
                       worker_init_fn=seed_augmentation_worker, **common),
            DataLoader(val_ds, batch_size=cfg.batch, **common))
