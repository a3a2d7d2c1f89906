"""At-least-once delivery with exactly-once storage, and a receiver that hostile traffic cannot break: the
receiver runs as its own process (`python -m defectkd.serve receive`) and is killed, terminated and restarted
under load; senders keep results in their spools until acknowledged."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from defectkd.deploy.sink import ZmqSink, sink_summary
from defectkd.deploy.spool import Spool, pack, unpack
from defectkd.serve.protocol import client_keys, create_keys
from defectkd.serve.store import FILE_NAME
from tests.stream_util import free_port, wait_for

zmq = pytest.importorskip("zmq")

MASK = np.zeros((12, 16), bool)
MASK[5, 2:14] = True


def _result(i):
    return {"frame": i, "width": 16, "height": 12, "crack_ratio": i / 1000, "area_px": i}


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _receiver(port: int, store: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "defectkd.serve", "receive", "--bind", f"tcp://127.0.0.1:{port}",
                             "--store", str(store), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    assert wait_for(lambda: _listening(port) or proc.poll() is not None, 60) and proc.poll() is None, \
        proc.communicate()[1]
    return proc


def _rows(store: Path) -> list[tuple]:
    with sqlite3.connect(store / "results.sqlite") as db:
        return db.execute("SELECT device_id, frame, seq, mask_path FROM results ORDER BY id").fetchall()


def _stored(store: Path) -> int:
    try:
        with sqlite3.connect(store / "results.sqlite", timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.Error:
        return 0


def _check_store(store: Path, devices: tuple[str, ...], n: int) -> None:
    """n rows per device, frames 0..n-1 once each, every row's file present, no file without a row."""
    rows = _rows(store)
    for device in devices:
        assert sorted(f for d, f, _, _ in rows if d == device) == list(range(n)), device
    named = {m for *_, m in rows}
    on_disk = {f"{p.parent.name}/{p.name}" for p in store.glob("*/*") if FILE_NAME.fullmatch(p.name)}
    assert on_disk == named and not list(store.glob("*/*.tmp"))


def _producers(sinks, n):
    def run(sink):
        for i in range(n):
            sink.send(_result(i), mask=MASK)
            time.sleep(0.002)  # a camera's pace, so that the kills land mid-stream
    threads = [threading.Thread(target=run, args=(s,)) for s in sinks]
    for t in threads:
        t.start()
    return threads


@pytest.mark.slow
def test_sigkill_twice_under_load_loses_and_duplicates_nothing(tmp_path):
    port, store = free_port(), tmp_path / "store"
    rx = _receiver(port, store)
    sinks = [ZmqSink(f"zmq://127.0.0.1:{port}", device_id=d, queue_size=5000, resend_after=1.0,
                     spool=tmp_path / f"{d}.spool") for d in ("cam-a", "cam-b")]
    threads = _producers(sinks, 1000)
    for target in (300, 1100):  # kill -9 mid-stream, twice; the senders keep producing meanwhile
        assert wait_for(lambda t=target: _stored(store) >= t, 120)
        rx.send_signal(signal.SIGKILL)
        rx.wait()
        time.sleep(1.0)
        rx = _receiver(port, store)
    for t in threads:
        t.join()
    stats = [s.close(timeout=120) for s in sinks]
    rx.send_signal(signal.SIGTERM)
    out, err = rx.communicate(timeout=60)
    assert rx.returncode == 0, err
    for s in stats:
        assert s["queued"] == s["acknowledged"] == 1000 and s["dropped"] == s["unsent"] == s["spooled"] == 0, s
        assert s["sent"] == 1000 and s["errors"] == s["rejected"] == 0
    assert "received" in json.loads(out)
    _check_store(store, ("cam-a", "cam-b"), 1000)


@pytest.mark.slow
def test_sigterm_keeps_everything_acknowledged(tmp_path):
    port, store = free_port(), tmp_path / "store"
    rx = _receiver(port, store)
    sinks = [ZmqSink(f"zmq://127.0.0.1:{port}", device_id=d, queue_size=5000, resend_after=1.0)
             for d in ("cam-a", "cam-b")]
    threads = _producers(sinks, 1000)
    assert wait_for(lambda: _stored(store) >= 500, 120)
    rx.send_signal(signal.SIGTERM)  # mid-stream: it drains, commits, acknowledges, exits 0
    out, err = rx.communicate(timeout=60)
    assert rx.returncode == 0, err
    final = json.loads(out)
    rows = len(_rows(store))
    assert final["acknowledged"] > 0 and rows >= final["acknowledged"] - final["duplicates"]
    assert rows == final["stored"]  # what it counted as stored is on disk
    acked_before = sum(s.counters()["acknowledged"] for s in sinks)
    assert acked_before <= rows
    rx = _receiver(port, store)
    for t in threads:
        t.join()
    stats = [s.close(timeout=120) for s in sinks]
    rx.send_signal(signal.SIGTERM)
    rx.communicate(timeout=60)
    assert [s["acknowledged"] for s in stats] == [1000, 1000], stats
    _check_store(store, ("cam-a", "cam-b"), 1000)


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and an IHDR chunk claiming width x height (the receiver reads sizes, never decodes)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + b"\x00\x00\x00\x00IEND\xaeB`\x82")


def _strict(text: bytes):
    def refuse(name):
        raise ValueError(f"{name} in the API's JSON")
    return json.loads(text, parse_constant=refuse)


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak RSS from /proc")
def test_hostile_messages_leave_the_receiver_alive_small_and_valid(tmp_path):
    keys, port, http = tmp_path / "keys", free_port(), free_port()
    for name, devices in (("server", None), ("cam1", None), ("cam3", ["cam3", "cam3-b"])):
        create_keys(keys, name, devices)
    sender_keys = {}
    for name in ("cam1", "cam3"):
        folder = tmp_path / f"edge-{name}"
        folder.mkdir()
        for f in (f"{name}.key_secret", "server.key"):
            (folder / f).write_bytes((keys / f).read_bytes())
        sender_keys[name] = folder
    store = tmp_path / "store"
    rx = _receiver(port, store, "--curve-keys", str(keys), "--max-bytes", "1000000", "--http", f"127.0.0.1:{http}")
    url = f"zmq://127.0.0.1:{port}"
    ctx = zmq.Context()
    raw = ctx.socket(zmq.DEALER)  # cam3's key, hand-made messages
    raw.setsockopt(zmq.LINGER, 2000)
    raw.curve_publickey, raw.curve_secretkey, raw.curve_serverkey = client_keys(sender_keys["cam3"], "cam3")
    raw.connect(f"tcp://127.0.0.1:{port}")

    def header(device="cam3", **extra):
        return json.dumps({"device_id": device, "frame": 1, "timestamp": time.time(), "task": "segment",
                           **extra}).encode()

    try:
        good = ZmqSink(url, device_id="cam1", curve_keys=sender_keys["cam1"], resend_after=1.0)
        for i in range(20):
            good.send(_result(i), mask=MASK)
        spoof = ZmqSink(url, device_id="cam9", curve_keys=sender_keys["cam1"], resend_after=1.0)  # cam1's key
        spoof.send(_result(0), mask=MASK)
        part = b"\x89PNG" + b"x" * 900_000
        hostile = [
            [header(), part, part, part, part],  # each part under --max-bytes, the message over it
            [header(metrics="@").replace(b'"@"', b'{"x":NaN}'), b""],
            [header(metrics="@").replace(b'"@"', b'{"x":Infinity}'), b""],
            [header(metrics="@").replace(b'"@"', b'{"x":1e999}'), b""],
            [header(), _png_header(20000, 20000)],
            [header(device="__proto__"), b""],
            [header(device="../../etc/passwd"), b""],
            [header(device="x" * 100), b""],
            [header(device="cam1"), b""],  # cam3's key speaking for cam1
        ]
        for msg in hostile * 20:
            raw.send_multipart(msg)
        raw.send_multipart([b"h" * 10, b"x" * 5_000_000])  # one part over --max-bytes: ZeroMQ drops the connection
        for i in range(5):  # cam3's key for its second device id: allowed
            raw2 = ctx.socket(zmq.DEALER)
            raw2.setsockopt(zmq.LINGER, 2000)
            raw2.curve_publickey, raw2.curve_secretkey, raw2.curve_serverkey = client_keys(sender_keys["cam3"], "cam3")
            raw2.connect(f"tcp://127.0.0.1:{port}")
            raw2.send_multipart([header(device="cam3-b", frame=i), b""])
            raw2.close()
        assert good.close(timeout=60)["acknowledged"] == 20
        spoof_stats = spoof.close(timeout=30)
        assert spoof_stats["rejected"] == 1 and spoof_stats["reject_reasons"] == {"device_not_allowed": 1}
        # revocation: cam1's key file goes; a connection it already has is refused from then on
        late = ZmqSink(url, device_id="cam1", curve_keys=sender_keys["cam1"], resend_after=1.0)
        late.send(_result(100), mask=MASK)
        assert wait_for(lambda: late.counters()["acknowledged"] == 1, 30)
        (keys / "cam1.key").unlink()
        time.sleep(2.5)
        for i in range(101, 106):
            late.send(_result(i), mask=MASK)
        time.sleep(3.0)
        late_stats = late.close(timeout=0.5)
        assert late_stats["acknowledged"] == 1 and late_stats["unsent"] == 5  # kept by the sender, not stored

        base = f"http://127.0.0.1:{http}/"
        api = {}
        for path in ("api/latest", "api/results?limit=1000", "api/stats", "api/devices"):
            with urllib.request.urlopen(base + path, timeout=10) as r:
                api[path] = _strict(r.read())
        stats = api["api/stats"]
        hwm = _vm_hwm_mb(rx.pid)
    finally:
        raw.close()
        ctx.term()
        rx.send_signal(signal.SIGTERM)
        rx.communicate(timeout=60)
    assert hwm < 300, f"receiver peak RSS {hwm:.0f} MB"
    rejected = stats["rejected"]
    assert rejected["oversize"] == 20 and rejected["non_finite"] == 60 and rejected["too_many_pixels"] == 20
    assert rejected["device_id"] == 60 and rejected["device_not_allowed"] == 21 and rejected["revoked_key"] >= 5
    devices = {d["device_id"]: d["stored"] for d in api["api/devices"]["devices"]}
    assert devices == {"cam1": 21, "cam3-b": 5}  # every good message, nothing else
    assert {r["device_id"] for r in api["api/results?limit=1000"]["results"]} == {"cam1", "cam3-b"}


def test_spool_keeps_results_across_a_sender_restart(tmp_path):
    port, spool = free_port(), tmp_path / "cam.spool"
    first = ZmqSink(f"zmq://127.0.0.1:{port}", device_id="cam", spool=spool)  # nobody listens
    for i in range(10):
        first.send(_result(i), mask=MASK)
    s1 = first.close(timeout=0.5)
    assert s1["spooled"] == 10 and s1["unsent"] == 0 and "10 spooled" in sink_summary(s1)
    from defectkd.serve import Receiver

    with Receiver(f"tcp://127.0.0.1:{port}", tmp_path / "store") as rx:
        second = ZmqSink(f"zmq://127.0.0.1:{port}", device_id="cam", spool=spool)
        for i in range(10, 15):
            second.send(_result(i), mask=MASK)
        s2 = second.close(timeout=30)
        assert wait_for(lambda: rx.stats()["stored"] == 15)
    assert s2["carried_over"] == 10 and s2["acknowledged"] == 15 and s2["spooled"] == 0
    assert s2["queued"] + s2["carried_over"] == s2["acknowledged"] + s2["dropped"] + s2["spooled"]
    frames = sorted(f for _, f, _, _ in _rows(tmp_path / "store"))
    assert frames == list(range(15))
    assert sorted(s for _, _, s, _ in _rows(tmp_path / "store")) == list(range(15))  # numbering went on


def test_spool_bounds_pack_and_resend_timing(tmp_path):
    parts = [b'{"a":1}', b"", b"\xff\xd8jpeg"]
    assert unpack(pack(parts)) == parts and unpack(pack([])) == []
    spool = Spool(tmp_path / "s.sqlite", max_messages=3, max_bytes=10_000)
    boot = spool.boot
    dropped = [spool.put(spool.take_seq(), [b"x" * 100]) for _ in range(5)]
    assert dropped == [0, 0, 0, 1, 1] and len(spool) == 3
    due = spool.due(resend_after=5.0, limit=10, now=100.0)
    assert [seq for seq, _, _ in due] == [2, 3, 4]  # the oldest went first
    spool.mark_sent([2, 3], now=100.0)
    assert [s for s, _, _ in spool.due(5.0, 10, now=101.0)] == [4]  # 2 and 3 are waiting for their answer
    assert [(s, t) for s, _, t in spool.due(5.0, 10, now=106.0)] == [(2, 1), (3, 1), (4, 0)]
    assert spool.ack([2, 99]) == 1 and len(spool) == 2
    spool.close()
    again = Spool(tmp_path / "s.sqlite")
    assert again.boot == boot and again.next_seq == 5 and again.carried_over == 2
    assert [s for s, _, _ in again.due(5.0, 10)] == [3, 4]  # in flight when the process died: due again
    again.close()
    big = Spool(None, max_messages=100, max_bytes=500)
    assert sum(big.put(big.take_seq(), [b"y" * 200]) for _ in range(4)) == 2 and len(big) == 2
    assert Spool(None).boot != Spool(None).boot  # a memory spool never collides with an earlier run's numbers
