"""Hinton KD against hand-computed values (REFERENCES.md section 2) and the distillation module's mechanics."""

import math

import pytest
import torch

from defectkd.distill import KDLoss, build_loss, kd_from_probabilities, list_methods


def _softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)


def test_dense_kd_matches_hand_computation_with_t_squared_and_pixel_mean():
    T = 2.0
    student = torch.tensor([[[[0.0, 1.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2): pixel a s=[0,0], pixel b s=[1,0]
    teacher = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]]]])  # pixel a t=[2,0], pixel b t=[0,0]
    kl_a = _kl(_softmax([2 / T, 0]), _softmax([0, 0]))
    kl_b = _kl(_softmax([0, 0]), _softmax([1 / T, 0]))
    expected = T * T * (kl_a + kl_b) / 2
    assert abs(expected - 0.28375) < 1e-4  # the same number worked out on paper (4 digits)
    assert KDLoss(T=T)(student, teacher).item() == pytest.approx(expected, rel=1e-6)


def test_kd_is_a_mean_over_batch_and_pixels_not_a_sum():
    torch.manual_seed(0)
    s, t = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 3, 3)
    loss = KDLoss(T=4.0)
    one = loss(s, t)
    tiled = loss(s.repeat(4, 1, 5, 5), t.repeat(4, 1, 5, 5))  # 4x the batch, 25x the pixels
    assert tiled.item() == pytest.approx(one.item(), rel=1e-5)


def test_classification_logits_and_zero_when_equal():
    T = 4.0
    s, t = torch.tensor([[1.0, 2.0, 0.5]]), torch.tensor([[3.0, 0.0, 1.0]])
    expected = T * T * _kl(_softmax([v / T for v in (3.0, 0.0, 1.0)]), _softmax([v / T for v in (1.0, 2.0, 0.5)]))
    assert KDLoss(T=T)(s, t).item() == pytest.approx(expected, rel=1e-6)
    assert KDLoss(T=T)(t, t).item() == pytest.approx(0.0, abs=1e-7)


def test_binary_variant_matches_binary_kl_by_hand():
    T = 3.0
    zs, zt = 0.7, -1.2
    p, q = 1 / (1 + math.exp(-zs / T)), 1 / (1 + math.exp(-zt / T))
    expected = T * T * (q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p)))
    got = KDLoss(T=T)(torch.full((1, 1, 2, 2), zs), torch.full((1, 1, 2, 2), zt))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_two_class_teacher_teaches_a_one_channel_student_and_vice_versa():
    """softmax([z0, z1] / T)[1] = sigmoid((z1 - z0) / T): a 2-class teacher and the equivalent sigmoid
    teacher give the same binary KD; a 1-channel teacher maps to [0, z] for a 2-class student."""
    torch.manual_seed(1)
    t2 = torch.randn(2, 2, 4, 4)
    s1 = torch.randn(2, 1, 4, 4)
    loss = KDLoss(T=5.0)
    assert loss(s1, t2).item() == pytest.approx(loss(s1, t2[:, 1:2] - t2[:, 0:1]).item(), rel=1e-5)
    s2 = torch.cat([torch.zeros_like(s1), s1], dim=1)
    assert loss(s2, t2).item() == pytest.approx(loss(s1, t2).item(), rel=1e-4)


def test_teacher_of_another_size_is_resized_to_the_student():
    s = torch.zeros(1, 2, 8, 8)
    t = torch.zeros(1, 2, 4, 4)
    t[:, 1] = 2.0
    expected = KDLoss(T=1.0)(s, torch.nn.functional.interpolate(t, size=(8, 8), mode="bilinear"))
    assert KDLoss(T=1.0)(s, t).item() == pytest.approx(expected.item(), rel=1e-6) and expected > 0


def test_offline_entry_equals_online_on_the_same_teacher():
    """Exact with float32 probabilities; with the cache's float16 the gradient (what trains the
    student) stays within 1 % (8-bit images, the original code's format, are 16x coarser)."""
    torch.manual_seed(2)
    s, t = torch.randn(2, 2, 5, 5, requires_grad=True), torch.randn(2, 2, 5, 5)
    online = KDLoss(T=10.0)(s, t)
    exact = kd_from_probabilities(s, torch.softmax(t / 10, dim=1), 10.0)
    assert exact.item() == pytest.approx(online.item(), rel=1e-6)
    (g_online,) = torch.autograd.grad(online, s)
    (g_half,) = torch.autograd.grad(kd_from_probabilities(s, torch.softmax(t / 10, dim=1).half(), 10.0), s)
    assert (g_half - g_online).abs().max() < 0.01 * g_online.abs().max()


def test_gradient_reaches_the_student_only():
    s = torch.randn(1, 2, 3, 3, requires_grad=True)
    t = torch.randn(1, 2, 3, 3, requires_grad=True)
    KDLoss(T=4.0)(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None


def test_registry_builds_kd_and_refuses_unknown_names():
    from defectkd.core.errors import ConfigError

    assert "kd" in list_methods()
    assert build_loss("kd", T=7.0).T == 7.0
    with pytest.raises(ConfigError, match="unknown distillation method 'nope'"):
        build_loss("nope")
    with pytest.raises(ConfigError, match="T must be > 0"):
        build_loss("kd", T=0)


def test_crack_weighted_kd_is_the_weighted_pixel_mean():
    T, pw = 2.0, 5.0
    s = torch.tensor([[[[0.0, 1.0]], [[0.0, 0.0]]]])
    t = torch.tensor([[[[2.0, 0.0]], [[0.0, 3.0]]]])  # pixel a: background by 2, pixel b: crack by 3
    kl_a = _kl(_softmax([2 / T, 0]), _softmax([0, 0]))
    kl_b = _kl(_softmax([0, 3 / T]), _softmax([1 / T, 0]))
    crack_a, crack_b = _softmax([2, 0])[1], _softmax([0, 3])[1]  # teacher crack probability at T = 1
    w_a, w_b = 1 + (pw - 1) * crack_a, 1 + (pw - 1) * crack_b
    expected = T * T * (w_a * kl_a + w_b * kl_b) / (w_a + w_b)
    assert KDLoss(T=T, pos_weight=pw)(s, t).item() == pytest.approx(expected, rel=1e-5)
    assert KDLoss(T=T, pos_weight=1.0)(s, t).item() == pytest.approx(T * T * (kl_a + kl_b) / 2, rel=1e-6)
