"""Ensemble teachers: the mean of the members' probabilities, usable wherever one teacher is."""

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
