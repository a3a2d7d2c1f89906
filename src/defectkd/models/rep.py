"""Structural re-parameterisation (RepVGG, MobileOne): train a conv with parallel linear branches, deploy one conv.

Why: an edge student's speed is fixed by its deployed graph, its accuracy partly by how easily it trains. A
k x k conv + BN trained beside a 1x1 conv + BN (at the kernel's centre) and a BN-only identity (when the shapes
allow) is, at inference, still one linear map of the same shape, so the three fold into a single k x k conv +
BN after training: the deployed graph, its parameters and its speed are exactly the plain model's, while
training sees extra, differently-normalised paths (MobileOne reports +0.5-1.5 top-1 for depthwise nets).

`ConvBN` names its children as the plain `Sequential(conv, bn[, relu])` does ("0", "1", "2"), so a folded model's
state dict is the plain model's and feature hooks on a ConvBN or its ReLU ("2") see the same tensor before and
after folding (a hook on its BN "1" sees the main branch only while the branches exist). `fuse_branches(model)`
folds every one in place (eval only): `load_checkpoint_model` calls it, so predict, val, export and teachers run
the plain graph.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BRANCH_KEYS = (".scale.", ".identity.")  # state-dict keys of the training branches


def _children(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of `state` under `prefix` ("scale.1."), with the prefix taken off."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _scaled(weight: torch.Tensor, bn: dict[str, torch.Tensor], eps: float) -> tuple[torch.Tensor, ...]:
    """A bias-free conv followed by an eval-mode BN is s*W x - s*mean + beta (s = gamma / sqrt(var + eps)):
    returns (s*W, s*mean, beta, s^2 var), the parts that sum over parallel branches."""
    s = bn["weight"] / torch.sqrt(bn["running_var"] + eps)
    return weight * s.reshape(-1, 1, 1, 1), s * bn["running_mean"], bn["bias"], s * s * bn["running_var"]


def fold_tensors(state: dict[str, torch.Tensor], eps: float = 1e-5) -> dict[str, torch.Tensor]:
    """One branched ConvBN's state ("0.weight", "1.*", "scale.0.weight", "scale.1.*", "identity.*") folded into
    the plain one's ("0.weight", "1.*"), from the tensors alone: the kernel size and channels per group come from
    the conv weight's shape.

    The sum of the branches is W'x - m' + b' with W', m', b' the sums of s*W, s*mean and beta. The folded BN keeps
    that as mean m', variance v' = sum s^2 var and weight sqrt(v' + eps): exact in eval, and in training mode
    (fine-tuning a plain student from a -rep run) its batch normalisation still starts near the trained scale."""
    weight = state["0.weight"]
    bn = _children(state, "1.")
    parts = [_scaled(weight, bn, eps)]
    kh, kw = weight.shape[2:]
    if "scale.0.weight" in state:
        w1, *rest = _scaled(state["scale.0.weight"], _children(state, "scale.1."), eps)
        parts.append((F.pad(w1, (kw // 2, kw // 2, kh // 2, kh // 2)), *rest))
    if "identity.weight" in state:  # only where input and output channels match
        eye = torch.zeros_like(weight)
        idx = torch.arange(weight.shape[0])
        eye[idx, idx % weight.shape[1], kh // 2, kw // 2] = 1.0
        parts.append(_scaled(eye, _children(state, "identity."), eps))
    folded, mean, beta, var = (sum(p[i] for p in parts) for i in range(4))
    return {"0.weight": folded, **{f"1.{k}": v for k, v in bn.items()}, "1.weight": torch.sqrt(var + eps),
            "1.bias": beta, "1.running_mean": mean, "1.running_var": var}


def _branched_prefixes(state: dict[str, torch.Tensor]) -> set[str]:
    """Module paths of branched ConvBNs in a state dict: a "scale." or "identity." child beside a "0.weight"."""
    prefixes = {k.split(".scale.")[0] if ".scale." in k else k.split(".identity.")[0]
                for k in state if any(b in k for b in BRANCH_KEYS)}
    return {p for p in prefixes if f"{p}.0.weight" in state and f"{p}.1.running_var" in state}


def fold_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with training branches as the folded (deployed) model's: for `--pretrained` into a plain
    model from a -rep run, whose branches would otherwise be dropped unfolded (a different function)."""
    prefixes = _branched_prefixes(state)
    out = {k: v for k, v in state.items() if not any(k.startswith(p + ".") for p in prefixes)}
    for p in prefixes:
        folded = fold_tensors(_children(state, p + "."))
        out.update({f"{p}.{k}": v for k, v in folded.items()})
    return out


def silence_new_branches(model: nn.Module, loaded: set[str]) -> None:
    """Zero the BN weight and bias of every branch of `model` that `loaded` (the state-dict keys just loaded)
    lacked: a -rep model started from plain weights (a zoo model) then computes exactly the plain model, and its
    branches grow from there (their BN weights still get gradients)."""
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, ConvBN):
                for suffix, bn in (("scale.1", module.scale[1] if module.scale is not None else None),
                                   ("identity", module.identity)):
                    if bn is not None and f"{name}.{suffix}.weight" not in loaded:
                        bn.weight.zero_()
                        bn.bias.zero_()


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (+ ReLU). With `rep`, two training-time branches are added to the BN output:
    `scale`, a 1x1 conv + BN with the same stride (as a slice) and groups (when the kernel is larger than 1x1), and
    `identity`, a BN of the input (when input and output channels match at stride 1)."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int], stride: int = 1, dilation: int = 1,
                 groups: int = 1, relu: bool = True, rep: bool = False) -> None:
        kh, kw = kernel
        pad = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
        super().__init__()
        self.add_module("0", nn.Conv2d(cin, cout, (kh, kw), stride=stride, padding=pad, dilation=dilation,
                                       groups=groups, bias=False))
        self.add_module("1", nn.BatchNorm2d(cout))
        self.relu = relu
        if relu:
            self.add_module("2", nn.ReLU())  # not in place: a hook on the BatchNorm must keep its output
        self.scale: nn.Module | None = None
        self.identity: nn.Module | None = None
        self.stride = stride
        if rep and (kh, kw) != (1, 1):
            self.scale = nn.Sequential(nn.Conv2d(cin, cout, 1, groups=groups, bias=False), nn.BatchNorm2d(cout))
        if rep and cin == cout and stride == 1:
            self.identity = nn.BatchNorm2d(cout)

    @property
    def branched(self) -> bool:
        return self.scale is not None or self.identity is not None

    def __getitem__(self, index: int) -> nn.Module:
        return self._modules[str(index)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self[1](self[0](x))
        if self.scale is not None:
            # a strided 1x1 conv is this slice; written so because PyTorch 2.14's CPU backward of a stride-2 1x1
            # conv on 3-channel channels_last input corrupted the heap (crash) on 128+ px
            y = y + self.scale(x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x)
        if self.identity is not None:
            y = y + self.identity(x)
        return self[2](y) if self.relu else y

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the branches into conv "0" and BN "1" (which then passes its input plus the summed bias)."""
        if not self.branched:
            return
        folded = fold_tensors(self.state_dict(), self[1].eps)  # "0.weight" and "1.*": the plain ConvBN's keys
        self.scale = self.identity = None
        self.load_state_dict(folded)


def fuse_branches(model: nn.Module) -> nn.Module:
    """Fold every `ConvBN`'s training branches in place (the model must be in eval mode); returns the model."""
    if model.training:
        raise ValueError("fuse_branches folds BatchNorm statistics: call model.eval() first")
    for module in model.modules():
        if isinstance(module, ConvBN):
            module.fuse()
    return model
