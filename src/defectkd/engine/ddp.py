"""Multi-process training (PyTorch DDP through Lightning): which process is the primary one, the run folder
every process shares, and a record of the training images each process drew.

Lightning's `ddp` strategy on one machine re-runs the same command in child processes (LOCAL_RANK set);
torchrun and SLURM start every process themselves (RANK or SLURM_PROCID set). Every process runs the set-up
code, so only the primary one creates the run folder and writes files outside the trainer: it announces the
folder in DEFECTKD_RUN_DIR, which the children inherit; processes started by an external launcher on other
nodes use the run name as given (a multi-node run therefore needs a new --name: it is never suffixed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L
import yaml

from defectkd.core.errors import ConfigError
from defectkd.core.runs import new_run_dir

RUN_DIR_ENV = "DEFECTKD_RUN_DIR"


def process_rank() -> int:
    """This process's global rank as the launchers set it before any process group exists (0 when alone)."""
    for key in ("RANK", "SLURM_PROCID"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    local, node = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("NODE_RANK", 0))
    return local if node == 0 else node * 1_000 + local  # only "is it 0" matters before the group exists


def is_primary() -> bool:
    return process_rank() == 0


def shared_run_dir(project: str | Path, task: str, name: str, num_nodes: int = 1) -> Path:
    """The run folder: made (never overwriting) by the primary process and announced to the children it
    launches; reused by every other process."""
    if not is_primary():
        announced = os.environ.get(RUN_DIR_ENV)
        path = Path(announced) if announced else Path(project) / task / name
        path.mkdir(parents=True, exist_ok=True)
        return path
    if num_nodes > 1:  # other nodes cannot see a suffix chosen here: the name must be new
        path = Path(project) / task / name
        if path.exists():
            raise ConfigError(f"{path}: already exists; a multi-node run needs a new --name (runs are never "
                              "overwritten)")
        path.mkdir(parents=True)
    else:
        path = new_run_dir(project, task, name)
    os.environ[RUN_DIR_ENV] = str(path.resolve())
    return path


def open_run_dir(cfg, default_name: str, resolved: dict, data_info: dict, run_dir: Path | None = None,
                 resume: Path | None = None) -> Path:
    """The run folder of a training launch with weights/, config.yaml (every launch: a resume may extend the
    epochs) and data.json (new runs only). Every process runs this; under DDP only the primary one writes."""
    if run_dir is None:
        run_dir = shared_run_dir(cfg.project, cfg.task, cfg.name or default_name, cfg.num_nodes)
    (run_dir / "weights").mkdir(parents=True, exist_ok=True)
    if is_primary():
        (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        if resume is None:
            (run_dir / "data.json").write_text(json.dumps(data_info, indent=1))
    return run_dir


def secondary_summary(run_dir: Path, trainer: L.Trainer) -> dict:
    """What a non-primary process returns after fit: the primary evaluates and writes results.json."""
    return {"run": str(run_dir), "rank": trainer.global_rank, "secondary": True}


class ShardRecord(L.Callback):
    """Under DDP, writes shards/rank<R>.json: the dataset indices this process trained on in the first epoch
    of this launch, so a user (and the tests) can see that the processes split the data."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._done = False

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._done or trainer.world_size < 2:
            return
        self._done = True
        sampler = trainer.train_dataloader.sampler
        n = len(trainer.train_dataloader.dataset)
        indices = [int(key) % n for key in sampler]  # keys carry the epoch (epoch_seed.EpochShuffle)
        out = self.run_dir / "shards"
        out.mkdir(exist_ok=True)
        (out / f"rank{trainer.global_rank}.json").write_text(json.dumps({
            "rank": trainer.global_rank, "world_size": trainer.world_size, "epoch": trainer.current_epoch,
            "dataset_size": n, "indices": indices}))
