"""Is an image file whole? A byte-level check, and the one decode built on it, that every reader shares (training
data, `data check`, the torch-free runtime): OpenCV decodes a cut-short JPEG or PNG, greys out the missing part and
only warns on stderr, so a half-copied file would otherwise pass as an image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from defectkd.core.imageheader import header_size, max_pixels

TRUNCATED = "truncated image (the file ends before the image does)"


def truncated(path: str | Path, data: bytes) -> bool:
    """True for a JPEG without its end-of-image marker or a PNG without its IEND chunk."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jpg", ".jpeg") and data[:2] == b"\xff\xd8":
        return b"\xff\xd9" not in data[-1024:]  # a few encoders write padding after the marker
    if suffix == ".png" and data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-32:]
    return False


def decode(path: str | Path) -> tuple[np.ndarray | None, str]:
    """(BGR image, "") or (None, why): the whole file is read and decoded, a cut-short one refused, and one whose
    header gives more pixels than `max_pixels()` (DEFECTKD_MAX_PIXELS) refused before decoding. The one decode of
    an image file every reader uses (data/io.py for training and checks, deploy/sources.py at the edge)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if truncated(path, data):
        return None, TRUNCATED
    size, cap = header_size(data[:262144]), max_pixels()
    if size is not None and size[0] * size[1] > cap:
        return None, (f"{size[0]}x{size[1]} pixels, over the limit of {cap} (set DEFECTKD_MAX_PIXELS to read "
                      "larger images)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    return (img, "") if img is not None else (None, "unreadable or corrupt image")
