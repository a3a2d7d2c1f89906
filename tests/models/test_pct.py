"""PoolingCrack-Tiny: parameter budget, odd sizes, gradients, stage strides for feature taps, ONNX parity."""

import warnings

import numpy as np
import pytest
import torch

from defectkd.models import build_model, list_models, model_spec

STAGES = ("encoder.stages.0", "encoder.stages.1", "encoder.stages.2", "encoder.stages.3")


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_registered_as_segmentation_student():
    assert "pct-tiny" in list_models("segment")
    spec = model_spec("pct-tiny")
    assert spec.role == "student" and spec.task == "segment"


def test_parameter_count_about_half_a_million():
    assert 0.45e6 <= n_params(build_model("pct-tiny")) <= 0.55e6


@pytest.mark.parametrize("classes", [1, 2])
@pytest.mark.parametrize("size", [(50, 70), (64, 64), (33, 17)])
def test_output_shape_any_size(classes, size):
    model = build_model("pct-tiny", classes=classes).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        heads = model.forward_heads(x)
        out = model(x)
    assert set(heads) == {"out"}
    assert out.shape == (2, classes, *size)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, heads["out"])


def test_gradients_reach_every_parameter():
    model = build_model("pct-tiny").train()
    model(torch.rand(2, 3, 64, 64)).logsumexp(1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_stage_outputs_have_strides_4_to_32():
    """The documented feature taps: encoder.stages.i at stride 4 * 2**i with dims[i] channels."""
    model = build_model("pct-tiny").eval()
    modules = dict(model.named_modules())
    shapes = {}
    hooks = [modules[p].register_forward_hook(lambda m, i, o, p=p: shapes.__setitem__(p, o.shape)) for p in STAGES]
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))  # already a multiple of the stride 32: no padding
    for h in hooks:
        h.remove()
    assert model.stride == 32
    for i, (path, channels) in enumerate(zip(STAGES, (32, 48, 72, 96), strict=True)):
        stride = 4 * 2**i
        assert shapes[path] == (1, channels, 64 // stride, 64 // stride), path
    assert {"decoder", "decoder.fuse", "decoder.refine", "decoder.classifier"} <= set(modules)
    assert model.feature_layer in modules  # default tap for feature distillation


@pytest.mark.parametrize(("example", "dynamic", "size"), [((50, 70), False, (50, 70)), ((50, 70), True, (64, 32))])
def test_onnx_parity(tmp_path, example, dynamic, size):
    """Static export at an odd size (padding and crop inside the graph), and a dynamic one run at another size.

    A dynamic export needs an example that is not a multiple of the stride: the tracer keeps only the branch
    it saw, so an aligned example drops the padding from the graph (base.py behaviour, every model)."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = build_model("pct-tiny").eval()
    with torch.no_grad():  # layer scales start at 1e-5; make the blocks matter for the comparison
        for name, p in model.named_parameters():
            if "layer_scale" in name:
                p.fill_(0.5)
    path = tmp_path / "pct.onnx"
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, *example),), str(path), input_names=["images"],
                          output_names=["logits"], opset_version=17, dynamic_axes=axes if dynamic else None,
                          dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        reference = model(x).numpy()
    result = session.run(None, {"images": x.numpy()})[0]
    assert result.shape == reference.shape == (1, 2, *size)
    assert np.abs(result - reference).max() < 1e-4
