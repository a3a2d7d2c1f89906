"""Multi-process training: two CPU processes (gloo) through Lightning's `ddp` strategy, launched by the real
CLI (Lightning re-runs the command in a child process), for training and for feature distillation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

TINY = [
    "--epochs",
    "1",
    "--imgsz",
    "64",
    "--batch",
    "2",
    "--devices",
    "2",
    "--strategy",
    "ddp",
    "workers=0",
    "cache=false",
]


def _run(*args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    env.pop("DEFECTKD_RUN_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "defectkd.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=cwd,
    )


def _shards(run):
    ranks = [json.loads((run / "shards" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [s["rank"] for s in ranks] == [0, 1] and all(s["world_size"] == 2 for s in ranks)
    return ranks


def test_two_processes_split_the_training_data_and_the_run_loads(tmp_path, tiny_seg):
    import torch

    from defectkd.models.loading import load_checkpoint_model

    r = _run(
        "train",
        "segment",
        "--data",
        tiny_seg,
        "--model",
        "mcff-edge-n",
        "--name",
        "ddp",
        *TINY,
        f"project={tmp_path}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "segment").iterdir()) == ["ddp"]  # the child reused the folder
    run = tmp_path / "segment" / "ddp"
    a, b = _shards(run)
    assert a["indices"] and b["indices"] and not set(a["indices"]) & set(b["indices"])
    assert len(set(a["indices"]) | set(b["indices"])) == a["dataset_size"]  # 20 training pairs, 10 each
    assert r.stdout.count("validation (best.pt") == 1  # one summary table, from the primary process
    results = json.loads((run / "results.json").read_text())
    assert results["epochs_run"] == 1 and 0.0 <= results["val"]["f1"] <= 1.0
    model, hp = load_checkpoint_model(run / "weights" / "best.pt")
    assert hp["config"]["devices"] == 2 and hp["config"]["strategy"] == "ddp"
    assert model.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 2, 64, 64)


def test_feature_distillation_with_adapters_and_a_frozen_teacher_runs_under_ddp(tmp_path, tiny_seg, tiny_weights):
    r = _run(
        "distill",
        "segment",
        "--teacher",
        tiny_weights,
        "--student",
        "mcff-edge-n",
        "--data",
        tiny_seg,
        "--method",
        "mgd",
        "--name",
        "mgd",
        *TINY,
        f"project={tmp_path}",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "segment" / "mgd"
    a, b = _shards(run)
    assert not set(a["indices"]) & set(b["indices"])
    import torch

    deploy = torch.load(run / "weights" / "deploy.pt", weights_only=True)
    assert not any(k.startswith(("teacher", "adapters", "terms")) for k in deploy["state_dict"])
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].split(",")[3] != ""  # one epoch, written once, with a distillation term
