"""DistillModule: a frozen teacher outside the checkpoint, head mapping and the alpha-weighted loss."""

import pytest
import torch

from defectkd.distill import KDLoss
from defectkd.models import build_model
from defectkd.tasks.segment.config import DistillSegmentConfig
from defectkd.tasks.segment.distill_module import DistillModule, head_map, match_probability_channels


def _module(alpha=0.9, kd_heads="auto", aux_weight=0.4):
    torch.manual_seed(0)
    teacher = build_model("mcff-l", norm="batch")
    cfg = DistillSegmentConfig(data="x", teacher="t.pt", method="kd", alpha=alpha, kd_heads=kd_heads,
                               aux_weight=aux_weight, T=4.0, channels_last=False).model_dump()
    heads = ["standard", "dilated", "rect", "mix"]
    module = DistillModule("mcff-l", {"classes": 2}, cfg, teacher=teacher, teacher_heads=heads, teacher_main="mix")
    return module, teacher


def test_head_map_by_name_main_and_auto():
    assert head_map(["a", "mix"], ["a", "mix", "b"], "mix", "auto") == {"a": "a", "mix": "mix"}
    assert head_map(["a", "mix"], ["out"], "out", "auto") == {"a": "out", "mix": "out"}
    assert head_map(["a", "mix"], ["a", "mix"], "mix", "main") == {"a": "mix", "mix": "mix"}
    with pytest.raises(ValueError, match="no head 'a'"):
        head_map(["a"], ["out"], "out", "by-name")


def test_teacher_is_frozen_in_eval_mode_and_absent_from_checkpoints():
    module, teacher = _module()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    module.train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert not any(k.startswith("teacher") for k in module.state_dict())
    opt = torch.optim.SGD(module.model.parameters(), lr=0.1)
    x, y = torch.rand(2, 3, 32, 32), (torch.rand(2, 32, 32) > 0.8).float()
    for _ in range(2):
        loss = module.training_step((x, y, torch.arange(2)), 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN running statistics


def test_loss_is_alpha_weighted_sum_of_per_head_kd_and_hard_loss():
    module, teacher = _module(alpha=1.0)
    x, y = torch.rand(2, 3, 32, 32), (torch.rand(2, 32, 32) > 0.8).float()
    module.train()
    got = module.training_step((x, y, torch.arange(2)), 0)
    with torch.no_grad():
        t = teacher.forward_heads(x)
    s = module.model.forward_heads(x)
    kd = KDLoss(T=4.0)
    expected = sum((1.0 if h == "mix" else 0.4) * kd(s[h], t[h]) for h in s)  # by name: teacher has all heads
    assert got.item() == pytest.approx(expected.item(), rel=1e-4)

    hard_only, _ = _module(alpha=0.0)
    hard_only.model.load_state_dict(module.model.state_dict())
    crit = hard_only.criterion
    expected_hard = sum((1.0 if h == "mix" else 0.4) * crit(s[h], y) for h in s)
    assert hard_only.training_step((x, y, torch.arange(2)), 0).item() == pytest.approx(expected_hard.item(), rel=1e-4)


def test_offline_batch_uses_cached_probabilities_of_the_mapped_head():
    module, teacher = _module(alpha=1.0, kd_heads="main")
    x, y = torch.rand(1, 3, 32, 32), torch.zeros(1, 32, 32)
    with torch.no_grad():
        probs = torch.softmax(teacher.forward_heads(x)["mix"] / 4.0, dim=1)
        s = module.model.forward_heads(x)
    soft = {"mix": probs, "standard": torch.full_like(probs, 0.5)}
    got = module.training_step((x, y, torch.arange(1), {"soft": soft}), 0)
    expected = sum((1.0 if h == "mix" else 0.4) * KDLoss(T=4.0)(s[h], teacher.forward_heads(x)["mix"]) for h in s)
    assert got.item() == pytest.approx(expected.item(), rel=1e-4)


def test_probability_channel_forms():
    p2 = torch.tensor([[[[0.2]], [[0.8]]]])
    assert torch.equal(match_probability_channels(p2, 1), p2[:, 1:2])
    assert torch.allclose(match_probability_channels(p2[:, 1:2], 2), p2)


def test_config_needs_a_teacher_or_soft_labels():
    from defectkd.core.config import build_config
    from defectkd.core.errors import ConfigError

    with pytest.raises(ConfigError, match="give a teacher"):
        build_config(DistillSegmentConfig, None, {"data": "x"})
    with pytest.raises(ConfigError, match="'alpha'"):
        build_config(DistillSegmentConfig, None, {"data": "x", "teacher": "t"}, ["alpha=1.5"])


def test_pseudo_labels_score_unlabelled_images_against_the_teachers_mask():
    """Offline, unlabelled: with pseudo_labels the task loss of an unlabelled image is the task loss against the
    teacher's crack probability (at T=1) > 0.5; without, unlabelled images carry no task loss."""
    torch.manual_seed(0)
    T = 4.0
    cfg = DistillSegmentConfig(data="x", soft_labels="c", method="kd", T=T, unlabelled=True, pseudo_labels=True,
                               channels_last=False).model_dump()
    module = DistillModule("mcff-edge-n", {"classes": 2}, cfg)
    heads = {"out": torch.randn(2, 2, 16, 16)}
    y = torch.zeros(2, 16, 16)
    y[0, 4:6] = 1  # image 0 labelled, image 1 not
    z = torch.randn(2, 2, 16, 16) * 3  # teacher logits; the cache holds softmax(z / T)
    soft = {"out": torch.softmax(z / T, dim=1)}
    labelled = torch.tensor([True, False])
    teacher_mask = (z[:, 1] > z[:, 0]).float()  # p_crack(T=1) > 0.5 <=> z1 > z0
    expected = module.criterion(heads["out"], torch.stack([y[0], teacher_mask[1]]))
    got = module._hard_loss(heads, y, {"out": 1.0}, labelled, soft)
    assert torch.allclose(got, expected, atol=1e-6)
    module.pseudo_labels = False
    only_labelled = module.criterion(heads["out"][:1], y[:1])
    assert torch.allclose(module._hard_loss(heads, y, {"out": 1.0}, labelled, soft), only_labelled, atol=1e-6)
