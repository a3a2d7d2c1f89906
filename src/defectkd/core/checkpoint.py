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

from defectkd.core.errors import WeightsError


def safe_load(path: str | Path, mmap: bool = False) -> Any:
    """torch.load restricted to tensors and plain containers; clear one-line errors otherwise. `mmap`: tensors stay
    in the file until touched (reading the model out of a training checkpoint leaves the optimiser state on disk);
    only for a file nothing rewrites while its tensors are in use."""
    from defectkd.core.zoo import weights_path

    path = weights_path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path}: empty file (0 bytes), not a weights file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # torch colours part of its message
        first = text.splitlines()[0] if text else "unsupported content"
        raise WeightsError(f"{path}: refused, the file holds objects other than weights ({first[:120]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WeightsError(f"{path}: not a readable weights file ({first[:120]})") from None


DEPLOY_FORMAT = "defectkd-deploy-1"
CLASSIFY_KEYS = ("task", "class_names", "imgsz")  # extra deploy-file keys of a classifier (and of a detector)
# how training drew its validation images: `val --split val` on the deploy file must score the same held-out draw
SPLIT_KEYS = ("val_fraction", "split_seed", "folds", "fold")


def _deploy_config(deploy: dict) -> dict:
    """The training-config values a deploy file carries (besides its threshold): one list for every reader."""
    return {k: deploy[k] for k in (*CLASSIFY_KEYS, *SPLIT_KEYS, "data") if deploy.get(k) is not None}


def save_deploy_file(checkpoint: str | Path, out: str | Path) -> Path:
    """Student-only deploy file from a training checkpoint: model name, kwargs, threshold and the bare
    model state dict (no optimiser, no teacher, no training heads' optimiser state), so that
    `build_model(name, **kwargs).load_state_dict(d["state_dict"])` restores it."""
    ckpt = safe_load(checkpoint, mmap=True)  # the optimiser state (2x the model for Adam) is never read
    hp = ckpt["hyper_parameters"]
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    deploy = {"format": DEPLOY_FORMAT, "model_name": hp["model_name"], "model_kwargs": hp.get("model_kwargs", {}),
              "threshold": hp.get("config", {}).get("threshold", 0.5), "state_dict": state}
    config = hp.get("config", {})
    if config.get("task") in ("classify", "detect"):  # what predict needs: class names (output order), input size
        deploy.update({k: config[k] for k in CLASSIFY_KEYS})
    if config.get("data"):  # where it was trained: an export's default size and parity image come from there
        deploy["data"] = str(config["data"])
    deploy.update({k: config[k] for k in SPLIT_KEYS if config.get(k) is not None})
    torch.save(deploy, out)
    return Path(out)


def store_config_values(files: list[str | Path], values: dict) -> None:
    """Write `values` into the config of training checkpoints and deploy files (e.g. a calibrated threshold), each
    replaced through a temporary file so an interruption leaves the old file whole."""
    import os

    for file in files:
        ckpt = safe_load(file)
        if ckpt.get("format") == DEPLOY_FORMAT:
            ckpt.update({k: v for k, v in values.items() if k == "threshold" or k in ckpt})
        else:
            ckpt["hyper_parameters"].setdefault("config", {}).update(values)
        tmp = Path(f"{file}.tmp")
        torch.save(ckpt, tmp)
        os.replace(tmp, file)


def read_checkpoint(path: str | Path) -> dict:
    """A defectkd checkpoint or deploy file as {"state_dict": model tensors under "model.", "hyper_parameters":
    model_name, model_kwargs, config}: the one shape every loader rebuilds from. A run folder means its best.pt."""
    from defectkd.core.runs import resolve_weights

    if Path(path).is_dir():  # a run folder: its best.pt (else last.pt)
        path = resolve_weights(path)
    ckpt = safe_load(path)
    if isinstance(ckpt, dict) and ckpt.get("format") == DEPLOY_FORMAT:
        hp = {"model_name": ckpt["model_name"], "model_kwargs": ckpt["model_kwargs"],
              "config": {"threshold": ckpt["threshold"], **_deploy_config(ckpt)}}
        ckpt = {"state_dict": {f"model.{k}": v for k, v in ckpt["state_dict"].items()}, "hyper_parameters": hp}
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise WeightsError(f"{path}: not a defectkd checkpoint (no state_dict / hyper_parameters)")
    if not ckpt["hyper_parameters"].get("model_name"):
        raise WeightsError(f"{path}: checkpoint does not name its model")
    return ckpt


def _cheap_load(path: str | Path) -> dict | None:
    """A checkpoint or deploy file with its tensors memory-mapped, not loaded; None when it cannot be read this way
    (the loaders then say why)."""
    from defectkd.core.zoo import weights_path

    try:
        ckpt = torch.load(weights_path(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # any unreadable file: left to safe_load's one-line errors
        return None
    return ckpt if isinstance(ckpt, dict) else None


def weights_facts(path: str | Path) -> tuple[str | None, str | None]:
    """(task recorded in the file, model name) of a checkpoint or deploy file, read cheaply; (None, None) when the
    file cannot be read this way."""
    ckpt = _cheap_load(path)
    if ckpt is None:
        return None, None
    if ckpt.get("format") == DEPLOY_FORMAT:
        return ckpt.get("task"), ckpt.get("model_name")
    hp = ckpt.get("hyper_parameters") or {}
    return (hp.get("config") or {}).get("task"), hp.get("model_name")


def weights_config(path: str | Path) -> dict:
    """The training config a checkpoint records (a deploy file: what it carries of it, e.g. its data folder and how
    it drew its validation images), read cheaply; {} when the file cannot be read this way."""
    ckpt = _cheap_load(path) or {}
    if ckpt.get("format") == DEPLOY_FORMAT:
        return _deploy_config(ckpt)
    return dict((ckpt.get("hyper_parameters") or {}).get("config") or {})
