"""Task plug-ins. `TASKS` is the one place that knows which tasks exist: every verb looks its task up here.
Adding a task is one folder (its `task.py` a `defectkd.tasks.base.Task`) and one line below."""

from __future__ import annotations

from pathlib import Path

from defectkd.core.errors import ConfigError
from defectkd.tasks.base import Task
from defectkd.tasks.classify.task import ClassifyTask
from defectkd.tasks.detect.task import DetectTask
from defectkd.tasks.segment.task import SegmentTask

TASKS: dict[str, Task] = {t.name: t for t in (SegmentTask(), ClassifyTask(), DetectTask())}


def get_task(name: str, verb: str = "task") -> Task:
    """The task called NAME; an unknown name is one line listing the known ones."""
    if name not in TASKS:
        raise ConfigError(f"{verb}: task {name!r} not available (available: {', '.join(TASKS)})")
    return TASKS[name]


def task_of(hp: dict) -> Task:
    """The task of loaded hyper-parameters: recorded in the config, else the model's registry task; else segment."""
    from defectkd.models.loading import model_task

    name = (hp.get("config") or {}).get("task") or model_task(hp.get("model_name")) or "segment"
    return _known(name, f"model {hp.get('model_name')!r}")


def task_of_weights(path: str | Path) -> Task:
    """The task of a checkpoint or deploy file, read without loading its tensors."""
    from defectkd.models.loading import weights_task

    return _known(weights_task(path), str(path))


def _known(name: str, what: str) -> Task:
    if name not in TASKS:
        from defectkd.core.errors import WeightsError

        raise WeightsError(f"{what}: task {name!r} is not one this defectkd knows ({', '.join(TASKS)})")
    return TASKS[name]
