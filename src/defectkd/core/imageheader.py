"""An image's size read from its file header, without decoding it (stdlib only: the receiver and the edge runtime
use it too), so that a 20000 x 20000 picture is refused before it takes gigabytes."""

from __future__ import annotations

import os


def max_pixels(default: int = 100_000_000) -> int:
    """The pixel cap for images read from disk: DEFECTKD_MAX_PIXELS, else `default` (10000 x 10000)."""
    value = os.environ.get("DEFECTKD_MAX_PIXELS", "")
    return int(value) if value.isdigit() and int(value) > 0 else default


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, without decoding anything."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's first start-of-frame marker, without decoding anything."""
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[at + 7:at + 9], "big"), int.from_bytes(data[at + 5:at + 7], "big")
        at += 2 + length
    return None


def bmp_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a BMP's info header."""
    if len(data) < 26 or data[:2] != b"BM":
        return None
    return int.from_bytes(data[18:22], "little", signed=True), abs(int.from_bytes(data[22:26], "little", signed=True))


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG or BMP from its header; None for other formats or a header that says nothing."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return png_size(data)
    if data[:2] == b"\xff\xd8":
        return jpeg_size(data)
    if data[:2] == b"BM":
        return bmp_size(data)
    return None
