"""Balanced distillation terms: weights from measured medians, frozen after the calibration batches, kept in the
checkpoint, and in a real DistillModule the weighted terms stand at their share of the weighted task loss."""

import pytest
import torch

from defectkd.distill.balance import TermBalancer, default_shares
from tests.distill.test_terms import _module


def test_default_shares_leave_the_task_loss_at_least_half():
    logits, feats = {"on": "logits"}, {"on": "features"}
    assert default_shares([logits]) == [0.5]
    assert default_shares([logits, feats]) == [0.5, 0.25]
    assert default_shares([logits, logits, feats]) == pytest.approx([0.4, 0.4, 0.2])  # 1.25 scaled to 1
    assert default_shares([{"on": "logits", "share": 0.8}, feats, feats]) == pytest.approx([0.8, 0.1, 0.1])


def test_weights_are_share_times_median_task_over_median_term_then_frozen():
    b = TermBalancer([0.5, 0.25], steps=3)
    task, kd, feat = [2.0, 1.0, 4.0], [8.0, 100.0, 10.0], [0.01, 0.02, 0.03]
    for k in range(3):
        frozen = b.update(torch.tensor(task[k]), [torch.tensor(kd[k]), torch.tensor(feat[k])])
        assert frozen == (k == 2)
    # medians: task 2, kd 10, feat 0.02 (by hand)
    assert b.weights.tolist() == pytest.approx([0.5 * 2 / 10, 0.25 * 2 / 0.02])
    assert not b.calibrating
    fresh = TermBalancer([0.5, 0.25], steps=3)
    fresh.load_state_dict(b.state_dict())  # a resumed run reuses the measured weights
    assert fresh.weights.tolist() == pytest.approx(b.weights.tolist()) and not fresh.calibrating


def test_a_term_that_measures_zero_keeps_weight_zero():
    b = TermBalancer([0.5], steps=1)
    b.update(torch.tensor(1.0), [torch.tensor(0.0)])
    assert b.weights.tolist() == [0.0]


def test_balanced_module_puts_the_terms_at_their_share_of_the_task_loss():
    """First batch: the medians are that batch's values, so kd x w = 0.5 x hard and pairwise x w = 0.25 x hard."""
    module, _ = _module(method="rfkd", balance="loss", noisy_fraction=0.0)
    assert module.hard_weight == 1.0
    logged = {}
    module.log = lambda key, value, **kw: logged.__setitem__(key, float(torch.as_tensor(value).detach()))
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 64, 64), (torch.rand(2, 64, 64) > 0.9).long()
    total = module.training_step((x, y, None), 0)
    hard = logged["train/hard"]
    assert logged["train/weight0_kd"] * logged["train/term0_kd"] == pytest.approx(0.5 * hard, rel=1e-4)
    assert logged["train/weight1_pairwise"] * logged["train/term1_pairwise"] == pytest.approx(0.25 * hard, rel=1e-4)
    assert float(total.detach()) == pytest.approx(1.75 * hard, rel=1e-4)
    assert "balancer.weights" in module.state_dict()
