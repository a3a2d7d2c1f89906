"""The training runs of a benchmark campaign (methods_table.py, neu_runs.py): a run that finished in an earlier
call is reused, so a campaign interrupted by a session's end continues where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

from defectkd import api


def train_or_reuse(task: str, method: str, model: str, teacher: str | None, name: str, common: dict,
                   overrides: list[str], distill_overrides: list[str] | None = None) -> dict:
    """The run's summary (`run`, `best`, ...): read from PROJECT/TASK/NAME/results.json when that run finished
    (marked `reused`), else trained now (`alone`: hard labels only; any other method distils from TEACHER, with
    `distill_overrides` too)."""
    done = Path(common["project"]) / task / name / "results.json"
    if done.is_file():
        return {**json.loads(done.read_text()), "run": str(done.parent), "reused": True}  # where it is now
    if method == "alone":
        return api.train(task, model=model, name=name, overrides=overrides, **common)
    return api.distill(task, model=model, teacher=teacher, method=method, name=name,
                       overrides=[*overrides, *(distill_overrides or [])], **common)
