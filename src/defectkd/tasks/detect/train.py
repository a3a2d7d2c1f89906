"""Detection training pieces the engine asks for: checked data, the teacher, the epoch line, loaders."""

from __future__ import annotations

import logging

import torch
from torch.utils.data import DataLoader

from defectkd.core.errors import ConfigError, DataError
from defectkd.distill.teacher import join_files, teacher_files
from defectkd.engine.callbacks import EpochSummary, fmt
from defectkd.engine.epoch_seed import seed_augmentation_worker
from defectkd.models.loading import load_checkpoint_model, model_task
from defectkd.tasks.detect.data import load_detect, split_train_val_detect
from defectkd.tasks.detect.dataset import DetectAugment, DetectDataset, collate_detect
from defectkd.tasks.detect.evaluate import model_class_names

log = logging.getLogger("defectkd")


class DetectEpochSummary(EpochSummary):
    columns = ("epoch", "train/loss", "train/hard", "train/kd", "val/loss", "val/map", "val/map_50", "val/map_75",
               "val/mar_100", "lr", "seconds")  # hard/kd: distillation runs only; val/loss: none (eval = boxes)
    curve_keys = ("val/map", "val/map_50", "val/map_75", "val/mar_100")
    curve_title = "validation: COCO mAP and recall"

    def describe(self, row: dict, trainer) -> str:
        return (f"epoch {row['epoch']}/{trainer.max_epochs}  loss {fmt(row['train/loss'])}  "
                f"val mAP {fmt(row['val/map'])}  mAP50 {fmt(row['val/map_50'])}  AR100 {fmt(row['val/mar_100'])}  "
                f"lr {row['lr']:.2e}  {row['seconds']}s")


def checked_data(cfg):
    """Discover, read every image, refuse blocking problems unless skip_bad (the bad images are then left out)."""
    source, report = load_detect(cfg.data, cfg.class_names)
    check = f"`defectkd data check {cfg.data} --task detect`"
    blocking = source.blocking
    if blocking and not cfg.skip_bad:
        more = f" (and {len(blocking) - 1} more problems)" if len(blocking) > 1 else ""
        raise DataError(f"{blocking[0]}{more}; see {check} or pass --skip-bad")
    if blocking:
        log.info("skipping %d bad images (--skip-bad)", len(source.bad))
    if not source.classes:
        raise DataError(f"{cfg.data}: no object classes found; see {check}")
    train, val, how = split_train_val_detect(source, cfg.val_fraction, cfg.split_seed)
    if not train or not val:
        raise DataError(f"{cfg.data}: no usable images for training and validation")
    if not any(s.boxes for s in train):
        raise DataError(f"{cfg.data}: the training images hold no boxes; see {check}")
    return source, train, val, how, report


def load_detect_teacher(cfg) -> tuple[torch.nn.Module, str, str, list[str]]:
    """(frozen teacher detector, its name, its weights file, its class names). Feature terms need no common classes:
    a teacher trained on other classes still teaches its FPN features."""
    files = teacher_files(cfg.teacher)
    if len(files) != 1:
        raise ConfigError("distill detect: give one teacher (ensembles are for segmentation and classification)")
    teacher, hp = load_checkpoint_model(files[0])
    if model_task(hp["model_name"]) != "detect":
        raise ConfigError(f"{files[0]}: teacher {hp['model_name']!r} is not a detection model")
    return teacher, hp["model_name"], join_files(files), model_class_names(hp)


def loaders(cfg, train, val) -> tuple[DataLoader, DataLoader]:
    train_ds = DetectDataset(train, DetectAugment(cfg.seed), cfg.cache)
    val_ds = DetectDataset(val, None, cfg.cache)
    common = {"num_workers": cfg.workers, "persistent_workers": cfg.workers > 0, "collate_fn": collate_detect}
    batch = min(cfg.batch, len(train_ds))
    # training order: fit_lightning's epoch-seeded sampler (by seed and epoch, sharded under DDP)
    return (DataLoader(train_ds, batch_size=batch, drop_last=len(train_ds) > batch,
                       worker_init_fn=seed_augmentation_worker, **common),
            DataLoader(val_ds, batch_size=cfg.batch, **common))

