"""Setting up a distillation run: the teacher (online) or a validated soft-label cache (offline)."""

from __future__ import annotations

from pathlib import Path

import torch

from defectkd.core.errors import ConfigError
from defectkd.distill.teacher import join_files, load_teacher, teacher_files
from defectkd.tasks.base import TrainSetup
from defectkd.tasks.segment.config import DistillSegmentConfig
from defectkd.tasks.segment.dataset import SegmentationDataset, train_transform
from defectkd.tasks.segment.distill_module import DistillModule
from defectkd.tasks.segment.soft_labels import SoftLabelCache, file_sha256


def _teacher_heads(teacher: torch.nn.Module) -> list[str]:
    with torch.no_grad():
        return list(teacher.forward_heads(torch.zeros(1, 3, 64, 64)).keys())


def prepare_distillation(cfg: DistillSegmentConfig, train: list, data_root: Path, resolved: dict) -> TrainSetup:
    """Module + training set for online (teacher in memory) or offline (cached soft labels) KD, and the teacher's
    weights files (joined by commas) for the side-by-side comparison: None when the cache's teacher is unknown."""
    teacher_file = join_files(teacher_files(cfg.teacher)) if cfg.teacher else None
    transform = train_transform(cfg.imgsz, cfg.seed, soft_targets=not cfg.online, photometric=cfg.photometric)
    if cfg.online:
        if cfg.unlabelled:
            raise ConfigError("unlabelled=true trains on cached soft labels: give soft_labels (offline) too")
        teacher, name = load_teacher(teacher_file, cfg.teacher_tta, cfg.teacher_mean)
        heads = _teacher_heads(teacher)
        module = _module(cfg, resolved, teacher, heads, getattr(teacher, "main_head", heads[0]))
        train_set = SegmentationDataset(train, transform, cfg.cache, cfg.mask_dilate)
        return TrainSetup(module, with_noisy_student(train_set, cfg), teacher_file, name, teacher)
    not_kd = [t.method for t in cfg.losses if t.method != "kd" or t.on != "logits" or t.params.get("T", cfg.T) != cfg.T]
    if not_kd:
        raise ConfigError(f"soft_labels: offline distillation stores probabilities at T={cfg.T:g}, usable by kd on "
                          f"logits only (method {cfg.method!r} needs {not_kd[0]!r}); drop soft_labels to distil online")
    from defectkd.tasks.segment.soft_dataset import SoftLabelDataset

    cache = SoftLabelCache(cfg.soft_labels, cfg.T, data_root, train)
    samples = list(train)
    if cfg.unlabelled:
        extra = cache.unlabelled_samples(data_root)
        cache = SoftLabelCache(cfg.soft_labels, cfg.T, data_root, samples + extra)  # validates them too
        samples += extra
    module = _module(cfg, resolved, None, cache.heads, cache.main_head)
    if teacher_file is None:  # compare against the cache's teacher when its files are unchanged
        recorded = [Path(p) for p in cache.manifest["teacher"].split(",")]
        hashes = cache.manifest["teacher_sha256"].split(",")
        if all(p.is_file() and file_sha256(p) == h for p, h in zip(recorded, hashes, strict=True)):
            teacher_file = cache.manifest["teacher"]
    train_set = SoftLabelDataset(samples, cache, transform, cfg.cache, cfg.mask_dilate)
    return TrainSetup(module, with_noisy_student(train_set, cfg), teacher_file)


def with_noisy_student(train_set: SegmentationDataset, cfg: DistillSegmentConfig):
    """The training set, or (noisy_fraction > 0) a view whose samples carry a corrupted student input."""
    if not cfg.noisy_fraction:
        return train_set
    from defectkd.distill.noisy import NoisyStudentDataset

    return NoisyStudentDataset(train_set, cfg.noisy_fraction, cfg.noise, cfg.seed)  # unknown names: ConfigError


def _module(cfg: DistillSegmentConfig, resolved: dict, teacher, heads: list[str], main: str) -> DistillModule:
    try:
        return DistillModule(cfg.model, cfg.model_kwargs(), resolved, teacher=teacher, teacher_heads=heads,
                             teacher_main=main, pretrained=cfg.pretrained)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
