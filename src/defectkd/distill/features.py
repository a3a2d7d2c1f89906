"""Intermediate feature maps by module path: forward hooks on teacher and student.

Feature distillation (FitNets, AT, MGD, CWD on features, RFKD's pair-wise term) compares the
outputs of named submodules, e.g. `standard.blocks` in MCFF-L and `net.decoder.blocks.2` in a
smp U-Net. Paths are those of `model.named_modules()`; `defectkd layers --model NAME` lists them
with their output shapes so a user can pick a pair.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch
from torch import nn

from defectkd.core.errors import ConfigError


@dataclass(frozen=True)
class LayerInfo:
    path: str
    kind: str  # module class name
    shape: tuple[int, ...]  # output shape for the probe input, batch of 1
    params: int  # parameters of the module and its children


def list_layers(model: nn.Module, imgsz: int = 64) -> list[LayerInfo]:
    """Every submodule whose output on a (1, 3, imgsz, imgsz) probe is one tensor, in call order."""
    seen: dict[str, LayerInfo] = {}
    hooks = []
    for path, module in model.named_modules():
        if not path:
            continue

        def record(mod, inputs, output, path=path):
            if isinstance(output, torch.Tensor) and path not in seen:
                seen[path] = LayerInfo(path, type(mod).__name__, tuple(output.shape),
                                       sum(p.numel() for p in mod.parameters()))

        hooks.append(module.register_forward_hook(record))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            _forward_all(model, torch.zeros(1, 3, imgsz, imgsz))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return list(seen.values())


def _forward_all(model: nn.Module, x: torch.Tensor):
    return model.forward_heads(x) if hasattr(model, "forward_heads") else model(x)


def check_paths(model: nn.Module, paths: list[str], who: str) -> None:
    """Refuse unknown module paths in one line, naming close matches and where to list them all."""
    known = dict(model.named_modules())
    for path in paths:
        if path in known and path:
            continue
        close = difflib.get_close_matches(path, [p for p in known if p], n=3, cutoff=0.5)
        hint = f"; close: {', '.join(close)}" if close else ""
        name = getattr(model, "registry_name", None) or type(model).__name__
        raise ConfigError(f"feature layer {path!r} does not exist in the {who} ({name}){hint}; "
                          f"list them with `defectkd layers --model {name}`")


class FeatureTaps:
    """Keeps the latest outputs of the named modules of one model, refreshed on every forward.

    Detach nothing here: the student's features must carry gradients, and the teacher is run under
    `torch.no_grad()` by its caller, so its features carry none.
    """

    def __init__(self, model: nn.Module, paths: list[str], who: str = "model") -> None:
        check_paths(model, paths, who)
        self.paths = list(dict.fromkeys(paths))
        self.features: dict[str, torch.Tensor] = {}
        modules = dict(model.named_modules())
        self._hooks = [modules[p].register_forward_hook(self._keeper(p)) for p in self.paths]

    def _keeper(self, path: str):
        def keep(module, inputs, output):
            if not isinstance(output, torch.Tensor):
                raise ConfigError(f"feature layer {path!r} ({type(module).__name__}) does not return one tensor; "
                                  "pick another layer")
            self.features[path] = output
        return keep

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def __getitem__(self, path: str) -> torch.Tensor:
        return self.features[path]


def parse_feature_pairs(items: list[str]) -> list[tuple[str, str]]:
    """["standard.blocks:net.decoder.blocks.2"] -> [("standard.blocks", "net.decoder.blocks.2")]."""
    pairs = []
    for item in items:
        student, sep, teacher = item.partition(":")
        if not sep or not student.strip() or not teacher.strip():
            raise ConfigError(f"feat {item!r}: expected student.path:teacher.path")
        pairs.append((student.strip(), teacher.strip()))
    return pairs
