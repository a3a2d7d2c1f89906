"""Bad input: one line naming the file or key, exit status 2, no traceback, nothing overwritten."""

import shutil

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import assert_one_line_error

FAST = ["--epochs", "1", "--imgsz", "32", "--batch", "4", "workers=0", "precision=32"]


@pytest.fixture
def data_copy(tiny_seg, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(tiny_seg, dst)
    return dst


def test_missing_and_empty_data(cli, tmp_path):
    assert_one_line_error(cli("train", "segment", "--data", tmp_path / "nope", *FAST), "nope", "does not exist")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(cli("train", "segment", "--data", tmp_path / "empty", *FAST), "empty", "no images")
    assert_one_line_error(cli("data", "check", tmp_path / "empty"), "no images")


def test_corrupt_jpeg_refused_then_skipped(cli, data_copy, tmp_path):
    bad = data_copy / "images" / "synth_00003.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    project = tmp_path / "proj"
    r = cli("train", "segment", "--data", data_copy, *FAST, f"project={project}")
    assert_one_line_error(r, "synth_00003.png", "corrupt", "--skip-bad")
    assert not (project / "segment").exists() or not any((project / "segment").iterdir())  # no half run
    ok = cli("train", "segment", "--data", data_copy, "--skip-bad", *FAST, f"project={project}")
    assert ok.code == 0, ok.err


def test_mask_of_other_size(cli, data_copy, tmp_path):
    cv2.imwrite(str(data_copy / "masks" / "synth_00001.png"), np.zeros((10, 12), np.uint8))
    r = cli("train", "segment", "--data", data_copy, *FAST, f"project={tmp_path / 'p'}")
    assert_one_line_error(r, "synth_00001.png", "12x10", "64x64")


def test_unknown_model(cli, tiny_seg, tmp_path):
    r = cli("train", "segment", "--data", tiny_seg, "--model", "mcff-xl", *FAST, f"project={tmp_path}")
    assert_one_line_error(r, "unknown model 'mcff-xl'")
    assert_one_line_error(cli("info", "--model", "resnet9000"), "unknown model 'resnet9000'")


@pytest.mark.parametrize("task", ["segment", "classify", "detect"])
def test_unknown_model_is_refused_before_the_data_is_read(cli, tmp_path, task):
    """The model name is checked first, whatever the task: a typo costs no data scan (the data is missing too)."""
    assert_one_line_error(cli("train", task, "--data", tmp_path / "nope", "--model", "cmii", *FAST), "cmii",
                          "unknown model")


def test_kfold_names_the_tasks_it_can_run(cli, tmp_path):
    assert_one_line_error(cli("kfold", "classify", "--data", tmp_path, "--model", "cmi"),
                          "kfold: task 'classify' not available yet (available: segment)")


def test_unknown_config_key_and_wrong_type(cli, tiny_seg, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("learning_rate: 0.1\n")
    assert_one_line_error(cli("train", "segment", "--data", tiny_seg, "--config", cfg, *FAST), "c.yaml",
                          "unknown key 'learning_rate'")
    assert_one_line_error(cli("train", "segment", "--data", tiny_seg, *FAST, "lr=fast"), "key 'lr'")
    assert_one_line_error(cli("train", "segment", "--data", tiny_seg, *FAST, "optimizer=sgd"), "key 'optimizer'")
    assert_one_line_error(cli("train", "classify", "--data", tiny_seg, *FAST), "this is segment data",
                          "defectkd train segment")


def test_evil_weights_refused_and_not_executed(cli, tiny_seg, tmp_path):
    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "hyper_parameters": {"model_name": "mcff-l"}, "x": Payload()}, evil)
    assert_one_line_error(cli("val", "--weights", evil, "--data", tiny_seg), "evil.pt", "refused")
    assert not (tmp_path / "pwned").exists()
    assert_one_line_error(cli("val", "--weights", tmp_path / "none.pt", "--data", tiny_seg), "none.pt", "not found")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_requested_without_gpu(cli, tiny_seg, tmp_path):
    r = cli("train", "segment", "--data", tiny_seg, "--device", "gpu", *FAST, f"project={tmp_path}")
    assert_one_line_error(r, "device", "no CUDA GPU")
    assert not (tmp_path / "segment").exists()


def test_resume_without_run(cli, tmp_path):
    assert_one_line_error(cli("train", "segment", "--resume", tmp_path), "last.pt")


def test_same_seed_same_weights(cli, tiny_seg, tmp_path):
    for name in ("a", "b"):
        r = cli("train", "segment", "--data", tiny_seg, *FAST, "--seed", "5", "--name", name, f"project={tmp_path}")
        assert r.code == 0, r.err
    a = torch.load(tmp_path / "segment" / "a" / "weights" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "segment" / "b" / "weights" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_empty_weights_file_is_one_line(cli, tmp_path, tiny_seg):
    empty = tmp_path / "empty.pt"
    empty.touch()
    for verb in (("val", "--weights", empty, "--data", tiny_seg, "--split", "train"), ("export", "--weights", empty)):
        assert_one_line_error(cli(*verb), "empty.pt: empty file (0 bytes)")


@pytest.mark.parametrize("value", ["2", "nan", "-0.1"])
def test_a_threshold_outside_0_1_is_refused(cli, tmp_path, tiny_seg, tiny_weights, value, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("predict", "--weights", tiny_weights, "--source", tiny_seg / "images", "--threshold", value, "--save")
    assert_one_line_error(r, "--threshold must be between 0 and 1", value)
    assert not (tmp_path / "runs").exists()  # nothing written


def test_predict_refuses_an_image_over_the_pixel_cap_in_one_line(cli, tmp_path, tiny_weights, monkeypatch):
    big = tmp_path / "big"
    big.mkdir()
    cv2.imwrite(str(big / "huge.png"), np.zeros((64, 80), np.uint8))
    monkeypatch.setenv("DEFECTKD_MAX_PIXELS", "1000")
    assert_one_line_error(cli("predict", "--weights", tiny_weights, "--source", big / "huge.png"), "huge.png",
                          "80x64 pixels, over the limit of 1000", "DEFECTKD_MAX_PIXELS")
