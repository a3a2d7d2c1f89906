"""Assertions several test files share."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the repository root


def assert_one_line_error(r, *needles) -> None:
    """A user-facing error: exit status 2, one line on stderr starting 'error: ', no traceback, every needle in it."""
    assert r.code == 2, (r.code, r.out, r.err)
    lines = [line for line in r.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    assert "Traceback" not in r.err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])


def run_cli(*args) -> None:
    """`defectkd ARGS...` through the real entry point, for module-scoped fixtures (the `cli` fixture is per
    test); a non-zero exit fails the fixture."""
    import sys

    from defectkd.cli import main

    old, sys.argv = sys.argv, ["defectkd", *map(str, args)]
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), f"exit {exc.code}: defectkd {' '.join(map(str, args))}"
    finally:
        sys.argv = old


def split_set(flat: Path, root: Path, n_train: int) -> tuple[Path, list[str]]:
    """A flat images/ + masks/ set copied as a DeepCrack-style set: train/ gets the first `n_train` pairs (by name),
    test/ the rest, and there is no val split. Returns (root, the train names)."""
    import shutil

    names = sorted(p.name for p in (flat / "images").iterdir())
    for split, chunk in (("train", names[:n_train]), ("test", names[n_train:])):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
            for n in chunk:
                shutil.copy(flat / sub / n, root / split / sub / n)
    return root, names[:n_train]
