"""Weights loading is safe: pickled code is refused and never executed; run folders never collide."""

import pickle

import pytest
import torch

from defectkd.core.checkpoint import safe_load
from defectkd.core.errors import WeightsError
from defectkd.core.runs import new_run_dir
from defectkd.models.loading import load_checkpoint_model


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file if unpickled


def test_pickled_code_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Payload(str(marker))}, evil, pickle_protocol=2)
    with pytest.raises(WeightsError, match="evil.pt: refused"):
        safe_load(evil)
    assert not marker.exists()


def test_plain_pickle_and_garbage_are_refused(tmp_path):
    p = tmp_path / "w.pt"
    p.write_bytes(pickle.dumps(_Payload(str(tmp_path / "m"))))
    with pytest.raises(WeightsError, match="w.pt"):
        safe_load(p)
    assert not (tmp_path / "m").exists()
    g = tmp_path / "g.pt"
    g.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="g.pt"):
        safe_load(g)
    with pytest.raises(WeightsError, match="missing.pt: weights file not found"):
        safe_load(tmp_path / "missing.pt")


def test_state_dict_is_not_a_defectkd_checkpoint(tmp_path):
    p = tmp_path / "sd.pt"
    torch.save({"a": torch.zeros(1)}, p)
    with pytest.raises(WeightsError, match="not a defectkd checkpoint"):
        load_checkpoint_model(p)


def test_run_dirs_get_suffixes(tmp_path):
    a = new_run_dir(tmp_path, "segment", "exp")
    (a / "keep.txt").write_text("x")
    b = new_run_dir(tmp_path, "segment", "exp")
    c = new_run_dir(tmp_path, "segment", "exp")
    assert (a.name, b.name, c.name) == ("exp", "exp2", "exp3")
    assert (a / "keep.txt").read_text() == "x"
