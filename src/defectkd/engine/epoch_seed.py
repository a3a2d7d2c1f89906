"""Randomness that depends on (seed, epoch, image) only, so a run resumed from last.pt draws the same batches,
augmentations, noise and dropout as one that was never interrupted.

DataLoader shuffling and the augmentations keep streams that restart when a process restarts; here the sampler
shuffles by (seed, epoch) and hands the dataset keys `epoch * N + index`, the dataset wrapper reseeds the
image's augmentation (and RFKD's noise mix) from the key, and a callback reseeds the global generators (dropout,
MGD's masks) at every epoch start. Worker processes change nothing: each image carries its own seed.
"""

from __future__ import annotations

import random

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def _mix(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


class EpochShuffle(Sampler[int]):
    """A permutation per (seed, epoch) (Lightning calls set_epoch before each epoch). Under DDP each process
    takes every world-th key of it, padded like DistributedSampler so that all take the same number; Lightning
    is told not to put its own sampler in front (fit.py), so set_epoch reaches this one."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @staticmethod
    def _world() -> tuple[int, int]:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size(), dist.get_rank()
        return 1, 0

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(_mix(self.seed, self.epoch))).tolist()
        world, rank = self._world()
        if world > 1:
            total = len(self) * world
            order = (order * (total // self.n + 1))[:total][rank::world]
        return iter([self.epoch * self.n + i for i in order])

    def __len__(self) -> int:
        world, _ = self._world()
        return -(-self.n // world)


class EpochSeeded(Dataset):
    """Wraps a training dataset: key `epoch * N + i` -> item i, its augmentation seeded by (seed, epoch, i)."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int):
        epoch, i = divmod(int(key), len(self.dataset))
        for offset, attr in enumerate(("transform", "noise_mix")):
            stream = getattr(self.dataset, attr, None)
            if stream is not None and hasattr(stream, "set_random_seed"):
                stream.set_random_seed(_mix(self.seed, epoch, i, offset))
        return self.dataset[i]

    def __getattr__(self, name: str):  # samples, transform, ... of the wrapped set
        if name in ("dataset", "seed"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def epoch_seeded_loader(loader: DataLoader, seed: int) -> DataLoader:
    """The same training loader with epoch-seeded order and augmentation."""
    return DataLoader(EpochSeeded(loader.dataset, seed), batch_size=loader.batch_size,
                      sampler=EpochShuffle(len(loader.dataset), seed), drop_last=loader.drop_last,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      worker_init_fn=loader.worker_init_fn, persistent_workers=loader.persistent_workers)


class EpochSeed(L.Callback):
    """Reseeds torch, numpy and random from (seed, epoch, rank) at every epoch start."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        s = _mix(self.seed, trainer.current_epoch, trainer.global_rank)
        torch.manual_seed(s)
        np.random.seed(s)
        random.seed(s)


def seed_augmentation_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: torch gives each worker (and each epoch) a distinct, seeded
    initial seed; hand it to the augmentation so workers do not repeat each other's augmentations."""
    cv2.setNumThreads(0)  # OpenCV's own pool inside a worker only fights the training threads for cores
    info = torch.utils.data.get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info else None
    if transform is not None:
        transform.set_random_seed(torch.initial_seed() % 2**32)
    noise = getattr(info.dataset, "noise_mix", None) if info else None  # RFKD's noisy student inputs
    if noise is not None:
        noise.set_random_seed((torch.initial_seed() + 1) % 2**32)
