"""Train, validate and resume through the CLI on tiny synthetic data; the run folder's contents."""

import csv
import json

import pytest
import torch
import yaml

from tests.helpers import run_cli, split_set

FAST = ["--imgsz", "64", "--batch", "4", "workers=0", "precision=32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_seg):
    """One 2-epoch run shared by the tests of this module."""
    project = tmp_path_factory.mktemp("proj")
    run_cli("train", "segment", "--data", tiny_seg, "--model", "mcff-l", "--epochs", "2", "--name", "tiny", *FAST,
            f"project={project}")
    return project / "segment" / "tiny"


def test_run_folder_contents(trained, tiny_seg):
    for rel in ("config.yaml", "data.json", "weights/best.pt", "weights/last.pt", "metrics.csv",
                "curves.png", "results.json"):
        assert (trained / rel).is_file(), rel
    cfg = yaml.safe_load((trained / "config.yaml").read_text())
    assert cfg["model"] == "mcff-l" and cfg["epochs"] == 2 and cfg["imgsz"] == 64 and cfg["data"] == str(tiny_seg)
    rows = list(csv.DictReader((trained / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(0.0 <= float(r["val/f1"]) <= 1.0 for r in rows)
    data = json.loads((trained / "data.json").read_text())
    assert data["train_pairs"] + data["val_pairs"] == 24 and "seed 0" in data["validation_split"]


def test_checkpoint_is_weights_only_and_rebuilds(trained):
    from defectkd.models.loading import load_checkpoint_model

    ckpt = torch.load(trained / "weights" / "best.pt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["model_name"] == "mcff-l"
    model, hp = load_checkpoint_model(trained / "weights" / "best.pt")
    with torch.no_grad():
        out = model(torch.rand(1, 3, 40, 56))
    assert out.shape == (1, 2, 40, 56)


def test_val_json_and_overlays(cli, trained, tiny_seg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("val", "--weights", trained / "weights" / "best.pt", "--data", tiny_seg, "--json")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    m = result["metrics"]
    assert m["images"] == 24 and 0 <= m["f1"] <= 1 and m["ods_f1"] >= m["f1"] - 1e-9
    assert {"precision", "recall", "iou", "miou_2class", "ois_f1", "ods_f1_tol", "ois_f1_tol"} <= set(m)
    save = tmp_path / result["save_dir"]
    assert json.loads((save / "metrics.json").read_text())["metrics"] == m
    assert len(list((save / "overlays").glob("*.jpg"))) == 24
    assert (save / "pr_curve.png").stat().st_size > 1000


def test_val_metrics_match_results_of_training(trained):
    """The final evaluation in results.json equals evaluating best.pt on the recorded val images."""
    from defectkd.data.layouts import Sample
    from defectkd.tasks.segment.evaluate import evaluate_weights

    data = json.loads((trained / "data.json").read_text())
    results = json.loads((trained / "results.json").read_text())
    from pathlib import Path

    samples = []
    for img in data["val_images"]:
        p = Path(img)
        samples.append(Sample(p, p.parent.parent / "masks" / p.name))
    again = evaluate_weights(trained / "weights" / "best.pt", samples, tolerant=False)
    assert again["f1"] == pytest.approx(results["val"]["f1"], abs=1e-6)


@pytest.mark.slow
def test_resume_continues_to_more_epochs(cli, trained):
    r = cli("train", "segment", "--resume", trained, "--epochs", "3")
    assert r.code == 0, r.err
    rows = list(csv.DictReader((trained / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert yaml.safe_load((trained / "config.yaml").read_text())["epochs"] == 3


def test_same_name_gets_new_folder(cli, trained, tiny_seg):
    project = trained.parent.parent
    r = cli("train", "segment", "--data", tiny_seg, "--epochs", "1", "--name", "tiny", *FAST, f"project={project}",
            "val_fraction=0.5")
    assert r.code == 0, r.err
    assert (project / "segment" / "tiny2" / "weights" / "best.pt").is_file()
    assert yaml.safe_load((trained / "config.yaml").read_text())["val_fraction"] == 0.1  # first run untouched


def test_threshold_is_calibrated_on_validation_and_stored_everywhere(cli, tiny_seg, tmp_path, monkeypatch):
    """The run stores its validation split's F1-optimal threshold (ODS) in best.pt and deploy.pt; val, predict and
    export use it; a threshold the user set is kept."""
    monkeypatch.setattr("defectkd.tasks.segment.task.CALIBRATION_GAIN", -1.0)  # whatever the gain: store it
    project = tmp_path / "p"
    assert cli("train", "segment", "--data", tiny_seg, "--model", "mcff-edge-n", "--epochs", "2", "--name", "auto",
               *FAST, f"project={project}").code == 0
    trained = project / "segment" / "auto"
    results = json.loads((trained / "results.json").read_text())
    chosen = round(results["val"]["ods_threshold"], 4)
    assert results["operating_point"] == {"threshold": chosen, "chosen_on": "validation split (best F1)"}
    best = torch.load(trained / "weights" / "best.pt", map_location="cpu", weights_only=True)
    deploy = torch.load(trained / "weights" / "deploy.pt", map_location="cpu", weights_only=True)
    assert best["hyper_parameters"]["config"]["threshold"] == deploy["threshold"] == chosen
    monkeypatch.chdir(tmp_path)
    r = cli("val", "--weights", trained / "weights" / "deploy.pt", "--data", tiny_seg, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["threshold"] == chosen, r.out[:300]
    onnx = cli("export", "--weights", trained / "weights" / "deploy.pt", "--out", tmp_path / "m.onnx")
    assert onnx.code == 0, onnx.err
    import onnx as onnx_lib

    meta = {p.key: p.value for p in onnx_lib.load(str(tmp_path / "m.onnx")).metadata_props}
    assert float(meta["threshold"]) == pytest.approx(chosen)
    assert cli("train", "segment", "--data", tiny_seg, "--model", "mcff-edge-n", "--epochs", "1", "--name", "fixed",
               *FAST, "threshold=0.3", f"project={project}").code == 0
    fixed = project / "segment" / "fixed"
    assert "operating_point" not in json.loads((fixed / "results.json").read_text())
    assert torch.load(fixed / "weights" / "deploy.pt", weights_only=True)["threshold"] == 0.3


def test_calibration_moves_the_threshold_only_for_a_clear_validation_gain():
    from defectkd.tasks.segment.config import SegmentTrainConfig
    from defectkd.tasks.segment.task import CALIBRATION_GAIN, SegmentTask

    task, cfg = SegmentTask(), SegmentTrainConfig(data="x")
    assert task.operating_point({"f1": 0.40, "ods_f1": 0.70, "ods_threshold": 0.03}, cfg) == {"threshold": 0.03}
    small = {"f1": 0.759, "ods_f1": 0.759 + CALIBRATION_GAIN / 2, "ods_threshold": 0.76}  # DeepCrack's case
    assert task.operating_point(small, cfg) is None
    assert task.operating_point({"f1": 0.1, "ods_f1": 0.9, "ods_threshold": 0.0}, cfg) == {"threshold": 0.01}
    for off in (SegmentTrainConfig(data="x", calibrate=False), SegmentTrainConfig(data="x", threshold=0.3)):
        assert task.operating_point({"f1": 0.40, "ods_f1": 0.70, "ods_threshold": 0.03}, off) is None


def _deploy(path, seed: int, model_name: str = "mcff-edge-n"):
    from defectkd.core.checkpoint import DEPLOY_FORMAT
    from defectkd.models import build_model

    torch.manual_seed(seed)
    model = build_model(model_name)
    with torch.no_grad():  # random weights answer within 0.01 of 0.5: a louder last layer spreads the probabilities
        [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight.mul_(50)
    torch.save({"format": DEPLOY_FORMAT, "model_name": model_name, "model_kwargs": {"classes": 2},
                "threshold": 0.5, "state_dict": model.state_dict()}, path)
    return path


def test_val_of_an_ensemble_scores_the_averaged_probabilities(cli, tiny_seg, tmp_path, monkeypatch):
    """`val --weights a,b` scores the mean of the two models' crack probabilities (what a two-teacher distillation
    teaches), checked against the average computed here from each model alone."""
    import numpy as np

    from defectkd.data.layouts import discover
    from defectkd.models import crack_probability
    from defectkd.models.loading import load_checkpoint_model
    from defectkd.tasks.segment.dataset import SegmentationDataset, eval_samples

    monkeypatch.chdir(tmp_path)
    a, b = _deploy(tmp_path / "a.pt", 0), _deploy(tmp_path / "b.pt", 1)
    data = SegmentationDataset(eval_samples(discover(tiny_seg), "test"), transform=None, cache=False)
    models = [load_checkpoint_model(w)[0].eval() for w in (a, b)]
    with torch.no_grad():
        pairs = [(sum(crack_probability(m(x[None]).float())[0] for m in models).numpy() / 2, y.numpy() > 0.5)
                 for x, y, _ in (data[i] for i in range(len(data)))]
    # a threshold on the metric's 1/100 grid (it counts a pixel by its bin, floor(100 p)) at the averaged
    # probabilities' 90th percentile: a non-trivial F1 for random weights
    k = int(np.quantile(np.concatenate([p.ravel() for p, _ in pairs]), 0.9) * 100)
    thr = k / 100
    hits = [((p * 100).astype(int) >= k, t) for p, t in pairs]
    tp = sum(np.sum(h & t) for h, t in hits)
    fp, fn = sum(np.sum(h & ~t) for h, t in hits), sum(np.sum(~h & t) for h, t in hits)
    f1 = 2 * tp / (2 * tp + fp + fn)
    r = cli("val", "--weights", f"{a},{b}", "--data", tiny_seg, "--threshold", str(thr), "--json")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["model"] == "ensemble(mcff-edge-n, mcff-edge-n)"
    assert result["metrics"]["f1"] == pytest.approx(f1, abs=1e-3) and f1 > 0.01
    single = [json.loads(cli("val", "--weights", w, "--data", tiny_seg, "--threshold", str(thr), "--json").out)
              for w in (a, b)]
    assert all(abs(result["metrics"]["f1"] - s["metrics"]["f1"]) > 1e-3 for s in single)  # not one member's


def test_val_of_an_ensemble_refuses_members_that_predict_other_things(cli, tiny_seg, tmp_path):
    from defectkd.core.checkpoint import DEPLOY_FORMAT
    from defectkd.models import build_model

    a = _deploy(tmp_path / "a.pt", 0)
    cls = tmp_path / "cls.pt"  # a classifier beside a segmenter
    torch.save({"format": DEPLOY_FORMAT, "model_name": "cmi", "model_kwargs": {"classes": 6}, "threshold": None,
                "state_dict": build_model("cmi", classes=6).state_dict()}, cls)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = cli("val", "--weights", f"{a},{cls}", "--data", tiny_seg)
    assert r.code == 2 and "cls.pt: ensemble member 'cmi' does not predict" in r.err, r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_val_calibrate_writes_the_best_threshold_of_the_held_out_images(cli, trained, tiny_seg, tmp_path,
                                                                        monkeypatch):
    """`val --calibrate` on a set with train and test splits scores the pairs training held out (seed 0 draws
    round(0.1 x 16) = 2 of train), and writes calibrated.pt: the model with the threshold of best F1 there,
    checked against F1 computed here on the metric's 1/100 grid; the training checkpoint given is left
    byte-identical and the copy is a deploy file."""
    import random

    import numpy as np

    from defectkd.data.io import read_image, read_mask
    from defectkd.models import crack_probability
    from defectkd.models.loading import load_checkpoint_model

    monkeypatch.chdir(tmp_path)
    data, train = split_set(tiny_seg, tmp_path / "set", 16)
    w = trained / "weights" / "best.pt"
    before = w.read_bytes()
    order = list(range(16))
    random.Random(0).shuffle(order)
    held = [train[i] for i in sorted(order[:2])]
    model = load_checkpoint_model(w)[0].eval()
    pairs = []
    for n in held:
        x = torch.from_numpy(read_image(data / "train" / "images" / n)).permute(2, 0, 1).float()[None] / 255
        with torch.no_grad():
            pairs.append(((crack_probability(model(x))[0].numpy() * 100).astype(int),
                          read_mask(data / "train" / "masks" / n) > 0))

    def f1(k: int) -> float:
        tp = sum(np.sum((p >= k) & t) for p, t in pairs)
        fp, fn = sum(np.sum((p >= k) & ~t) for p, t in pairs), sum(np.sum((p < k) & t) for p, t in pairs)
        return 2 * tp / max(1, 2 * tp + fp + fn)

    r = cli("val", "--weights", w, "--data", data, "--calibrate", "--json")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["split"] == "val" and result["metrics"]["images"] == 2 and "held out" in result["scored"]
    c = result["calibrated"]
    best = max(f1(k) for k in range(1, 100))
    assert f1(round(c["threshold"] * 100)) == pytest.approx(best, abs=1e-6) and c["f1"] == pytest.approx(best)
    assert best > f1(round(result["threshold"] * 100))  # the copy gains over the threshold it came with
    saved = torch.load(c["weights"], map_location="cpu", weights_only=True)
    assert saved["threshold"] == c["threshold"] and w.read_bytes() == before
    again = json.loads(cli("val", "--weights", c["weights"], "--data", data, "--split", "val", "--json").out)
    assert again["threshold"] == c["threshold"] and again["metrics"]["f1"] == pytest.approx(best, abs=1e-6)


def test_val_calibrate_refuses_the_test_split_and_ensembles(cli, tiny_seg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data, _ = split_set(tiny_seg, tmp_path / "set", 16)
    a, b = _deploy(tmp_path / "a.pt", 0), _deploy(tmp_path / "b.pt", 1)
    for args, says in ((["--weights", a, "--split", "test"], "never test"),
                       (["--weights", f"{a},{b}"], "calibrate one at a time")):
        r = cli("val", *args, "--data", data, "--calibrate")
        assert r.code == 2 and says in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "runs").exists()  # refused before any folder is made


def test_the_val_progress_total_counts_the_pairs_val_scores(cli, trained, tiny_seg):
    """On the flat folder the weights were trained on, `val --split val` scores the pairs training held out; the
    progress bar's total (split_size with the weights' config, read without loading tensors) counts those, not the
    folder; a deploy file (data folder only) holds out with the default fraction and seed."""
    from defectkd.core.checkpoint import weights_config
    from defectkd.tasks import TASKS

    best = trained / "weights" / "best.pt"
    r = cli("val", "--weights", best, "--data", tiny_seg, "--split", "val", "--json")
    assert r.code == 0, r.err
    scored = json.loads(r.out)["metrics"]["images"]
    config = weights_config(best)
    assert config["data"] == str(tiny_seg) and scored < 24
    assert TASKS["segment"].split_size(tiny_seg, "val", config) == scored
    assert TASKS["segment"].split_size(tiny_seg, "val") == 24  # another folder's view: scored whole
    deploy = weights_config(trained / "weights" / "deploy.pt")
    assert deploy == {"data": str(tiny_seg), "val_fraction": 0.1, "split_seed": 0}
    assert TASKS["segment"].split_size(tiny_seg, "val", deploy) == scored


@pytest.mark.parametrize("split", [{"val_fraction": 0.25, "split_seed": 3}, {"folds": 4, "fold": 1, "split_seed": 2}])
def test_a_deploy_file_holds_out_what_its_training_held_out(cli, trained, tiny_seg, tmp_path, split):
    """A run trained with another validation draw (fraction and seed, or a k-fold fold) writes it into its deploy
    file, so `val --split val` on the deploy file scores exactly the images training held out (here recomputed with
    random.Random as the split does), never images it trained on."""
    import random

    from defectkd.core.checkpoint import save_deploy_file, weights_config
    from defectkd.data.layouts import discover
    from defectkd.tasks.segment.dataset import scored_split

    ckpt = torch.load(trained / "weights" / "best.pt", map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["config"].update(split)
    torch.save(ckpt, tmp_path / "best.pt")
    deploy = save_deploy_file(tmp_path / "best.pt", tmp_path / "deploy.pt")
    assert {k: weights_config(deploy)[k] for k in split} == split
    pool = discover(tiny_seg).labelled("all")
    order = list(range(len(pool)))
    random.Random(split["split_seed"]).shuffle(order)
    held = order[split["fold"]::split["folds"]] if "folds" in split else order[:round(len(pool) * 0.25)]
    r = cli("val", "--weights", deploy, "--data", tiny_seg, "--split", "val", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["metrics"]["images"] == len(held) == 6
    scored, how = scored_split(tiny_seg, "val", weights_config(deploy))
    assert sorted(s.image.name for s in scored) == sorted(pool[i].image.name for i in held) and "held out" in how


def test_a_kfold_run_on_a_set_with_a_val_split_scores_its_fold(tiny_seg, tmp_path):
    """k-fold pools train and val: `val --split val` of a fold's weights scores that fold, not the set's val split
    (three quarters of which the fold trained on)."""
    import random
    import shutil

    from defectkd.data.layouts import discover
    from defectkd.tasks.segment.dataset import scored_split

    names = sorted(p.name for p in (tiny_seg / "images").iterdir())
    for split, chunk in (("train", names[:16]), ("val", names[16:])):
        for sub in ("images", "masks"):
            (tmp_path / split / sub).mkdir(parents=True)
            for n in chunk:
                shutil.copy(tiny_seg / sub / n, tmp_path / split / sub / n)
    source = discover(tmp_path)
    pool = source.labelled("train") + source.labelled("val")
    order = list(range(len(pool)))
    random.Random(0).shuffle(order)
    fold = sorted(pool[i].image.name for i in order[1::4])
    scored, how = scored_split(tmp_path, "val", {"folds": 4, "fold": 1, "split_seed": 0})
    assert sorted(s.image.name for s in scored) == fold and "fold 2 of 4" in how
    plain, _ = scored_split(tmp_path, "val", {})
    assert sorted(s.image.name for s in plain) == names[16:]  # without folds: the set's own val split
