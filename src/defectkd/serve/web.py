"""The receiver's web view: a threaded stdlib HTTP server (no framework, nothing from the internet).

    /                   the page (static/index.html): live view per device + searchable history + crack-ratio plot
    /api/latest         the newest result of every device
    /api/results        history, newest first: ?device=&limit=&since=&until=&after_id=&task=
    /api/devices        per device: stored rows, last frame, last timestamp
    /api/stats          receiver counters: received, stored, malformed, dropped_oversize, refused_curve, ...
    /files/<id>/mask    a stored mask PNG; /files/<id>/frame a stored JPEG frame
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlparse

log = logging.getLogger("defectkd.serve.web")


def page() -> bytes:
    return resources.files("defectkd.serve").joinpath("static/index.html").read_bytes()


def _number(query: dict, key: str, kind=float, default=None):
    value = query.get(key, [""])[0]
    if value == "":
        return default
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{key}={value!r} is not a number") from None


class Handler(BaseHTTPRequestHandler):
    receiver = None  # set on a subclass by make_server
    server_version = "defectkd"

    def log_message(self, fmt: str, *args) -> None:  # quiet: the receiver's own log says what matters
        log.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, body: bytes, content_type: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data, status: int = 200) -> None:
        self._send(json.dumps(data).encode(), "application/json", status)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlparse(self.path)
        query = parse_qs(url.query)
        reader = self.receiver.reader
        try:
            if url.path in ("/", "/index.html"):
                self._send(page(), "text/html; charset=utf-8")
            elif url.path == "/api/latest":
                self._json({"results": reader.latest()})
            elif url.path == "/api/results":
                rows = reader.results(device=query.get("device", [None])[0] or None,
                                      limit=_number(query, "limit", int, 100), since=_number(query, "since"),
                                      until=_number(query, "until"), after_id=_number(query, "after_id", int),
                                      task=query.get("task", [None])[0] or None)
                self._json({"results": rows, "count": len(rows)})
            elif url.path == "/api/devices":
                self._json({"devices": reader.devices()})
            elif url.path == "/api/stats":
                self._json(self.receiver.stats())
            elif url.path.startswith("/files/"):
                self._file(url.path)
            else:
                self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
        except ValueError as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _file(self, path: str) -> None:
        parts = path.strip("/").split("/")
        if len(parts) != 3 or not parts[1].isdigit() or parts[2] not in ("mask", "frame"):
            self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
            return
        file = self.receiver.reader.file(int(parts[1]), parts[2])
        if file is None:
            self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
            return
        self._send(file.read_bytes(), "image/png" if parts[2] == "mask" else "image/jpeg")


def start_web(receiver, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """Serve the receiver's store and stats at host:port from a daemon thread; `shutdown()` stops it."""
    handler = type("ReceiverHandler", (Handler,), {"receiver": receiver})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="defectkd-web",
                     daemon=True).start()
    return server
