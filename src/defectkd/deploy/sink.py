"""Send each frame's result to a receiver over ZeroMQ, at least once, without ever slowing the prediction loop.

`send()` only appends to a bounded in-memory queue. A sender thread encodes each result (mask PNG, optional JPEG
frame; see defectkd.serve.protocol), writes it to the spool (deploy/spool.py: on disk with `spool=PATH`) and sends
it through a DEALER socket; the receiver's ROUTER answers with the sequence numbers it has committed to its store,
and only then is a message forgotten. A message without an answer is sent again after `resend_after` seconds
(the receiver drops the duplicates), so a receiver that is killed, restarted or unreachable for a while loses
nothing that fits in the spool. The counters add up: queued + carried_over = acknowledged + rejected + dropped +
errors + spooled (+ unsent, what a memory-only spool still held at close).

    sent           messages sent at least once          resent     extra sends of unanswered messages
    acknowledged   stored by the receiver (or already)  rejected   refused by the receiver for good (a reason each)
    dropped        the oldest, when the queue or the spool was full
    spooled        waiting for an answer (on disk with --spool: sent again by the next run)
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from defectkd.deploy.spool import Spool, SpoolError
from defectkd.serve.protocol import PROTOCOL_VERSION, client_keys, encode, tcp_endpoint

log = logging.getLogger("defectkd.sink")

# keys of a result that describe where and how, not what was found: everything else is a metric
_NOT_METRICS = {"image", "source", "frame", "width", "height", "threshold", "times_ms", "fps", "mask", "overlay"}


class SinkError(ValueError):
    """A --sink URL, key folder or spool that cannot be used."""


def result_metrics(result: dict) -> dict:
    """What the result found (crack ratio, area, longest crack; class and score; boxes): the result
    without its where/how keys."""
    return {k: v for k, v in result.items() if k not in _NOT_METRICS}


class ZmqSink:
    """`sink.send(result, mask=bool (H, W) or None, frame=RGB uint8 or None, task="segment")`, then `close()`."""

    def __init__(self, url: str, device_id: str | None = None, send_frame: bool = False, queue_size: int = 64,
                 sndhwm: int = 64, curve_keys: str | Path | None = None, jpeg_quality: int = 80, png_level: int = 1,
                 spool: str | Path | None = None, spool_messages: int = 10_000,
                 spool_bytes: int = 256 * 1024 * 1024, resend_after: float = 5.0, window: int = 64) -> None:
        import zmq

        try:
            self.endpoint = tcp_endpoint(url)
        except ValueError as exc:
            raise SinkError(f"--sink {exc}") from None
        if self.endpoint.endswith(":*"):
            raise SinkError(f"--sink {url}: a sender needs the receiver's port")
        if queue_size < 1 or window < 1 or resend_after <= 0:
            raise SinkError("the sink's queue size and window must be >= 1 and resend_after > 0")
        self.device_id = device_id or socket.gethostname()
        self.send_frame = send_frame
        self.queue_size, self.window, self.resend_after = queue_size, window, float(resend_after)
        self._jpeg = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
        self._png = [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)]
        try:
            self.spool = Spool(spool, spool_messages, spool_bytes)
        except SpoolError as exc:
            raise SinkError(f"--spool {exc}") from None
        self.durable = spool is not None
        self.stats = {"queued": 0, "sent": 0, "resent": 0, "acknowledged": 0, "rejected": 0, "dropped": 0,
                      "errors": 0, "spooled": len(self.spool), "carried_over": self.spool.carried_over, "unsent": 0}
        self.reject_reasons: dict[str, int] = {}
        self._queue: deque = deque()
        self._lock = threading.Lock()
        self._closing = False
        self._deadline = float("inf")
        self._changed, self._next_check = True, 0.0
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.SNDHWM, sndhwm)
        self._sock.setsockopt(zmq.LINGER, 0)  # what is not acknowledged is in the spool, not in ZeroMQ's buffers
        self._sock.setsockopt(zmq.IMMEDIATE, 1)  # no queueing towards a receiver that is not connected
        if curve_keys:
            from defectkd.serve.protocol import KeyFileError

            try:
                public, secret, server = client_keys(curve_keys, self.device_id)
            except KeyFileError as exc:
                self._sock.close(0)
                self._ctx.term()
                self.spool.close()
                raise SinkError(str(exc)) from None
            self._sock.curve_publickey, self._sock.curve_secretkey, self._sock.curve_serverkey = public, secret, server
        self._sock.connect(self.endpoint)
        self._thread = threading.Thread(target=self._run, name="defectkd-sink", daemon=True)
        self._thread.start()

    # ---- the loop's side: never blocks --------------------------------------------------------------------
    def send(self, result: dict, mask: np.ndarray | None = None, frame: np.ndarray | None = None,
             task: str = "segment") -> None:
        header = {"v": PROTOCOL_VERSION, "device_id": self.device_id, "frame": int(result.get("frame", 0)),
                  "timestamp": time.time(), "task": task, "metrics": result_metrics(result),
                  "width": result.get("width"), "height": result.get("height"), "fps": result.get("fps"),
                  "times_ms": result.get("times_ms"), "source": result.get("image") or result.get("source")}
        item = (header, mask, frame if self.send_frame else None)
        with self._lock:
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.stats["dropped"] += 1
            self._queue.append(item)
            self.stats["queued"] += 1

    def close(self, timeout: float = 2.0) -> dict:
        """Wait up to `timeout` s for the receiver to acknowledge what is queued, stop, and return the counters;
        what is still unacknowledged stays in a --spool file (`spooled`) or is counted `unsent`."""
        with self._lock:
            self._closing = True
            self._deadline = time.monotonic() + timeout
        self._thread.join(timeout + 5.0)
        pending = len(self.spool)
        with self._lock:
            self.stats["spooled"] = pending if self.durable else 0
            self.stats["unsent"] = 0 if self.durable else pending
        self.spool.close()
        self._sock.close(0)
        self._ctx.term()
        return self.counters()

    def counters(self) -> dict:
        with self._lock:
            return {**self.stats, "reject_reasons": dict(self.reject_reasons)}

    def __enter__(self) -> ZmqSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the sender thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        import zmq

        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        while True:
            try:
                self._spool_queued()
                self._read_answers()
                self._send_due()
            except Exception as exc:  # a full disk or a bug must not kill the thread silently
                with self._lock:
                    self.stats["errors"] += 1
                log.error("sink: %s", exc)
                time.sleep(0.1)
            with self._lock:
                closing, deadline, queued = self._closing, self._deadline, bool(self._queue)
            if closing and not queued and (not len(self.spool) or time.monotonic() > deadline):
                return
            poller.poll(10)

    def _spool_queued(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    return
                header, mask, frame = self._queue.popleft()
            seq = self.spool.take_seq()
            header.update(boot=self.spool.boot, seq=seq)
            try:
                parts = self._encode(header, mask, frame)
            except Exception as exc:  # an odd array must not kill the thread
                with self._lock:
                    self.stats["errors"] += 1
                log.warning("sink: cannot encode frame %s (%s)", header.get("frame"), exc)
                continue
            dropped = self.spool.put(seq, parts)
            self._changed = True
            with self._lock:
                self.stats["dropped"] += dropped
                self.stats["spooled"] = len(self.spool)

    def _read_answers(self) -> None:
        """The receiver's answers: {"boot", "ack": [seq...], "reject": {seq: reason}}."""
        import zmq

        while True:
            try:
                raw = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                answer = json.loads(raw)
                if answer.get("boot") != self.spool.boot:
                    continue
                acked = [int(s) for s in answer.get("ack", [])]
                rejected = {int(s): str(r) for s, r in (answer.get("reject") or {}).items()}
            except (ValueError, TypeError, AttributeError):
                continue
            n_ack, n_rej = self.spool.ack(acked), self.spool.ack(list(rejected))
            self._changed = True
            with self._lock:
                self.stats["acknowledged"] += n_ack
                self.stats["rejected"] += n_rej
                for reason in rejected.values():
                    self.reject_reasons[reason] = self.reject_reasons.get(reason, 0) + 1
                self.stats["spooled"] = len(self.spool)
            for seq, reason in rejected.items():
                log.warning("sink: the receiver refused message %d for good (%s)", seq, reason)

    def _send_due(self) -> None:
        """Send what is due; the spool is asked only after a change (new result, answer) or every 0.5 s for
        resends, so an idle sender does not query SQLite 100 times a second."""
        import zmq

        now = time.monotonic()
        if not self._changed and now < self._next_check:
            return
        self._changed, self._next_check = False, now + 0.5
        room = self.window - self.spool.in_flight(self.resend_after)
        if room <= 0:
            return
        sent = []
        for seq, parts, tries in self.spool.due(self.resend_after, room):
            try:
                self._sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:  # not connected, or ZeroMQ's queue is full: the spool keeps it; try again in 50 ms
                self._next_check = time.monotonic() + 0.05
                break
            sent.append(seq)
            with self._lock:
                self.stats["resent" if tries else "sent"] += 1
        self.spool.mark_sent(sent)

    def _encode(self, header: dict, mask, frame) -> list[bytes]:
        with self._lock:
            header["sender"] = {"acknowledged": self.stats["acknowledged"], "dropped": self.stats["dropped"],
                                "spooled": self.stats["spooled"]}
        mask_png = b""
        if mask is not None:
            ok, buf = cv2.imencode(".png", np.asarray(mask, np.uint8) * np.uint8(255) if mask.dtype == bool
                                   else np.asarray(mask, np.uint8), self._png)
            mask_png = buf.tobytes() if ok else b""
        frame_jpeg = None
        if frame is not None:
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), self._jpeg)
            frame_jpeg = buf.tobytes() if ok else None
        return encode(header, mask_png, frame_jpeg)


def sink_summary(stats: dict) -> str:
    """One line of a closed sink's counters, for the CLI."""
    kept = (f"{stats['spooled']} spooled (resent by the next run with this --spool)" if stats.get("spooled")
            else f"{stats['unsent']} unsent (no --spool to keep them)" if stats.get("unsent") else "0 waiting")
    reasons = ", ".join(f"{k} {v}" for k, v in (stats.get("reject_reasons") or {}).items())
    return (f"sink: {stats['sent']} sent, {stats['acknowledged']} acknowledged, {stats['resent']} resent, "
            f"{stats['dropped']} dropped (queue or spool full), {stats['rejected']} refused"
            + (f" ({reasons})" if reasons else "") + f", {kept}, {stats['errors']} errors")
