"""Method recipes, feature taps and adapters inside DistillModule, and RFKD's noisy student inputs."""

import pytest
import torch
from torch import nn

from defectkd.core.config import build_config
from defectkd.core.errors import ConfigError
from defectkd.distill import build_loss
from defectkd.distill.features import FeatureTaps, list_layers, parse_feature_pairs
from defectkd.models import build_model
from defectkd.tasks.segment.config import DistillSegmentConfig
from defectkd.tasks.segment.distill_module import DistillModule


def _cfg(**kw) -> dict:
    """The recipe's own weights (balance none): the tests compare the loss with its formula."""
    kw = {"method": "kd", "balance": "none", **kw}
    return DistillSegmentConfig(data="x", teacher="t.pt", channels_last=False, **kw).model_dump()


def _teacher():
    torch.manual_seed(1)
    return build_model("mcff-l", norm="batch")


def _module(teacher=None, **kw) -> tuple[DistillModule, nn.Module]:
    teacher = teacher or _teacher()
    torch.manual_seed(0)
    module = DistillModule("mcff-l", {"classes": 2}, _cfg(**kw), teacher=teacher,
                           teacher_heads=["standard", "dilated", "rect", "mix"], teacher_main="mix")
    return module, teacher


def test_recipes_fill_published_defaults_and_explicit_values_win():
    online, offline = DistillSegmentConfig(data="x", teacher="t"), DistillSegmentConfig(data="x", soft_labels="c")
    assert (online.method, offline.method) == ("rfkd", "kd")  # rfkd needs the teacher's features in memory
    assert (online.balance, online.hard_weight) == ("loss", 1.0)  # balanced: full task loss, terms measured
    kd = DistillSegmentConfig(data="x", teacher="t", method="kd", balance="none")
    assert (kd.T, kd.alpha, kd.hard_weight, kd.noisy_fraction) == (10.0, 0.9, pytest.approx(0.1), 0.0)
    assert [(t.method, t.on, t.weight) for t in kd.losses] == [("kd", "logits", 0.9)]
    mgd = DistillSegmentConfig(data="x", teacher="t", method="mgd")
    assert [(t.method, t.on, t.weight) for t in mgd.losses] == [("mgd", "features", 1.0), ("cwd", "logits", 3.0)]
    assert mgd.losses[0].params == {"alpha": 2e-5, "mask_ratio": 0.75, "mask": "spatial"}
    assert mgd.losses[1].params == {"T": 4.0} and mgd.hard_weight == 1.0
    rfkd = DistillSegmentConfig(data="x", teacher="t", method="rfkd", T=2.0, alpha=0.5)
    assert rfkd.noisy_fraction == pytest.approx(1 / 3) and rfkd.losses[0].params["T"] == 2.0
    assert [t.method for t in rfkd.losses] == ["kd", "pairwise"] and rfkd.hard_weight == pytest.approx(0.5)
    assert rfkd.balance == "none"  # alpha given: the user's weighting, as written
    fit = DistillSegmentConfig(data="x", teacher="t", method="fitnet", hard_weight=0.5)
    assert fit.hard_weight == 0.5 and fit.losses[0].weight == 100.0 and fit.balance == "none"
    # the resolved config round-trips (resume re-validates it) without changing
    again = DistillSegmentConfig(**mgd.model_dump())
    assert again.model_dump() == mgd.model_dump()


def test_config_refuses_unknown_method_and_alpha_without_a_kd_term():
    with pytest.raises(ConfigError, match="unknown distillation method 'nope'"):
        build_config(DistillSegmentConfig, None, {"data": "x", "teacher": "t", "method": "nope"})
    with pytest.raises(ConfigError, match="alpha weights the KD term"):
        build_config(DistillSegmentConfig, None, {"data": "x", "teacher": "t", "method": "cwd", "alpha": 0.5})


def test_list_layers_and_taps_capture_outputs_by_path():
    model = build_model("mcff-l").eval()
    layers = {info.path: info.shape for info in list_layers(model, 64)}
    assert layers["standard.blocks"] == (1, 64, 16, 16) and layers["standard.down1"] == (1, 32, 32, 32)
    taps = FeatureTaps(model, ["standard.blocks"])
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        model.forward_heads(x)
        expected = model.standard.blocks(model.standard.down2(model.standard.down1(model.standard.stem(
            (x - model.mean) / model.std))))
    assert torch.allclose(taps["standard.blocks"], expected, atol=1e-5)
    with pytest.raises(ConfigError, match=r"'standard.blokcs' does not exist.*close: standard.blocks.*defectkd layers"):
        FeatureTaps(model, ["standard.blokcs"], "student")
    with pytest.raises(ConfigError, match="expected student.path:teacher.path"):
        parse_feature_pairs(["standard.blocks"])


def test_feature_term_with_adapter_equals_its_loss_and_trains_the_adapter_not_the_teacher():
    # student 32 ch at 1/2 vs teacher 64 ch at 1/4: a 1x1 regressor and a resize align them
    module, teacher = _module(method="fitnet", feat=["standard.down1:standard.blocks"])
    fit = module.distill_losses[0][0]
    assert sum(p.numel() for p in fit.parameters()) > 32 * 64  # the regressor exists: channels differ
    assert any(k.startswith("distill_losses.0.0.") for k in module.state_dict())
    x, y = torch.rand(2, 3, 64, 64), (torch.rand(2, 64, 64) > 0.8).float()
    module.train()
    got = module.training_step((x, y, torch.arange(2)), 0)

    s_out, t_out = {}, {}
    h1 = module.model.standard.down1.register_forward_hook(lambda m, i, o: s_out.setdefault("f", o))
    h2 = teacher.standard.blocks.register_forward_hook(lambda m, i, o: t_out.setdefault("f", o))
    heads = module.model.forward_heads(x)
    with torch.no_grad():
        teacher.forward_heads(x)
    h1.remove()
    h2.remove()
    hard = sum((1.0 if h == "mix" else 0.4) * module.criterion(heads[h], y) for h in heads)
    expected = 1.0 * hard + 100.0 * fit(s_out["f"], t_out["f"])
    assert got.item() == pytest.approx(expected.item(), rel=1e-4)

    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    got.backward()
    assert all(p.grad is not None for p in fit.parameters() if p.requires_grad)
    assert all(p.grad is not None for p in module.model.standard.down1.parameters())  # the hint reaches the student
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


def test_mgd_plus_cwd_recipe_sums_both_terms():
    module, teacher = _module(method="mgd")
    x, y = torch.rand(1, 3, 64, 64), torch.zeros(1, 64, 64)
    torch.manual_seed(5)
    got = module.training_step((x, y, torch.arange(1)), 0)
    mgd = module.distill_losses[0][0]
    cwd = build_loss("cwd", T=4.0)
    s_feat = {}
    h = module.model.standard.blocks.register_forward_hook(lambda m, i, o: s_feat.setdefault("f", o))
    heads = module.model.forward_heads(x)
    h.remove()
    with torch.no_grad():
        t_heads = teacher.forward_heads(x)
        t_feat = teacher.standard.blocks(teacher.standard.down2(teacher.standard.down1(teacher.standard.stem(
            (x - teacher.mean) / teacher.std))))
    torch.manual_seed(5)  # the same MGD mask as in the training step
    hard = sum((1.0 if k == "mix" else 0.4) * module.criterion(heads[k], y) for k in heads)
    cwd_term = sum((1.0 if k == "mix" else 0.4) * cwd(heads[k], t_heads[k]) for k in heads)
    expected = hard + mgd(s_feat["f"], t_feat) + 3.0 * cwd_term
    assert got.item() == pytest.approx(expected.item(), rel=1e-4)


class _FlatTeacher(nn.Module):
    """A teacher with a 2-D feature output: no adapter aligns it with a 4-D map."""

    main_head = "out"

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward_heads(self, x):
        z = self.conv(x)
        self.pool(z)
        return {"out": z}


def test_a_shape_no_adapter_aligns_is_refused_at_setup_in_one_line():
    with pytest.raises(ValueError, match=r"feat standard.blocks:pool .*cannot be aligned"):
        DistillModule("mcff-l", {"classes": 2}, _cfg(method="at", feat=["standard.blocks:pool"]),
                      teacher=_FlatTeacher(), teacher_heads=["out"], teacher_main="out")


def test_student_sees_the_noisy_copy_and_teacher_the_clean_image():
    module, teacher = _module(method="rfkd")
    seen = {}
    h1 = teacher.standard.stem.register_forward_pre_hook(lambda m, i: seen.setdefault("teacher", i[0].clone()))
    h2 = module.model.standard.stem.register_forward_pre_hook(lambda m, i: seen.setdefault("student", i[0].clone()))
    x, noisy = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    module.training_step((x, torch.zeros(1, 64, 64), torch.arange(1), {"student_image": noisy}), 0)
    h1.remove()
    h2.remove()
    assert torch.allclose(seen["teacher"], (x - teacher.mean) / teacher.std)
    assert torch.allclose(seen["student"], (noisy - module.model.mean) / module.model.std)


def test_noisy_student_dataset_corrupts_about_a_third_and_keeps_the_clean_image(tiny_seg):
    from defectkd.data.layouts import discover
    from defectkd.distill.noisy import NoisyStudentDataset
    from defectkd.tasks.segment.dataset import SegmentationDataset

    samples = discover(tiny_seg).labelled("all")[:12]
    data = NoisyStudentDataset(SegmentationDataset(samples), 1 / 3, ["pepper", "salt"], seed=0)
    changed = 0
    for _ in range(5):
        for i in range(len(data)):
            x, y, idx, extras = data[i]
            assert extras["student_image"].shape == x.shape and idx == i
            changed += int(not torch.equal(extras["student_image"], x))
    assert 0.2 < changed / (5 * len(data)) < 0.47


@pytest.mark.parametrize("method", ["cwd", "dkd"])
def test_logit_methods_take_a_two_class_teacher_for_a_sigmoid_student(method):
    teacher = _teacher()
    module = DistillModule("mcff-l", {"classes": 1}, _cfg(method=method, classes=1), teacher=teacher,
                           teacher_heads=["standard", "dilated", "rect", "mix"], teacher_main="mix")
    x, y = torch.rand(1, 3, 32, 32), (torch.rand(1, 32, 32) > 0.8).float()
    loss = module.training_step((x, y, torch.arange(1)), 0)
    assert torch.isfinite(loss) and loss.requires_grad
    # the teacher's 2-class logits reach the loss as one sigmoid logit z1 - z0
    with torch.no_grad():
        t = teacher.forward_heads(x)["mix"]
    s = module.model.forward_heads(x)["mix"]
    assert torch.allclose(module._teacher_logits(t, s), t[:, 1:2] - t[:, :1])
