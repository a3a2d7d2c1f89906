"""The PC side: a PULL socket that stores every result it receives, and optionally a web view (no torch).

    with Receiver("tcp://127.0.0.1:5555", "results/", http=8080) as rx:
        rx.wait()            # until Ctrl-C (or rx.wait(60) for a minute)
    print(rx.stats())

Never crashes on what arrives: a message larger than `max_bytes` is dropped before anything is decoded
(`dropped_oversize`), one that is not a result (part count, JSON, fields, PNG/JPEG signatures) is dropped
and logged (`malformed`). A message beyond 8 x max_bytes makes ZeroMQ drop the connection itself
(ZMQ_MAXMSGSIZE; the sender reconnects). With `curve_keys`, only senders whose public key is in the key
folder get through; refused handshakes are counted (`refused_curve`: unknown keys through the ZAP callback,
senders without CURVE through the socket monitor; ZeroMQ does not retry a refused handshake, so that is one
per refused connection). Senders may come and go: PULL sockets reconnect, and the store keeps its rows across
a receiver restart.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from defectkd.serve.protocol import (
    KeyFileError,
    MalformedMessage,
    client_public_keys,
    decode,
    is_loopback,
    server_keys,
    tcp_endpoint,
)
from defectkd.serve.store import ResultStore, StoreReader

log = logging.getLogger("defectkd.serve")
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
BATCH = 256  # messages stored per commit at most


class ReceiverError(ValueError):
    """The receiver cannot start (address in use, bad endpoint, key folder); the CLI prints one line."""


class _CurveClients:
    """ZAP callback: a sender is allowed when its public key is in the key folder. An unknown key makes it re-read
    the folder when the folder changed or a second has passed, so a new sender's key needs no restart; refusals
    are counted (ZeroMQ does not retry a refused handshake: one count per refused connection)."""

    def __init__(self, folder: Path, on_refused) -> None:
        self.folder = folder
        self.on_refused = on_refused
        self._scan()

    def _scan(self) -> None:
        self._stamp = self.folder.stat().st_mtime_ns
        self._scanned = time.monotonic()
        self.keys = client_public_keys(self.folder)

    def callback(self, domain: str, key: bytes) -> bool:
        if key not in self.keys:
            try:
                if self.folder.stat().st_mtime_ns != self._stamp or time.monotonic() - self._scanned > 1.0:
                    self._scan()
            except (OSError, KeyFileError) as exc:
                log.warning("curve keys: %s", exc)
        if key in self.keys:
            return True
        self.on_refused()
        return False


def http_address(http: int | str | None) -> tuple[str, int] | None:
    """8080 -> ("127.0.0.1", 8080); "0.0.0.0:8080" -> ("0.0.0.0", 8080); None -> None."""
    if http in (None, ""):
        return None
    host, sep, port = str(http).rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ReceiverError(f"--http {http}: expected PORT or HOST:PORT")
    return (host or "127.0.0.1") if sep else "127.0.0.1", int(port)


class Receiver:
    """Bind a PULL socket at `bind`, store into `store`; `start()`/`stop()` or use as a context manager."""

    def __init__(self, bind: str = "tcp://127.0.0.1:5555", store: str | Path = "results",
                 max_bytes: int = DEFAULT_MAX_BYTES, curve_keys: str | Path | None = None,
                 http: int | str | None = None, rcvhwm: int = 1000) -> None:
        try:
            self.bind = tcp_endpoint(bind)
        except ValueError as exc:
            raise ReceiverError(f"--bind {exc}") from None
        if max_bytes < 64:
            raise ReceiverError("--max-bytes must be at least 64")
        self.store_dir = Path(store)
        self.max_bytes = int(max_bytes)
        self.curve_keys = Path(curve_keys) if curve_keys else None
        self.http = http_address(http)
        self.rcvhwm = rcvhwm
        self.endpoint: str | None = None
        self.http_url: str | None = None
        self._stats = {"received": 0, "stored": 0, "malformed": 0, "dropped_oversize": 0, "refused_curve": 0,
                       "store_errors": 0}
        self._devices: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._web = None
        self.started_at: float | None = None

    # ---- life cycle ----------------------------------------------------------------------------------------
    def start(self) -> Receiver:
        import zmq

        if self._thread is not None:
            raise ReceiverError("receiver already running")
        self._ctx = zmq.Context()
        self._auth = self._monitor = None
        try:
            self._sock = self._ctx.socket(zmq.PULL)
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.RCVHWM, self.rcvhwm)
            self._sock.setsockopt(zmq.MAXMSGSIZE, 8 * self.max_bytes)
            if self.curve_keys:
                self._setup_curve()
            self._sock.bind(self.bind)
        except (zmq.ZMQError, KeyFileError) as exc:
            self._close_sockets()
            where = f"{self.bind}: " if isinstance(exc, zmq.ZMQError) else ""
            raise ReceiverError(f"{where}{exc}") from None
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.store = ResultStore(self.store_dir)
        self.reader = StoreReader(self.store_dir)
        self._stop.clear()
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._run, name="defectkd-receiver", daemon=True)
        self._thread.start()
        if self.http is not None:
            from defectkd.serve.web import start_web

            try:
                self._web = start_web(self, *self.http)
            except OSError as exc:
                self.stop()
                raise ReceiverError(f"--http {self.http[0]}:{self.http[1]}: {exc.strerror or exc}") from None
            host, port = self._web.server_address[:2]
            self.http_url = f"http://{host}:{port}/"
        return self

    def _setup_curve(self) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        if not self.curve_keys.is_dir():
            raise KeyFileError(f"{self.curve_keys}: no such key folder")
        public, secret = server_keys(self.curve_keys)
        clients = _CurveClients(self.curve_keys, self._count_refused)
        if not clients.keys:
            log.warning("curve keys: %s holds no sender key (NAME.key): every sender will be refused",
                        self.curve_keys)
        self._auth = ThreadAuthenticator(self._ctx, log=logging.getLogger("defectkd.serve.zap"))
        self._auth.start()
        self._auth.configure_curve_callback(domain="*", credentials_provider=clients)
        self._sock.curve_publickey, self._sock.curve_secretkey = public, secret
        self._sock.curve_server = True
        # senders without CURVE (or with another mechanism) fail before ZAP: the socket monitor sees them
        import zmq

        # (protocol failures only: a connection closed mid-handshake, NO_DETAIL, is not a refusal)
        self._monitor = self._sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)

    def _count_refused(self) -> None:
        with self._lock:
            self._stats["refused_curve"] += 1

    def stop(self) -> dict:
        """Stop receiving and serving; what is stored stays stored. Returns the final stats."""
        self._stop.set()
        if self._web is not None:
            self._web.shutdown()
            self._web.server_close()
            self._web = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self.store.close()
        self._close_sockets()
        return self.stats()

    def _close_sockets(self) -> None:
        if getattr(self, "_monitor", None) is not None:
            self._sock.disable_monitor()
            self._monitor.close(0)
            self._monitor = None
        if getattr(self, "_sock", None) is not None:
            self._sock.close(0)
            self._sock = None
        if getattr(self, "_auth", None) is not None:
            self._auth.stop()
            self._auth = None
        if getattr(self, "_ctx", None) is not None:
            self._ctx.term()
            self._ctx = None

    def wait(self, duration: float | None = None) -> None:
        """Block until stop() (another thread), `duration` seconds, or Ctrl-C (which propagates)."""
        self._stop.wait(duration)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def insecure(self) -> bool:
        """Listening beyond this machine without CURVE."""
        return not self.curve_keys and not is_loopback(self.bind)

    def stats(self) -> dict:
        with self._lock:
            out = dict(self._stats)
            out["devices"] = {k: dict(v) for k, v in self._devices.items()}
        out["uptime_s"] = round(time.time() - self.started_at, 1) if self.started_at else 0.0
        out["endpoint"] = self.endpoint
        out["curve"] = bool(self.curve_keys)
        return out

    # ---- the receiving thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        import zmq

        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        if self._monitor is not None:
            poller.register(self._monitor, zmq.POLLIN)
        while not self._stop.is_set():
            ready = dict(poller.poll(100))
            if not ready:
                continue
            if self._monitor is not None and self._monitor in ready:
                self._drain_monitor()
            stored = 0
            for _ in range(BATCH):
                try:
                    frames = self._sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                except zmq.ZMQError as exc:  # the context is going away
                    log.warning("receive: %s", exc)
                    break
                try:
                    stored += self._handle(frames)
                except Exception:  # a bug here must not stop the receiver: count it, keep receiving
                    self._bump("store_errors")
                    log.exception("receive: unexpected error while handling a message")
            if stored:
                try:
                    self.store.commit()
                except Exception as exc:  # disk full, ...: count, keep receiving
                    self._bump("store_errors")
                    log.error("store: commit failed (%s)", exc)

    def _drain_monitor(self) -> None:
        import zmq

        while True:
            try:
                self._monitor.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            self._bump("refused_curve")

    def _bump(self, key: str, n: int = 1) -> int:
        with self._lock:
            self._stats[key] += n
            return self._stats[key]

    def _handle(self, frames) -> int:
        self._bump("received")
        size = sum(len(f) for f in frames)
        if size > self.max_bytes:
            n = self._bump("dropped_oversize")
            if n <= 5 or n % 1000 == 0:
                log.warning("dropped a %d-byte message (limit %d; %d so far)", size, self.max_bytes, n)
            return 0
        try:
            parts = [f.bytes for f in frames]
            header, mask, frame = decode(parts)
        except MalformedMessage as exc:
            n = self._bump("malformed")
            if n <= 5 or n % 1000 == 0:
                log.warning("dropped a malformed message: %s (%d so far)", exc, n)
            return 0
        try:
            row_id = self.store.add(header, parts[0].decode("utf-8"), mask, frame)
        except Exception as exc:  # a full disk must not stop the receiver
            self._bump("store_errors")
            log.error("store: cannot store frame %s of %s (%s)", header.get("frame"), header.get("device_id"), exc)
            return 0
        with self._lock:
            self._stats["stored"] += 1
            dev = self._devices.setdefault(header["device_id"], {"stored": 0})
            dev["stored"] += 1
            dev["last_frame"] = header["frame"]
            dev["last_id"] = row_id
            dev["last_received_at"] = time.time()
            sender = header.get("sender")
            if isinstance(sender, dict) and isinstance(sender.get("dropped"), int):
                dev["sender_dropped"] = sender["dropped"]
        return 1
