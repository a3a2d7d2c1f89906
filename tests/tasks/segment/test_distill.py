"""`distill segment` online and offline, `soft-labels`, through the real CLI on tiny synthetic data."""

import csv
import json
import re

import pytest
import yaml

from defectkd.models import build_model
from defectkd.models.loading import load_checkpoint_model

TINY = ["epochs=1", "imgsz=48", "batch=4", "workers=0"]


def test_online_distillation_run_has_student_only_weights_and_teacher_comparison(tmp_path, tiny_seg, tiny_weights, cli):
    r = cli("distill", "segment", "--teacher", tiny_weights, "--student", "mcff-l", "--data", tiny_seg,
            "--method", "kd", "--T", 4, "--alpha", 0.7, *TINY, f"project={tmp_path}")
    assert r.code == 0, r.err
    run = tmp_path / "segment" / "mcff-l-kd"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert (cfg["T"], cfg["alpha"], cfg["method"], cfg["kd_heads"]) == (4.0, 0.7, "kd", "auto")
    assert cfg["teacher"] == str(tiny_weights) and cfg["soft_labels"] is None
    assert "teacher" in r.out and "student" in r.out  # the side-by-side table
    summary = json.loads((run / "results.json").read_text())
    assert summary["teacher"]["model"] == "mcff-l" and "f1" in summary["teacher"]["val"]
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "train/kd" in header and "train/hard" in header
    # the deploy file loads with build_model + weights alone, and only has the student's tensors
    import torch

    deploy = torch.load(run / "weights" / "deploy.pt", weights_only=True)
    student = build_model(deploy["model_name"], **deploy["model_kwargs"])
    student.load_state_dict(deploy["state_dict"])
    model, _ = load_checkpoint_model(run / "weights" / "best.pt")
    assert set(model.state_dict()) == set(student.state_dict())


def test_teacher_with_mirror_views_teaches_and_is_scored_as_it_taught(tmp_path, tiny_seg, tiny_weights, cli):
    r = cli("distill", "segment", "--teacher", tiny_weights, "--student", "mcff-edge-n", "--data", tiny_seg,
            "teacher_tta=hflip", "balance_steps=2", *TINY, f"project={tmp_path}", "--name", "tta")
    assert r.code == 0, r.err
    run = tmp_path / "segment" / "tta"
    assert yaml.safe_load((run / "config.yaml").read_text())["teacher_tta"] == "hflip"
    summary = json.loads((run / "results.json").read_text())
    assert summary["teacher"]["model"] == "mcff-l +hflip"  # its validation score is that of the mirrored average
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "train/term1_pairwise" in header  # rfkd's feature term found the first member's tap


def test_offline_distillation_from_the_cache_and_refusals(tmp_path, tiny_seg, tiny_weights, cli):
    soft = tmp_path / "soft"
    r = cli("soft-labels", "--teacher", tiny_weights, "--data", tiny_seg, "--out", soft, "--T", 10)
    assert r.code == 0, r.err
    assert "24 images" in r.out
    r = cli("distill", "segment", "--soft-labels", soft, "--student", "mcff-l", "--data", tiny_seg, *TINY,
            f"project={tmp_path}")
    assert r.code == 0, r.err
    run = tmp_path / "segment" / "mcff-l-kd-offline"
    assert (run / "weights" / "best.pt").is_file()
    summary = json.loads((run / "results.json").read_text())
    assert summary["teacher"]["weights"] == str(tiny_weights.resolve())  # found through the manifest

    runs_before = sorted(p.name for p in (tmp_path / "segment").iterdir())
    r = cli("distill", "segment", "--soft-labels", soft, "--data", tiny_seg, "--T", 5, *TINY, f"project={tmp_path}")
    assert r.code == 2 and "made at T=10" in r.err and len(r.err.strip().splitlines()) == 1
    r = cli("distill", "segment", "--data", tiny_seg, *TINY, f"project={tmp_path}")
    assert r.code == 2 and "give a teacher" in r.err
    r = cli("distill", "segment", "--soft-labels", soft, "--data", tiny_seg, "--method", "fitnet", *TINY,
            f"project={tmp_path}")
    assert r.code == 2
    r = cli("distill", "segment", "--soft-labels", soft, "--data", tiny_seg, "teacher_tta=hflip", *TINY,
            f"project={tmp_path}")
    assert r.code == 2 and "teacher_tta" in r.err and len(r.err.strip().splitlines()) == 1
    r = cli("distill", "segment", "--soft-labels", soft, "--data", tiny_seg, "teacher_mean=logits", *TINY,
            f"project={tmp_path}")
    assert r.code == 2 and "teacher_mean" in r.err and len(r.err.strip().splitlines()) == 1
    r = cli("distill", "segment", "--teacher", tmp_path / "missing.pt", "--data", tiny_seg, *TINY,
            f"project={tmp_path}")
    assert r.code == 2 and "missing.pt" in r.err
    assert sorted(p.name for p in (tmp_path / "segment").iterdir()) == runs_before  # refusals leave no run


def test_unlabelled_images_join_offline_distillation(tmp_path, tiny_seg, tiny_weights, cli):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_seg, data)
    for mask in sorted((data / "masks").iterdir())[:4]:
        mask.unlink()  # 4 images without masks
    soft = tmp_path / "soft"
    assert cli("soft-labels", "--teacher", tiny_weights, "--data", data, "--out", soft, "--unlabelled").code == 0
    manifest = json.loads((soft / "manifest.json").read_text())
    assert sum(not e["labelled"] for e in manifest["images"].values()) == 4
    refused = cli("distill", "segment", "--soft-labels", soft, "--data", data, *TINY, f"project={tmp_path}")
    assert refused.code == 2 and "(unlabelled)" in refused.err  # not silently mixed in
    r = cli("distill", "segment", "--soft-labels", soft, "--data", data, "unlabelled=true", *TINY,
            f"project={tmp_path}")
    assert r.code == 0, r.err
    info = json.loads((tmp_path / "segment" / "mcff-l-kd-offline" / "data.json").read_text())
    assert info["train_images"] == info["train_pairs"] + 4 and info["train_pairs"] + info["val_pairs"] == 20


def test_distillation_run_resumes_as_a_distillation_run(tmp_path, tiny_seg, tiny_weights, cli):
    r = cli("distill", "segment", "--teacher", tiny_weights, "--data", tiny_seg, "--alpha", 0.6, *TINY,
            f"project={tmp_path}", "name=kd")
    assert r.code == 0, r.err
    run = tmp_path / "segment" / "kd"
    import torch

    last = torch.load(run / "weights" / "last.pt", weights_only=False)
    # as a checkpoint written before the collapse guard had factors (kd, pairwise)
    assert last["state_dict"].pop("term_scale").tolist() == [1.0, 1.0]
    torch.save(last, run / "weights" / "last.pt")
    r = cli("distill", "segment", "--resume", run, "--epochs", 2)
    assert r.code == 0, r.err
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["epochs"] == 2 and cfg["alpha"] == 0.6 and cfg["teacher"] == str(tiny_weights)
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[2].split(",")[0] == "2" and rows[2].split(",")[3] != ""  # epoch 2 has a KD term


def test_feature_method_run_trains_adapters_but_deploys_the_student_only(tmp_path, tiny_seg, tiny_weights, cli):
    import torch

    r = cli("distill", "segment", "--teacher", tiny_weights, "--student", "mcff-l", "--data", tiny_seg,
            "--method", "fitnet", "--feat", "standard.down1:standard.blocks", *TINY, f"project={tmp_path}")
    assert r.code == 0, r.err
    run = tmp_path / "segment" / "mcff-l-fitnet"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["feat"] == ["standard.down1:standard.blocks"] and cfg["losses"][0]["method"] == "fitnet"
    ckpt = torch.load(run / "weights" / "last.pt", weights_only=True)
    assert any(k.startswith("distill_losses.0.0.regressor") for k in ckpt["state_dict"])  # trained with the student
    deploy = torch.load(run / "weights" / "deploy.pt", weights_only=True)
    assert set(deploy["state_dict"]) == set(build_model("mcff-l").state_dict())  # and dropped at export
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/hard", "train/kd", "train/term0_fitnet"} <= set(header)  # each term's size, every epoch
    with open(run / "logs" / "version_0" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"train/term0_fitnet_step", "train/term0_fitnet_epoch", "train/loss_step"} <= set(rows[0])
    logged = [int(r["step"]) for r in rows if r["train/term0_fitnet_step"]]
    assert len(logged) > 1 and logged == list(range(len(logged)))  # every optimiser step has its row


def test_method_and_layer_errors_are_one_line(tmp_path, tiny_seg, tiny_weights, cli):
    base = ["distill", "segment", "--teacher", tiny_weights, "--data", tiny_seg, *TINY, f"project={tmp_path}"]
    r = cli(*base, "--method", "fitnes")
    assert r.code == 2 and "unknown distillation method 'fitnes'" in r.err and len(r.err.strip().splitlines()) == 1
    r = cli(*base, "--method", "at", "--feat", "standard.blokcs:standard.blocks")
    assert r.code == 2 and "'standard.blokcs' does not exist in the student (mcff-l)" in r.err
    assert "standard.blocks" in r.err and "defectkd layers --model mcff-l" in r.err
    assert len(r.err.strip().splitlines()) == 1
    r = cli(*base, "--method", "at", "--feat", "standard.blocks")
    assert r.code == 2 and "student.path:teacher.path" in r.err
    r = cli(*base, "--method", "rfkd", "noise=[pepper,smoke]")
    assert r.code == 2 and "smoke" in r.err and len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "segment").exists()  # refusals leave no run folder


def test_layers_lists_paths_with_shapes_and_the_default_tap(cli):
    import json

    r = cli("layers", "--model", "mcff-l", "--contains", "standard.b", "--json")
    assert r.code == 0, r.err
    rows = {row["path"]: row for row in json.loads(r.out)}
    assert rows["standard.blocks"]["shape"] == "64x16x16" and rows["standard.blocks"]["default"]
    assert all("standard.b" in p for p in rows)
    r = cli("layers", "--model", "mcff-x")
    assert r.code == 2 and "unknown model 'mcff-x'" in r.err


def test_baseline_trains_the_student_alone_and_compares_on_held_out_images(tmp_path, tiny_seg, tiny_weights, cli):
    """`--baseline`: a <name>-alone run with the same settings, and the gain on the validation images (the tiny set
    has no test split) with a paired bootstrap interval, in results.json, the CLI and the report."""
    r = cli("distill", "segment", "--teacher", tiny_weights, "--student", "mcff-edge-n", "--data", tiny_seg,
            "--method", "kd", "--baseline", "--seed", 3, *TINY, f"project={tmp_path}")
    assert r.code == 0, r.err
    run, alone = tmp_path / "segment" / "mcff-edge-n-kd", tmp_path / "segment" / "mcff-edge-n-kd-alone"
    b = json.loads((run / "results.json").read_text())["baseline"]
    assert b["run"] == str(alone) and b["split"] == "val" and b["metric"] == "F1"
    cfg, alone_cfg = (yaml.safe_load((p / "config.yaml").read_text()) for p in (run, alone))
    assert {k: alone_cfg[k] for k in ("model", "seed", "epochs", "imgsz", "batch", "data", "split_seed")} == {
        k: cfg[k] for k in ("model", "seed", "epochs", "imgsz", "batch", "data", "split_seed")}
    assert "teacher" not in alone_cfg and "T" not in alone_cfg
    val_images = json.loads((run / "data.json").read_text())["val_images"]
    assert b["images"] == len(val_images)
    assert b["distilled"] == pytest.approx(json.loads((run / "results.json").read_text())["val"]["f1"], abs=1e-6)
    assert b["low"] <= b["gain"] <= b["high"] and b["gain"] == pytest.approx(b["distilled"] - b["alone"])
    assert b["verdict"] == ("within noise" if b["low"] <= 0 <= b["high"] else "better" if b["low"] > 0 else "worse")
    assert "gain over the student alone" in r.out and b["verdict"].replace("better", "helps").split()[0] in r.out
    rep = cli("report", run, "--out", tmp_path / "rep")
    assert rep.code == 0 and "Against the student alone (mcff-edge-n-kd-alone" in (tmp_path / "rep" / "report.md"
                                                                                 ).read_text()


def test_a_term_that_drowns_the_task_loss_is_lowered_after_its_first_epoch(tmp_path, tiny_seg, tiny_weights, cli):
    """kd at weight 2000 (hard weight 0.1) stands hundreds of times above the task loss in epoch 1; the guard lowers
    it to its balanced share (0.5x), says so, and the loss of epoch 2, results.json and the CSV use the new weight;
    dominant=warn keeps the weight as given."""
    common = ["--student", "mcff-edge-n", "--teacher", tiny_weights, "--data", tiny_seg, "--method", "kd",
              "losses=[{method: kd, weight: 2000}]", *TINY, "epochs=2", f"project={tmp_path}"]
    r = cli("distill", "segment", *common, "--name", "dom")
    assert r.code == 0, r.err
    run = tmp_path / "segment" / "dom"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    first, second = (float(rows[0][k]) for k in ("train/weight0_kd", "train/hard")), rows[1]
    w1, hard1 = first
    ratio = w1 * float(rows[0]["train/term0_kd"]) / (0.1 * hard1)  # weighted term over weighted task loss, by hand
    assert w1 == 2000 and ratio > 10
    assert float(second["train/weight0_kd"]) == pytest.approx(2000 * 0.5 / ratio, rel=1e-3)
    assert json.loads((run / "results.json").read_text())["term_weights"]["0_kd"] == pytest.approx(
        float(second["train/weight0_kd"]), rel=1e-4)
    said = re.search(r"the kd term stood at (\d+)x the task loss.*\(its balanced share\)", r.err)
    assert said and float(said[1]) == pytest.approx(ratio, abs=1)
    r = cli("distill", "segment", *common, "--name", "warn", "dominant=warn")
    assert r.code == 0, r.err
    rows = list(csv.DictReader((tmp_path / "segment" / "warn" / "metrics.csv").open()))
    assert [float(row["train/weight0_kd"]) for row in rows] == [2000, 2000] and "x the task loss; the labels" in r.err


def test_rep_student_distils_and_exports_as_the_plain_student(tmp_path, tiny_seg, tiny_weights, cli):
    """mcff-edge-n-rep trains with its extra branches (more tensors in the checkpoint) and exports the plain
    mcff-edge-n graph: the same Conv count as the plain student's export, ONNX outputs checked by export."""
    import onnx
    import torch

    r = cli("distill", "segment", "--teacher", tiny_weights, "--student", "mcff-edge-n-rep", "--data", tiny_seg,
            "--method", "rfkd", *TINY, f"project={tmp_path}")
    assert r.code == 0, r.err
    deploy = tmp_path / "segment" / "mcff-edge-n-rep-rfkd" / "weights" / "deploy.pt"
    trained = torch.load(deploy, weights_only=True)["state_dict"]
    plain_keys = set(build_model("mcff-edge-n").state_dict())
    assert plain_keys < set(trained) and any(".identity." in k for k in trained)
    model, _ = load_checkpoint_model(deploy)
    assert set(model.state_dict()) == plain_keys
    out = cli("export", "--weights", deploy, "--out", tmp_path / "rep.onnx")
    assert out.code == 0, out.err
    plain = tmp_path / "plain.pt"
    torch.save({"format": "defectkd-deploy-1", "model_name": "mcff-edge-n", "model_kwargs": {}, "threshold": 0.5,
                "state_dict": model.state_dict(), "data": str(tiny_seg)}, plain)
    assert cli("export", "--weights", plain, "--out", tmp_path / "plain.onnx").code == 0

    def convs(path):
        return sum(n.op_type == "Conv" for n in onnx.load(str(path)).graph.node)

    assert convs(tmp_path / "rep.onnx") == convs(tmp_path / "plain.onnx") > 0
