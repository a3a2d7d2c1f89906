"""The configuration reference (docs/configuration.md), generated from the pydantic schemas so that it cannot
drift from what the code accepts: `python -m defectkd.config_docs > docs/configuration.md` (a test compares)."""

from __future__ import annotations

import re
import types
import typing

from pydantic import BaseModel

from defectkd.distill.config import LossTerm
from defectkd.tasks import TASKS


def _sections() -> list[tuple[str, type, type | None]]:
    """Per task: its training schema, then what distillation adds; the `losses` entry once, after the first task."""
    out = []
    for task in TASKS.values():
        train, distill = task.train_config(), task.distill_config()
        out += [(f"{task.label.capitalize()} training (`train {task.name}`)", train, None),
                (f"{task.label.capitalize()} distillation (`distill {task.name}`): adds", distill, train)]
        if len(out) == 2:
            out.append(("One entry of `losses`", LossTerm, None))
    return out


SECTIONS = _sections()


def type_name(annotation) -> str:
    """A short, readable type: `int`, `float or None`, `one of: a, b`, `list of LossTerm`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of: " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or None" if type(None) in args else "")
    if origin in (list, tuple):
        return f"{origin.__name__} of " + ", ".join(type_name(a) for a in args if a is not Ellipsis)
    if origin is dict:
        return "mapping"
    return getattr(annotation, "__name__", re.sub(r"typing\.", "", str(annotation)))


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.default
    return "-" if value is None else f"`{value}`"


def table(schema: type[BaseModel], parent: type[BaseModel] | None = None) -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in schema.model_fields.items():
        inherited = parent.model_fields.get(name) if parent is not None else None
        if inherited is not None and (inherited.annotation, inherited.default, inherited.description) == (
                field.annotation, field.default, field.description):
            continue
        meaning = (field.description or "").replace("|", "/")
        rows.append(f"| `{name}` | {type_name(field.annotation)} | {_default(field)} | {meaning} |")
    return rows


def render() -> str:
    lines = ["# Configuration reference", "",
             "Generated from the pydantic schemas (`tasks/<task>/config.py`, on `core/config.py` and "
             "`distill/config.py`) by "
             "`python -m defectkd.config_docs > docs/configuration.md`; a test fails when this file is stale.", "",
             "Precedence: schema defaults < `--config FILE.yaml` < command-line options < `key=value` overrides. "
             "An unknown key or a badly typed value is refused in one line that names the key and where it came "
             "from. Every run saves its resolved configuration as `config.yaml`; `--resume RUN` reads it back.", ""]
    for title, schema, parent in SECTIONS:
        lines += [f"## {title}", "", *table(schema, parent), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
