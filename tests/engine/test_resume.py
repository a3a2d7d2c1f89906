"""An interrupted run resumed from last.pt ends where an uninterrupted run with the same seed ends."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("extra", [[], ["ema=0.9"]], ids=["raw", "ema"])
def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, tiny_seg, monkeypatch, extra):
    from defectkd import api
    from defectkd.engine import callbacks

    common = {"data": str(tiny_seg), "model": "mcff-edge-n", "epochs": 3, "imgsz": 48, "batch": 4,
              "project": str(tmp_path)}
    api.train("segment", name="whole", overrides=["workers=0", *extra], **common)

    original = callbacks.EpochSummary.on_train_epoch_start

    def power_cut(self, trainer, pl_module):
        if trainer.current_epoch == 2:
            raise RuntimeError("power cut")
        original(self, trainer, pl_module)

    monkeypatch.setattr(callbacks.EpochSummary, "on_train_epoch_start", power_cut)
    with pytest.raises(RuntimeError, match="power cut"):
        api.train("segment", name="cut", overrides=["workers=0", *extra], **common)
    monkeypatch.undo()
    cut = tmp_path / "segment" / "cut"
    assert torch.load(cut / "weights" / "last.pt", weights_only=False)["epoch"] == 1  # two epochs were done
    api.train("segment", resume=cut)

    whole = torch.load(tmp_path / "segment" / "whole" / "weights" / "last.pt", weights_only=False)
    resumed = torch.load(cut / "weights" / "last.pt", weights_only=False)
    parts = ["state_dict", "current_model_state"] if extra else ["state_dict"]  # with EMA: the average and the raw
    for part in parts:
        assert whole[part].keys() == resumed[part].keys()
        for key, value in whole[part].items():
            if value.is_floating_point():
                torch.testing.assert_close(resumed[part][key], value, atol=1e-5, rtol=1e-4, msg=key)
    assert whole.get("ema") == resumed.get("ema")
    if extra:  # switching the average off on resume would continue from it: refused, the run left as it was
        from defectkd.core.errors import ConfigError

        before = (cut / "weights" / "last.pt").read_bytes()
        with pytest.raises(ConfigError, match="ema=0"):
            api.train("segment", resume=cut, overrides=["ema=0", "epochs=4"])
        assert (cut / "weights" / "last.pt").read_bytes() == before
    rows = [(tmp_path / "segment" / run / "metrics.csv").read_text().splitlines() for run in ("whole", "cut")]
    assert len(rows[1]) == 4 and rows[0][3].split(",")[7] == rows[1][3].split(",")[7]  # epoch 3 val F1 agrees
