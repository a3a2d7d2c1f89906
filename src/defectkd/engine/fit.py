"""The Lightning fit every task shares: best/last checkpoints, epoch summary, early stopping, time limit.

best.pt follows the monitored validation metric; last.pt is written every epoch (Lightning's
save_last only follows best). Both are saved at train-epoch end, after validation, so a resume
starts a fresh epoch. Returns the checkpoint to evaluate (best.pt, or last.pt if none was best).
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger

from defectkd.core.device import pick_accelerator, pick_precision
from defectkd.engine.callbacks import StepProgress
from defectkd.engine.ddp import ShardRecord
from defectkd.engine.ema import EMA
from defectkd.engine.epoch_seed import EpochSeed, epoch_seeded_loader
from defectkd.engine.guards import CollapseGuard, check_teacher

log = logging.getLogger("defectkd")


def fit_lightning(module: L.LightningModule, train_dl, val_dl, cfg, run_dir: Path, summary: L.Callback,
                  accelerator: str, monitor: str, resume: Path | None = None,
                  extra: list[L.Callback] | None = None) -> tuple[L.Trainer, Path]:
    weights = run_dir / "weights"
    best = ModelCheckpoint(dirpath=weights, filename="best", monitor=monitor, mode="max",
                           enable_version_counter=False, save_on_train_epoch_end=True)
    last = ModelCheckpoint(dirpath=weights, filename="last", monitor=None, save_top_k=1,
                           enable_version_counter=False, save_on_train_epoch_end=True)
    for ckpt in (best, last):
        ckpt.FILE_EXTENSION = ".pt"
    interactive = sys.stderr.isatty()  # logs and CI get the epoch lines only, not redrawn bars
    callbacks: list[L.Callback] = [best, last, summary, ShardRecord(run_dir), EpochSeed(cfg.seed), *(extra or [])]
    callbacks.append(RichProgressBar(leave=False) if interactive else StepProgress())
    if getattr(cfg, "ema", 0.0) > 0:
        callbacks.append(EMA(cfg.ema))
    if cfg.patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=cfg.patience))
    precision = pick_precision(cfg.precision, accelerator, getattr(module.model, "autocast_ok", True))
    trainer = L.Trainer(
        accelerator=accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=cfg.strategy,
        precision=precision,
        max_epochs=cfg.epochs, max_time={"minutes": cfg.time_limit} if cfg.time_limit else None,
        callbacks=callbacks, logger=CSVLogger(run_dir, name="logs"), default_root_dir=run_dir, num_sanity_val_steps=0,
        log_every_n_steps=1, deterministic=accelerator == "cpu",
        enable_model_summary=False, enable_progress_bar=interactive,
        gradient_clip_val=getattr(cfg, "grad_clip", 0.0) or None,
        use_distributed_sampler=False,  # EpochShuffle shards training under DDP; every rank validates on all
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*deterministic.*")
        warnings.filterwarnings("ignore", ".*sync_dist=True.*")  # every rank validates on the whole set
        try:
            trainer.fit(module, epoch_seeded_loader(train_dl, cfg.seed), val_dl,
                        ckpt_path=str(resume) if resume else None)
        except SystemExit:
            if not trainer.interrupted:
                raise
            raise interrupted(run_dir) from None
    best_file = weights / "best.pt" if (weights / "best.pt").exists() else weights / "last.pt"
    return trainer, best_file


def interrupted(run_dir: Path):
    """Lightning ends a Ctrl-C with sys.exit(1) and SIGINT ignored: give Ctrl-C back and say what to do next."""
    import signal

    from defectkd.core.errors import Interrupted

    signal.signal(signal.SIGINT, signal.default_int_handler)
    last = run_dir / "weights" / "last.pt"
    if last.is_file():
        return Interrupted(f"interrupted; {last} holds the last finished epoch: continue with --resume {run_dir}")
    return Interrupted(f"interrupted before the first epoch ended; nothing to resume in {run_dir}")


def check_devices(cfg, accelerator: str) -> None:
    """More GPUs than the machine has is refused in one line before anything is written."""
    from defectkd.core.errors import ConfigError

    if accelerator == "gpu" and cfg.devices > torch.cuda.device_count():
        raise ConfigError(f"devices: {cfg.devices} asked for, this machine has {torch.cuda.device_count()} GPU(s)")


def quiet_lightning() -> None:
    """Keep the console for defectkd's own lines: no GPU/TPU banners, tips or deprecation chatter."""
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*litlogger.*")


def start_run(cfg, task, resume: Path | None) -> str:
    """What every run checks before touching disk: the device exists, the model is of this task, a resume file
    holds no pickled code (api.train has checked that a resume keeps the run's recipe); then the seed is set.
    Returns the accelerator."""
    from defectkd.core.checkpoint import safe_load
    from defectkd.core.errors import ConfigError
    from defectkd.models import list_models, model_spec

    quiet_lightning()
    accelerator = pick_accelerator(cfg.device)
    check_devices(cfg, accelerator)
    other = model_spec(cfg.model).task  # an unknown name: one line with the closest known one, before any data
    if other != task.name:
        raise ConfigError(f"model {cfg.model!r} is a {other} model; {task.label} models: "
                          f"{', '.join(list_models(task.name))} (or: defectkd train {other})")
    if resume is not None:
        safe_load(resume, mmap=True)  # pickled code refused before Lightning reads the file
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    return accelerator


def run(task, cfg, resume: Path | None = None, run_dir: Path | None = None) -> dict:
    """Train (or distil) a model of any task: checked data, module, run folder, Lightning fit, the student-only
    deploy file and the final evaluation of best.pt (and of the teacher, on the same validation images).
    Returns the summary also written to results.json. `task` is a `defectkd.tasks.base.Task`."""
    import json

    from defectkd.core.checkpoint import save_deploy_file, store_config_values
    from defectkd.core.errors import ConfigError
    from defectkd.engine.ddp import open_run_dir, secondary_summary
    from defectkd.models.info import count_parameters

    accelerator = start_run(cfg, task, resume)
    data = task.prepare_data(cfg)
    resolved = {**cfg.model_dump(), **data.resolved}
    try:
        setup = task.build(cfg, data, resolved)  # the teacher and caches are checked before the run folder exists
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    module = setup.module
    classes = len(resolved.get("class_names") or []) or 2
    distilling = hasattr(module, "term_weights")  # every task's distillation module mixes in DistillTerms
    guards: list[L.Callback] = []
    teacher = None
    if setup.teacher_weights is not None:  # scored once, before training: a teacher that finds nothing is refused
        teacher = task.teacher_eval(setup, cfg, data)
        if getattr(cfg, "teacher_check", True):
            check_teacher(task, teacher, classes)
    if distilling:
        guards.append(CollapseGuard(task, classes, rescale=getattr(cfg, "dominant", "rescale") == "rescale"))
    if getattr(cfg, "channels_last", False):
        module = module.to(memory_format=torch.channels_last)
    run_dir = open_run_dir(cfg, task.default_name(cfg), resolved, data.facts, run_dir, resume)
    train_dl, val_dl = task.loaders(cfg, setup, data)
    trainer, best_file = fit_lightning(module, train_dl, val_dl, cfg, run_dir, task.epoch_summary(run_dir),
                                       accelerator, task.monitor(cfg), resume, guards)
    if not trainer.is_global_zero:
        return secondary_summary(run_dir, trainer)
    deploy = save_deploy_file(best_file, run_dir / "weights" / "deploy.pt")
    summary = {"run": str(run_dir), "task": task.name, "model": cfg.model, "epochs_run": trainer.current_epoch,
               "best": str(best_file), "deploy": str(deploy), "parameters": count_parameters(module.model),
               **data.summary, "val": task.final_eval(best_file, cfg, data, run_dir, val_dl)}
    point = task.operating_point(summary["val"], cfg)
    if point:  # chosen on the validation split, stored where val, predict and export read it
        store_config_values([best_file, deploy], point)
        summary["operating_point"] = {**point, "chosen_on": "validation split (best F1)"}
        log.info("stored %s in the weights: best F1 on the validation split", point)
    if distilling:  # the weights the loss used (measured, with balance=loss)
        summary["term_weights"] = {f"{i}_{t['method']}": w for i, (t, w) in
                                   enumerate(zip(module.terms, module.term_weights(), strict=True))}
    if teacher is not None:  # side-by-side: the teacher on the same validation images
        summary["teacher"] = teacher
    (run_dir / "results.json").write_text(json.dumps(summary, indent=1))
    return summary
