"""The package's shape, checked: the import contract, one place that knows the tasks, an edge install without
torch."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

SRC = REPO / "src" / "defectkd"


def test_import_contract_holds():
    """Layers, independent task folders and a torch-free deploy/serve, as pyproject.toml's [tool.importlinter]."""
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    r = subprocess.run([lint, "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_the_contract_would_catch_a_lower_layer_importing_a_higher_one(tmp_path):
    """The same contract on a copy of the package with one forbidden import added fails: it can fail."""
    copy = tmp_path / "src"
    shutil.copytree(REPO / "src" / "defectkd", copy / "defectkd", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "defectkd" / "core" / "runs.py").write_text(
        (copy / "defectkd" / "core" / "runs.py").read_text() + "\nfrom defectkd.tasks import TASKS  # noqa\n")
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    r = subprocess.run([lint, "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True, text=True,
                       timeout=300, env={"PYTHONPATH": str(copy), "PATH": str(Path(sys.executable).parent)})
    assert r.returncode != 0 and "defectkd.core.runs -> defectkd.tasks" in r.stdout, r.stdout[-2000:]


def test_no_task_branches_outside_the_task_map():
    """Per-task behaviour is looked up in TASKS; no module compares a task name to choose what to do."""
    pattern = re.compile(r"""\btask\s*[!=]=\s*["']|["'](segment|classify|detect)["']\s*[!=]=\s*\w*task\b""")
    found = [f"{p.relative_to(SRC)}:{i}: {line.strip()}" for p in SRC.rglob("*.py")
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, found


def test_every_task_is_registered_once_and_answers_every_hook():
    from defectkd.tasks import TASKS
    from defectkd.tasks.base import Task

    assert sorted(TASKS) == sorted({p.parent.name for p in (SRC / "tasks").glob("*/task.py")})
    # the hooks a task must fill: the base's methods whose whole body is `raise NotImplementedError`
    hooks = [n for n, v in vars(Task).items() if callable(v) and v.__code__.co_names == ("NotImplementedError",)]
    assert hooks, "the base declares hooks"
    for task in TASKS.values():
        missing = [h for h in hooks if getattr(type(task), h) is getattr(Task, h)]
        assert not missing, (task.name, missing)


@pytest.mark.slow
def test_edge_install_pulls_no_torch(tmp_path):
    """`pip install defectkd` (the base install) resolves to the edge runtime: no torch, no lightning."""
    report = tmp_path / "report.json"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), str(REPO)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0 and ("Could not find" in r.stderr or "connection" in r.stderr.lower()):
        pytest.skip(f"no package index reachable: {r.stderr.strip().splitlines()[-1][:200]}")
    assert r.returncode == 0, r.stderr[-2000:]
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {"defectkd", "numpy", "onnxruntime", "pyzmq"} <= names, names
    assert not names & {"torch", "torchvision", "lightning", "segmentation-models-pytorch", "torchmetrics"}, names
