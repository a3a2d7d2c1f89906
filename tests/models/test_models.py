"""Model registry, shapes on odd sizes, parameter counts, head structure."""

import pytest
import torch

from defectkd.core.errors import DefectKDError
from defectkd.models import build_model, crack_probability, list_models


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_registry_lists_segmentation_models():
    assert {"mcff-l", "mcff-teacher", "unet-r50", "deeplabv3p-r50"} <= set(list_models("segment"))


def test_unknown_model_suggests_name():
    with pytest.raises(DefectKDError, match="did you mean 'mcff-l'"):
        build_model("mcff-1")


def test_mcff_l_parameter_count_matches_paper():
    assert abs(n_params(build_model("mcff-l")) - 1.18e6) / 1.18e6 <= 0.03


def test_mcff_teacher_parameter_count():
    assert 31e6 <= n_params(build_model("mcff-teacher")) <= 35e6


@pytest.mark.parametrize("size", [(37, 53), (64, 64), (100, 77)])
def test_mcff_heads_and_odd_sizes(size):
    model = build_model("mcff-l", dim=4, blocks=1).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        heads = model.forward_heads(x)
        out = model(x)
    assert set(heads) == {"standard", "dilated", "rect", "mix"}
    for logits in heads.values():
        assert logits.shape == (2, 2, *size)
    torch.testing.assert_close(heads["mix"], heads["standard"] + heads["dilated"] + heads["rect"])
    torch.testing.assert_close(out, heads["mix"])  # deploy form returns the mix head only


def test_sigmoid_variant_and_instance_norm():
    model = build_model("mcff-l", dim=4, blocks=1, classes=1, norm="instance").eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 1, 32, 32)
    prob = crack_probability(out)
    assert prob.shape == (1, 32, 32) and prob.min() >= 0 and prob.max() <= 1


@pytest.mark.parametrize("name", ["unet-r50", "deeplabv3p-r50"])
def test_smp_teachers_odd_size(name):
    model = build_model(name).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 50, 70))
    assert out.shape == (1, 2, 50, 70)


def test_crack_probability_softmax_channel_one():
    logits = torch.tensor([[[[0.0]], [[torch.log(torch.tensor(3.0))]]]])  # p(crack) = 3/4
    assert crack_probability(logits).item() == pytest.approx(0.75)


def test_pretrained_local_file_roundtrip(tmp_path):
    a = build_model("mcff-l", dim=4, blocks=1)
    torch.save(a.state_dict(), tmp_path / "w.pt")
    b = build_model("mcff-l", dim=4, blocks=1, pretrained=tmp_path / "w.pt")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_pretrained_encoder_only_file_for_smp_teacher(tmp_path):
    """A torchvision ResNet-50 state dict (what users have on disk) loads into unet-r50's encoder."""
    import torchvision

    resnet = torchvision.models.resnet50(weights=None)
    torch.save(resnet.state_dict(), tmp_path / "resnet50.pth")
    teacher = build_model("unet-r50", pretrained=tmp_path / "resnet50.pth")
    torch.testing.assert_close(teacher.net.encoder.conv1.weight, resnet.conv1.weight)
    torch.testing.assert_close(teacher.net.encoder.layer4[2].conv3.weight, resnet.layer4[2].conv3.weight)


def test_pretrained_mismatch_is_refused(tmp_path):
    from defectkd.core.errors import WeightsError

    torch.save({"something.else": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="other.pt: no tensor matches"):
        build_model("mcff-l", dim=4, blocks=1, pretrained=tmp_path / "other.pt")
    small = build_model("mcff-l", dim=4, blocks=1)
    torch.save(small.state_dict(), tmp_path / "small.pt")
    with pytest.raises(WeightsError, match="small.pt: tensor shapes do not fit"):
        build_model("mcff-l", dim=8, blocks=1, pretrained=tmp_path / "small.pt")
