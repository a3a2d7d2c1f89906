"""CLI verbs that need no training: version, models, info, data synth/check, and the entry point."""

import json
import subprocess
import sys

import pytest

from defectkd import __version__
from tests.conftest import SHARED_DATASETS


def test_version(cli):
    r = cli("--version")
    assert r.code == 0 and r.out.strip() == f"defectkd {__version__}"


def test_models_json(cli):
    r = cli("models", "--json")
    rows = {row["name"]: row for row in json.loads(r.out)}
    assert r.code == 0
    assert rows["mcff-l"]["role"] == "student" and rows["mcff-teacher"]["role"] == "teacher"
    assert abs(rows["mcff-l"]["parameters"] - 1.18e6) / 1.18e6 <= 0.03
    assert rows["unet-r50"]["task"] == "segment"
    for size in ("n", "s"):  # a -rep student is listed as it deploys: the plain student's size and compute
        rep, plain = rows[f"mcff-edge-{size}-rep"], rows[f"mcff-edge-{size}"]
        assert (rep["parameters"], rep["gmacs_448"]) == (plain["parameters"], plain["gmacs_448"])


def test_models_table(cli):
    r = cli("models")
    assert r.code == 0 and "mcff-teacher" in r.out and "parameters" in r.out


def test_info_json(cli):
    r = cli("info", "--model", "mcff-l", "--imgsz", "64", "--repeats", "2", "--json")
    info = json.loads(r.out)
    assert r.code == 0 and info["parameters"] == json.loads(cli("models", "--json").out)[0]["parameters"]
    # GMACs scale with pixels: 448^2 / 64^2 = 49
    assert 0.5 < info["gmacs"] < 1.0 and info["fps"] > 0 and info["latency_ms_median"] > 0


def test_synth_then_check(cli, tmp_path):
    out = tmp_path / "syn"
    r = cli("data", "synth", "segment", "--out", out, "--n", "5", "--size", "48", "--seed", "1")
    assert r.code == 0 and len(list((out / "images").iterdir())) == 5
    report = json.loads(cli("data", "check", out, "--json").out)
    assert report["layout"] == "images-masks" and report["pairs"] == 5 and report["problems"] == []
    assert 0.01 <= report["crack_fraction"]["mean"] <= 0.05
    again = cli("data", "synth", "segment", "--out", out, "--n", "2")
    assert again.code == 2 and "already holds images" in again.err
    assert len(list((out / "images").iterdir())) == 5  # nothing overwritten


def test_check_table_lists_problems(cli, tmp_path):
    out = tmp_path / "syn"
    cli("data", "synth", "segment", "--out", out, "--n", "3", "--size", "32")
    (out / "images" / "broken.jpg").write_bytes(b"\xff\xd8junk")
    (out / "masks" / "broken.png").write_bytes(b"junk")
    r = cli("data", "check", out)
    assert r.code == 1 and "problems: 1" in r.out and "broken.jpg" in r.out  # a script can tell
    (out / "images" / "broken.jpg").unlink()
    (out / "masks" / "broken.png").unlink()
    assert cli("data", "check", out).code == 0


def test_entry_point_error_is_one_line():
    """The installed console script: one line on stderr, exit 2, no traceback."""
    exe = [sys.executable, "-c", "from defectkd.cli import main; main()"]
    r = subprocess.run([*exe, "data", "check", "/definitely/not/here"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: /definitely/not/here: data path does not exist"
    assert "Traceback" not in r.stderr


def test_python_dash_m_runs_the_cli():
    """`python -m defectkd` is the same CLI (a source checkout on PYTHONPATH, with no console script installed)."""
    r = subprocess.run([sys.executable, "-m", "defectkd", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"defectkd {__version__}"
    r = subprocess.run([sys.executable, "-m", "defectkd", "data", "check", "/not/here"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == "error: /not/here: data path does not exist"


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATASETS / "deepcrack").is_dir(), reason="../shared/datasets/deepcrack absent")
def test_check_deepcrack(cli):
    report = json.loads(cli("data", "check", SHARED_DATASETS / "deepcrack", "--json").out)
    assert report["layout"] == "splits"
    assert report["splits"]["train"] == {"pairs": 300, "unlabelled": 0}
    assert report["splits"]["test"] == {"pairs": 237, "unlabelled": 0}
    assert report["image_sizes"] == {"544x384": 537} and report["problems"] == []


def test_tables_print_fps_with_one_decimal_and_metrics_with_four():
    from defectkd.cli_print import fmt

    assert (fmt(13.9, "fps"), fmt(13.9, "FPS (last 30)"), fmt(0.8561, "f1"), fmt(None, "fps")) == (
        "13.9", "13.9", "0.8561", "-")
    assert (fmt(189.58, "inference_ms"), fmt(368.7, "longest_crack_px"), fmt(0.0257, "crack_ratio")) == (
        "189.6", "368.7", "0.0257")  # predict's table: times and lengths are not ratios


@pytest.mark.parametrize("verb,flag", [(["distill", "segment"], "--baseline"), (["predict"], "--save"),
                                       (["export"], "--dynamic"), (["train", "classify"], "--help")])
def test_help_shows_flags_without_a_value_type(verb, flag, cli):
    r = cli(*verb, "--help")
    assert r.code == 0 and flag in r.out
    assert "<bool>" not in r.out  # an on/off flag takes no value; typed options keep theirs (<int>, <float>)
