"""Is an image file whole? A byte-level check every reader (training data, `data check`, the torch-free runtime)
shares: OpenCV decodes a cut-short JPEG or PNG, greys out the missing part and only warns on stderr, so a
half-copied file would otherwise pass as an image."""

from __future__ import annotations

from pathlib import Path

TRUNCATED = "truncated image (the file ends before the image does)"


def truncated(path: str | Path, data: bytes) -> bool:
    """True for a JPEG without its end-of-image marker or a PNG without its IEND chunk."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jpg", ".jpeg") and data[:2] == b"\xff\xd8":
        return b"\xff\xd9" not in data[-1024:]  # a few encoders write padding after the marker
    if suffix == ".png" and data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-32:]
    return False
