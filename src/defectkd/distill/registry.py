"""The plain registry of distillation methods: `list_methods()`, `build_loss(name, **params)`."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from defectkd.core.errors import ConfigError
from defectkd.distill.at import ATLoss
from defectkd.distill.cwd import CWDLoss
from defectkd.distill.dkd import DKDLoss
from defectkd.distill.fitnet import FitNetLoss
from defectkd.distill.kd import KDLoss
from defectkd.distill.mgd import MGDLoss
from defectkd.distill.pairwise import PairwiseLoss

_METHODS: dict[str, Callable[..., nn.Module]] = {
    "kd": KDLoss,
    "fitnet": FitNetLoss,
    "at": ATLoss,
    "cwd": CWDLoss,
    "mgd": MGDLoss,
    "dkd": DKDLoss,
    "pairwise": PairwiseLoss,
}


def list_methods() -> list[str]:
    return list(_METHODS)


def build_loss(name: str, **params) -> nn.Module:
    """A distillation loss module called as `loss(student, teacher, target=None)`."""
    if name not in _METHODS:
        raise ConfigError(f"unknown distillation method {name!r} (known: {', '.join(_METHODS)})")
    try:
        return _METHODS[name](**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"method {name!r}: {exc}") from None
