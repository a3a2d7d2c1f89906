"""Loading weights safely and rebuilding models from defectkd checkpoints.

A defectkd checkpoint is a Lightning checkpoint whose `hyper_parameters` hold the model name and
its keyword arguments, so `load_checkpoint_model` can rebuild the exact network. Everything is read
with `torch.load(weights_only=True)`: a file that carries pickled code is refused, never executed.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import WeightsError


def safe_load(path: str | Path) -> Any:
    """torch.load restricted to tensors and plain containers; clear one-line errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported content"
        raise WeightsError(f"{path}: refused, the file holds objects other than weights ({first[:120]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable weights file ({str(exc).splitlines()[0][:120]})") from None


def load_checkpoint_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the model saved in a defectkd checkpoint; returns (model in eval mode, hyper-parameters)."""
    from ..models import build_model

    ckpt = safe_load(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise WeightsError(f"{path}: not a defectkd checkpoint (no state_dict / hyper_parameters)")
    hp = ckpt["hyper_parameters"]
    model_name = hp.get("model_name")
    if not model_name:
        raise WeightsError(f"{path}: checkpoint does not name its model")
    model = build_model(model_name, **hp.get("model_kwargs", {}))
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        reason = str(exc).splitlines()[0][:120]
        raise WeightsError(f"{path}: weights do not fit model {model_name!r} ({reason})") from None
    return model.eval(), hp
