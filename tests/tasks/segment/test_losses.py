"""Task losses against values computed from their formulas."""

import math

import pytest
import torch

from defectkd.core.errors import ConfigError
from defectkd.tasks.segment.losses import MCFFWeightedMSE, WeightedCE, build_segment_loss


def test_weighted_ce_two_class_by_hand():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
    target = torch.tensor([[[0.0, 1.0]]])
    # pixel 1: class 0, p0 = e^2/(e^2+1); pixel 2: class 1, p1 = e/(1+e); weights 1 and 5
    l0 = -math.log(math.exp(2) / (math.exp(2) + 1))
    l1 = -math.log(math.e / (1 + math.e))
    expected = (1 * l0 + 5 * l1) / (1 + 5)  # torch's weighted mean divides by the sum of weights
    assert WeightedCE(5.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_weighted_bce_one_class_by_hand():
    logits = torch.tensor([[[[0.5, -1.0]]]])
    target = torch.tensor([[[1.0, 0.0]]])
    s = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    expected = (-3 * math.log(s(0.5)) - math.log(1 - s(-1.0))) / 2
    assert WeightedCE(3.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_mcff_weighted_mse_by_hand():
    logits = torch.tensor([[[[0.0]], [[math.log(3.0)]]]])  # p_bg 0.25, p_crack 0.75
    target = torch.tensor([[[1.0]]])
    expected = (0.25 - 0) ** 2 + 200 * (0.75 - 1) ** 2
    assert MCFFWeightedMSE()(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_dice_scores_crack_class_only():
    loss = build_segment_loss("dice", classes=2)
    target = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])
    perfect = torch.stack([(1 - target) * 20 - 10, target * 20 - 10], dim=1)
    half = torch.tensor([[[[-10.0, 10.0, 10.0, 10.0]], [[10.0, -10.0, -10.0, -10.0]]]])
    assert loss(perfect, target).item() == pytest.approx(0.0, abs=1e-4)
    # crack predicted on pixel 0 only: dice = 2*1 / (1 + 2) = 2/3
    assert loss(half, target).item() == pytest.approx(1 - 2 / 3, abs=1e-3)


def test_combined_is_sum_of_terms():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 2, 8, 8, generator=g)
    target = (torch.rand(2, 8, 8, generator=g) > 0.8).float()
    both = build_segment_loss("ce+dice", 2, 10.0)(logits, target)
    ce = build_segment_loss("ce", 2, 10.0)(logits, target)
    dice = build_segment_loss("dice", 2, 10.0)(logits, target)
    assert both.item() == pytest.approx((ce + dice).item(), rel=1e-6)


@pytest.mark.parametrize("spec", ["focal", "tversky", "mcff", "ce+focal+tversky"])
@pytest.mark.parametrize("classes", [1, 2])
def test_every_loss_backpropagates(spec, classes):
    logits = torch.randn(2, classes, 8, 8, requires_grad=True)
    target = (torch.rand(2, 8, 8) > 0.7).float()
    loss = build_segment_loss(spec, classes)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0


def test_unknown_loss_term():
    with pytest.raises(ConfigError, match="unknown term 'hinge'"):
        build_segment_loss("ce+hinge")
