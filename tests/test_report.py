"""`defectkd report`: run folders -> report.md + report.html with the runs' numbers, settings and pictures."""

from __future__ import annotations

import json

import yaml


def _train_run(root, name, model, f1, method=None, curve=(0.5, 0.6)):
    run = root / "segment" / name
    run.mkdir(parents=True)
    cfg = {"task": "segment", "data": "data/x", "model": model, "epochs": len(curve), "imgsz": 64, "method": method}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "results.json").write_text(json.dumps({"run": str(run), "model": model, "epochs_run": len(curve),
                                                  "parameters": 528_000, "val": {"f1": f1, "iou": f1 / 2}}))
    rows = ["epoch,train/loss,val/f1"] + [f"{i + 1},1.0,{v}" for i, v in enumerate(curve)]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    (run / "curves.png").write_bytes(b"\x89PNG fake")
    return run


def test_report_tables_settings_and_pictures(tmp_path, cli):
    a = _train_run(tmp_path, "alone", "pct-tiny", 0.6875)
    b = _train_run(tmp_path, "kd", "pct-tiny", 0.7125, method="kd", curve=(0.55, 0.65, 0.7125))
    rob = tmp_path / "robustness" / "r"
    rob.mkdir(parents=True)
    (rob / "robustness.json").write_text(json.dumps({"images": 3, "split": "test", "corruptions": ["pepper"],
                                                     "severities": [1], "models": [
                                                         {"label": "alone", "model": "pct-tiny", "clean_dice": 0.61,
                                                          "mDS": 0.4321}]}))
    r = cli("report", a, b, rob, "--out", tmp_path / "rep", "--title", "Crack study")
    assert r.code == 0, r.err
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md.startswith("# Crack study")
    assert "| alone | pct-tiny | - | - | 0.528 M | 2 | 0.6875 | 0.3438 |" in md
    assert "| kd | pct-tiny | kd | - | 0.528 M | 3 | 0.7125 | 0.3563 |" in md
    assert "| alone | pct-tiny | 0.6100 | 0.4321 |" in md  # robustness table
    assert "| epochs | 3 |" in md and "![val/f1 of every segment run against epochs](compare_segment.png)" in md
    files = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {"report.md", "report.html", "compare_segment.png", "alone_curves.png", "kd_curves.png"} <= files
    page = (tmp_path / "rep" / "report.html").read_text()
    tables = sum(line.startswith("|---") for line in md.splitlines())
    assert tables == 4 and page.count("<table>") == tables  # runs, 2 x settings, robustness
    assert '<img src="kd_curves.png"' in page and "0.4321" in page


def test_report_refuses_a_folder_that_is_not_a_run_and_writes_nothing(tmp_path, cli):
    run = _train_run(tmp_path, "alone", "pct-tiny", 0.7)
    (tmp_path / "empty").mkdir()
    r = cli("report", run, tmp_path / "empty", "--out", tmp_path / "rep")
    assert r.code == 2 and "empty: not a defectkd run folder" in r.err and len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "rep").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    r = cli("report", run, "--out", tmp_path / "full")
    assert r.code == 2 and "not empty" in r.err and (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_report_shows_each_distillation_term_against_the_task_loss(tmp_path, cli):
    """The FitNet case of docs/benchmarks.md: weighted by its x100, a feature term 65x the hard loss is flagged;
    the KD term beside it is not."""
    run = _train_run(tmp_path, "fit", "mcff-edge-n", 0.81, method="fitnet")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg.update(teacher="runs/segment/teacher", hard_weight=1.0,
               losses=[{"method": "fitnet", "on": "features", "weight": 100.0},
                       {"method": "kd", "on": "logits", "weight": 1.0}])
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "metrics.csv").write_text("epoch,train/loss,train/hard,train/kd,val/f1,train/term0_fitnet,train/term1_kd\n"
                                     "1,60,1.5,58.9,0.5,0.58,0.9\n"
                                     "2,50,0.75,49.05,0.81,0.4875,0.3\n")
    r = cli("report", run, "--out", tmp_path / "rep")
    assert r.code == 0, r.err
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## fit (distill, segment)" in md  # a distillation run says so
    assert "| weighted loss term | epoch 1 | epoch 2 | last / hard |  |" in md
    assert "| hard | 1.5000 | 0.7500 | 1.0000 |  |" in md
    assert "| term0_fitnet (x100) | 58.0000 | 48.7500 | 65.0000 | dominates the task loss |" in md
    assert "| term1_kd (x1) | 0.9000 | 0.3000 | 0.4000 |  |" in md
    assert "| kd | 58.9000 | 49.0500 | 65.4000 | dominates the task loss |" in md


def test_report_uses_the_measured_weights_of_a_balanced_run(tmp_path, cli):
    run = _train_run(tmp_path, "fit", "mcff-edge-n", 0.81, method="fitnet")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg.update(teacher="runs/segment/teacher", hard_weight=1.0, balance="loss",
               losses=[{"method": "fitnet", "on": "features", "weight": 100.0}])
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "metrics.csv").write_text(
        "epoch,train/loss,train/hard,train/kd,val/f1,train/term0_fitnet,train/weight0_fitnet\n"
        "1,2,1.5,0.375,0.5,0.58,0.25\n"
        "2,1,0.75,0.1,0.81,0.4,0.25\n")
    assert cli("report", run, "--out", tmp_path / "rep").code == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    # 0.25 x 0.4 = 0.1 at epoch 2, against hard 0.75 (by hand): not the config's x100
    assert "| term0_fitnet (x0.25) | 0.1450 | 0.1000 | 0.1333 |  |" in md
