"""Benchmark scripts still run and print a parseable table (their --quick settings)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REPO

BENCH = REPO / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table_rows(text):
    return [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ") and "---" not in line]


@pytest.mark.slow
def test_seg_models_quick(capsys, tmp_path):
    out = tmp_path / "m.json"
    assert _load("seg_models").main(["--quick", "--models", "mcff-l", "--json", str(out)]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert rows[0][0].strip() == "model" and rows[1][0].strip() == "mcff-l"
    data = json.loads(out.read_text())["rows"][0]
    assert data["params_m"] == pytest.approx(1.194, abs=0.01) and data["fps"] > 0


@pytest.mark.slow
def test_seg_losses_quick(capsys, tmp_path):
    assert _load("seg_losses").main(["--quick", "--work", str(tmp_path), "--extra", "workers=0"]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert [r[0].strip() for r in rows[1:]] == ["ce", "ce+dice"]
    assert all(0.0 <= float(r[1]) <= 1.0 for r in rows[1:])


def test_train_speed_quick(capsys):
    assert _load("train_speed").main(["--quick", "--threads", "1"]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert rows[1][0].strip() == "fp32" and float(rows[1][2]) > 0


def test_train_speed_times_only_the_settings_asked(capsys):
    assert _load("train_speed").main(["--quick", "--threads", "1", "--settings", "fp32 + channels_last"]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert [r[0].strip() for r in rows[1:]] == ["fp32 + channels_last"]
    with pytest.raises(SystemExit):
        _load("train_speed").main(["--quick", "--settings", "fp16"])


def test_distill_speed_quick(capsys):
    assert _load("distill_speed").main(["--quick", "--threads", "1"]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert [r[0].strip() for r in rows[1:]] == ["student alone", "distilled offline (cache)",
                                                "distilled online (teacher)"]
    assert float(rows[1][3]) == 1.0 and all(float(r[1]) > 0 for r in rows[1:])


@pytest.mark.slow
def test_onnx_speed_quick(capsys, tmp_path):
    out = tmp_path / "o.json"
    assert _load("onnx_speed").main(["--quick", "--threads", "1", "--json", str(out)]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert [r[0].strip() for r in rows[1:]] == ["pytorch eager fp32", "onnxruntime fp32"]
    result = json.loads(out.read_text())
    assert result["max_abs_diff"] < 1e-4 and result["ort_speedup"] > 0


@pytest.mark.slow
def test_kd_settings_quick(capsys, tmp_path):
    assert _load("kd_settings").main(["--quick", "--work", str(tmp_path)]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert [r[0].strip() for r in rows[1:]] == ["teacher (teacher)", "alone", "T=4,alpha=0.5"]
    assert (tmp_path / "soft_T4" / "manifest.json").is_file()
    assert all(0.0 <= float(r[1]) <= 1.0 for r in rows[1:])


@pytest.mark.slow
def test_methods_table_quick_and_reuses_finished_runs(capsys, tmp_path):
    bench = _load("methods_table")
    assert bench.main(["--quick", "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| method")]
    assert [r.split(" | ")[0] for r in rows] == ["| alone", "| mgd", "| rfkd"]
    report = json.loads((tmp_path / "methods_table.json").read_text())
    assert all(0 <= r["mDS"] <= 1 and 0 <= r["f1"] <= 1 for r in report["rows"])
    assert bench.main(["--quick", "--work", str(tmp_path)]) == 0  # second time: nothing retrained
    assert out.count("reused") == 0 and capsys.readouterr().out.count("| reused |") == 3


@pytest.mark.slow
def test_edge_speed_quick(capsys, tmp_path):
    out = tmp_path / "e.json"
    assert _load("edge_speed").main(["--quick", "--threads", "1", "--json", str(out)]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert [r[0].strip() for r in rows[1:]] == ["mcff-l", "pct-tiny", "mcff-edge-n", "mcff-edge-s", "mcff-edge-m"]
    assert float(rows[1][6].strip().rstrip("x")) == 1.0 and all(float(r[7]) > 0 for r in rows[1:])
    result = {r["model"]: r for r in json.loads(out.read_text())["rows"]}
    assert result["mcff-l"]["gmacs"] == pytest.approx(34.97 / 49, abs=0.01)  # MACs scale with pixels, 448 -> 64
    assert all(r["ort_fps"] > 0 and r["torch_fps"] > 0 and r["max_abs_diff"] < 1e-4 for r in result.values())
    assert all(r["int8_speedup"] > 0 and r["int8_ort_ms"] > 0 for r in result.values())


@pytest.mark.slow
def test_int8_variants_quick(capsys, tmp_path):
    assert _load("int8_variants").main(["--quick", "--work", str(tmp_path)]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert [r[0].strip() for r in rows[1:]] == ["fp32", "qdq-all", "qop-conv"]
    assert all(0.0 <= float(r[1]) <= 1.0 and float(r[3]) > 0 for r in rows[1:])
    saved = json.loads(next(tmp_path.glob("int8_variants-*.json")).read_text())
    assert saved[0]["variant"] == "fp32" and saved[0]["speedup"] == 1.0


@pytest.mark.slow
def test_deepcrack_table_quick(capsys, tmp_path):
    records = tmp_path / "records"
    script = _load("deepcrack_table")
    assert script.main(["--quick", "--work", str(tmp_path), "--records", str(records)]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert [[c.strip() for c in r[:5]] for r in rows[1:3]] == [["teacher", "mcff-edge-m", "teacher", "alone", "-"],
                                                               ["kd-edge-n", "mcff-edge-n", "student", "kd", "teacher"]]
    result = json.loads((tmp_path / "deepcrack_table.json").read_text())
    for row in result["rows"]:
        assert 0.0 <= row["f1"] <= 1.0 and 0.0 <= row["mDS"] <= 1.0 and row["fps"] > 0
        # the fastest format is one whose F1 stayed within max_drop of PyTorch's on the same images
        assert row["formats"][row["format"]][0] >= row["formats"]["pytorch"][0] - 0.005
    assert result["rows"][1]["gmacs"] == pytest.approx(0.47, abs=0.01)
    # the records alone rebuild the same table (what a later session, without the run folders, starts from)
    assert sorted(p.name for p in records.iterdir()) == ["kd-edge-n.json", "teacher.json"]
    settings = ["--corruptions", "pepper", "--severities", "1", "--robust-limit", "2", "--bench-limit", "2",
                "--threads", "1"]
    assert script.main(["--records", str(records), "--work", str(tmp_path), *settings]) == 0
    assert _table_rows(capsys.readouterr().out)[:3] == rows[:3]
    # other settings: rows left out, not mixed in
    assert script.main(["--records", str(records), "--work", str(tmp_path)]) == 0
    assert len(_table_rows(capsys.readouterr().out)) == 1 + len(script.PUBLISHED) + 1


@pytest.mark.slow
def test_neu_table_quick(capsys, tmp_path):
    records = tmp_path / "records"
    script = _load("neu_table")
    assert script.main(["--quick", "--work", str(tmp_path), "--records", str(records)]) == 0
    rows = _table_rows(capsys.readouterr().out)
    by_run = {r[0].strip(): r for r in rows}
    assert [by_run[k][2].strip() for k in ("cls-teacher", "cls-alone", "cls-kd")] == ["teacher", "student", "student"]
    assert by_run["det-alone"][1].strip() == "retinanet-mnv3"
    result = {r["run"]: r for r in json.loads((tmp_path / "neu_table.json").read_text())["rows"]}
    kd, alone = result["cls-kd"], result["cls-alone"]
    # the gain is the distilled row minus its student trained alone, and the table prints it in points
    assert kd["gain_over"] == "cls-alone"
    assert kd["gain"]["accuracy"] == pytest.approx(kd["accuracy"] - alone["accuracy"])
    assert by_run["cls-kd"][10].strip() == f"{100 * kd['gain']['accuracy']:+.1f} / {100 * kd['gain']['f1']:+.1f}"
    assert "gain" not in alone and 0 <= result["det-alone"]["map_50"] <= 1 and result["det-alone"]["fps"] > 0
    for row in result.values():  # the fastest format keeps the task metric within max_drop of PyTorch's
        assert row["formats"][row["format"]][0] >= row["formats"]["pytorch"][0] - 0.005
    # the records alone rebuild the same tables
    again = ["--records", str(records), "--work", str(tmp_path), "--imgsz", "64", "--bench-limit", "4",
             "--threads", "1"]
    assert script.main(again) == 0
    assert _table_rows(capsys.readouterr().out) == rows


@pytest.mark.slow
def test_neu_runs_quick_trains_then_reuses(capsys, tmp_path):
    script = _load("neu_runs")
    assert script.main(["--task", "detect", "--quick", "--work", str(tmp_path)]) == 0
    rows = _table_rows(capsys.readouterr().out)
    detect = {r[0].strip(): r for r in rows if len(r) == 17 and r[0].strip() != "run"}  # the detection rows
    assert {k: v[3].strip() for k, v in detect.items()} == {"neu-teacher-retinanet-mnv3": "alone",
                                                            "neu-alone-retinanet-mnv3": "alone",
                                                            "neu-mgd-retinanet-mnv3": "mgd"}
    assert detect["neu-teacher-retinanet-mnv3"][2].strip() == "teacher"
    runs = json.loads((tmp_path / "neu_runs-detect.json").read_text())["runs"]
    stamps = {run: (Path(run) / "results.json").stat().st_mtime for run in runs}
    assert script.main(["--task", "detect", "--quick", "--work", str(tmp_path)]) == 0  # finished runs are reused
    assert {run: (Path(run) / "results.json").stat().st_mtime for run in runs} == stamps
    assert not (tmp_path / "detect" / "neu-mgd-retinanet-mnv32").exists()


def test_cpu_note_names_each_cpu_when_records_mix_machines():
    note = _load("table_records").cpu_note
    same = [{"run": "a", "cpu": "AMD EPYC"}, {"run": "b", "cpu": "AMD EPYC"}]
    assert note(same) == "FPS timed on AMD EPYC"
    mixed = same + [{"run": "c", "cpu": "Intel Xeon"}, {"run": "d"}]
    assert note(mixed) == ("FPS timed on different CPUs (compare speed only within one): AMD EPYC: a, b; "
                           "Intel Xeon: c; unknown CPU: d")
    assert note([]) == ""


def test_merged_records_mark_a_teacher_measured_in_an_earlier_call(tmp_path):
    """The teacher's row was recorded alone (as a student); its distilled student, measured later from another
    folder, names it by path: the merged table calls it a teacher and sorts it first."""
    records = _load("table_records")
    setting = {"bench_limit": 20}
    teacher = {"run": "t-edge-m", "weights": "runs/x/segment/t-edge-m/weights/best.pt", "role": "student",
               "model": "mcff-edge-m", "method": "alone", "teacher": None, "setting": setting}
    (tmp_path / "t-edge-m.json").write_text(json.dumps(teacher))
    student = {"run": "s-at", "weights": "runs/y/segment/s-at/weights/best.pt", "role": "student",
               "model": "mcff-edge-n", "method": "at", "teacher": "/elsewhere/segment/t-edge-m/weights/best.pt",
               "setting": setting}
    rows = records.merge_records([student], tmp_path, setting)
    assert [(r["run"], r["role"]) for r in rows] == [("t-edge-m", "teacher"), ("s-at", "student")]
    unrelated = {**student, "run": "s-kd", "teacher": "/elsewhere/segment/other/weights/best.pt"}
    assert [r["role"] for r in records.merge_records([unrelated], tmp_path / "b", setting)] == ["student"]


def test_paired_bootstrap_script_agrees_with_the_runs(tmp_path, tiny_seg, tiny_weights, capsys):
    """The script on two weights files: identical models are within noise with a zero gain."""
    pb = _load("paired_bootstrap")
    assert pb.main([str(tiny_weights), str(tiny_weights), "--data", str(tiny_seg), "--resamples", "100", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["task"], r["gain"], r["low"], r["high"], r["verdict"]) == ("segment", 0.0, 0.0, 0.0, "within noise")


def test_seed_gain_averages_the_seeds_under_one_resample(tmp_path, tiny_seg, tiny_weights, capsys):
    """Seed 1 compares a model with itself (gain 0), seed 2 two different models: the mean is half of seed 2's
    gain, its interval the percentiles of the averaged resampled gains."""
    import torch

    sg = _load("seed_gain")
    other = tmp_path / "other.pt"
    ckpt = torch.load(tiny_weights, weights_only=True)
    ckpt["state_dict"] = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
                          for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, other)
    args = ["--data", str(tiny_seg), "--resamples", "200", "--cache", str(tmp_path / "cache"), "--json"]
    assert sg.main([*args, "--pair", f"{tiny_weights},{tiny_weights}", "--pair", f"{other},{tiny_weights}"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["per_seed"][0] == 0.0 and r["mean"] == pytest.approx(r["per_seed"][1] / 2)
    assert r["low"] <= r["mean"] <= r["high"] and len(list((tmp_path / "cache").glob("*.npy"))) == 2


def test_seed_gain_pools_detection_match_sets(tmp_path, monkeypatch, capsys):
    """Detection rows are match sets (not plain arrays): they pool over seeds in memory, each weights file is scored
    once, and the per-seed gains are the mAP50 differences computed by hand from the same matches."""
    import types

    import numpy as np

    from defectkd.tasks import TASKS
    from defectkd.tasks.detect.compare import image_rows, match_image, rows_map50
    from tests.tasks.detect.test_compare import CLASSES, _scene

    sg = _load("seed_gain")
    scenes = _scene(np.random.default_rng(3), 40)
    halves = [np.random.default_rng(i).random(len(s[1])) < 0.5 for i, s in enumerate(scenes)]
    worse = [(b[k], sc[k], lab[k], t, tl) for (b, sc, lab, t, tl), k in zip(scenes, halves, strict=True)]
    rows = {"good": image_rows([match_image(*s, classes=CLASSES) for s in scenes], CLASSES),
            "bad": image_rows([match_image(*s, classes=CLASSES) for s in worse], CLASSES)}
    scored = []
    detect = TASKS["detect"]
    fake = types.SimpleNamespace(
        name="detect", metric_name="map50", rows_metric=detect.rows_metric,
        eval_images=lambda hp, data, split: types.SimpleNamespace(samples=list(range(40))),
        image_rows=lambda w, samples: scored.append(w.name) or rows[w.stem])
    for name in rows:
        (tmp_path / f"{name}.pt").write_bytes(b"x")
    monkeypatch.setattr(sg, "resolve_weights", lambda p: Path(p))
    monkeypatch.setattr(sg, "task_of_weights", lambda w: fake)
    monkeypatch.setattr(sg, "load_checkpoint_model", lambda w: (None, {}))
    good, bad = tmp_path / "good.pt", tmp_path / "bad.pt"
    assert sg.main(["--data", "d", "--pair", f"{good},{bad}", "--pair", f"{bad},{bad}", "--resamples", "200",
                    "--cache", str(tmp_path / "cache"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    gain = rows_map50(rows["good"]) - rows_map50(rows["bad"])
    assert r["per_seed"] == pytest.approx([gain, 0.0]) and r["mean"] == pytest.approx(gain / 2)
    assert 0 < r["low"] <= r["mean"] <= r["high"] and r["verdict"] == "better"
    assert sorted(scored) == ["bad.pt", "good.pt"] and not list((tmp_path / "cache").glob("*.npy"))


def test_cross_source_shifts_and_rows(tmp_path, tiny_seg, tiny_weights, capsys):
    """The scale shift keeps a crack pixel that covered at least half of its new pixel (a 2-px line stays 1 px,
    a 1-px line on an odd column survives) and resamples the image to the same size; the photometric shifts
    follow their formulas; on real weights every row's F1 at the stored threshold (0.5, on the ODS grid) is at most
    its ODS F1."""
    import numpy as np

    cs = _load("cross_source")
    mask = np.zeros((8, 8), np.uint8)
    mask[:, 2:4] = 1  # 2 px wide, aligned: one full column at half scale
    mask[:, 7] = 1  # 1 px wide: half of the last new column
    image = np.full((8, 8, 3), 128, np.uint8)
    small_image, small = cs.SHIFTS["half-scale"](image, mask)
    assert small_image.shape == (4, 4, 3) and small.tolist() == [[0, 1, 0, 1]] * 4
    dark, same = cs.SHIFTS["dark"](image, mask)
    assert same is mask and int(dark[0, 0, 0]) == round(255 * (128 / 255) ** 2)
    shade, _ = cs.SHIFTS["shadow"](image, mask)
    assert int(shade[0, 0, 0]) == 128 and int(shade[0, -1, 0]) == round(128 * 0.35)
    out = tmp_path / "cs.json"
    assert cs.main(["--data", str(tiny_seg), "--weights", str(tiny_weights), "--shifts", "half-scale,grey",
                    "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["shift"] for r in rows] == ["half-scale", "grey"] and all(r["threshold"] == 0.5 for r in rows)
    assert all(r["f1"] <= r["ods_f1"] + 1e-9 for r in rows)
    assert "mean of 2 shifts" in capsys.readouterr().out


def test_zoo_pack_halves_the_file_drops_the_data_path_and_keeps_the_outputs(tmp_path, tiny_weights, capsys):
    import torch

    from defectkd.models.loading import load_checkpoint_model

    deploy = torch.load(tiny_weights, weights_only=True)
    src = tmp_path / "deploy.pt"
    torch.save({**deploy, "data": "/home/someone/deepcrack"}, src)
    _load("zoo_pack").main([str(src), "--name", "packed", "--half", "--out-dir", str(tmp_path)])
    packed = tmp_path / "packed.pt"
    assert "packed.pt" in capsys.readouterr().out
    stored = torch.load(packed, weights_only=True)
    assert "data" not in stored and stored["threshold"] == 0.5
    assert all(v.dtype != torch.float32 for v in stored["state_dict"].values())
    assert packed.stat().st_size < 0.6 * tiny_weights.stat().st_size
    full, _ = load_checkpoint_model(tiny_weights)
    half, _ = load_checkpoint_model(packed)
    assert next(half.parameters()).dtype == torch.float32
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = full(x), half(x)
    assert not torch.equal(a, b) and torch.allclose(a, b, atol=1e-2 * a.abs().max().item())
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(SystemExit, match="not a deploy file"):
        _load("zoo_pack").main([str(tmp_path / "other.pt"), "--name", "x", "--out-dir", str(tmp_path)])


def test_val_test_rank_pools_f1_and_ranks_by_hand():
    from defectkd.tasks import TASKS

    m = _load("val_test_rank")
    rows = np.array([[8, 2, 0], [2, 0, 8]])  # tp, fp, fn of two images: F1 = 2*10 / (2*10 + 2 + 8) = 2/3
    assert float(TASKS["segment"].rows_metric(rows)) == pytest.approx(2 / 3)  # the script's test F1
    assert m.rank_agreement([0.1, 0.2, 0.3], [0.5, 0.6, 0.7]) == pytest.approx(1.0)
    # ranks (1, 2, 3) against (1, 3, 2): 1 - 6 * (0 + 1 + 1) / (3 * 8) = 0.5
    assert m.rank_agreement([0.1, 0.2, 0.3], [0.5, 0.7, 0.6]) == pytest.approx(0.5)


@pytest.mark.slow
def test_gpu_campaign_runs_end_to_end_on_the_cpu(tiny_seg, tmp_path):
    """The prepared GPU campaign (one device call, never run on a GPU here) runs its whole plumbing on the CPU at one
    epoch: both teachers, eight student runs, and the files the device tool brings back ($OUT: the two teachers'
    deploy files, two tars of the students' deploy files, summary.json naming every run, the log)."""
    import os
    import subprocess
    import sys
    import tarfile

    out, project = tmp_path / "out", tmp_path / "proj"
    env = {**os.environ, "DEVICE": "cpu", "DATA": str(tiny_seg), "EPOCHS_T": "1", "EPOCHS_S": "1",
           "PY": sys.executable, "OUT": str(out), "PROJECT": str(project), "DISTILL_EXTRA": "teacher_check=false"}
    r = subprocess.run(["bash", str(BENCH / "gpu_campaign.sh")], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["campaign.log", "gt-s0.pt", "gt-s1.pt",
                                                     "students-n.tar", "students-s.tar", "summary.json"]
    for st in "ns":
        with tarfile.open(out / f"students-{st}.tar") as tar:
            assert sorted(tar.getnames()) == [f"{k}-{st}-s{s}/weights/deploy.pt" for k in ("ga", "gd") for s in (0, 1)]
    summary = json.loads((out / "summary.json").read_text())
    runs = {f"{k}-{st}-s{s}" for k in ("ga", "gd") for st in "ns" for s in (0, 1)} | {"gt-s0", "gt-s1"}
    assert set(summary) == runs and not any(v.get("failed") for v in summary.values())
    assert summary["gd-n-s0"]["term_weights"] and summary["gt-s0"]["epochs_run"] == 1
    assert "failed student runs: 0" in (out / "campaign.log").read_text()  # the log is whole when the script ends
    again = subprocess.run(["bash", str(BENCH / "gpu_campaign.sh")], env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stdout  # never reads an earlier campaign's runs as its own


def test_mask_widths_measures_a_straight_crack_and_reads_a_set(tiny_seg, capsys):
    mod = _load("mask_widths")
    for width in (1, 5, 9):
        mask = np.zeros((40, 60), np.uint8)
        mask[10:10 + width, 5:55] = 255
        assert mod.centre_line_width(mask) == pytest.approx(width)
    assert mod.centre_line_width(np.zeros((8, 8), np.uint8)) is None
    assert mod.main(["--data", str(tiny_seg), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["split"] == "train (trained on)" and rows[1]["images"] >= 1
    assert all(0 <= r["crack_share"] <= 1 for r in rows)
