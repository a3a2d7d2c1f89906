"""Trained weights that ship with the package (the model zoo): a name stands for a deploy file here, so `predict`,
`val`, `export` and `--pretrained` take `mcff-edge-n-deepcrack` as they take a path, offline and without training.

index.json holds each entry's model card: task, model, data and its licence terms, the command that trained it,
its test metrics, input size and stored threshold (docs/zoo.md prints them). Nothing is ever downloaded.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path


@cache
def entries() -> dict[str, dict]:
    """Zoo name -> model card (with "file", the deploy file's name in this package)."""
    return json.loads(resources.files(__name__).joinpath("index.json").read_text())


def folder() -> Path:
    return Path(str(resources.files(__name__)))


def zoo_file(name: str | Path) -> Path | None:
    """The deploy file of a zoo name (a bare name, not a path that exists); None otherwise."""
    text = str(name)
    if text in entries() and not Path(text).exists():
        return folder() / entries()[text]["file"]
    return None


def weights_path(name: str | Path) -> Path:
    """The file a weights argument names: a zoo entry's deploy file, or the path as given."""
    return zoo_file(name) or Path(name)


def is_zoo_file(path: str | Path) -> bool:
    """Is `path` one of the zoo's own files (outputs next to it would land inside the installed package)?"""
    try:
        return Path(path).resolve().parent == folder().resolve()
    except OSError:
        return False
