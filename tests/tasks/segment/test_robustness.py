"""`defectkd corrupt` and `defectkd robustness` on tiny synthetic data: files, rows, numbers, errors."""

import csv
import json

import numpy as np
import pytest

from defectkd.data.corruptions import CORRUPTIONS, SEVERITIES
from tests.helpers import assert_one_line_error, run_cli, split_set


@pytest.fixture(scope="module")
def small_seg(tmp_path_factory):
    """4 synthetic 48x48 pairs (images-masks; its only split is read as `test`)."""
    from defectkd.tasks.segment.synthetic import write_synthetic_segment

    return write_synthetic_segment(tmp_path_factory.mktemp("small") / "seg", 4, 48, seed=7)


@pytest.fixture(scope="module")
def report(small_seg, tiny_weights, tmp_path_factory):
    """One robustness run over every corruption and severity with the same weights given twice."""
    out = tmp_path_factory.mktemp("rob") / "report"
    run_cli("robustness", "--weights", tiny_weights, "--weights", tiny_weights, "--data", small_seg, "--out", out)
    return out


def test_corrupt_writes_readable_copies(cli, small_seg, tmp_path):
    out = tmp_path / "noisy"
    r = cli("corrupt", "--data", small_seg, "--out", out, "--corruptions", "salt,crack-texture", "--severities", "1,5",
            "--seed", "3")
    assert r.code == 0, r.err
    assert sorted(p.name for p in out.iterdir()) == ["crack-texture", "manifest.json", "salt"]
    stems = sorted(p.stem for p in (small_seg / "images").iterdir())
    for name in ("salt", "crack-texture"):
        assert sorted(p.name for p in (out / name).iterdir()) == ["1", "5"]
        for severity in ("1", "5"):
            cell = out / name / severity
            assert sorted(p.stem for p in (cell / "images").glob("*.png")) == stems
            assert sorted(p.stem for p in (cell / "masks").glob("*.png")) == stems
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["corruptions"] == ["salt", "crack-texture"] and manifest["severities"] == [1, 5]
    assert manifest["images"] == 4 and manifest["seed"] == 3 and manifest["split"] == "test"

    from defectkd.data import read_image, read_mask
    from defectkd.data.corruptions import corrupt, corruption_seed

    stem = stems[0]
    clean = read_image(small_seg / "images" / f"{stem}.png")
    copy = read_image(out / "salt" / "5" / "images" / f"{stem}.png")
    assert np.array_equal(copy, corrupt(clean, "salt", 5, corruption_seed(3, stem, "salt", 5)))
    assert np.array_equal(read_mask(out / "salt" / "5" / "masks" / f"{stem}.png"),
                          read_mask(small_seg / "masks" / f"{stem}.png"))

    check = cli("data", "check", out / "salt" / "5", "--json")
    assert check.code == 0, check.err
    result = json.loads(check.out)
    assert result["layout"] == "images-masks" and result["splits"]["all"]["pairs"] == 4 and not result["problems"]


def test_corrupt_refuses_non_empty_out(cli, small_seg, tmp_path):
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_one_line_error(cli("corrupt", "--data", small_seg, "--out", out), "full", "not empty")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert_one_line_error(cli("corrupt", "--data", small_seg, "--out", tmp_path / "x", "--corruptions", "fog"),
                          "unknown corruption 'fog'", "salt")


def test_robustness_files_and_rows(report, tiny_weights):
    assert {p.name for p in report.iterdir()} == {"robustness.csv", "robustness.json", "robustness.png"}
    assert (report / "robustness.png").stat().st_size > 5000
    rows = list(csv.DictReader((report / "robustness.csv").open()))
    assert list(rows[0]) == ["weights", "label", "corruption", "severity", "dice", "iou"]
    cells = 1 + len(CORRUPTIONS) * len(SEVERITIES)
    assert len(rows) == 2 * cells
    assert [r["label"] for r in rows] == ["mcff-l"] * cells + ["mcff-l#2"] * cells
    assert all(r["weights"] == str(tiny_weights) for r in rows)
    assert (rows[0]["corruption"], rows[0]["severity"]) == ("clean", "0")
    assert {(r["corruption"], int(r["severity"])) for r in rows[1:cells]} == \
        {(c, s) for c in CORRUPTIONS for s in SEVERITIES}
    assert all(0.0 <= float(r["dice"]) <= 1.0 and 0.0 <= float(r["iou"]) <= float(r["dice"]) + 1e-9 for r in rows)
    # the same weights see the same corrupted images: identical scores
    assert [(r["dice"], r["iou"]) for r in rows[:cells]] == [(r["dice"], r["iou"]) for r in rows[cells:]]


def test_robustness_json_matches_csv(report):
    data = json.loads((report / "robustness.json").read_text())
    rows = list(csv.DictReader((report / "robustness.csv").open()))
    assert len(data["models"]) == 2 and data["images"] == 4
    for entry in data["models"]:
        mine = [r for r in rows if r["label"] == entry["label"]]
        corrupted = [float(r["dice"]) for r in mine if r["corruption"] != "clean"]
        assert entry["mDS"] == pytest.approx(np.mean(corrupted), abs=1e-5)
        assert entry["clean_dice"] == pytest.approx(float(mine[0]["dice"]), abs=1e-6)
        for name in CORRUPTIONS:
            mean = np.mean([float(r["dice"]) for r in mine if r["corruption"] == name])
            assert entry["per_corruption"][name] == pytest.approx(mean, abs=1e-5)


def test_clean_dice_equals_val(report, small_seg, tiny_weights, tmp_path):
    from defectkd import api

    data = json.loads((report / "robustness.json").read_text())
    val = api.val(tiny_weights, small_seg, split="test", tolerant=False, save_dir=tmp_path / "val")
    assert data["models"][0]["threshold"] == val["threshold"] == 0.5
    assert data["models"][0]["clean_dice"] == pytest.approx(val["metrics"]["f1"], abs=1e-9)
    assert data["models"][0]["clean_iou"] == pytest.approx(val["metrics"]["iou"], abs=1e-9)


@pytest.mark.slow
def test_in_memory_cells_equal_corrupted_copies(small_seg, tiny_weights, tmp_path):
    """A cell of `robustness` scores exactly what `val` gives on the copies `corrupt` writes."""
    from defectkd import api

    copies = api.corrupt(small_seg, tmp_path / "copies", corruptions="pepper", severities="4", seed=5)
    rob = api.robustness([tiny_weights], small_seg, corruptions=["pepper"], severities=[4], seed=5,
                         project=tmp_path / "runs")
    assert rob["save_dir"] == str(tmp_path / "runs" / "robustness" / "robustness")
    val = api.val(tiny_weights, copies / "pepper" / "4", tolerant=False, save_dir=tmp_path / "val")
    cell = rob["models"][0]["cells"][1]
    assert (cell["corruption"], cell["severity"]) == ("pepper", 4)
    assert cell["dice"] == pytest.approx(val["metrics"]["f1"], abs=1e-9)
    assert rob["models"][0]["mDS"] == cell["dice"]
    again = api.robustness(tiny_weights, small_seg, corruptions="pepper", severities="4", seed=5,
                           project=tmp_path / "runs")
    assert again["save_dir"].endswith("robustness2")  # never overwrites a run


def test_robustness_bad_input(cli, small_seg, tiny_weights, tmp_path):
    missing = tmp_path / "nope.pt"
    r = cli("robustness", "--weights", tiny_weights, "--weights", missing, "--data", small_seg, "--out", tmp_path / "o")
    assert_one_line_error(r, "nope.pt", "not found")
    assert not (tmp_path / "o").exists()
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("")
    r = cli("robustness", "--weights", tiny_weights, "--data", small_seg, "--out", full, "--corruptions", "salt")
    assert_one_line_error(r, "full", "not empty")
    r = cli("robustness", "--weights", tiny_weights, "--data", small_seg, "--severities", "7")
    assert_one_line_error(r, "severity '7'")


def test_robustness_reads_the_test_split_of_a_split_set_by_default(cli, small_seg, tiny_weights, tmp_path):
    """Without --split, a set with train/ and test/ is scored on test/ (the 2 pairs put there), not refused."""
    data, _ = split_set(small_seg, tmp_path / "set", 2)
    r = cli("robustness", "--weights", tiny_weights, "--data", data, "--out", tmp_path / "o",
            "--corruptions", "salt", "--severities", "1")
    assert r.code == 0, r.err
    report = json.loads((tmp_path / "o" / "robustness.json").read_text())
    assert report["split"] == "test" and report["images"] == 2
