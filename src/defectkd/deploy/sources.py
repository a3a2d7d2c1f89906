"""What `predict` reads: one image, every image in a folder, or a glob pattern."""

from __future__ import annotations

import glob
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class SourceError(ValueError):
    """Nothing to read at the given source (the CLI turns it into one line)."""


def list_sources(source: str | Path) -> list[Path]:
    """Image files named by SOURCE (a file, a folder, searched recursively, or a glob), sorted."""
    text = str(source)
    path = Path(text)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    elif any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
    else:
        raise SourceError(f"{source}: no such file, folder or pattern")
    if not files:
        raise SourceError(f"{source}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return files
