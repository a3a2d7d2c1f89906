"""Models from files: a defectkd checkpoint or deploy file rebuilt into its network, and local weights
loaded into a freshly built one (`--pretrained`). Reading the file is core's job; building is the registry's."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from defectkd.core.checkpoint import read_checkpoint
from defectkd.core.errors import WeightsError
from defectkd.models.registry import build_model, list_models
from defectkd.models.rep import fuse_branches


def load_checkpoint_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild the model saved in a defectkd checkpoint or deploy file; returns (model in eval mode with its
    training branches folded (models/rep.py: the deployed graph), hyper-parameters: model_name, model_kwargs,
    config with at least the threshold). A run folder means its weights/best.pt."""
    ckpt = read_checkpoint(path)
    hp = ckpt["hyper_parameters"]
    model_name = hp["model_name"]
    model = build_model(model_name, **hp.get("model_kwargs", {}))
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        reason = str(exc).splitlines()[0][:120]
        raise WeightsError(f"{path}: weights do not fit model {model_name!r} ({reason})") from None
    return fuse_branches(model.eval()), hp


def model_task(name: str | None) -> str | None:
    """The task of a registered model name (None: unknown name)."""
    from defectkd.models.registry import model_spec

    return model_spec(name).task if name in list_models() else None


def weights_task(path: str | Path) -> str:
    """The task of a checkpoint or deploy file without loading its tensors: recorded in its config, else its
    model's registry task; "segment" when the file cannot be read this way (the loaders then report why)."""
    from defectkd.core.checkpoint import weights_facts

    task, name = weights_facts(path)
    return task or model_task(name) or "segment"
