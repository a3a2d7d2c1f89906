"""`train classify` and `distill classify`: data checks, run folder, Lightning fit, final evaluation of
best.pt (and of the teacher, for distillation) with a confusion matrix, student-only deploy file."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from rich.console import Console
from torch.utils.data import DataLoader

from defectkd.config import ClassifyTrainConfig, DistillClassifyConfig
from defectkd.core.checkpoint import save_deploy_file
from defectkd.core.errors import ConfigError, DataError
from defectkd.distill.teacher import EnsembleTeacher, join_files, teacher_files
from defectkd.engine.callbacks import EpochSummary, fmt
from defectkd.engine.ddp import open_run_dir, secondary_summary
from defectkd.engine.fit import fit_lightning, start_run
from defectkd.info import count_parameters
from defectkd.models import model_spec
from defectkd.models.loading import load_checkpoint_model
from defectkd.tasks.classify.data import ClassifySource, discover_classify, split_train_val_classify, validate_classify
from defectkd.tasks.classify.dataset import ClassifyDataset, classify_train_transform
from defectkd.tasks.classify.evaluate import evaluate_classifier, model_class_names
from defectkd.tasks.classify.module import ClassifyDistillModule, ClassifyModule
from defectkd.tasks.segment.dataset import seed_augmentation_worker


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


def _checked_data(cfg: ClassifyTrainConfig, console: Console):
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
        console.print(f"skipping {len(report['bad_images'])} bad images (--skip-bad)", highlight=False)
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


def _teacher(cfg: DistillClassifyConfig, source: ClassifySource) -> tuple[torch.nn.Module, str, str]:
    """(frozen teacher, its name, its weights files joined by commas); every member must be a classifier
    trained on the data's classes (when its file records them)."""
    files = teacher_files(cfg.teacher)
    loaded = [load_checkpoint_model(f) for f in files]
    for f, (_, hp) in zip(files, loaded, strict=True):
        if model_spec(hp["model_name"]).task != "classify":
            raise ConfigError(f"{f}: teacher {hp['model_name']!r} is not a classification model")
        names = model_class_names(hp, source.classes)
        if names != source.classes:
            raise ConfigError(f"{f}: teacher classes {names} differ from the data's {source.classes}")
    if len(loaded) == 1:
        return loaded[0][0], loaded[0][1]["model_name"], join_files(files)
    names = ", ".join(hp["model_name"] for _, hp in loaded)
    return EnsembleTeacher([m for m, _ in loaded]).eval(), f"ensemble({names})", join_files(files)


def _default_name(cfg: ClassifyTrainConfig) -> str:
    return f"{cfg.model}-{cfg.method}" if isinstance(cfg, DistillClassifyConfig) else cfg.model


def fit_classify(cfg: ClassifyTrainConfig, resume: Path | None = None, run_dir: Path | None = None,
                 console: Console | None = None) -> dict:
    """Train (or distil) a classifier; returns the summary also written to results.json."""
    console = console or Console(stderr=True)
    accelerator = start_run(cfg, "classify", "classification", resume)
    source, train, val, how, report = _checked_data(cfg, console)
    resolved = cfg.model_dump()
    resolved["class_names"] = list(source.classes)
    kwargs = cfg.model_kwargs(len(source.classes))
    teacher_file = teacher_name = None
    try:
        if isinstance(cfg, DistillClassifyConfig):  # checked before the run folder exists
            teacher, teacher_name, teacher_file = _teacher(cfg, source)
            module = ClassifyDistillModule(cfg.model, kwargs, resolved, teacher, pretrained=cfg.pretrained)
        else:
            module = ClassifyModule(cfg.model, kwargs, resolved, pretrained=cfg.pretrained)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if cfg.channels_last:
        module = module.to(memory_format=torch.channels_last)
    run_dir = open_run_dir(cfg, _default_name(cfg), resolved, {
        "validation_split": how, "train_images": len(train), "val_images": len(val),
        "val_files": [str(s.image) for s in val],
        "data_check": {k: report[k] for k in ("layout", "classes", "splits", "image_sizes")}}, run_dir, resume)
    weights = run_dir / "weights"
    train_ds = ClassifyDataset(train, cfg.imgsz, classify_train_transform(cfg.imgsz, cfg.seed), cfg.cache)
    val_ds = ClassifyDataset(val, cfg.imgsz, None, cfg.cache)
    common = {"num_workers": cfg.workers, "persistent_workers": cfg.workers > 0}
    batch = min(cfg.batch, len(train_ds))
    # training order: fit_lightning's epoch-seeded sampler (by seed and epoch, sharded under DDP)
    train_dl = DataLoader(train_ds, batch_size=batch, drop_last=len(train_ds) > batch,
                          worker_init_fn=seed_augmentation_worker, **common)
    val_dl = DataLoader(val_ds, batch_size=cfg.batch, **common)

    monitor = f"val/{cfg.monitor}"
    trainer, best_file = fit_lightning(module, train_dl, val_dl, cfg, run_dir, ClassifyEpochSummary(run_dir, console),
                                       accelerator, monitor, resume)
    if not trainer.is_global_zero:
        return secondary_summary(run_dir, trainer)
    deploy = save_deploy_file(best_file, weights / "deploy.pt")
    model, _ = load_checkpoint_model(best_file)
    final = evaluate_classifier(model, val, source.classes, cfg.imgsz, cfg.batch,
                                confusion_png=run_dir / "confusion.png", title=f"{cfg.model}, validation")
    summary = {"run": str(run_dir), "task": "classify", "model": cfg.model, "epochs_run": trainer.current_epoch,
               "best": str(best_file), "deploy": str(deploy), "parameters": count_parameters(module.model),
               "class_names": list(source.classes), "val": final}
    if teacher_file is not None:  # side-by-side: the teacher on the same validation images
        summary["teacher"] = {"weights": teacher_file, "model": teacher_name,
                              "parameters": count_parameters(module.teacher),
                              "val": evaluate_classifier(module.teacher.cpu().float(), val, source.classes,
                                                         cfg.imgsz, cfg.batch)}
    (run_dir / "results.json").write_text(json.dumps(summary, indent=1))
    return summary
