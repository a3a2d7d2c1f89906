"""`defectkd kfold`: every pair validates exactly once, and the summary is the folds' mean and std."""

import json
import statistics

import pytest
import yaml


@pytest.mark.slow
def test_kfold_runs_each_fold_once_and_aggregates(tmp_path, tiny_seg, cli):
    r = cli("kfold", "segment", "--k", 3, "--data", tiny_seg, "--model", "mcff-l", "--name", "cv",
            "epochs=1", "imgsz=48", "batch=4", "workers=0", f"project={tmp_path}")
    assert r.code == 0, r.err
    parent = tmp_path / "segment" / "cv-kfold3"
    held = []
    for i in (1, 2, 3):
        cfg = yaml.safe_load((parent / f"fold{i}" / "config.yaml").read_text())
        assert (cfg["folds"], cfg["fold"]) == (3, i - 1)
        held += json.loads((parent / f"fold{i}" / "data.json").read_text())["val_images"]
    assert len(held) == len(set(held)) == 24  # the folds partition the 24 pairs
    report = json.loads((parent / "kfold.json").read_text())
    f1 = [row["f1"] for row in report["folds"]]
    assert report["mean"]["f1"] == statistics.fmean(f1) and report["std"]["f1"] == statistics.stdev(f1)
    assert (parent / "kfold.png").stat().st_size > 0 and len((parent / "kfold.csv").read_text().splitlines()) == 4
    assert "mean" in r.out and "std" in r.out


def test_kfold_refusals_leave_nothing(tmp_path, tiny_seg, cli):
    r = cli("kfold", "segment", "--k", 1, "--data", tiny_seg, f"project={tmp_path}")
    assert r.code == 2 and "at least 2" in r.err
    r = cli("kfold", "segment", "--k", 3, "--data", tmp_path / "nothing", f"project={tmp_path}")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "segment").exists() or not any((tmp_path / "segment").iterdir())
