"""A diverging run skips non-finite steps, then stops with one clear line instead of a metrics traceback."""

import pytest
import torch

from defectkd.core.errors import TrainingError
from defectkd.engine.module import MAX_SKIPPED_STEPS
from defectkd.tasks.segment.config import SegmentTrainConfig
from defectkd.tasks.segment.module import SegmentModule


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


@pytest.mark.parametrize("task", ["classify", "detect"])
def test_every_task_skips_a_non_finite_training_step(task):
    """The guard lives in the engine's base module: a classifier's and a detector's NaN step is skipped too."""
    if task == "classify":
        from defectkd.tasks.classify.config import ClassifyTrainConfig
        from defectkd.tasks.classify.module import ClassifyModule

        cfg = {**ClassifyTrainConfig(data="x").model_dump(), "class_names": ["a", "b", "c"]}
        module = ClassifyModule("cmi", {"classes": 3, "width": 0.25}, cfg)
        batch = (torch.full((2, 3, 32, 32), float("nan")), torch.tensor([0, 1]), None)
    else:
        from defectkd.tasks.detect.config import DetectTrainConfig
        from defectkd.tasks.detect.module import DetectModule

        cfg = {**DetectTrainConfig(data="x", imgsz=64).model_dump(), "class_names": ["a", "b"]}
        module = DetectModule("retinanet-mnv3", {"classes": 2, "min_size": 64, "max_size": 64}, cfg)
        batch = ([torch.full((3, 64, 64), float("nan"))],
                 [{"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([1])}], None)
    module.log = lambda *a, **k: None  # no trainer attached
    assert module.training_step(batch, 0) is None
    assert module.skipped_steps == 1


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
