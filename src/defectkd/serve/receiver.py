"""The PC side: a ROUTER socket that stores every result it receives and acknowledges it, and optionally a web view
(no torch).

    with Receiver("tcp://127.0.0.1:5555", "results/", http=8080) as rx:
        rx.wait()            # until Ctrl-C / SIGTERM (or rx.wait(60) for a minute)
    print(rx.stats())

Delivery: senders (deploy/sink.py) keep each result in their spool until this receiver answers with its sequence
number, which it does only after the result's row and files are committed (serve/store.py), so what was
acknowledged is on disk; a resent result already stored is acknowledged again, not stored twice. `stop()` drains:
what already arrived is stored, committed and acknowledged before the sockets close.

Never crashes on what arrives. Limits: every message part is capped by ZeroMQ itself at `max_bytes` (ZMQ_MAXMSGSIZE:
a larger part drops the connection before it is buffered), the whole message at `max_bytes` (dropped before
anything is decoded), masks and frames at `max_pixels` (read from their PNG/JPEG headers, never decoded), the
header must be strict JSON (no NaN/Infinity) with a safe device id. Each refusal is counted under its reason
(`stats()["rejected"]`) and logged once per reason per `log_every` seconds, not once per message; a refused
message whose header can be read is answered with its reason, so the sender stops resending it. With `curve_keys`,
only senders whose public key is in the key folder get through (the folder is read again every second: a removed
key is refused from then on, even on a connection it opened before), and a key may only speak for its own device
ids (`protocol.key_devices`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from defectkd.serve.protocol import (
    DEFAULT_MAX_PIXELS,
    KeyFileError,
    MalformedMessage,
    client_key_table,
    decode,
    is_loopback,
    message_key,
    reply_key,
    server_keys,
    tcp_endpoint,
)
from defectkd.serve.store import ResultStore, StoreReader

log = logging.getLogger("defectkd.serve")
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
BATCH = 256  # messages stored per commit at most
DRAIN_S = 2.0  # how long stop() keeps storing what already arrived


class ReceiverError(ValueError):
    """The receiver cannot start (address in use, bad endpoint, key folder); the CLI prints one line."""


class _CurveClients:
    """The allowed senders, read from the key folder: the ZAP callback for new connections, and `devices(user_id)`
    for every message (ZeroMQ gives each message the z85 key of the connection that carried it). The folder is
    read again at most once a second (`refresh`), so a new key works and a removed key stops working within
    seconds, without a restart; refused handshakes are counted (ZeroMQ does not retry one)."""

    def __init__(self, folder: Path, on_refused) -> None:
        self.folder = folder
        self.on_refused = on_refused
        self._lock = threading.Lock()
        self._scanned = 0.0
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._scanned < 1.0:
            return
        self._scanned = time.monotonic()
        try:
            table = client_key_table(self.folder)
        except (OSError, KeyFileError) as exc:
            log.warning("curve keys: %s", exc)
            return
        with self._lock:
            self.keys = table

    def devices(self, z85_key: str | bytes | None) -> frozenset[str] | None:
        """The device ids a connected key may speak for; None when the key is no longer allowed."""
        key = z85_key.encode() if isinstance(z85_key, str) else z85_key
        with self._lock:
            entry = self.keys.get(key)
        return entry[1] if entry else None

    def callback(self, domain: str, key: bytes) -> bool:
        self.refresh(force=key not in self.keys)
        if key in self.keys:
            return True
        self.on_refused()
        return False


class _Refusals:
    """Counts refused messages per reason and logs each reason at most once per interval, with the count since."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.counts: dict[str, int] = {}
        self._since: dict[str, int] = {}
        self._logged: dict[str, float] = {}

    def add(self, reason: str, detail: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self._since[reason] = self._since.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._logged.get(reason, -1e9) >= self.every:
            log.warning("refused %d message(s) (%s) in the last %.0f s, e.g. %s", self._since[reason], reason,
                        self.every, detail[:200])
            self._logged[reason], self._since[reason] = now, 0


def http_address(http: int | str | None) -> tuple[str, int] | None:
    """8080 -> ("127.0.0.1", 8080); "0.0.0.0:8080" -> ("0.0.0.0", 8080); None -> None."""
    if http in (None, ""):
        return None
    host, sep, port = str(http).rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ReceiverError(f"--http {http}: expected PORT or HOST:PORT")
    return (host or "127.0.0.1") if sep else "127.0.0.1", int(port)


class Receiver:
    """Bind a ROUTER socket at `bind`, store into `store`; `start()`/`stop()` or use as a context manager."""

    def __init__(self, bind: str = "tcp://127.0.0.1:5555", store: str | Path = "results",
                 max_bytes: int = DEFAULT_MAX_BYTES, curve_keys: str | Path | None = None,
                 http: int | str | None = None, rcvhwm: int = 64, max_pixels: int = DEFAULT_MAX_PIXELS,
                 log_every: float = 60.0, http_token: str | None = None) -> None:
        try:
            self.bind = tcp_endpoint(bind)
        except ValueError as exc:
            raise ReceiverError(f"--bind {exc}") from None
        if max_bytes < 64:
            raise ReceiverError("--max-bytes must be at least 64")
        self.store_dir = Path(store)
        self.max_bytes = int(max_bytes)
        self.max_pixels = int(max_pixels)
        self.http_token = http_token or None
        self._refusals = _Refusals(log_every)
        self._clients: _CurveClients | None = None
        self.curve_keys = Path(curve_keys) if curve_keys else None
        self.http = http_address(http)
        self.rcvhwm = rcvhwm
        self.endpoint: str | None = None
        self.http_url: str | None = None
        self._stats = {"received": 0, "stored": 0, "duplicates": 0, "acknowledged": 0, "malformed": 0,
                       "dropped_oversize": 0, "refused_curve": 0, "store_errors": 0}
        self._devices: dict[str, dict] = {}
        self._pending_devices: list[tuple[str, dict]] = []  # one per row stored in the batch not yet committed
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
            self._sock = self._ctx.socket(zmq.ROUTER)
            self._sock.setsockopt(zmq.LINGER, 500)  # the last acknowledgements still go out at stop
            self._sock.setsockopt(zmq.RCVHWM, self.rcvhwm)
            self._sock.setsockopt(zmq.MAXMSGSIZE, self.max_bytes)  # per part, checked before ZeroMQ buffers it
            if self.curve_keys:
                self._setup_curve()
            self._sock.bind(self.bind)
        except (zmq.ZMQError, KeyFileError) as exc:
            self._close_sockets()
            where = f"{self.bind}: " if isinstance(exc, zmq.ZMQError) else ""
            raise ReceiverError(f"{where}{exc}") from None
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        try:
            self.store = ResultStore(self.store_dir)
        except (OSError, sqlite3.Error) as exc:
            self._close_sockets()
            raise ReceiverError(f"--store {self.store_dir}: {getattr(exc, 'strerror', None) or exc}") from None
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
        clients = self._clients = _CurveClients(self.curve_keys, self._count_refused)
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

    def request_stop(self) -> None:
        """Ask the receiving thread to drain and stop (safe from a signal handler); `stop()` waits for it."""
        self._stop.set()

    def stop(self) -> dict:
        """Stop receiving and serving: what already arrived is stored, committed and acknowledged first; what is
        stored stays stored. Returns the final stats."""
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
        end = None if duration is None else time.monotonic() + duration
        while not self._stop.is_set():  # short waits: a signal handler runs between them
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return
            self._stop.wait(0.2 if left is None else min(0.2, left))

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def insecure(self) -> bool:
        """Listening beyond this machine without CURVE."""
        return not self.curve_keys and not is_loopback(self.bind)

    @property
    def web_insecure(self) -> bool:
        """Serving the web view beyond this machine without a token."""
        return self.http is not None and not self.http_token and not is_loopback(f"tcp://{self.http[0]}:0")

    def warnings(self) -> list[str]:
        """What an operator should hear at start: open listening without keys or token."""
        out = []
        if self.insecure:
            out.append("listening beyond this machine without --curve-keys: anyone who can reach the port can "
                       "store results")
        if self.web_insecure:
            out.append(f"web view on {self.http[0]} without --http-token: anyone who can reach it sees every "
                       "result (set --http-token or DEFECTKD_HTTP_TOKEN)")
        return out

    def serve(self, duration: float | None = None) -> dict:
        """Block until `duration` s, Ctrl-C or SIGTERM, then stop (draining: what arrived is stored and
        acknowledged); returns the final stats. SIGTERM is handled only while this runs, in the main thread."""
        import signal

        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        try:
            self.wait(duration)
        except KeyboardInterrupt:
            pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            stats = self.stop()
        return stats

    def stats(self) -> dict:
        with self._lock:
            out = dict(self._stats)
            out["rejected"] = dict(self._refusals.counts)
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
            if self._clients is not None:
                self._clients.refresh()
            ready = dict(poller.poll(100))
            if self._monitor is not None and self._monitor in ready:
                self._drain_monitor()
            if self._sock in ready:
                self._receive_batch()
        end = time.monotonic() + DRAIN_S  # drain: what already arrived is stored and acknowledged
        while time.monotonic() < end and self._receive_batch():
            pass

    def _receive_batch(self) -> int:
        """Receive up to BATCH messages, store them, commit, then answer each sender; returns how many arrived."""
        import zmq

        answers: dict[bytes, dict] = {}
        n = 0
        for _ in range(BATCH):
            try:
                frames = self._sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:  # the context is going away
                log.warning("receive: %s", exc)
                break
            n += 1
            try:
                self._handle(frames, answers)
            except Exception:  # a bug here must not stop the receiver: count it, keep receiving
                self._bump("store_errors")
                log.exception("receive: unexpected error while handling a message")
        if not n:
            return 0
        try:
            self.store.commit()
        except Exception as exc:  # disk full, ...: nothing of this batch is acknowledged, the senders resend
            self._bump("store_errors")
            log.error("store: commit failed (%s); the senders will resend", exc)
            self.store.rollback()
            self._pending_devices.clear()
            return n
        self._answer(answers)
        return n

    def _answer(self, answers: dict[bytes, dict]) -> None:
        import json

        import zmq

        acked = 0
        for identity, by_boot in answers.items():
            for boot, answer in by_boot.items():
                if not answer["ack"] and not answer["reject"]:
                    continue
                try:
                    self._sock.send_multipart([identity, json.dumps({"boot": boot, **answer}).encode()],
                                              flags=zmq.NOBLOCK)
                    acked += len(answer["ack"])
                except zmq.ZMQError:  # the sender is gone or its queue is full: it resends, the store dedups
                    pass
        with self._lock:
            for device, info in self._pending_devices:
                dev = self._devices.setdefault(device, {"stored": 0})
                dev["stored"] += 1
                dev.update(info)
            self._stats["stored"] += len(self._pending_devices)
            self._pending_devices.clear()
        self._bump("acknowledged", acked)

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

    def _refuse(self, reason: str, detail: str, key: tuple[str, int] | None, reply: dict | None) -> None:
        with self._lock:
            self._refusals.add(reason, detail)
        if key is not None and reply is not None:
            _answer_of(reply, key[0])["reject"][str(key[1])] = reason

    def _handle(self, frames, answers: dict[bytes, dict]) -> None:
        self._bump("received")
        identity, frames = frames[0].bytes, frames[1:]
        reply = answers.setdefault(identity, {})
        size = sum(len(f) for f in frames)
        if size > self.max_bytes:
            self._bump("dropped_oversize")
            header_only = [f.bytes for f in frames[:1]]  # the rest is never copied out of ZeroMQ
            self._refuse("oversize", f"{size} bytes (limit {self.max_bytes})", reply_key(header_only), reply)
            return
        parts = [f.bytes for f in frames]
        try:
            header, mask, frame = decode(parts, self.max_pixels)
        except MalformedMessage as exc:  # every reason `decode` gives is a malformed message
            self._bump("malformed")
            self._refuse(exc.reason, str(exc), reply_key(parts), reply)
            return
        key = message_key(header)
        if self._clients is not None:
            allowed = self._clients.devices(frames[0].get("User-Id"))
            if allowed is None:  # the key was removed after this connection was made: no answer, it stays spooled
                self._refuse("revoked_key", f"device {header['device_id']}", None, None)
                return
            if header["device_id"] not in allowed:
                self._refuse("device_not_allowed", f"{header['device_id']} is not among {sorted(allowed)}", key,
                             reply)
                return
        try:
            row_id = self.store.add(header, parts[0].decode("utf-8"), mask, frame)
        except Exception as exc:  # a full disk must not stop the receiver; not acknowledged: the sender resends
            self._bump("store_errors")
            log.error("store: cannot store frame %s of %s (%s)", header.get("frame"), header.get("device_id"), exc)
            return
        if key is not None:
            _answer_of(reply, key[0])["ack"].append(key[1])
        if row_id is None:
            self._bump("duplicates")
            return
        sender = header.get("sender")
        info = {"last_frame": header["frame"], "last_id": row_id, "last_received_at": time.time()}
        if isinstance(sender, dict) and isinstance(sender.get("dropped"), int):
            info["sender_dropped"] = sender["dropped"]
        self._pending_devices.append((header["device_id"], info))


def _answer_of(reply: dict, boot: str) -> dict:
    """The answer being built for one sender's boot: {"ack": [seq], "reject": {seq: reason}}."""
    return reply.setdefault(boot, {"ack": [], "reject": {}})
