"""Classification models (shapes, parameters, feature layers, local pretrained weights), metrics against hand
computation, the distillation module's terms and teacher handling."""

import pytest
import torch

from defectkd.distill.features import FeatureTaps
from defectkd.models import build_model, list_models, model_spec
from defectkd.tasks.classify.metrics import ClassificationMetrics, plot_confusion


def test_registered_with_task_and_role():
    assert {"resnet50", "mobilenetv2", "cmi"} <= set(list_models("classify"))
    assert not {"resnet50", "cmi"} & set(list_models("segment"))
    assert (model_spec("resnet50").role, model_spec("cmi").role, model_spec("mobilenetv2").role) == (
        "teacher", "student", "student")


@pytest.mark.parametrize("name, kwargs", [("cmi", {}), ("cmi", {"width": 0.5}), ("mobilenetv2", {"width": 0.35}),
                                          ("resnet50", {})])
def test_shapes_any_input_size_and_feature_layer(name, kwargs):
    torch.manual_seed(0)
    model = build_model(name, classes=4, **kwargs).eval()
    taps = FeatureTaps(model, [model.feature_layer])
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 64)).shape == (2, 4)
        assert model(torch.rand(1, 3, 50, 77)).shape == (1, 4)  # global pooling: any H, W
        assert model.forward_heads(torch.rand(1, 3, 32, 32))["out"].shape == (1, 4)
    feat = taps[model.feature_layer]
    assert feat.dim() == 4 and feat.shape[0] == 1 and feat.shape[-1] == 1  # 32 px / stride 32


def test_parameter_counts():
    def params(name, **kw):
        return sum(p.numel() for p in build_model(name, classes=6, **kw).parameters())

    cmi = params("cmi")
    assert 0.5e6 < cmi < 3e6  # "a few million parameters or less"
    assert params("cmi", width=0.5) < cmi / 2
    assert 2.2e6 < params("mobilenetv2") < 2.3e6 and params("mobilenetv2", width=0.5) < 1e6
    assert 23.4e6 < params("resnet50") < 23.6e6


def test_input_scaling_inside_and_eval_output_not_constant_at_init():
    """Models take [0, 1] RGB and normalise themselves; fan-in init keeps eval-mode outputs input-dependent
    before BatchNorm statistics have adapted (short runs validate on something meaningful)."""
    torch.manual_seed(0)
    for name in ("cmi", "mobilenetv2"):
        model = build_model(name, classes=5).eval()
        with torch.no_grad():
            out = model(torch.rand(8, 3, 64, 64))
        assert out.std(0).mean() > 1e-3, name
    model = build_model("cmi", classes=3)
    assert torch.allclose(model.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))


def test_width_and_unknown_options_are_refused():
    from defectkd.core.errors import DefectKDError

    with pytest.raises(DefectKDError, match="resnet50"):
        build_model("resnet50", width=0.5)
    with pytest.raises(ValueError, match="width"):
        build_model("cmi", width=3)


def test_pretrained_torchvision_file_drops_the_imagenet_head(tmp_path):
    import torchvision

    torch.manual_seed(1)
    tv = torchvision.models.mobilenet_v2(weights=None, num_classes=1000, width_mult=0.5)
    file = tmp_path / "mnv2_imagenet.pth"
    torch.save(tv.state_dict(), file)
    model = build_model("mobilenetv2", classes=6, width=0.5, pretrained=file)
    assert torch.equal(model.net.features[0][0].weight, tv.features[0][0].weight)
    assert model.net.classifier[1].weight.shape == (6, 1280)  # the 1000-class head was left out


def test_metrics_against_hand_computed_values(tmp_path):
    """Fixed example: 10 images, 3 classes. Confusion (rows true, cols predicted):
        a: [2, 1, 1]   b: [1, 2, 0]   c: [0, 1, 2]
    accuracy 6/10; precision a 2/3, b 2/4, c 2/3; recall a 2/4, b 2/3, c 2/3;
    F1 a 2*(2/3*1/2)/(2/3+1/2) = 4/7, b 4/7, c 2/3."""
    m = ClassificationMetrics(["a", "b", "c"])
    target = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = torch.tensor([0, 0, 1, 2, 1, 1, 0, 2, 2, 1])
    logits = torch.nn.functional.one_hot(pred, 3).float() * 5  # (N, C) logits: argmax = pred
    m.update(logits[:4], target[:4])
    m.update(logits[4:], target[4:])
    r = m.compute()
    assert r["images"] == 10 and r["confusion"] == [[2, 1, 1], [1, 2, 0], [0, 1, 2]]
    assert r["accuracy"] == pytest.approx(0.6)
    assert r["precision"] == pytest.approx((2 / 3 + 2 / 4 + 2 / 3) / 3)
    assert r["recall"] == pytest.approx((2 / 4 + 2 / 3 + 2 / 3) / 3)
    assert r["f1"] == pytest.approx((4 / 7 + 4 / 7 + 2 / 3) / 3)
    assert r["per_class"]["a"] == pytest.approx({"precision": 2 / 3, "recall": 0.5, "f1": 4 / 7, "support": 4})
    assert r["per_class"]["b"]["precision"] == pytest.approx(0.5)
    png = plot_confusion(r["confusion"], ["a", "b", "c"], tmp_path / "cm.png", "example")
    assert png.stat().st_size > 5000
    m.reset()
    assert m.compute() == {"images": 0}


def _distill_module(method, teacher, **extra):
    from defectkd.tasks.classify.config import DistillClassifyConfig
    from defectkd.tasks.classify.module import ClassifyDistillModule

    cfg = DistillClassifyConfig(data="x", teacher="t", model="cmi", method=method, width=0.25, **extra)
    resolved = {**cfg.model_dump(), "class_names": ["a", "b", "c"]}
    return ClassifyDistillModule("cmi", cfg.model_kwargs(3), resolved, teacher)


def test_distill_module_terms_teacher_frozen_and_not_saved():
    torch.manual_seed(0)
    teacher = build_model("cmi", classes=3, width=0.5)
    module = _distill_module("kd", teacher, T=6, alpha=0.7)
    assert module.hard_weight == pytest.approx(0.3) and module.terms[0]["weight"] == pytest.approx(0.7)
    assert module.distill_losses[0].T == 6.0
    assert not any(k.startswith("teacher") for k in module.state_dict())  # checkpoints hold the student only
    assert all(not p.requires_grad for p in teacher.parameters()) and not teacher.training
    batch = (torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0]), torch.arange(4))
    module.log = lambda *a, **k: None
    loss = module.training_step(batch, 0)
    loss.backward()
    assert loss.item() > 0 and module.model.fc.weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())

    dkd = _distill_module("dkd", teacher)
    dkd.log = lambda *a, **k: None
    dkd.on_train_epoch_start()  # 30 epochs: a 2-epoch warm-up (1/12 of the run), factor 1/2 in the first epoch
    assert dkd.distill_losses[0].warmup == 2 and dkd.distill_losses[0].warmup_factor == pytest.approx(1 / 2)
    assert dkd.training_step(batch, 0).item() > 0

    mgd = _distill_module("mgd", teacher)  # channel mask, 7e-5, 0.15 on the last feature maps
    term = mgd.distill_losses[0][0]
    assert (term.mask, term.alpha, term.mask_ratio) == ("channel", 7e-5, 0.15)
    assert mgd.pairs == [[("head", "head")]]
    assert set(mgd.state_dict()) - {k for k in mgd.state_dict() if k.startswith("model.")}  # adapters train too


def test_distill_module_refuses_teacher_of_other_classes_and_unknown_methods():
    from defectkd.core.errors import ConfigError

    with pytest.raises(ValueError, match="same classes"):
        _distill_module("kd", build_model("cmi", classes=4, width=0.25))
    with pytest.raises(ConfigError, match="unknown distillation method 'cwd'"):
        from defectkd.core.config import build_config
        from defectkd.tasks.classify.config import DistillClassifyConfig

        build_config(DistillClassifyConfig, None, {"data": "x", "teacher": "t", "method": "cwd"})
