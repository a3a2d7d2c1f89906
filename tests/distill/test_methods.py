"""The distillation losses against values worked out independently (NumPy, written-out formulas of
REFERENCES.md section 2), plus their reductions, adapters, gradients and shape errors."""

import numpy as np
import pytest
import torch

from defectkd.core.errors import ConfigError
from defectkd.distill import (
    ChannelAdapter,
    DKDLoss,
    KDLoss,
    MGDLoss,
    PairwiseLoss,
    build_loss,
    list_methods,
    match_spatial,
)

TOL = 1e-5


def _np(t):
    return t.detach().double().numpy()


def _softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def _kl(p, q):
    return float(sum(a * np.log(a / b) for a, b in zip(p, q, strict=True) if a > 0))


def _block_mean(x, gh, gw):
    """(N, C, H, W) -> (N, C, gh, gw), H and W divisible: plain block averages."""
    n, c, h, w = x.shape
    return x.reshape(n, c, gh, h // gh, gw, w // gw).mean(axis=(3, 5))


def _randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


# ---------------------------------------------------------------- registry


def test_registry_lists_every_method_in_order():
    assert list_methods() == ["kd", "fitnet", "at", "cwd", "mgd", "dkd", "pairwise"]


BUILD = {
    "kd": ({"T": 4.0}, 4, 4),
    "fitnet": ({"student_channels": 16, "teacher_channels": 64}, 16, 64),
    "at": ({}, 16, 64),
    "cwd": ({"T": 4.0}, 4, 4),
    "mgd": ({"student_channels": 16, "teacher_channels": 64, "alpha": 2e-5, "mask_ratio": 0.65,
             "mask": "spatial"}, 16, 64),
    "dkd": ({"T": 4.0, "alpha": 1.0, "beta": 8.0, "warmup": 20}, 4, 4),
    "pairwise": ({}, 16, 64),
}


@pytest.mark.parametrize("name", list_methods())
def test_every_method_builds_with_documented_parameters_and_gives_a_finite_scalar(name):
    params, cs, ct = BUILD[name]
    loss = build_loss(name, **params)
    if name == "dkd":
        loss.set_epoch(20)
    s, t = _randn(2, cs, 6, 6, seed=1), _randn(2, ct, 6, 6, seed=2)
    y = torch.randint(0, cs, (2, 6, 6), generator=torch.Generator().manual_seed(3))
    out = loss(s, t, y)
    assert out.dim() == 0 and torch.isfinite(out) and out.item() > 0


def test_registry_turns_bad_parameters_into_config_errors():
    with pytest.raises(ConfigError, match="mask must be one of"):
        build_loss("mgd", teacher_channels=8, mask="random")
    with pytest.raises(ConfigError, match="T must be > 0"):
        build_loss("cwd", T=0)
    with pytest.raises(ConfigError, match="unexpected keyword"):
        build_loss("pairwise", T=4)


# ---------------------------------------------------------------- FitNets


def test_fitnet_identity_is_the_plain_mean_squared_error():
    s, t = _randn(2, 3, 4, 4, seed=1), _randn(2, 3, 4, 4, seed=2)
    expected = np.mean((_np(s) - _np(t)) ** 2)
    assert build_loss("fitnet")(s, t).item() == pytest.approx(expected, abs=TOL)
    assert build_loss("fitnet", student_channels=3, teacher_channels=3)(s, t).item() == pytest.approx(expected, abs=TOL)


def test_fitnet_regressor_is_conv1x1_bn_relu_by_hand():
    s, t = _randn(2, 3, 4, 4, seed=1), _randn(2, 4, 4, 4, seed=2)
    loss = build_loss("fitnet", student_channels=3, teacher_channels=4).eval()  # BN: running stats 0, 1
    w = np.arange(12, dtype=np.float64).reshape(4, 3) / 10 - 0.5
    conv = loss.regressor.proj[0]
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(w, dtype=torch.float32).reshape(4, 3, 1, 1))
    r = np.einsum("oc,nchw->nohw", w, _np(s)) / np.sqrt(1 + 1e-5)
    expected = np.mean((np.maximum(r, 0) - _np(t)) ** 2)
    assert loss(s, t).item() == pytest.approx(expected, abs=TOL)


# ---------------------------------------------------------------- AT


def _at_np(f, p=2):
    a = (f ** p).mean(axis=1).reshape(f.shape[0], -1)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_at_by_hand_and_the_larger_map_is_pooled_to_the_smaller():
    s, t = _randn(2, 3, 4, 4, seed=1), _randn(2, 5, 4, 4, seed=2)
    expected = np.mean((_at_np(_np(s)) - _at_np(_np(t))) ** 2)
    assert build_loss("at")(s, t).item() == pytest.approx(expected, abs=TOL)
    big = _randn(2, 3, 8, 8, seed=3)  # student 8x8, teacher 4x4: the student is averaged over 2x2 blocks
    expected = np.mean((_at_np(_block_mean(_np(big), 4, 4)) - _at_np(_np(t))) ** 2)
    assert build_loss("at")(big, t).item() == pytest.approx(expected, abs=TOL)
    assert build_loss("at")(t, big).item() == pytest.approx(expected, abs=TOL)  # symmetric in which is larger
    expected_p4 = np.mean((_at_np(_np(s), 4) - _at_np(_np(t), 4)) ** 2)
    assert build_loss("at", p=4)(s, t).item() == pytest.approx(expected_p4, abs=TOL)


# ---------------------------------------------------------------- CWD


def _cwd_kl_sum(s, t, T):
    """sum over n, c of KL(softmax over positions of t/T || same of s/T), by loops."""
    n, c = s.shape[:2]
    total = 0.0
    for i in range(n):
        for k in range(c):
            total += _kl(_softmax(t[i, k].ravel() / T), _softmax(s[i, k].ravel() / T))
    return total


def test_cwd_is_t_squared_times_the_channel_mean_of_spatial_kl():
    s, t = _randn(2, 3, 4, 5, seed=1), _randn(2, 3, 4, 5, seed=2)
    kl = _cwd_kl_sum(_np(s), _np(t), 2.0) / (2 * 3)
    assert build_loss("cwd", T=2.0)(s, t).item() == pytest.approx(4 * kl, abs=TOL)
    assert build_loss("cwd", T=1.0)(s, t).item() == pytest.approx(_cwd_kl_sum(_np(s), _np(t), 1.0) / 6, abs=TOL)


def test_cwd_adapter_maps_channels_by_a_known_1x1_conv():
    s, t = _randn(2, 2, 4, 4, seed=1), _randn(2, 3, 4, 4, seed=2)
    loss = build_loss("cwd", T=4.0, student_channels=2, teacher_channels=3)
    w, b = np.array([[1.0, 0.0], [0.5, -1.0], [0.0, 2.0]]), np.array([0.1, 0.0, -0.3])
    with torch.no_grad():
        loss.adapter.proj.weight.copy_(torch.tensor(w, dtype=torch.float32).reshape(3, 2, 1, 1))
        loss.adapter.proj.bias.copy_(torch.tensor(b, dtype=torch.float32))
    a = np.einsum("oc,nchw->nohw", w, _np(s)) + b[None, :, None, None]
    assert loss(s, t).item() == pytest.approx(16 * _cwd_kl_sum(a, _np(t), 4.0) / 6, abs=TOL)


def test_cwd_refuses_logits_without_positions():
    with pytest.raises(ValueError, match=r"cwd: student is 2-D \(2, 3\), expected 4-D"):
        build_loss("cwd")(torch.randn(2, 3), torch.randn(2, 3))


# ---------------------------------------------------------------- reductions: batch mean, pixel mean


def _tile(x, k=2):
    return x.repeat(1, 1, k, k)


def _dkd(**kw):
    return DKDLoss(warmup=0, **kw)


@pytest.mark.parametrize("make", [lambda: KDLoss(T=4.0), lambda: build_loss("cwd", T=4.0), lambda: build_loss("fitnet"),
                                  lambda: build_loss("at"), lambda: _dkd(T=2.0),
                                  lambda: PairwiseLoss(grid=2), lambda: MGDLoss(teacher_channels=3, mask="none")],
                         ids=["kd", "cwd", "fitnet", "at", "dkd", "pairwise", "mgd"])
def test_duplicating_the_batch_leaves_every_loss_unchanged(make):
    torch.manual_seed(0)
    loss = make()
    s, t = _randn(2, 3, 4, 4, seed=1), _randn(2, 3, 4, 4, seed=2)
    y = torch.randint(0, 3, (2, 4, 4), generator=torch.Generator().manual_seed(3))
    one = loss(s, t, y)
    two = loss(s.repeat(2, 1, 1, 1), t.repeat(2, 1, 1, 1), y.repeat(2, 1, 1))
    assert two.item() == pytest.approx(one.item(), rel=1e-5)


def test_pixel_means_do_not_grow_when_the_maps_are_tiled():
    """kd, fitnet, dkd average over pixels; cwd compares distributions over positions, which a
    tiled map repeats (each probability / 4, the KL unchanged); pairwise at full resolution sees every
    similarity block repeated. AT normalises its map over positions, so tiling k x k divides it by k^2."""
    s, t = _randn(2, 3, 4, 4, seed=1), _randn(2, 3, 4, 4, seed=2)
    y = torch.randint(0, 3, (2, 4, 4), generator=torch.Generator().manual_seed(3))
    for loss in (KDLoss(T=4.0), build_loss("cwd", T=4.0), build_loss("fitnet"), _dkd(T=2.0)):
        assert loss(_tile(s), _tile(t), _tile(y[:, None])[:, 0]).item() == pytest.approx(loss(s, t, y).item(), rel=1e-5)
    full = PairwiseLoss(grid=4)(s, t).item()
    assert PairwiseLoss(grid=8)(_tile(s), _tile(t)).item() == pytest.approx(full, rel=1e-5)
    at = build_loss("at")
    assert at(_tile(s), _tile(t)).item() == pytest.approx(at(s, t).item() / 4, rel=1e-5)


# ---------------------------------------------------------------- MGD


def test_mgd_masks_drop_the_configured_fraction():
    torch.manual_seed(0)
    spatial = MGDLoss(teacher_channels=8, mask_ratio=0.65).make_mask((4, 8, 128, 128), "cpu")
    assert spatial.shape == (4, 1, 128, 128)
    assert (spatial == 0).float().mean().item() == pytest.approx(0.65, abs=0.02)
    channel = MGDLoss(teacher_channels=8, mask_ratio=0.15, mask="channel").make_mask((64, 256, 7, 7), "cpu")
    assert channel.shape == (64, 256, 1, 1)
    assert (channel == 0).float().mean().item() == pytest.approx(0.15, abs=0.02)
    assert set(spatial.unique().tolist()) == {0.0, 1.0}
    assert MGDLoss(teacher_channels=8, mask="none").make_mask((2, 8, 4, 4), "cpu") is None


def test_mgd_masks_are_reproducible_from_a_generator_or_the_global_seed():
    a = MGDLoss(teacher_channels=4, generator=torch.Generator().manual_seed(7)).make_mask((2, 4, 6, 6), "cpu")
    b = MGDLoss(teacher_channels=4, generator=torch.Generator().manual_seed(7)).make_mask((2, 4, 6, 6), "cpu")
    torch.manual_seed(3)
    c = MGDLoss(teacher_channels=4).make_mask((2, 4, 6, 6), "cpu")
    torch.manual_seed(3)
    d = MGDLoss(teacher_channels=4).make_mask((2, 4, 6, 6), "cpu")
    assert torch.equal(a, b) and torch.equal(c, d)


def _set_delta(conv, gain, bias):
    """A 3x3 conv that maps each channel to itself (centre tap `gain`), plus `bias`."""
    with torch.no_grad():
        conv.weight.zero_()
        for k in range(conv.weight.shape[0]):
            conv.weight[k, k, 1, 1] = gain
        conv.bias.fill_(bias)


@pytest.mark.parametrize("mask", ["spatial", "channel", "none"])
def test_mgd_golden_value_with_a_fixed_mask_and_known_weights(mask):
    s, t = _randn(2, 3, 5, 5, seed=1), _randn(2, 4, 5, 5, seed=2)
    alpha = 0.5
    loss = MGDLoss(student_channels=3, teacher_channels=4, alpha=alpha, mask_ratio=0.5, mask=mask,
                   generator=torch.Generator().manual_seed(11))
    w = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 2.0], [0.5, 0.5, 0.5]])
    with torch.no_grad():
        loss.align.proj.weight.copy_(torch.tensor(w, dtype=torch.float32).reshape(4, 3, 1, 1))
        loss.align.proj.bias.zero_()
    _set_delta(loss.generation[0], 1.0, 0.0)  # G(x) = 2 * relu(x) + 0.5
    _set_delta(loss.generation[2], 2.0, 0.5)
    m = loss.make_mask((2, 4, 5, 5), "cpu")
    loss.generator.manual_seed(11)  # forward draws the same mask again
    a = np.einsum("oc,nchw->nohw", w, _np(s))
    if m is not None:
        a = a * _np(m)
        assert 0 < (_np(m) == 0).mean() < 1
    g = 2 * np.maximum(a, 0) + 0.5
    expected = alpha * ((g - _np(t)) ** 2).sum() / 2
    assert loss(s, t).item() == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- DKD


def _dkd_np(zs, zt, y, T, alpha, beta):
    """Per-row DKD from the decoupled definition: binary [gt, rest] KL and KL over the non-target
    classes renormalised (the limit the -1000 trick computes), T^2 each, mean over rows."""
    total = 0.0
    for s_row, t_row, g in zip(zs, zt, y, strict=True):
        ps, pt = _softmax(s_row / T), _softmax(t_row / T)
        bs, bt = [ps[g], 1 - ps[g]], [pt[g], 1 - pt[g]]
        others = [k for k in range(len(s_row)) if k != g]
        tckd = _kl(bt, bs)
        nckd = _kl(_softmax(t_row[others] / T), _softmax(s_row[others] / T))
        total += T * T * (alpha * tckd + beta * nckd)
    return total / len(y)


def test_dkd_matches_the_decoupled_definition_by_hand():
    zs, zt = _randn(3, 4, seed=1) * 2, _randn(3, 4, seed=2) * 2
    y = torch.tensor([0, 3, 1])
    expected = _dkd_np(_np(zs), _np(zt), y.tolist(), 2.0, 1.0, 8.0)
    assert DKDLoss(T=2.0, alpha=1.0, beta=8.0, warmup=0)(zs, zt, y).item() == pytest.approx(expected, abs=TOL)
    only_t = _dkd_np(_np(zs), _np(zt), y.tolist(), 2.0, 1.0, 0.0)  # T^2 applies to TCKD alone too
    assert DKDLoss(T=2.0, alpha=1.0, beta=0.0, warmup=0)(zs, zt, y).item() == pytest.approx(only_t, abs=TOL)


def test_dkd_dense_is_the_mean_over_pixels_and_takes_float_masks():
    zs, zt = _randn(2, 3, 4, 4, seed=1), _randn(2, 3, 4, 4, seed=2)
    y = torch.randint(0, 3, (2, 4, 4), generator=torch.Generator().manual_seed(3))
    rows = lambda z: _np(z).transpose(0, 2, 3, 1).reshape(-1, 3)  # noqa: E731
    expected = _dkd_np(rows(zs), rows(zt), y.reshape(-1).tolist(), 4.0, 1.0, 8.0)
    loss = DKDLoss(warmup=0)
    assert loss(zs, zt, y).item() == pytest.approx(expected, abs=TOL)
    assert loss(zs, zt, y[:, None].float()).item() == pytest.approx(expected, abs=TOL)  # (N, 1, H, W) float


def test_dkd_on_two_classes_is_alpha_times_kd():
    """One non-target class: NCKD = 0 and TCKD is the KD term (sigmoid maps read as [0, z])."""
    zs, zt = _randn(2, 2, 4, 4, seed=1), _randn(2, 2, 4, 4, seed=2)
    mask = (torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    kd = KDLoss(T=4.0)(zs, zt).item()
    assert DKDLoss(alpha=1.0, beta=8.0, warmup=0)(zs, zt, mask).item() == pytest.approx(kd, rel=1e-5)
    s1, t1 = zs[:, 1:] - zs[:, :1], zt[:, 1:] - zt[:, :1]
    assert DKDLoss(alpha=2.0, warmup=0)(s1, t1, mask).item() == pytest.approx(2 * kd, rel=1e-5)


def test_dkd_warmup_factor_and_set_epoch():
    zs, zt, y = _randn(4, 5, seed=1), _randn(4, 5, seed=2), torch.tensor([0, 1, 2, 4])
    loss = DKDLoss(warmup=20)
    assert loss(zs, zt, y).item() == 0.0  # epoch 0 before any set_epoch: factor 0
    loss.set_epoch(20)
    full = loss(zs, zt, y).item()
    loss.set_epoch(5)
    assert loss(zs, zt, y).item() == pytest.approx(0.25 * full, rel=1e-6)
    loss.set_epoch(40)
    assert loss(zs, zt, y).item() == pytest.approx(full, rel=1e-6)
    assert DKDLoss(warmup=0)(zs, zt, y).item() == pytest.approx(full, rel=1e-6) and full > 0


def test_dkd_needs_a_target_in_range():
    zs, zt = torch.randn(2, 3), torch.randn(2, 3)
    with pytest.raises(ValueError, match="dkd needs the ground-truth target"):
        DKDLoss()(zs, zt)
    with pytest.raises(ValueError, match=r"target classes must lie in \[0, 2\]"):
        DKDLoss()(zs, zt, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"target \(2, 5\) does not fit student \(2, 3, 4, 4\)"):
        DKDLoss()(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.zeros(2, 5, dtype=torch.long))


# ---------------------------------------------------------------- pairwise


def _pairwise_np(fs, ft):
    def sim(f):
        v = f.reshape(f.shape[0], f.shape[1], -1)
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        return np.einsum("ncm,nck->nmk", v, v)

    return np.mean((sim(fs) - sim(ft)) ** 2)


def test_pairwise_by_hand_on_a_pooled_grid_any_channels_and_sizes():
    s, t = _randn(2, 3, 4, 4, seed=1), _randn(2, 5, 4, 4, seed=2)
    assert PairwiseLoss(grid=4)(s, t).item() == pytest.approx(_pairwise_np(_np(s), _np(t)), abs=TOL)
    pooled = _pairwise_np(_block_mean(_np(s), 2, 2), _block_mean(_np(t), 2, 2))
    assert build_loss("pairwise")(s, t).item() == pytest.approx(pooled, abs=TOL)  # scale 0.5: 2x2 cells
    big = _randn(2, 3, 8, 8, seed=3)
    expected = _pairwise_np(_block_mean(_np(big), 2, 2), _block_mean(_np(t), 2, 2))
    assert build_loss("pairwise")(big, t).item() == pytest.approx(expected, abs=TOL)
    assert PairwiseLoss(scale=0.25).grid_for(16, 8) == (4, 4) and PairwiseLoss(scale=1 / 16).grid_for(16, 8) == (16, 8)


# ---------------------------------------------------------------- adapters, gradients, errors


FEATURE_LOSSES = {
    "fitnet": lambda: build_loss("fitnet", student_channels=16, teacher_channels=64),
    "mgd": lambda: build_loss("mgd", student_channels=16, teacher_channels=64),
    "cwd": lambda: build_loss("cwd", T=4.0, student_channels=16, teacher_channels=64),
    "at": lambda: build_loss("at"),
    "pairwise": lambda: build_loss("pairwise"),
}


@pytest.mark.parametrize("name", list(FEATURE_LOSSES))
def test_adapters_fix_channels_and_size_and_gradients_reach_the_student_only(name):
    loss = FEATURE_LOSSES[name]()
    s = _randn(2, 16, 8, 8, seed=1).requires_grad_(True)
    t = _randn(2, 64, 16, 16, seed=2).requires_grad_(True)
    out = loss(s, t)
    assert out.dim() == 0 and torch.isfinite(out)
    out.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    for p in loss.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_trainable_parameters_only_where_something_is_learnt():
    def count(m):
        return sum(p.numel() for p in m.parameters())

    assert count(build_loss("fitnet", student_channels=8, teacher_channels=8)) == 0
    assert count(build_loss("cwd")) == count(build_loss("at")) == count(build_loss("pairwise")) == 0
    assert count(build_loss("dkd")) == count(build_loss("kd")) == 0
    assert count(build_loss("fitnet", student_channels=8, teacher_channels=16)) > 0
    assert count(build_loss("mgd", teacher_channels=8)) > 0


def test_dkd_and_cwd_gradients_skip_the_teacher():
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    t = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = torch.zeros(2, 4, 4, dtype=torch.long)
    (DKDLoss(warmup=0)(s, t, y) + build_loss("cwd")(s, t)).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None


def _one_line_value_error(fn, *parts):
    with pytest.raises(ValueError) as err:
        fn()
    msg = str(err.value)
    assert "\n" not in msg
    for part in parts:
        assert part in msg, msg


def test_shape_problems_no_adapter_can_fix_are_clear_value_errors():
    s16, t64 = torch.randn(2, 16, 8, 8), torch.randn(2, 64, 8, 8)
    _one_line_value_error(lambda: build_loss("fitnet")(s16, t64), "(2, 16, 8, 8)", "(2, 64, 8, 8)",
                          "student_channels=16, teacher_channels=64")
    _one_line_value_error(lambda: build_loss("fitnet", student_channels=32, teacher_channels=64)(s16, t64),
                          "(2, 16, 8, 8)", "student_channels=32")
    _one_line_value_error(lambda: build_loss("mgd", student_channels=16, teacher_channels=32)(s16, t64),
                          "(2, 64, 8, 8)", "teacher_channels=32")
    _one_line_value_error(lambda: build_loss("cwd")(s16, t64), "16 channels", "64")
    _one_line_value_error(lambda: build_loss("at")(s16, torch.randn(2, 64)), "(2, 64)", "expected 4-D")
    _one_line_value_error(lambda: build_loss("pairwise")(s16, torch.randn(3, 64, 8, 8)), "batch sizes differ",
                          "(2, 16, 8, 8)", "(3, 64, 8, 8)")
    _one_line_value_error(lambda: DKDLoss()(torch.randn(2, 3), torch.randn(2, 4), torch.zeros(2, dtype=torch.long)),
                          "3 classes", "(2, 4)")
    _one_line_value_error(lambda: match_spatial(torch.randn(2, 3), t64), "expected 4-D")


def test_channel_adapter_and_match_spatial():
    assert isinstance(ChannelAdapter(8, 8).proj, torch.nn.Identity)
    assert isinstance(ChannelAdapter(None, 8).proj, torch.nn.Identity)
    adapter = ChannelAdapter(8, 16)
    assert adapter(torch.randn(1, 8, 3, 3)).shape == (1, 16, 3, 3)
    s, t = torch.randn(1, 2, 4, 4), torch.randn(1, 5, 8, 6)
    assert match_spatial(s, t).shape == (1, 2, 8, 6)
    assert match_spatial(s, torch.randn(1, 5, 4, 4)) is s


def test_losses_compute_in_float32_under_bf16_autocast():
    s, t = _randn(2, 4, 6, 6, seed=1), _randn(2, 4, 6, 6, seed=2)
    for loss in (build_loss("cwd"), build_loss("pairwise", grid=6), build_loss("at")):
        ref = loss(s, t).item()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = loss(s.bfloat16(), t.bfloat16())
        assert out.dtype == torch.float32
        assert out.item() == pytest.approx(ref, rel=0.05)
