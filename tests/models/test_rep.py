"""Re-parameterisable ConvBN and the -rep edge students: folding is exact, the folded model is the plain one."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from defectkd.core.checkpoint import save_deploy_file
from defectkd.models import build_model, model_spec
from defectkd.models.info import count_macs
from defectkd.models.loading import load_checkpoint_model
from defectkd.models.rep import ConvBN, fuse_branches


def _random_statistics(model: nn.Module, seed: int = 0) -> None:
    """BN layers with non-trivial statistics and affine terms, as after training (fresh ones are identities)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=g))
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)


@pytest.mark.parametrize("cin,cout,kernel,stride,dilation,groups,branches", [
    (8, 8, (3, 3), 1, 1, 8, ("scale", "identity")),    # depthwise 3x3
    (8, 8, (3, 3), 1, 3, 8, ("scale", "identity")),    # depthwise dilated
    (8, 8, (1, 7), 1, 1, 8, ("scale", "identity")),    # depthwise strip
    (3, 16, (3, 3), 2, 1, 1, ("scale",)),              # dense stride-2 stem: no identity
    (8, 8, (3, 3), 1, 1, 1, ("scale", "identity")),    # dense 3x3, identity across channels
    (8, 8, (1, 1), 1, 1, 1, ("identity",)),            # 1x1: a 1x1 branch would be the same map
    (8, 16, (3, 3), 2, 1, 8, ("scale",)),              # grouped, channels grow
])
def test_fuse_matches_the_branched_forward(cin, cout, kernel, stride, dilation, groups, branches):
    block = ConvBN(cin, cout, kernel, stride=stride, dilation=dilation, groups=groups, relu=False, rep=True)
    assert tuple(b for b in ("scale", "identity") if getattr(block, b) is not None) == branches
    _random_statistics(block)
    block.eval()
    x = torch.randn(2, cin, 13, 11)
    with torch.no_grad():
        # the reference, written out: BN(conv(x)) + BN(strided conv1x1(x)) + BN(x)
        expected = block[1](block[0](x))
        if block.scale is not None:
            expected = expected + block.scale[1](F.conv2d(x, block.scale[0].weight, stride=stride, groups=groups))
        if block.identity is not None:
            expected = expected + block.identity(x)
        block.fuse()
        got = block(x)
    assert block.scale is None and block.identity is None and not block.branched
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_plain_convbn_is_the_old_sequential():
    block = ConvBN(4, 8, (3, 3), rep=False)
    assert list(block.state_dict()) == list(nn.Sequential(nn.Conv2d(4, 8, 3, bias=False),
                                                          nn.BatchNorm2d(8)).state_dict())
    assert isinstance(block[2], nn.ReLU) and not block.branched


def test_fuse_branches_refuses_training_mode():
    with pytest.raises(ValueError, match="eval"):
        fuse_branches(build_model("mcff-edge-n-rep"))


@pytest.mark.parametrize("size", ["n", "s"])
def test_folded_rep_student_is_the_plain_student(size):
    rep, plain = build_model(f"mcff-edge-{size}-rep"), build_model(f"mcff-edge-{size}")
    assert model_spec(f"mcff-edge-{size}-rep").role == "student"
    n_rep = sum(p.numel() for p in rep.parameters())
    n_plain = sum(p.numel() for p in plain.parameters())
    assert n_rep > n_plain  # the training branches
    _random_statistics(rep, seed=1)
    rep.eval()
    x = torch.rand(1, 3, 45, 61)
    with torch.no_grad():
        before = rep.forward_heads(x)
        fuse_branches(rep)
        after = rep.forward_heads(x)
    for name in before:
        torch.testing.assert_close(after[name], before[name], atol=1e-4, rtol=1e-4)
    assert sum(p.numel() for p in rep.parameters()) == n_plain
    assert count_macs(rep, 64) == count_macs(plain, 64)
    # the folded weights load into the plain model and give the same output: one deployed graph
    plain.load_state_dict(rep.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(x), after["mix"], atol=1e-5, rtol=1e-5)


def test_loading_a_rep_checkpoint_folds_it(tmp_path):
    model = build_model("mcff-edge-n-rep")
    _random_statistics(model, seed=2)
    model.eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        expected = model(x)
    ckpt = tmp_path / "last.pt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "hyper_parameters": {"model_name": "mcff-edge-n-rep", "model_kwargs": {},
                                     "config": {"task": "segment", "threshold": 0.5}}}, ckpt)
    deploy = save_deploy_file(ckpt, tmp_path / "deploy.pt")
    loaded, hp = load_checkpoint_model(deploy)
    assert hp["model_name"] == "mcff-edge-n-rep"
    assert not any(isinstance(m, ConvBN) and m.branched for m in loaded.modules())
    assert set(loaded.state_dict()) == set(build_model("mcff-edge-n").state_dict())
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, atol=1e-5, rtol=1e-5)


def test_pretrained_from_a_rep_run_into_the_plain_model_is_folded(tmp_path):
    """--pretrained with a -rep run's weights into mcff-edge-n: the branches are folded, not dropped."""
    from defectkd.models.registry import load_pretrained
    from defectkd.models.rep import fold_state_dict

    rep = build_model("mcff-edge-n-rep")
    _random_statistics(rep, seed=3)
    path = tmp_path / "last.pt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in rep.state_dict().items()}}, path)
    branch = rep.state_dict()["detail.identity.weight"].clone()
    plain = build_model("mcff-edge-n")
    load_pretrained(plain, path)
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(x), fuse_branches(rep.eval())(x), atol=1e-5, rtol=1e-5)
    assert fold_state_dict(plain.state_dict()).keys() == plain.state_dict().keys()  # nothing to fold: unchanged
    again = build_model("mcff-edge-n-rep")
    load_pretrained(again, path)  # into the -rep model the branches load as they are
    torch.testing.assert_close(again.state_dict()["detail.identity.weight"], branch)


def test_pretrained_plain_weights_start_a_rep_model(tmp_path):
    """A plain student's weights (e.g. a zoo model) start a -rep model as exactly that model: the shared tensors
    load, the new branches' BNs start at zero (they are more than half the -rep model's tensors, and must neither
    make the file look foreign nor add an untrained path)."""
    from defectkd.models.registry import load_pretrained

    plain = build_model("mcff-edge-n")
    _random_statistics(plain, seed=4)
    path = tmp_path / "plain.pt"
    torch.save(plain.state_dict(), path)
    rep = build_model("mcff-edge-n-rep")
    load_pretrained(rep, path)
    assert float(rep.state_dict()["detail.identity.weight"].abs().sum()) == 0.0
    x = torch.rand(2, 3, 40, 56)
    for train in (False, True):  # the same function in eval and with batch statistics
        rep.train(train), plain.train(train)
        with torch.no_grad():
            torch.testing.assert_close(rep(x), plain(x), atol=1e-5, rtol=1e-5)


def test_folded_bn_keeps_the_trained_scale_in_training_mode():
    """Folding a branched ConvBN whose branches are silent gives back its main conv + BN exactly, in training mode
    too (fine-tuning a plain student from a -rep run normalises with batch statistics)."""
    block = ConvBN(8, 8, (3, 3), groups=8, relu=False, rep=True)
    _random_statistics(block, seed=5)
    with torch.no_grad():
        for bn in (block.scale[1], block.identity):
            bn.weight.zero_(), bn.bias.zero_()
    reference = ConvBN(8, 8, (3, 3), groups=8, relu=False)
    reference.load_state_dict({k: v for k, v in block.state_dict().items() if k[:2] in ("0.", "1.")})
    x = torch.randn(4, 8, 12, 12)
    block.eval()
    block.fuse()
    block.train(), reference.train()
    torch.testing.assert_close(block(x), reference(x), atol=1e-4, rtol=1e-4)


def test_deployed_parameter_count_and_foreign_branch_names():
    from defectkd.models.info import count_parameters
    from defectkd.models.rep import fold_state_dict

    assert count_parameters(build_model("mcff-edge-n-rep")) == count_parameters(build_model("mcff-edge-n"))
    foreign = {"stages.0.identity.weight": torch.ones(2), "stem.0.weight": torch.ones(2, 3, 3, 3)}  # no ConvBN there
    assert fold_state_dict(foreign) == foreign
