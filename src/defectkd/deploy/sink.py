"""Send each frame's result to a receiver over ZeroMQ without ever slowing the prediction loop (no torch).

`send()` only appends to a bounded queue; a sender thread encodes (mask PNG, optional JPEG frame) and
pushes the multipart message (see defectkd.serve.protocol) through a PUSH socket with a small send
high-water mark. When the receiver is slow or away, the queue fills and the oldest result is dropped
(counted in `stats["dropped"]`), so the loop always sees the newest. `close()` flushes what it can within
a time limit; what is left is counted as `unsent`. `sent` counts messages handed to ZeroMQ.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from defectkd.serve.protocol import PROTOCOL_VERSION, client_keys, encode, tcp_endpoint

log = logging.getLogger("defectkd.sink")

# keys of a result that describe where and how, not what was found: everything else is a metric
_NOT_METRICS = {"image", "source", "frame", "width", "height", "threshold", "times_ms", "fps", "mask", "overlay"}


class SinkError(ValueError):
    """A --sink URL or key folder that cannot be used."""


def result_metrics(result: dict) -> dict:
    """What the result found (crack ratio, area, longest crack; class and score; boxes): the result
    without its where/how keys."""
    return {k: v for k, v in result.items() if k not in _NOT_METRICS}


class ZmqSink:
    """`sink.send(result, mask=bool (H, W) or None, frame=RGB uint8 or None, task="segment")`, then `close()`."""

    def __init__(self, url: str, device_id: str | None = None, send_frame: bool = False, queue_size: int = 64,
                 sndhwm: int = 16, linger_ms: int = 500, curve_keys: str | Path | None = None, jpeg_quality: int = 80,
                 png_level: int = 1) -> None:
        import zmq

        try:
            self.endpoint = tcp_endpoint(url)
        except ValueError as exc:
            raise SinkError(f"--sink {exc}") from None
        if self.endpoint.endswith(":*"):
            raise SinkError(f"--sink {url}: a sender needs the receiver's port")
        if queue_size < 1:
            raise SinkError("the sink queue size must be >= 1")
        self.device_id = device_id or socket.gethostname()
        self.send_frame = send_frame
        self.queue_size = queue_size
        self._jpeg = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
        self._png = [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)]
        self.stats = {"queued": 0, "sent": 0, "dropped": 0, "errors": 0, "unsent": 0}
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._abort = False
        self._seq = 0
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.PUSH)
        self._sock.setsockopt(zmq.SNDHWM, sndhwm)
        self._sock.setsockopt(zmq.LINGER, linger_ms)
        if curve_keys:
            from defectkd.serve.protocol import KeyFileError

            try:
                public, secret, server = client_keys(curve_keys, self.device_id)
            except KeyFileError as exc:
                self._sock.close(0)
                self._ctx.term()
                raise SinkError(str(exc)) from None
            self._sock.curve_publickey, self._sock.curve_secretkey, self._sock.curve_serverkey = public, secret, server
        self._sock.connect(self.endpoint)
        self._thread = threading.Thread(target=self._run, name="defectkd-sink", daemon=True)
        self._thread.start()

    # ---- the loop's side: never blocks --------------------------------------------------------------------
    def send(self, result: dict, mask: np.ndarray | None = None, frame: np.ndarray | None = None,
             task: str = "segment") -> None:
        header = {"v": PROTOCOL_VERSION, "device_id": self.device_id, "frame": int(result.get("frame", self._seq)),
                  "timestamp": time.time(), "task": task, "seq": self._seq, "metrics": result_metrics(result),
                  "width": result.get("width"), "height": result.get("height"), "fps": result.get("fps"),
                  "times_ms": result.get("times_ms"), "source": result.get("image") or result.get("source")}
        self._seq += 1
        item = (header, mask, frame if self.send_frame else None)
        with self._cond:
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.stats["dropped"] += 1
            self._queue.append(item)
            self.stats["queued"] += 1
            self._cond.notify()

    def close(self, timeout: float = 2.0) -> dict:
        """Send what is queued (for up to `timeout` s), stop the thread, close the socket; returns stats."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort = True
            self._thread.join(2.0)
        with self._cond:
            self.stats["unsent"] += len(self._queue)
            self._queue.clear()
        self._sock.close()
        self._ctx.term()
        return dict(self.stats)

    def __enter__(self) -> ZmqSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the sender thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait(0.2)
                if not self._queue or self._abort:
                    return
                header, mask, frame = self._queue.popleft()
            try:
                parts = self._encode(header, mask, frame)
            except Exception as exc:  # an odd array must not kill the thread
                self.stats["errors"] += 1
                log.warning("sink: cannot encode frame %s (%s)", header.get("frame"), exc)
                continue
            if not self._push(parts):
                self.stats["unsent"] += 1
                return

    def _encode(self, header: dict, mask, frame) -> list[bytes]:
        header["sender"] = {"sent": self.stats["sent"], "dropped": self.stats["dropped"]}
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

    def _push(self, parts: list[bytes]) -> bool:
        """Hand the message to ZeroMQ, waiting while its queue (SNDHWM) is full; False when aborted."""
        import zmq

        while True:
            try:
                self._sock.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
                self.stats["sent"] += 1
                return True
            except zmq.Again:
                if self._abort:
                    return False
                self._sock.poll(50, zmq.POLLOUT)
