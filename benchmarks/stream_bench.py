"""Edge-to-PC streaming over loopback: N results from D simulated devices into one receiver (no torch, no model).

    python benchmarks/stream_bench.py --frames 1000 --devices 2 [--size 64] [--send-frame] [--queue 64]
                                      [--rate 0] [--receiver thread|process] [--json out.json] [--quick]

Each device is a ZmqSink (bounded queue + sender thread, PUSH) fed from its own thread with small crack masks
(SIZE x SIZE, a line whose length changes per frame; with --send-frame also a 320x240 JPEG frame). --rate caps
each device's results per second (0: as fast as `send` returns, the worst case for the receiver). The receiver
(PULL, SQLite + files) runs in this process (thread) or as `python -m defectkd.serve receive` (process: no GIL
shared with the senders, as on a real PC). Reported: sent, dropped by the senders' queues, received, stored,
the mean cost of one `send` call in the loop (us), and frames/s = stored / (first send .. last row stored).
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from defectkd.deploy.sink import ZmqSink
from defectkd.serve import Receiver


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _device(sink: ZmqSink, n: int, size: int, rate: float, send_frame: bool, costs: list) -> None:
    frame = np.full((240, 320, 3), 180, np.uint8) if send_frame else None
    period = 1.0 / rate if rate > 0 else 0.0
    start = time.perf_counter()
    spent = 0.0
    for i in range(n):
        mask = np.zeros((size, size), bool)
        cv2.line(mask.view(np.uint8), (2, size // 2), (2 + i % (size - 4), size // 2 + i % 5), 1, 2)
        result = {"frame": i, "crack_ratio": float(mask.mean()), "area_px": int(mask.sum()), "cracks": 1,
                  "longest_crack_px": float(i % (size - 4)), "fps": rate or None}
        t0 = time.perf_counter()
        sink.send(result, mask=mask, frame=frame)
        spent += time.perf_counter() - t0
        if period:
            time.sleep(max(0.0, start + (i + 1) * period - time.perf_counter()))
    costs.append(spent / max(n, 1))


def _count(store: Path) -> int:
    try:
        with sqlite3.connect(f"file:{store / 'results.sqlite'}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.Error:
        return 0


def run(frames: int, devices: int, size: int, queue: int, rate: float, send_frame: bool, receiver: str,
        work: Path) -> dict:
    store = work / "store"
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    proc = rx = None
    if receiver == "process":
        proc = subprocess.Popen([sys.executable, "-m", "defectkd.serve", "receive", "--bind", endpoint, "--store",
                                 str(store)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # let it bind; a PUSH socket connects and waits anyway
    else:
        rx = Receiver(endpoint, store).start()
    per_device = frames // devices
    sinks = [ZmqSink(f"zmq://127.0.0.1:{port}", device_id=f"dev{d}", queue_size=queue) for d in range(devices)]
    costs: list[float] = []
    threads = [threading.Thread(target=_device, args=(s, per_device, size, rate, send_frame, costs)) for s in sinks]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink_stats = [s.close(timeout=30) for s in sinks]
    sent = sum(s["sent"] for s in sink_stats)
    deadline = time.monotonic() + 60
    stored_now = (lambda: rx.stats()["stored"]) if rx else (lambda: _count(store))
    while stored_now() < sent and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    if rx:
        stats = rx.stop()
    else:
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        stats = json.loads(out[out.index("{"):])
    return {"frames": per_device * devices, "devices": devices, "mask": f"{size}x{size}", "send_frame": send_frame,
            "queue": queue, "rate": rate or "max", "receiver": receiver, "sent": sent,
            "dropped": sum(s["dropped"] for s in sink_stats), "unsent": sum(s["unsent"] for s in sink_stats),
            "received": stats["received"], "stored": stats["stored"], "malformed": stats["malformed"],
            "send_us": round(1e6 * sum(costs) / len(costs), 1), "seconds": round(elapsed, 3),
            "frames_per_s": round(stats["stored"] / elapsed, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000, help="results in all, split over the devices")
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--size", type=int, default=64, help="mask side (px)")
    ap.add_argument("--queue", type=int, nargs="*", default=[64, 1000], help="sender queue sizes to try")
    ap.add_argument("--rate", type=float, default=0.0, help="results/s per device (0: as fast as possible)")
    ap.add_argument("--send-frame", action="store_true", help="also send a 320x240 JPEG frame per result")
    ap.add_argument("--receiver", choices=("thread", "process"), nargs="*", default=["thread", "process"])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="100 frames, queue 1000, thread only: checks the script")
    args = ap.parse_args(argv)
    if args.quick:
        args.frames, args.queue, args.receiver = 100, [1000], ["thread"]
    rows = []
    for receiver in args.receiver:
        for queue in args.queue:
            with tempfile.TemporaryDirectory() as work:
                rows.append(run(args.frames, args.devices, args.size, queue, args.rate, args.send_frame, receiver,
                                Path(work)))
    cols = ["receiver", "queue", "rate", "frames", "sent", "dropped", "received", "stored", "send_us",
            "frames_per_s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
