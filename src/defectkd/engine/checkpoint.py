"""Loading weights safely and rebuilding models from defectkd checkpoints.

A defectkd checkpoint is a Lightning checkpoint whose `hyper_parameters` hold the model name and
its keyword arguments, so `load_checkpoint_model` can rebuild the exact network. Everything is read
with `torch.load(weights_only=True)`: a file that carries pickled code is refused, never executed.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from defectkd.errors import WeightsError


def safe_load(path: str | Path) -> Any:
    """torch.load restricted to tensors and plain containers; clear one-line errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # torch colours part of its message
        first = text.splitlines()[0] if text else "unsupported content"
        raise WeightsError(f"{path}: refused, the file holds objects other than weights ({first[:120]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable weights file ({str(exc).splitlines()[0][:120]})") from None


DEPLOY_FORMAT = "defectkd-deploy-1"
CLASSIFY_KEYS = ("task", "class_names", "imgsz")  # extra deploy-file keys of a classifier (and of a detector)


def save_deploy_file(checkpoint: str | Path, out: str | Path) -> Path:
    """Student-only deploy file from a training checkpoint: model name, kwargs, threshold and the bare
    model state dict (no optimiser, no teacher, no training heads' optimiser state), so that
    `build_model(name, **kwargs).load_state_dict(d["state_dict"])` restores it."""
    ckpt = safe_load(checkpoint)
    hp = ckpt["hyper_parameters"]
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    deploy = {"format": DEPLOY_FORMAT, "model_name": hp["model_name"], "model_kwargs": hp.get("model_kwargs", {}),
              "threshold": hp.get("config", {}).get("threshold", 0.5), "state_dict": state}
    config = hp.get("config", {})
    if config.get("task") in ("classify", "detect"):  # what predict needs: class names (output order), input size
        deploy.update({k: config[k] for k in CLASSIFY_KEYS})
    torch.save(deploy, out)
    return Path(out)


def load_checkpoint_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the model saved in a defectkd checkpoint or deploy file; returns (model in eval mode,
    hyper-parameters: model_name, model_kwargs, config with at least the threshold). A run folder means its
    weights/best.pt."""
    from defectkd.engine.runs import resolve_weights
    from defectkd.models import build_model

    if Path(path).is_dir():  # a run folder: its best.pt (else last.pt)
        path = resolve_weights(path)
    ckpt = safe_load(path)
    if isinstance(ckpt, dict) and ckpt.get("format") == DEPLOY_FORMAT:
        hp = {"model_name": ckpt["model_name"], "model_kwargs": ckpt["model_kwargs"],
              "config": {"threshold": ckpt["threshold"], **{k: ckpt[k] for k in CLASSIFY_KEYS if k in ckpt}}}
        ckpt = {"state_dict": {f"model.{k}": v for k, v in ckpt["state_dict"].items()}, "hyper_parameters": hp}
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


def weights_task(path: str | Path) -> str:
    """"classify", "detect" or "segment" for a checkpoint or deploy file, read cheaply (tensors memory-mapped,
    not loaded); "segment" when the file cannot be read this way (the loaders then report why)."""
    try:
        ckpt = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # any unreadable file: left to safe_load's one-line errors
        return "segment"
    if not isinstance(ckpt, dict):
        return "segment"
    if ckpt.get("format") == DEPLOY_FORMAT:
        task, name = ckpt.get("task"), ckpt.get("model_name")
    else:
        hp = ckpt.get("hyper_parameters") or {}
        task, name = (hp.get("config") or {}).get("task"), hp.get("model_name")
    if task:
        return str(task)
    from defectkd.models import list_models

    return next((t for t in ("classify", "detect") if name in list_models(t)), "segment")
