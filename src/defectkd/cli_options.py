"""Option groups for the CLI, declared once: a verb lists its own options and takes a group with `@options(...)`,
whose values reach it as one `options` dict (None: not given), so every verb that shares a group says the same."""

from __future__ import annotations

import functools
import inspect
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core


def _hide_flag_types() -> None:
    """typer 0.29 prints a `<bool>` type beside every on/off flag (--save, --baseline, --help), which reads as if
    the flag took a value; a flag shows no type, as in click and ultralytics. Left alone if typer changes shape."""
    option = getattr(typer.core, "TyperOption", None)
    shown = getattr(option, "display_type_rich", None)
    if shown is None or getattr(shown, "_defectkd", False):
        return

    def display_type_rich(self, ctx):  # noqa: ANN001, ANN202
        return None if getattr(self, "is_flag", False) and self.metavar is None else shown(self, ctx)

    display_type_rich._defectkd = True  # type: ignore[attr-defined]
    option.display_type_rich = display_type_rich


_hide_flag_types()

# What every run (train, distill, kfold) takes; the keys are config keys.
RUN: dict[str, tuple[Any, Any]] = {
    "data": (Annotated[str | None, typer.Option("--data", help="Data set folder.")], None),
    "epochs": (Annotated[int | None, typer.Option("--epochs")], None),
    "imgsz": (Annotated[int | None, typer.Option("--imgsz", help="Training image (crop) size.")], None),
    "batch": (Annotated[int | None, typer.Option("--batch")], None),
    "name": (Annotated[str | None, typer.Option("--name", help="Run name (runs/<task>/<name>).")], None),
    "seed": (Annotated[int | None, typer.Option("--seed")], None),
}
# Where a run trains: device and multi-process (DDP) settings (train, distill).
SCALE: dict[str, tuple[Any, Any]] = {
    "device": (Annotated[str | None, typer.Option("--device", help="auto, cpu or gpu.")], None),
    "devices": (Annotated[int | None, typer.Option("--devices", help="Processes (CPU) or GPUs per node; >1: DDP.")],
                None),
    "num_nodes": (Annotated[int | None, typer.Option("--num-nodes", help="Machines (launch with torchrun/SLURM).")],
                  None),
    "strategy": (Annotated[str | None, typer.Option("--strategy", help="auto, ddp or ddp_spawn.")], None),
}
# What a distillation takes beyond RUN (distill, and kfold with a teacher).
DISTILL: dict[str, tuple[Any, Any]] = {
    "teacher": (Annotated[str | None, typer.Option("--teacher", help="Teacher run folder or weights.")], None),
    "soft_labels": (Annotated[str | None, typer.Option("--soft-labels", help="Soft-label cache (offline KD).")], None),
    "method": (Annotated[str | None, typer.Option("--method", help="kd, fitnet, at, cwd, mgd, dkd, pairwise, rfkd "
                                                  "(see `defectkd methods`; default: segment rfkd, classify kd, "
                                                  "detect mgd).")], None),
}
CONFIG = Annotated[Path | None, typer.Option("--config", help="YAML config file.")]
OVERRIDES = Annotated[list[str] | None, typer.Argument(help="Config overrides key=value.")]
TASK = Annotated[str, typer.Argument(help="segment, classify or detect")]
RESUME = Annotated[Path | None, typer.Option("--resume", help="Run folder or last.pt to continue.")]


def options(*groups: dict[str, tuple[Any, Any]]):
    """Add the groups' options to a typer command; it receives their values as `options` (a dict)."""
    group = {k: v for g in groups for k, v in g.items()}

    def wrap(fn):
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)  # cli.py's annotations are postponed strings
        own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
               if p.name != "options"]
        added = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, annotation=a, default=d)
                 for k, (a, d) in group.items()]

        @functools.wraps(fn)
        def command(*args, **kwargs):
            chosen = {k: kwargs.pop(k) for k in group if k in kwargs}
            return fn(*args, options=chosen, **kwargs)

        command.__signature__ = sig.replace(parameters=own + added)
        command.__annotations__ = {**{p.name: p.annotation for p in own}, **{k: a for k, (a, _) in group.items()}}
        del command.__wrapped__  # typer must read this signature, not the function's own
        return command

    return wrap
