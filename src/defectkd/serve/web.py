"""The receiver's web view: a threaded stdlib HTTP server (no framework, nothing from the internet).

    /                   the page (static/index.html): live view per device + searchable history + crack-ratio plot
    /api/latest         the newest result of every device
    /api/results        history, newest first, one page: ?device=&limit=&since=&until=&after_id=&before_id=&task=
                        (limit <= PAGE; "next" is the URL of the following page, null on the last)
    /api/devices        per device: stored rows, last frame, last timestamp
    /api/stats          receiver counters: received, stored, duplicates, acknowledged, malformed, rejected, ...
    /files/<id>/mask    a stored mask PNG; /files/<id>/frame a stored JPEG frame

The API's JSON is strict (the receiver refuses NaN/Infinity) and its rows are clipped (`clip`: long strings, lists
and metric objects are cut, with a note) so that one oversized result cannot stall every page that polls it.
With a token (`--http-token` or DEFECTKD_HTTP_TOKEN) every route needs it: `?token=` once (the page then keeps it
in a same-site cookie), the cookie, or an `Authorization: Bearer` header.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import threading
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, quote, urlparse

log = logging.getLogger("defectkd.serve.web")
PAGE = 1000  # rows per /api/results page at most
MAX_STRING, MAX_ITEMS, MAX_METRICS_BYTES = 512, 100, 16384
COOKIE = "defectkd_token"


def clip(value, depth: int = 0):
    """A JSON value cut to what a page can show: strings to MAX_STRING characters, lists and objects to MAX_ITEMS
    entries, nesting to 6 levels; a non-finite number (a row an older receiver stored) becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + f"... ({len(value)} characters)"
    if depth >= 6 and isinstance(value, (list, dict)):
        return "..."
    if isinstance(value, list):
        head = [clip(v, depth + 1) for v in value[:MAX_ITEMS]]
        return head + ([f"... ({len(value)} items)"] if len(value) > MAX_ITEMS else [])
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(k)[:MAX_STRING]: clip(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["..."] = f"{len(items)} keys"
        return out
    return value


def clip_row(row: dict) -> dict:
    """A stored row for the live API: every field clipped; metrics over MAX_METRICS_BYTES replaced by a note."""
    row = {k: clip(v) for k, v in row.items()}
    size = len(json.dumps(row.get("metrics", {})))
    if size > MAX_METRICS_BYTES:
        row["metrics"] = {"clipped": f"{size} bytes of metrics; the full row is in results.sqlite"}
    return row


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

    def _send(self, body: bytes, content_type: str, status: int = 200, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data, status: int = 200) -> None:
        self._send(json.dumps(data, allow_nan=False).encode(), "application/json", status)

    def _authorised(self, query: dict) -> bool:
        """No token set, or the request carries it (query, cookie or bearer header; compared in constant time)."""
        token = self.receiver.http_token
        if not token:
            return True
        offered = [query.get("token", [""])[0]]
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            offered.append(auth[7:].strip())
        cookie = SimpleCookie()
        try:
            cookie.load(self.headers.get("Cookie", ""))
        except Exception:  # a malformed cookie header is just no cookie
            cookie = SimpleCookie()
        if COOKIE in cookie:
            offered.append(cookie[COOKIE].value)
        return any(o and hmac.compare_digest(o.encode(), token.encode()) for o in offered)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlparse(self.path)
        query = parse_qs(url.query)
        reader = self.receiver.reader
        if not self._authorised(query):
            self._json({"error": "a token is required (?token=... or Authorization: Bearer ...)"},
                       HTTPStatus.UNAUTHORIZED)
            return
        try:
            if url.path in ("/", "/index.html"):
                self._page(query)
            elif url.path == "/api/latest":
                self._json({"results": [clip_row(r) for r in reader.latest()]})
            elif url.path == "/api/results":
                self._results(query)
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
        except Exception as exc:  # a locked or damaged database: an answer, not a dropped connection
            log.error("web: %s %s: %s", url.path, type(exc).__name__, exc)
            self._json({"error": f"{type(exc).__name__}: {exc}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _page(self, query: dict) -> None:
        """The page; opened with the token in its query, it sets the cookie its API calls and images then carry."""
        extra = None
        if self.receiver.http_token and query.get("token"):
            extra = {"Set-Cookie": f"{COOKIE}={query['token'][0]}; HttpOnly; SameSite=Strict; Path=/"}
        self._send(page(), "text/html; charset=utf-8", extra=extra)

    def _results(self, query: dict) -> None:
        """One page of history, newest first; "next" continues below the page's last id."""
        limit = max(1, min(_number(query, "limit", int, 100), PAGE))
        args = {"device": query.get("device", [None])[0] or None, "since": _number(query, "since"),
                "until": _number(query, "until"), "after_id": _number(query, "after_id", int),
                "task": query.get("task", [None])[0] or None}
        rows = self.receiver.reader.results(limit=limit, before_id=_number(query, "before_id", int), **args)
        nxt = None
        if len(rows) == limit:
            keep = {k: v for k, v in query.items() if k not in ("before_id", "token")}
            keep["before_id"] = [str(rows[-1]["id"])]
            nxt = "/api/results?" + "&".join(f"{k}={quote(v[0])}" for k, v in keep.items())
        self._json({"results": [clip_row(r) for r in rows], "count": len(rows), "next": nxt})

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
