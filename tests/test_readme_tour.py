"""The README's 5-minute tour and its "More commands" block run as written, in order, in one folder, shrunk to
seconds (fewer, smaller images; one epoch; one corruption): every stage succeeds and leaves what the next one reads.
The streaming lines are covered by tests/serve/test_streaming.py, `defectkd demo` by tests/test_demo.py."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest

from tests.helpers import REPO, run_cli

pytestmark = pytest.mark.slow

README = REPO / "README.md"
# a 1-epoch student at 64 px finds nothing, which `--max-drop` rightly refuses: the shrunk tour exports without it;
# a 1-epoch teacher may find nothing either, which the distillation's teacher check would rightly refuse
SHRINK = [("--n 200", "--n 16"), ("--n 50", "--n 4"), ("--size 128", "--size 64"), ("--epochs 10", "--epochs 1"),
          ("--imgsz 128", "--imgsz 64"), (" --max-drop 0.01", ""), ("--baseline", "--baseline teacher_check=false")]
# the same for the "More commands" block (a resume extends the 1-epoch run by one epoch); its distillations also
# skip the teacher check, and no line reaches the collapse guard, which starts at epoch 3
MORE_SHRINK = [("--epochs 5", "--epochs 1"), ("--epochs 8", "--epochs 2"), ("--imgsz 128", "--imgsz 64"),
               ("--imgsz 448", "--imgsz 64"), ("--k 5", "--k 2")]
ASSIGNMENT = re.compile(r"^(\w+=\S+\s*)+$")


def block_commands(heading: str) -> list[str]:
    """The commands of the first ```bash block after `heading`: comments dropped, continuations joined."""
    text = README.read_text()
    block = text[text.index(heading):]
    block = block[block.index("```bash") + 7:block.index("```", block.index("```bash") + 7)]
    commands, pending = [], ""
    for line in block.splitlines():
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        if not line or line.startswith("#"):
            continue
        line = f"{pending} {line}".strip() if pending else line
        if line.endswith("\\"):
            pending = line[:-1].strip()
            continue
        pending = ""
        commands.append(line)
    return commands


def tour_commands() -> list[str]:
    return block_commands("## A 5-minute tour")


def more_commands() -> list[str]:
    return block_commands("More commands, by topic")


@pytest.fixture(scope="module")
def toured(tmp_path_factory):
    """A folder the shrunk tour has run in (its streaming lines left out)."""
    folder = tmp_path_factory.mktemp("readme")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        for command in tour_commands():
            if "--sink" in command or command.startswith("defectkd receive"):
                continue
            for a, b in SHRINK:
                command = command.replace(a, b)
            if command.startswith("defectkd robustness"):
                command += " --corruptions pepper --severities 1"
            run_cli(*shlex.split(command)[1:])
    return folder


def test_the_tour_runs(toured):
    commands = tour_commands()
    assert len(commands) >= 10 and all(c.startswith("defectkd ") for c in commands)
    assert (toured / "runs/segment/mcff-edge-s-rfkd/weights/best.int8.onnx").is_file()
    assert (toured / "runs/segment/mcff-edge-s-rfkd-alone/weights/best.pt").is_file()  # --baseline
    assert (toured / "runs/robustness/robustness/robustness.json").is_file()
    assert (toured / "runs/predict/predict/predictions.jsonl").read_text().count("\n") == 4
    assert (toured / "runs/report/report/report.html").is_file()


def test_the_more_commands_run_after_the_tour(toured, monkeypatch, cli):
    commands = more_commands()
    assert ASSIGNMENT.match(commands[0]), "the block starts by naming what the tour made"
    monkeypatch.chdir(toured)
    variables: dict[str, str] = {}
    outputs = {}  # each line's stdout, by its first words
    for command in commands:
        if ASSIGNMENT.match(command):
            variables.update(w.split("=", 1) for w in command.split())
            continue
        command = re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], command)
        if not command.startswith("defectkd "):  # shell lines (a config file written with printf)
            subprocess.run(["bash", "-c", command], check=True, cwd=toured)
            continue
        if command == "defectkd demo":  # minutes; tests/test_demo.py runs it shrunk
            continue
        for a, b in MORE_SHRINK:
            command = command.replace(a, b)
        if command.startswith("defectkd distill"):
            command += " teacher_check=false"
        if command.startswith("defectkd robustness"):
            command += " --corruptions pepper --severities 1"
        r = cli(*shlex.split(command)[1:])
        assert r.code == 0, f"{command}\n{r.err[-2000:]}"
        outputs[" ".join(command.split()[:3])] = r.out
    seg = toured / "runs/segment"
    assert "mcff-l" in outputs["defectkd models"] and "rfkd" in outputs["defectkd methods"]
    assert "standard.blocks" in outputs["defectkd layers --model"] and "mcff-l" in outputs["defectkd info --model"]
    assert json.loads(outputs["defectkd data check"])
    assert (seg / "mcff-l/metrics.csv").read_text().startswith("epoch,")
    assert (seg / "mcff-l/metrics.csv").read_text().splitlines()[-1].startswith("2,")  # resumed: one epoch more
    config = (seg / "mcff-l2/config.yaml").read_text()  # my.yaml, then the key=value override
    assert "lr: 0.001" in config and "loss: focal+dice" in config
    assert (seg / "val2/metrics.json").is_file()  # the tour's val wrote val/
    assert json.loads((toured / "soft/manifest.json").read_text())["T"] == 10
    for run in ("mcff-l-kd-offline", "mcff-l-rfkd", "mcff-l-mgd", "mcff-l-fitnet", "pct-tiny-rfkd"):
        assert (seg / run / "weights/deploy.pt").is_file(), run
    assert (seg / "mcff-l-kd-offline/weights/deploy.onnx").is_file()
    assert (toured / "runs/predict/predict2/predictions.jsonl").read_text().count("\n") == 4
    assert len(outputs["defectkd predict --weights"].strip().splitlines()) >= 4  # --json: a line per image
    assert (seg / "mcff-l-kfold2/kfold.json").is_file()
    for name in ("salt", "pepper"):
        assert sorted(p.name for p in (toured / "noisy" / name).iterdir()) == ["1", "3", "5"]
    report = json.loads((toured / "runs/robustness/robustness2/robustness.json").read_text())
    assert len(report["models"]) == 2  # both --weights
