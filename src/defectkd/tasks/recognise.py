"""Which task a data folder is for: the one place that ranks the tasks' readings of a folder (each task's
`recognise` contributes its own layouts), used by `data check` without --task and by every verb that reads data.

Strength first (annotation files or image/mask pairs over class folders over bare images), then the order below
for a tie (a folder with VOC XML is a detection set even though its images/ would also pass as unlabelled
segmentation data). A second reading of strength >= 2 is reported as an alternative, with the --task that picks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from defectkd.core.errors import DataError
from defectkd.data.layouts import data_root
from defectkd.tasks import TASKS
from defectkd.tasks.base import Reading, Task

TIE_ORDER = ("detect", "segment", "classify")


@dataclass
class Recognition:
    readings: list[Reading] = field(default_factory=list)  # best first

    @property
    def chosen(self) -> Reading | None:
        return self.readings[0] if self.readings else None

    @property
    def others(self) -> list[Reading]:
        return self.readings[1:]

    @property
    def alternatives(self) -> list[Reading]:
        """Other readings that fit as well as a structure can (strength >= 2): worth naming to the user."""
        return [r for r in self.others if r.strength >= 2]

    def report(self) -> dict:
        """For `data check`: the chosen task, layout and evidence, and each alternative with how to pick it."""
        out: dict = {"recognised": None, "alternatives": []}
        if self.chosen is not None:
            out["recognised"] = {"task": self.chosen.task, "layout": self.chosen.layout,
                                 "evidence": self.chosen.evidence}
        out["alternatives"] = [{"task": r.task, "layout": r.layout, "evidence": r.evidence,
                                "pick_with": f"--task {r.task}"} for r in self.alternatives]
        return out


def _rank(reading: Reading) -> tuple[int, int]:
    order = TIE_ORDER.index(reading.task) if reading.task in TIE_ORDER else len(TIE_ORDER)
    return -reading.strength, order


def recognise(path: str | Path) -> Recognition:
    """Every task's reading of `path`, best first."""
    root = data_root(path)
    return Recognition(sorted((r for t in TASKS.values() if (r := t.recognise(root)) is not None), key=_rank))


def task_for(path: str | Path, named: str = "auto") -> tuple[Task, Recognition]:
    """The task that reads `path`: the one named (`--task`), else the best reading's, else the task that reads any
    folder of images (it then says what it could not find)."""
    found = recognise(path)
    if named in TASKS:
        return TASKS[named], found
    if found.chosen is not None:
        return TASKS[found.chosen.task], found
    return next(t for t in TASKS.values() if t.reads_any_folder), found


def check_fits(task: Task, path: str | Path, verb: str) -> None:
    """Refuse, in one line, data that is clearly another task's (e.g. `train segment` on a VOC folder) instead of
    letting the task's own reader report a thousand images without masks."""
    try:
        found = recognise(path)
    except DataError:
        return  # the task's own reader words a missing or empty path
    own = next((r for r in found.readings if r.task == task.name), None)
    best = found.chosen
    if best is not None and best.task != task.name and best.strength >= 2 and (own is None or own.strength < 2):
        raise DataError(f"{path}: this is {best.task} data ({best.layout}: {best.evidence}), not {task.name} data: "
                        f"use `defectkd {verb} {best.task}` (layouts: docs/data.md)")
