"""A diverging run skips non-finite steps, then stops with one clear line instead of a metrics traceback."""

import pytest
import torch

from defectkd.core.errors import TrainingError
from defectkd.tasks.segment.config import SegmentTrainConfig
from defectkd.tasks.segment.module import MAX_SKIPPED_STEPS, SegmentModule


def _module() -> SegmentModule:
    cfg = SegmentTrainConfig(data="x", channels_last=False).model_dump()
    return SegmentModule("mcff-l", {"classes": 2}, cfg)


def test_non_finite_loss_steps_are_skipped_then_training_stops():
    module = _module()
    assert module.finite_or_skip(torch.tensor(1.5)).item() == 1.5
    for _ in range(MAX_SKIPPED_STEPS):
        assert module.finite_or_skip(torch.tensor(float("nan"))) is None  # Lightning skips the optimiser step
    with pytest.raises(TrainingError, match="training diverged: 21 steps with a non-finite loss"):
        module.finite_or_skip(torch.tensor(float("inf")))


def test_non_finite_outputs_at_validation_are_a_clear_error():
    module = _module().eval()
    with torch.no_grad():
        module.model.standard.head[-1].weight.fill_(float("nan"))
    x, y = torch.rand(1, 3, 32, 32), torch.zeros(1, 32, 32)
    with pytest.raises(TrainingError, match="outputs are not finite.*weights/last.pt"):
        module.validation_step((x, y, torch.arange(1)), 0)


def test_auto_precision_keeps_fp32_for_models_that_diverge_under_autocast():
    from defectkd.core.device import pick_precision
    from defectkd.models import build_model

    assert build_model("mcff-edge-s").autocast_ok is False and build_model("mcff-l").autocast_ok is True
    assert pick_precision("auto", "cpu", autocast_ok=False) == "32"
    assert pick_precision("auto", "gpu", autocast_ok=False) == "32"
    assert pick_precision("bf16-mixed", "cpu", autocast_ok=False) == "bf16-mixed"  # an explicit choice wins
