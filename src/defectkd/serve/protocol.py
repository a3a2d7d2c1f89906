"""The edge-to-PC message: what a sender puts on the wire and what a receiver accepts (no torch, no images decoded).

A result is one ZeroMQ multipart message, no base64:

    part 0: JSON header (UTF-8 object): v, device_id, frame, timestamp, task, boot, seq, metrics, ...
            (see HEADER_REQUIRED; strict JSON: NaN and Infinity are refused)
    part 1: the mask as PNG bytes (empty for tasks without a mask, e.g. classify)
    part 2: optional: the frame as JPEG bytes

A sender's DEALER socket sends it to the receiver's ROUTER, which answers, once the result is committed, with
{"boot": ..., "ack": [seq, ...], "reject": {seq: reason}} (at-least-once delivery; (device_id, boot, seq) makes a
resent message a duplicate the receiver drops). Every refusal has a reason code (`MalformedMessage.reason`).

CURVE keys are ZeroMQ certificates (`zmq.auth.create_certificates`): NAME.key (public) and NAME.key_secret
(public + secret). A key folder holds `server.key_secret` on the receiver (and every allowed client's
NAME.key), and on a sender its own NAME.key_secret plus `server.key`. A sender's key speaks for the device ids in
its metadata line `devices = "cam-1,cam-2"` (`defectkd keys --devices`), or else for the device id NAME only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from defectkd.core.imageheader import jpeg_size, png_size

PROTOCOL_VERSION = 2
HEADER_REQUIRED = {"device_id": str, "frame": int, "timestamp": (int, float), "task": str}
TASKS = ("segment", "classify", "detect")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8"
MAX_DEVICE_ID = 64
DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")
DEFAULT_MAX_PIXELS = 40_000_000
SERVER_KEY = "server"


class MalformedMessage(ValueError):
    """A message that is not a result (wrong part count, bad JSON, missing or wrong fields, not PNG/JPEG, too
    many pixels); `reason` is a short code the receiver counts by."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


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


def valid_device_id(value: object) -> bool:
    """1-64 characters, a letter or digit first, then letters, digits and . _ : @ - (safe in paths, URLs, JS)."""
    return isinstance(value, str) and DEVICE_ID.fullmatch(value) is not None


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:20]} overflows: Infinity is not JSON")
    return value


def strict_json(text: str | bytes):
    """json.loads that refuses NaN, Infinity and -Infinity, written out or as an overflowing 1e999 (Python's json
    accepts them; a browser's JSON.parse does not, and one such value would break the web API for everyone)."""
    return json.loads(text, parse_constant=_no_constants, parse_float=_finite_float)


def message_key(header: dict) -> tuple[str, int] | None:
    """(boot, seq) of a header: the sender's numbering, the key of acknowledgements and of deduplication."""
    boot, seq = header.get("boot"), header.get("seq")
    ok = isinstance(boot, str) and 0 < len(boot) <= 64 and isinstance(seq, int) and not isinstance(seq, bool)
    return (boot, seq) if ok else None


def reply_key(parts: list[bytes], limit: int = 65536) -> tuple[str, int] | None:
    """(boot, seq) of a refused message whose header can be read at all, so it can still be answered."""
    if not parts or len(parts[0]) > limit:
        return None
    try:
        header = json.loads(bytes(parts[0]))
    except ValueError:
        return None
    return message_key(header) if isinstance(header, dict) else None


def _check_pixels(data: bytes, size: tuple[int, int] | None, what: str, max_pixels: int) -> None:
    if size is None:
        raise MalformedMessage(f"{what}: no image size in its header", "bad_image")
    if size[0] * size[1] > max_pixels:
        raise MalformedMessage(f"{what} of {size[0]}x{size[1]} pixels (limit {max_pixels})", "too_many_pixels")


def decode(parts: list[bytes], max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[dict, bytes, bytes | None]:
    """(header, mask PNG bytes, frame JPEG bytes or None); MalformedMessage (with a reason code) when it is not a
    result. Image sizes are read from the PNG/JPEG headers, nothing is decoded."""
    if len(parts) not in (2, 3):
        raise MalformedMessage(f"{len(parts)} parts (expected 2 or 3: header, mask, optional frame)", "parts")
    try:
        header = strict_json(bytes(parts[0]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        reason = "non_finite" if "is not JSON" in str(exc) else "json"
        raise MalformedMessage(f"header is not strict JSON ({str(exc)[:80]})", reason) from None
    if not isinstance(header, dict):
        raise MalformedMessage("header is not a JSON object", "json")
    for key, kind in HEADER_REQUIRED.items():
        value = header.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise MalformedMessage(f"header field {key!r} missing or not {getattr(kind, '__name__', 'a number')}",
                                   "fields")
    if not valid_device_id(header["device_id"]):
        raise MalformedMessage(f"device_id must be 1-{MAX_DEVICE_ID} of letters, digits and . _ : @ -, a letter "
                               "or digit first", "device_id")
    if header["frame"] < 0:
        raise MalformedMessage("frame must be >= 0", "fields")
    if header["task"] not in TASKS:
        raise MalformedMessage(f"task {header['task']!r} is not one of {', '.join(TASKS)}", "fields")
    if "metrics" in header and not isinstance(header["metrics"], dict):
        raise MalformedMessage("metrics must be a JSON object", "fields")
    mask = bytes(parts[1])
    if mask:
        if not mask.startswith(PNG_SIGNATURE):
            raise MalformedMessage("part 1 is not a PNG mask", "bad_image")
        _check_pixels(mask, png_size(mask), "mask", max_pixels)
    frame = bytes(parts[2]) if len(parts) == 3 else None
    if frame:
        if not frame.startswith(JPEG_SIGNATURE):
            raise MalformedMessage("part 2 is not a JPEG frame", "bad_image")
        _check_pixels(frame, jpeg_size(frame), "frame", max_pixels)
    return header, mask, frame or None


def safe_name(device_id: str) -> str:
    """A folder name for a device id: letters, digits, '.', '_' and '-' only, no leading dot, at most 64."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", device_id)[:64]
    if name.startswith("."):
        name = "_" + name[1:]
    return name or "unknown"


# ---- CURVE keys -----------------------------------------------------------------------------------------------

def create_keys(out: str | Path, name: str, devices: list[str] | None = None) -> tuple[Path, Path]:
    """Write OUT/NAME.key (public) and OUT/NAME.key_secret (secret, mode 600); refuse to overwrite. `devices`: the
    device ids this key may speak for (default: NAME)."""
    import zmq.auth

    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or name.startswith("."):
        raise KeyFileError(f"key name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    bad = [d for d in devices or [] if not valid_device_id(d)]
    if bad:
        raise KeyFileError(f"--devices {bad[0]!r}: not a device id (1-64 letters, digits and . _ : @ -)")
    out = Path(out)
    public, secret = out / f"{name}.key", out / f"{name}.key_secret"
    existing = [str(p) for p in (public, secret) if p.exists()]
    if existing:
        raise KeyFileError(f"{', '.join(existing)} already exists (keys are never overwritten)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        made_public, made_secret = zmq.auth.create_certificates(str(out), name)
        Path(made_secret).chmod(0o600)
        if devices:  # into both files (pyzmq writes metadata into the secret one only): the receiver reads NAME.key
            line = 'metadata\n    devices = "' + ",".join(devices) + '"\n'
            for made in (made_public, made_secret):
                Path(made).write_text(Path(made).read_text().replace("metadata\n", line, 1))
    except OSError as exc:
        raise KeyFileError(f"--out {out}: {exc.strerror or exc}") from None
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


def key_devices(path: Path) -> frozenset[str]:
    """The device ids a key file may speak for: its metadata `devices = "a,b"`, else its own name."""
    in_metadata = False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith((" ", "\t")):
            in_metadata = line.strip() == "metadata"
            continue
        key, sep, value = line.strip().partition("=")
        if in_metadata and sep and key.strip() == "devices":
            return frozenset(d.strip() for d in value.strip().strip('"').split(",") if d.strip())
    return frozenset([path.stem])


def client_public_keys(folder: str | Path) -> dict[bytes, str]:
    """Allowed senders: z85 public key -> name, for every FOLDER/NAME.key except the server's own."""
    return {key: name for key, (name, _) in client_key_table(folder).items()}


def client_key_table(folder: str | Path) -> dict[bytes, tuple[str, frozenset[str]]]:
    """Allowed senders: z85 public key -> (name, device ids it may speak for), from every FOLDER/NAME.key."""
    keys = {}
    for path in sorted(Path(folder).glob("*.key")):
        if path.stem != SERVER_KEY:
            keys[_load(path)[0]] = (path.stem, key_devices(path))
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
