"""Segmentation training data: every pair read and checked before a run starts, the validation split, loaders."""

from __future__ import annotations

import logging

from torch.utils.data import DataLoader

from defectkd.core.errors import DataError
from defectkd.data.layouts import discover
from defectkd.engine.epoch_seed import seed_augmentation_worker
from defectkd.tasks.segment.check import validate
from defectkd.tasks.segment.dataset import drop_bad, training_split

log = logging.getLogger("defectkd")


def checked_samples(cfg):
    """Validate every pair; refuse on a blocking problem unless skip_bad. Returns (source, train, val, how, report)."""
    source = discover(cfg.data)
    report = validate(source)
    # images without masks are training data when distilling with unlabelled=true (KD term only)
    unlabelled_ok = bool(getattr(cfg, "unlabelled", False))
    blocking = [p for p in source.problems if p.blocking and not (unlabelled_ok and p.kind == "unlabelled")]
    if blocking and not cfg.skip_bad:
        more = f" (and {len(blocking) - 1} more problems)" if len(blocking) > 1 else ""
        raise DataError(f"{blocking[0]}{more}; see `defectkd data check {cfg.data}` or pass --skip-bad")
    if blocking:
        log.info("skipping %d bad pairs (--skip-bad)", len(report["bad_images"]))
    train, val, how = training_split(source, dict(cfg))  # the draw val, --calibrate and export score again
    bad = set(report["bad_images"])
    train, val = drop_bad(train, bad), drop_bad(val, bad)
    if not train or not val:
        raise DataError(f"{cfg.data}: no usable labelled pairs for training and validation")
    return source, train, val, how, report


def loaders(cfg, train_ds, val_ds) -> tuple[DataLoader, DataLoader]:
    common = {"num_workers": cfg.workers, "persistent_workers": cfg.workers > 0}
    # training order: fit_lightning's epoch-seeded sampler (by seed and epoch, sharded under DDP)
    return (DataLoader(train_ds, batch_size=min(cfg.batch, len(train_ds)), drop_last=True,
                       worker_init_fn=seed_augmentation_worker, **common),
            DataLoader(val_ds, batch_size=1, **common))
