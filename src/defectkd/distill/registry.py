"""The plain registry of distillation methods: `list_methods()`, `build_loss(name, **params)`."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import ConfigError
from .at import ATLoss
from .cwd import CWDLoss
from .dkd import DKDLoss
from .fitnet import FitNetLoss
from .kd import KDLoss
from .mgd import MGDLoss
from .pairwise import PairwiseLoss

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
