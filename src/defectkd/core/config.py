"""Validated configuration: the shared fields of every run, YAML files and key=value overrides.

Precedence: schema defaults < --config FILE.yaml < CLI options < key=value overrides.
Any unknown key or badly typed value is reported as one line naming the key and its source.
Each task's schema (tasks/<task>/config.py) adds only its own fields to `RunConfig`; distillation adds
`defectkd.distill.config.DistillFields`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from defectkd.core.errors import ConfigError


class YamlLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. PyYAML's 1.1 rules read `on: features` (a loss term's key) and a bare
    `no` or `off` as booleans, which turns a config's key into True."""


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
YamlLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))


def read_yaml(text: str) -> Any:
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 (a SafeLoader)


class ScaleOut(BaseModel):
    """Multi-process training through Lightning: processes per node, nodes, and the strategy (PyTorch DDP)."""

    devices: int = Field(1, ge=1, description="processes (CPU) or GPUs per node; >1 trains with DDP")
    num_nodes: int = Field(1, ge=1, description="machines; >1 needs a launcher (torchrun, SLURM) on each node")
    strategy: Literal["auto", "ddp", "ddp_spawn"] = Field(
        "auto", description="auto: one process, or ddp when devices/num_nodes ask for more")


class RunConfig(ScaleOut):
    """Fields every training run has, whatever its task (saved as the run's config.yaml)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    task: str = Field(description="fixed by the verb")
    data: str = Field(description="data set folder (any supported layout)")
    model: str = Field(description="registered model name (see `defectkd models`)")
    pretrained: str | None = Field(None, description="local weights file to start from")
    epochs: int = Field(50, ge=1, description="training epochs")
    imgsz: int = Field(256, ge=32, description="training image size")
    batch: int = Field(8, ge=1, description="images per step (per process under DDP)")
    workers: int = Field(2, ge=0, description="DataLoader worker processes (0: load in the training process)")
    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW/RMSprop weight decay")
    patience: int = Field(20, ge=0, description="early-stopping patience in epochs (0: off)")
    ema: float = Field(0.0, ge=0, lt=1, description=(
        "decay of an exponential moving average of the student's weights, validated and saved instead of the raw ones "
        "(0: off; e.g. 0.99)"))
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="share of training images held out for validation when there is no val split")
    split_seed: int = Field(0, description="seed of the train/validation split")
    seed: int = Field(
        0, description="seed of weights, batches, augmentation and noise (a resumed run continues the same streams)")
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = Field(
        "auto", description="auto: bf16 autocast on CPUs/GPUs that have it, else 32")
    cache: bool = Field(True, description="keep decoded images in memory")
    time_limit: float | None = Field(None, gt=0, description="stop training after this many minutes")
    skip_bad: bool = Field(False, description="drop unreadable/mismatched images instead of refusing")
    device: Literal["auto", "cpu", "gpu"] = Field("auto", description="auto: a GPU when there is one")
    project: str = Field("runs", description="root folder of runs (runs/<task>/<name>)")
    name: str | None = Field(
        None, description="run name (default: from model and method); an existing run is never overwritten")

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v  # `precision=32` on the command line parses as int


def _describe(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if not key:  # a rule across keys (model_validator)
        return f"{source}: {err['msg'].removeprefix('Value error, ')}"
    if err["type"] == "extra_forbidden":
        return f"{source}: unknown key {key!r}"
    if err["type"] == "missing":
        return f"{source}: required key {key!r} is missing"
    return f"{source}: key {key!r}: {err['msg']} (got {err.get('input')!r})"


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = read_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a mapping of key: value")
    return data


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """["lr=0.01", "loss=ce+dice"] -> {"lr": 0.01, "loss": "ce+dice"} (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = read_yaml(value) if value.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def build_config(schema: type[BaseModel], file: str | Path | None = None, options: dict[str, Any] | None = None,
                 overrides: list[str] | None = None) -> BaseModel:
    """Merge defaults, a YAML file, CLI options (None = not given) and overrides, then validate."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    layers = [
        (load_yaml(file) if file else {}, str(file)),
        ({k: v for k, v in (options or {}).items() if v is not None}, "option"),
        (parse_overrides(overrides), "override"),
    ]
    for layer, source in layers:
        for key, value in layer.items():
            merged[key] = value
            sources[key] = source
    try:
        return schema(**merged)
    except ValidationError as exc:
        key = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else ""
        raise ConfigError(_describe(exc, sources.get(key, "config"))) from None


# What a resumed run may change: how long and where it trains, not what it trains (its checkpoint, optimizer and
# schedule were made for the saved recipe, and its results must say which recipe produced them).
RESUMABLE = frozenset({"epochs", "time_limit", "patience", "workers", "cache", "device", "devices", "num_nodes",
                       "strategy", "precision"})


def check_resume(saved: dict[str, Any], cfg: BaseModel, run_config: str | Path) -> None:
    """Refuse a resume whose options change the run's recipe, naming the first changed key and both values.
    Keys the run's config.yaml does not hold (fields added since it was written) are not compared."""
    new = read_yaml(yaml.safe_dump(cfg.model_dump(), sort_keys=False))  # compared as config.yaml stores them
    for key, value in new.items():
        if key in saved and key not in RESUMABLE and saved[key] != value:
            raise ConfigError(f"{run_config}: {key} is {saved[key]!r} in this run; resuming with {key}={value!r} "
                              f"would change its recipe (a resume may change only {', '.join(sorted(RESUMABLE))}): "
                              "start a new run instead")
