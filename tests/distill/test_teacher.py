"""Ensemble teachers: the mean of the members' probabilities, usable wherever one teacher is."""

import pytest
import torch
from torch import nn

from defectkd.distill.teacher import EnsembleTeacher, load_teacher


class Constant(nn.Module):
    def __init__(self, logits, classes):
        super().__init__()
        self.logits, self.classes = torch.tensor(logits).view(1, -1, 1, 1), classes

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1, *x.shape[-2:])


def test_ensemble_is_the_mean_of_member_probabilities():
    a, b = Constant([0.0, 2.0], 2), Constant([1.0, -1.0], 2)
    ens = EnsembleTeacher([a, b])
    out = ens(torch.zeros(2, 3, 4, 4))
    expected = (torch.softmax(torch.tensor([0.0, 2.0]), 0) + torch.softmax(torch.tensor([1.0, -1.0]), 0)) / 2
    assert out.shape == (2, 2, 4, 4)
    assert torch.allclose(torch.softmax(out, dim=1)[0, :, 0, 0], expected, atol=1e-6)
    assert list(ens.forward_heads(torch.zeros(1, 3, 2, 2))) == ["out"] and ens.main_head == "out"


def test_a_logit_mean_is_the_normalised_geometric_mean_of_member_probabilities():
    pa, pb = torch.softmax(torch.tensor([0.0, 2.0]), 0), torch.softmax(torch.tensor([1.0, -1.0]), 0)
    ens = EnsembleTeacher([Constant([0.0, 2.0], 2), Constant([1.0, -1.0], 2)], mean="logits")
    out = torch.softmax(ens(torch.zeros(1, 3, 2, 2)), dim=1)[0, :, 0, 0]
    geo = (pa * pb).sqrt()
    assert torch.allclose(out, geo / geo.sum(), atol=1e-6)
    # a sure member and an unsure one: sigmoid(1) = 0.731 (the mean logit difference), the mean probability 0.690
    sure_unsure = EnsembleTeacher([Constant([0.0, 2.0], 2), Constant([0.0, 0.0], 2)], mean="logits")
    crack = torch.softmax(sure_unsure(torch.zeros(1, 3, 1, 1)), dim=1)[0, 1, 0, 0]
    assert crack == pytest.approx(0.7311, abs=1e-4) and (pa[1] + 0.5) / 2 == pytest.approx(0.6904, abs=1e-4)
    sig = EnsembleTeacher([Constant([0.5], 1), Constant([-1.5], 1)], mean="logits")  # sigmoid: the mean logit
    assert torch.allclose(sig(torch.zeros(1, 3, 1, 1)), torch.tensor(-0.5))
    with pytest.raises(ValueError, match="teacher_mean"):
        EnsembleTeacher([Constant([0.5], 1)], mean="median")


def test_sigmoid_member_joins_a_two_class_ensemble():
    ens = EnsembleTeacher([Constant([0.5], 1), Constant([0.0, 0.5], 2)])
    p = torch.softmax(ens(torch.zeros(1, 3, 1, 1)), dim=1)[0, 1, 0, 0]
    expected = (torch.sigmoid(torch.tensor(0.5)) + torch.softmax(torch.tensor([0.0, 0.5]), 0)[1]) / 2
    assert torch.allclose(p, expected, atol=1e-6)


def test_load_teacher_from_one_file_or_several(tiny_weights):
    one, name = load_teacher(tiny_weights)
    assert name == "mcff-l" and not isinstance(one, EnsembleTeacher)
    two, name = load_teacher(f"{tiny_weights},{tiny_weights}")
    assert name == "ensemble(mcff-l, mcff-l)" and isinstance(two, EnsembleTeacher)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():  # two copies of one model: the ensemble is that model's softmax
        assert torch.allclose(torch.softmax(two(x), 1), torch.softmax(one(x), 1), atol=1e-5)


class LeftRight(nn.Module):
    """Crack logit = the image's value times a ramp across the width: a mirrored image answers differently."""

    def __init__(self):
        super().__init__()
        self.body = nn.Identity()

    def forward(self, x):
        ramp = torch.linspace(-2, 2, x.shape[-1])
        z = self.body(x[:, :1] * ramp + x[:, 1:2] * torch.linspace(-1, 1, x.shape[-2])[:, None])
        return torch.cat([torch.zeros_like(z), z], dim=1)


def test_mirror_views_average_the_flipped_back_answers():
    m = LeftRight()
    x = torch.rand(2, 3, 5, 7)
    p = torch.softmax(m(x), 1)
    ph = torch.softmax(m(x.flip(-1)), 1).flip(-1)
    pv = torch.softmax(m(x.flip(-2)), 1).flip(-2)
    phv = torch.softmax(m(x.flip(-2, -1)), 1).flip(-2, -1)
    assert not torch.allclose(p, ph, atol=1e-3)  # the views do differ, so the averages below can tell
    hflip = torch.softmax(EnsembleTeacher([m], "hflip")(x), 1)
    flips = torch.softmax(EnsembleTeacher([m], "flips")(x), 1)
    assert torch.allclose(hflip, (p + ph) / 2, atol=1e-6)
    assert torch.allclose(flips, (p + ph + pv + phv) / 4, atol=1e-6)
    assert torch.allclose(torch.softmax(EnsembleTeacher([m])(x), 1), p, atol=1e-6)


def test_a_feature_tap_keeps_the_plain_view():
    m, seen = LeftRight(), []
    m.body.register_forward_hook(lambda mod, inp, out: seen.append(out.detach().clone()))
    x = torch.rand(1, 3, 4, 6)
    EnsembleTeacher([m], "flips")(x)
    plain = x[:, :1] * torch.linspace(-2, 2, 6) + x[:, 1:2] * torch.linspace(-1, 1, 4)[:, None]
    assert len(seen) == 4 and torch.allclose(seen[-1], plain)  # a tap keeps the last call: the plain view


def test_load_teacher_with_mirror_views(tiny_weights):
    one, name = load_teacher(tiny_weights, "hflip")
    assert name == "mcff-l +hflip" and isinstance(one, EnsembleTeacher) and one.feature_layer.startswith("members.0.")
    plain, _ = load_teacher(tiny_weights)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = (torch.softmax(plain(x), 1) + torch.softmax(plain(x.flip(-1)), 1).flip(-1)) / 2
        assert torch.allclose(torch.softmax(one(x), 1), expected, atol=1e-5)
    _, name = load_teacher(f"{tiny_weights},{tiny_weights}", "flips")
    assert name == "ensemble(mcff-l, mcff-l) +flips"
    with pytest.raises(ValueError, match="teacher_tta"):
        EnsembleTeacher([plain], "rot90")
