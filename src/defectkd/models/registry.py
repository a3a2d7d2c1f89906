"""The plain model registry: a name maps to a builder and a few facts shown by `defectkd models`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from defectkd.core.checkpoint import safe_load
from defectkd.core.errors import DefectKDError, WeightsError
from defectkd.models.rep import BRANCH_KEYS, fold_state_dict, fuse_branches, silence_new_branches


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    role: str  # "teacher" or "student"
    builder: Callable[..., nn.Module]
    description: str
    defaults: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> None:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec


def list_models(task: str | None = None) -> list[str]:
    """Registered model names, optionally only those of one task."""
    return [n for n, s in _REGISTRY.items() if task in (None, s.task)]


def model_spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DefectKDError(f"unknown model {name!r}{hint} (known: {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def build_model(name: str, pretrained: str | Path | None = None, **kwargs) -> nn.Module:
    """Build a registered model; `pretrained` is an optional local weights file (never downloaded)."""
    spec = model_spec(name)
    params = {**spec.defaults, **kwargs}
    try:
        model = spec.builder(**params)
    except TypeError as exc:
        raise DefectKDError(f"model {name!r}: {exc}") from None
    model.registry_name = name  # named in messages (e.g. unknown feature layers)
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model


def build_deployed(name: str, **kwargs) -> nn.Module:
    """A registered model as it deploys, in eval mode: a -rep student's training branches folded (models/rep.py),
    for counting and timing what runs after export."""
    return fuse_branches(build_model(name, **kwargs).eval())


def load_pretrained(model: nn.Module, path: str | Path) -> None:
    """Load local weights into `model`: a full state dict, a defectkd checkpoint, or an encoder-only
    state dict (as torchvision/timm ResNet files are) for smp teachers."""
    state = safe_load(path)
    if isinstance(state, dict) and "state_dict" in state:
        state = {k.removeprefix("model."): v for k, v in state["state_dict"].items()}
    if isinstance(state, dict) and hasattr(model, "pretrained_state"):  # e.g. torchvision keys for classifiers
        state = model.pretrained_state(state)
    own = model.state_dict()
    needed = [k for k in own if not any(b in k for b in BRANCH_KEYS)]  # a -rep model's branches may start new
    if isinstance(state, dict) and len(needed) == len(own):
        state = fold_state_dict(state)  # a -rep run's weights into a plain model: fold its training branches
    matched = set(state) & set(own)
    if matched:
        if len(matched) < len(needed) // 2:
            raise WeightsError(f"{path}: only {len(matched)} of {len(needed)} tensors match the model")
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise WeightsError(f"{path}: tensor shapes do not fit ({str(exc).splitlines()[0][:120]})") from None
        silence_new_branches(model, matched)  # a -rep model from plain weights starts as that model
        return
    if hasattr(model, "net") and hasattr(model.net, "encoder"):  # encoder-only file for a smp teacher
        encoder_keys = set(model.net.encoder.state_dict())
        state = {k: v for k, v in state.items() if k in encoder_keys}
        if not state:
            raise WeightsError(f"{path}: no tensor matches the model or its encoder")
        model.net.encoder.load_state_dict(state, strict=False)
        return
    raise WeightsError(f"{path}: no tensor matches the model")
