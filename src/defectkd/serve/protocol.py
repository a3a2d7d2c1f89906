"""The edge-to-PC message: what a sender puts on the wire and what a receiver accepts (no torch, no images decoded).

A result is one ZeroMQ multipart message, no base64:

    part 0: JSON header (UTF-8 object): v, device_id, frame, timestamp, task, metrics, ... (see HEADER_REQUIRED)
    part 1: the mask as PNG bytes (empty for tasks without a mask, e.g. classify)
    part 2: optional: the frame as JPEG bytes

CURVE keys are ZeroMQ certificates (`zmq.auth.create_certificates`): NAME.key (public) and NAME.key_secret
(public + secret). A key folder holds `server.key_secret` on the receiver (and every allowed client's
NAME.key), and on a sender its own NAME.key_secret plus `server.key`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

PROTOCOL_VERSION = 1
HEADER_REQUIRED = {"device_id": str, "frame": int, "timestamp": (int, float), "task": str}
TASKS = ("segment", "classify", "detect")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8"
MAX_DEVICE_ID = 128
SERVER_KEY = "server"


class MalformedMessage(ValueError):
    """A message that is not a result (wrong part count, bad JSON, missing or wrong fields, not PNG/JPEG)."""


class KeyFileError(ValueError):
    """A CURVE key folder or file is missing or ambiguous."""


def tcp_endpoint(url: str, default_host: str = "127.0.0.1") -> str:
    """zmq://HOST:PORT, tcp://HOST:PORT, HOST:PORT or PORT -> tcp://HOST:PORT (PORT may be * to bind any free port)."""
    text = str(url).strip()
    for scheme in ("zmq://", "tcp://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme):]
            break
    else:
        if "://" in text:
            raise ValueError(f"{url}: expected zmq://HOST:PORT or tcp://HOST:PORT")
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = default_host, text
    host = host or default_host
    if port != "*" and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{url}: the port must be a number from 1 to 65535 (or * when binding)")
    return f"tcp://{host}:{port}"


def is_loopback(endpoint: str) -> bool:
    host = endpoint.split("://", 1)[-1].rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def encode(header: dict, mask_png: bytes = b"", frame_jpeg: bytes | None = None) -> list[bytes]:
    parts = [json.dumps(header, separators=(",", ":")).encode(), mask_png or b""]
    if frame_jpeg:
        parts.append(frame_jpeg)
    return parts


def _valid_device_id(value: str) -> bool:
    return 0 < len(value) <= MAX_DEVICE_ID and value.isprintable()


def decode(parts: list[bytes]) -> tuple[dict, bytes, bytes | None]:
    """(header, mask PNG bytes, frame JPEG bytes or None); MalformedMessage when it is not a result."""
    if len(parts) not in (2, 3):
        raise MalformedMessage(f"{len(parts)} parts (expected 2 or 3: header, mask, optional frame)")
    try:
        header = json.loads(parts[0].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedMessage(f"header is not JSON ({str(exc)[:80]})") from None
    if not isinstance(header, dict):
        raise MalformedMessage("header is not a JSON object")
    for key, kind in HEADER_REQUIRED.items():
        value = header.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise MalformedMessage(f"header field {key!r} missing or not {getattr(kind, '__name__', 'a number')}")
    if not _valid_device_id(header["device_id"]):
        raise MalformedMessage(f"device_id must be 1-{MAX_DEVICE_ID} printable characters")
    if header["frame"] < 0 or not math.isfinite(header["timestamp"]):
        raise MalformedMessage("frame must be >= 0 and timestamp a finite number")
    if header["task"] not in TASKS:
        raise MalformedMessage(f"task {header['task']!r} is not one of {', '.join(TASKS)}")
    if "metrics" in header and not isinstance(header["metrics"], dict):
        raise MalformedMessage("metrics must be a JSON object")
    mask = bytes(parts[1])
    if mask and not mask.startswith(PNG_SIGNATURE):
        raise MalformedMessage("part 1 is not a PNG mask")
    frame = bytes(parts[2]) if len(parts) == 3 else None
    if frame is not None and not frame.startswith(JPEG_SIGNATURE):
        raise MalformedMessage("part 2 is not a JPEG frame")
    return header, mask, frame or None


def safe_name(device_id: str) -> str:
    """A folder name for a device id: letters, digits, '.', '_' and '-' only, no leading dot, at most 64."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", device_id)[:64]
    if name.startswith("."):
        name = "_" + name[1:]
    return name or "unknown"


# ---- CURVE keys -----------------------------------------------------------------------------------------------

def create_keys(out: str | Path, name: str) -> tuple[Path, Path]:
    """Write OUT/NAME.key (public) and OUT/NAME.key_secret (secret, mode 600); refuse to overwrite."""
    import zmq.auth

    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or name.startswith("."):
        raise KeyFileError(f"key name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    out = Path(out)
    public, secret = out / f"{name}.key", out / f"{name}.key_secret"
    existing = [str(p) for p in (public, secret) if p.exists()]
    if existing:
        raise KeyFileError(f"{', '.join(existing)} already exists (keys are never overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    made_public, made_secret = zmq.auth.create_certificates(str(out), name)
    Path(made_secret).chmod(0o600)
    return Path(made_public), Path(made_secret)


def _load(path: Path) -> tuple[bytes, bytes | None]:
    import zmq.auth

    try:
        return zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a ZeroMQ certificate ({exc})") from None


def server_keys(folder: str | Path) -> tuple[bytes, bytes]:
    """The receiver's (public, secret) from FOLDER/server.key_secret."""
    path = Path(folder) / f"{SERVER_KEY}.key_secret"
    if not path.is_file():
        raise KeyFileError(f"{path}: no server key (make one with `defectkd keys --out {folder} --name {SERVER_KEY}`)")
    public, secret = _load(path)
    if not secret:
        raise KeyFileError(f"{path}: holds no secret key")
    return public, secret


def client_public_keys(folder: str | Path) -> dict[bytes, str]:
    """Allowed senders: z85 public key -> name, for every FOLDER/NAME.key except the server's own."""
    keys = {}
    for path in sorted(Path(folder).glob("*.key")):
        if path.stem != SERVER_KEY:
            keys[_load(path)[0]] = path.stem
    return keys


def client_keys(folder: str | Path, name: str | None = None) -> tuple[bytes, bytes, bytes]:
    """A sender's (public, secret, server public): FOLDER/NAME.key_secret (or the only *.key_secret that is
    not the server's) and FOLDER/server.key."""
    folder = Path(folder)
    server = folder / f"{SERVER_KEY}.key"
    if not server.is_file():
        raise KeyFileError(f"{server}: the receiver's public key is missing (copy it from the receiver's key folder)")
    if name and (folder / f"{name}.key_secret").is_file():
        path = folder / f"{name}.key_secret"
    else:
        candidates = [p for p in sorted(folder.glob("*.key_secret")) if p.stem != SERVER_KEY]
        if len(candidates) != 1:
            found = ", ".join(p.name for p in candidates) or "none"
            raise KeyFileError(f"{folder}: expected one sender key NAME.key_secret (found {found}); "
                            f"name it after --device-id or keep only one")
        path = candidates[0]
    public, secret = _load(path)
    if not secret:
        raise KeyFileError(f"{path}: holds no secret key")
    return public, secret, _load(server)[0]
