"""Run folders: runs/<task>/<name>/, never overwriting an existing run (name, name2, name3, ...)."""

from __future__ import annotations

from pathlib import Path


def new_run_dir(project: str | Path, task: str, name: str) -> Path:
    """Create and return a fresh run folder; an existing one gets the next numeric suffix."""
    base = Path(project) / task
    base.mkdir(parents=True, exist_ok=True)
    candidate = base / name
    n = 2
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            candidate = base / f"{name}{n}"
            n += 1


def resolve_run(path: str | Path) -> tuple[Path, Path]:
    """(run folder, last.pt) from a run folder or a weights file inside one."""
    from defectkd.core.errors import WeightsError

    path = Path(path)
    if path.is_dir():
        run, last = path, path / "weights" / "last.pt"
    else:
        run, last = path.parent.parent, path
    if not last.is_file():
        raise WeightsError(f"{last}: no checkpoint to resume from")
    if not (run / "config.yaml").is_file():
        raise WeightsError(f"{run / 'config.yaml'}: run config not found, cannot resume")
    return run, last


def resolve_weights(path: str | Path) -> Path:
    """A weights file from a run folder (weights/best.pt, else last.pt), a file path or a zoo name (core/zoo)."""
    from defectkd.core.errors import WeightsError
    from defectkd.core.zoo import weights_path

    path = weights_path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / "weights" / name).is_file():
                return path / "weights" / name
        raise WeightsError(f"{path}: run folder has no weights/best.pt or weights/last.pt")
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found (nor a zoo name: `defectkd models` lists them)")
    return path


def fresh_dir(path: str | Path, create: bool = True) -> Path:
    """An output folder that does not exist yet or is empty (created unless `create` is False);
    a non-empty one is refused, so nothing in it is ever overwritten."""
    from defectkd.core.errors import DataError

    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise DataError(f"{path}: already exists and is not empty; choose another --out (nothing was written)")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
