"""The README's 5-minute tour runs as written, shrunk to seconds (fewer, smaller images; one epoch; one
corruption): every stage succeeds and leaves what the next one reads. The streaming lines are covered by
tests/integration/test_streaming.py."""

from __future__ import annotations

import re
import shlex

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow

README = REPO / "README.md"
# a 1-epoch student at 64 px finds nothing, which `--max-drop` rightly refuses: the shrunk tour exports without it;
# a 1-epoch teacher may find nothing either, which the distillation's teacher check would rightly refuse
SHRINK = [("--n 200", "--n 16"), ("--n 50", "--n 4"), ("--size 128", "--size 64"), ("--epochs 10", "--epochs 1"),
          ("--imgsz 128", "--imgsz 64"), (" --max-drop 0.01", ""), ("--baseline", "--baseline teacher_check=false")]


def tour_commands() -> list[str]:
    text = README.read_text()
    block = text[text.index("## A 5-minute tour"):]
    block = block[block.index("```bash") + 7:block.index("```", block.index("```bash") + 7)]
    commands, pending = [], ""
    for line in block.splitlines():
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        if not line:
            continue
        line = f"{pending} {line}".strip() if pending else line
        if line.endswith("\\"):
            pending = line[:-1].strip()
            continue
        pending = ""
        commands.append(line)
    return commands


def test_the_tour_runs(tmp_path, monkeypatch, cli):
    commands = tour_commands()
    assert len(commands) >= 10 and all(c.startswith("defectkd ") for c in commands)
    monkeypatch.chdir(tmp_path)
    ran = 0
    for command in commands:
        if "--sink" in command or command.startswith("defectkd receive"):
            continue
        for a, b in SHRINK:
            command = command.replace(a, b)
        if command.startswith("defectkd robustness"):
            command += " --corruptions pepper --severities 1"
        r = cli(*shlex.split(command)[1:])
        assert r.code == 0, f"{command}\n{r.err[-2000:]}"
        ran += 1
    assert ran >= 8
    assert (tmp_path / "runs/segment/mcff-edge-s-rfkd/weights/best.int8.onnx").is_file()
    assert (tmp_path / "runs/segment/mcff-edge-s-rfkd-alone/weights/best.pt").is_file()  # --baseline
    assert (tmp_path / "runs/predict/predict/predictions.jsonl").read_text().count("\n") == 4
    assert (tmp_path / "runs/report/report/report.html").is_file()
