"""`train segment` and `distill segment`: data checks, run folder, Lightning fit, final evaluation of best.pt
(and of the teacher, for distillation), student-only deploy file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import lightning as L
import torch
from rich.console import Console
from torch.utils.data import DataLoader

from defectkd.config import DistillSegmentConfig, SegmentTrainConfig
from defectkd.core.checkpoint import safe_load, save_deploy_file
from defectkd.core.device import pick_accelerator
from defectkd.core.errors import DataError
from defectkd.data.layouts import discover
from defectkd.distill.teacher import load_teacher
from defectkd.engine.callbacks import EpochSummary
from defectkd.engine.ddp import open_run_dir, secondary_summary
from defectkd.engine.fit import check_devices, fit_lightning
from defectkd.info import count_parameters
from defectkd.tasks.segment.check import validate
from defectkd.tasks.segment.dataset import (
    SegmentationDataset,
    drop_bad,
    seed_augmentation_worker,
    split_train_val,
    train_transform,
)
from defectkd.tasks.segment.distill_setup import prepare_distillation
from defectkd.tasks.segment.evaluate import evaluate_model, evaluate_weights
from defectkd.tasks.segment.module import SegmentModule


def quiet_lightning() -> None:
    """Keep the console for defectkd's own lines: no GPU/TPU banners, tips or deprecation chatter."""
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*litlogger.*")


def _checked_samples(cfg: SegmentTrainConfig, console: Console):
    """Validate every pair; refuse on a blocking problem unless skip_bad."""
    source = discover(cfg.data)
    report = validate(source)
    # images without masks are training data when distilling with unlabelled=true (KD term only)
    unlabelled_ok = isinstance(cfg, DistillSegmentConfig) and cfg.unlabelled
    blocking = [p for p in source.problems if p.blocking and not (unlabelled_ok and p.kind == "unlabelled")]
    if blocking and not cfg.skip_bad:
        more = f" (and {len(blocking) - 1} more problems)" if len(blocking) > 1 else ""
        raise DataError(f"{blocking[0]}{more}; see `defectkd data check {cfg.data}` or pass --skip-bad")
    if blocking:
        console.print(f"skipping {len(report['bad_images'])} bad pairs (--skip-bad)", highlight=False)
    train, val, how = split_train_val(source, cfg.val_fraction, cfg.split_seed, cfg.folds, cfg.fold)
    bad = set(report["bad_images"])
    train, val = drop_bad(train, bad), drop_bad(val, bad)
    if not train or not val:
        raise DataError(f"{cfg.data}: no usable labelled pairs for training and validation")
    return source, train, val, how, report


def _loaders(cfg: SegmentTrainConfig, train_ds: SegmentationDataset, val):
    val_ds = SegmentationDataset(val, None, cfg.cache, cfg.mask_dilate)
    common = {"num_workers": cfg.workers, "persistent_workers": cfg.workers > 0}
    # training order: fit_lightning's epoch-seeded sampler (by seed and epoch, sharded under DDP)
    return (DataLoader(train_ds, batch_size=min(cfg.batch, len(train_ds)), drop_last=True,
                       worker_init_fn=seed_augmentation_worker, **common),
            DataLoader(val_ds, batch_size=1, **common))


def _default_name(cfg: SegmentTrainConfig) -> str:
    if isinstance(cfg, DistillSegmentConfig):
        return f"{cfg.model}-{cfg.method}" + ("" if cfg.online else "-offline")
    return cfg.model


def fit_segment(cfg: SegmentTrainConfig, resume: Path | None = None, run_dir: Path | None = None,
                console: Console | None = None) -> dict:
    """Train a segmentation model; returns the summary dict also written to results.json."""
    console = console or Console(stderr=True)
    quiet_lightning()
    accelerator = pick_accelerator(cfg.device)  # before anything is written: a bad choice leaves no trace
    check_devices(cfg, accelerator)
    if resume is not None:
        safe_load(resume)  # refuse pickled code before the run is touched or Lightning reads the file
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    source, train, val, how, report = _checked_samples(cfg, console)
    resolved = cfg.model_dump()
    teacher_file = None
    if isinstance(cfg, DistillSegmentConfig):  # checked (teacher, cache) before the run folder exists
        setup = prepare_distillation(cfg, train, source.root, resolved)
        module, train_ds, teacher_file = setup.module, setup.train_set, setup.teacher_weights
    else:
        module = SegmentModule(cfg.model, cfg.model_kwargs(), resolved, pretrained=cfg.pretrained)
        train_ds = SegmentationDataset(train, train_transform(cfg.imgsz, cfg.seed), cfg.cache, cfg.mask_dilate)
    if cfg.channels_last:
        module = module.to(memory_format=torch.channels_last)
    run_dir = open_run_dir(cfg, _default_name(cfg), resolved, {
        "validation_split": how, "train_pairs": len(train), "val_pairs": len(val),
        "val_images": [str(s.image) for s in val], "train_images": len(train_ds),
        "data_check": {k: report[k] for k in ("layout", "splits", "image_sizes", "crack_fraction")}}, run_dir, resume)
    weights = run_dir / "weights"
    train_dl, val_dl = _loaders(cfg, train_ds, val)

    trainer, best_file = fit_lightning(module, train_dl, val_dl, cfg, run_dir, EpochSummary(run_dir, console),
                                       accelerator, "val/f1", resume)
    if not trainer.is_global_zero:
        return secondary_summary(run_dir, trainer)
    deploy = save_deploy_file(best_file, weights / "deploy.pt")
    final = evaluate_weights(best_file, val_dl.dataset.samples, threshold=cfg.threshold, tolerant=True)
    summary = {"run": str(run_dir), "model": cfg.model, "epochs_run": trainer.current_epoch,
               "best": str(best_file), "deploy": str(deploy), "parameters": count_parameters(module.model),
               "val": final}
    if teacher_file is not None:  # side-by-side: the teacher on the same validation images
        teacher, teacher_name = load_teacher(teacher_file)
        summary["teacher"] = {"weights": str(teacher_file), "model": teacher_name,
                              "parameters": count_parameters(teacher),
                              "val": evaluate_model(teacher, val, threshold=cfg.threshold, tolerant=True)}
    (run_dir / "results.json").write_text(json.dumps(summary, indent=1))
    return summary
