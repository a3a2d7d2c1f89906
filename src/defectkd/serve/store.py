"""The receiver's history: one SQLite row per result plus its mask/frame files (stdlib only).

    STORE/results.sqlite   table `results`: id, device_id, frame, timestamp, task, json, mask_path, frame_path,
                           received_at, boot, seq (paths relative to STORE)
    STORE/<device>/        <frame>_<id>_mask.png, <frame>_<id>_frame.jpg

One writer (the receiver thread) adds rows and commits in batches; readers (the web server's threads)
open their own read-only connections, which WAL mode lets run alongside the writer.

Exactly-once storage: a result's files are written under a temporary name and renamed before its row is inserted,
and the receiver acknowledges only after the commit; a resent result, (device_id, boot, seq) already stored, is
not stored twice. Files a crash left without a committed row (and temporary files) are removed at start.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import time
from pathlib import Path

from defectkd.serve.protocol import message_key, safe_name

log = logging.getLogger("defectkd.serve")

DB_NAME = "results.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    frame INTEGER NOT NULL,
    timestamp REAL NOT NULL,
    task TEXT NOT NULL,
    json TEXT NOT NULL,
    mask_path TEXT,
    frame_path TEXT,
    received_at REAL NOT NULL,
    boot TEXT,
    seq INTEGER
);
CREATE INDEX IF NOT EXISTS results_device_time ON results (device_id, timestamp);
"""
UNIQUE = "CREATE UNIQUE INDEX IF NOT EXISTS results_message ON results (device_id, boot, seq)"
COLUMNS = ("id", "device_id", "frame", "timestamp", "task", "json", "mask_path", "frame_path", "received_at",
           "boot", "seq")
FILE_NAME = re.compile(r"\d{8}_\d+_(mask\.png|frame\.jpg)(\.tmp)?")


class ResultStore:
    """Writer side: `add(header, header_json, mask_png, frame_jpeg)` then `commit()`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / DB_NAME
        self.db = sqlite3.connect(self.path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        have = {row[1] for row in self.db.execute("PRAGMA table_info(results)")}
        for column, kind in (("boot", "TEXT"), ("seq", "INTEGER")):  # a store written by an older receiver
            if column not in have:
                self.db.execute(f"ALTER TABLE results ADD COLUMN {column} {kind}")
        self.db.execute(UNIQUE)
        self.db.commit()
        self._next_id = self._last_id() + 1
        self._dirs: set[str] = set()
        self.orphans_removed = self._remove_orphans()

    def _remove_orphans(self) -> int:
        """Delete result files no committed row names (a crash between rename and commit) and temporary files."""
        named = {p for row in self.db.execute("SELECT mask_path, frame_path FROM results") for p in row if p}
        removed = 0
        for folder in (d for d in self.root.iterdir() if d.is_dir()):
            for f in folder.iterdir():
                if FILE_NAME.fullmatch(f.name) and f"{folder.name}/{f.name}" not in named:
                    f.unlink(missing_ok=True)
                    removed += 1
        if removed:
            log.info("store: removed %d result files no stored row names (left by an interrupted write)", removed)
        return removed

    def seen(self, device_id: str, boot: str | None, seq: int | None) -> bool:
        """Is this message already stored (committed or in the current batch)?"""
        if boot is None or seq is None:
            return False
        return self.db.execute("SELECT 1 FROM results WHERE device_id = ? AND boot = ? AND seq = ?",
                               (device_id, boot, seq)).fetchone() is not None

    def _write(self, rel: str, data: bytes) -> None:
        tmp = self.root / f"{rel}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.root / rel)

    def add(self, header: dict, header_json: str, mask_png: bytes, frame_jpeg: bytes | None) -> int | None:
        """Write the files, insert the row (uncommitted); returns the row id, or None for a message already stored
        (the same device, boot and seq: a resend)."""
        boot, seq = message_key(header) or (None, None)
        if self.seen(header["device_id"], boot, seq):
            return None
        row_id = self._next_id
        device = safe_name(header["device_id"])
        if device not in self._dirs:
            (self.root / device).mkdir(exist_ok=True)
            self._dirs.add(device)
        stem = f"{device}/{header['frame']:08d}_{row_id}"
        mask_path = frame_path = None
        if mask_png:
            mask_path = f"{stem}_mask.png"
            self._write(mask_path, mask_png)
        if frame_jpeg:
            frame_path = f"{stem}_frame.jpg"
            self._write(frame_path, frame_jpeg)
        self.db.execute("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (row_id, header["device_id"], header["frame"], float(header["timestamp"]), header["task"],
                         header_json, mask_path, frame_path, time.time(), boot, seq))
        self._next_id += 1
        return row_id

    def _last_id(self) -> int:
        return self.db.execute("SELECT MAX(id) FROM results").fetchone()[0] or 0

    def rollback(self) -> None:
        """Forget the uncommitted rows (their files become orphans, removed at the next start)."""
        self.db.rollback()
        self._next_id = self._last_id() + 1

    def commit(self) -> None:
        self.db.commit()

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        self.db.commit()
        self.db.close()


class StoreReader:
    """Read side for the web API; one short-lived read-only connection per call (safe from any thread)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.path = self.root / DB_NAME

    def _query(self, sql: str, args=()) -> list[sqlite3.Row]:
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        try:
            db.row_factory = sqlite3.Row
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    @staticmethod
    def _row(row: sqlite3.Row) -> dict:
        d = dict(row)
        header = json.loads(d.pop("json"))
        d["metrics"] = header.get("metrics", {})
        for key in ("width", "height", "fps", "source", "times_ms", "sender", "seq"):
            if key in header:
                d[key] = header[key]
        d["mask_url"] = f"/files/{d['id']}/mask" if d.get("mask_path") else None
        d["frame_url"] = f"/files/{d['id']}/frame" if d.get("frame_path") else None
        return d

    def latest(self) -> list[dict]:
        """The newest row of every device."""
        if not self.path.exists():
            return []
        rows = self._query("SELECT * FROM results WHERE id IN (SELECT MAX(id) FROM results GROUP BY device_id) "
                           "ORDER BY device_id")
        return [self._row(r) for r in rows]

    def results(self, device: str | None = None, limit: int = 100, since: float | None = None,
                until: float | None = None, after_id: int | None = None, task: str | None = None,
                before_id: int | None = None) -> list[dict]:
        """Rows newest first, filtered by device, task, sender timestamp (since < t <= until) and id
        (after_id < id < before_id)."""
        if not self.path.exists():
            return []
        where, args = [], []
        for clause, value in (("device_id = ?", device), ("task = ?", task), ("timestamp > ?", since),
                              ("timestamp <= ?", until), ("id > ?", after_id), ("id < ?", before_id)):
            if value not in (None, ""):
                where.append(clause)
                args.append(value)
        sql = "SELECT * FROM results" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id DESC LIMIT ?"
        rows = self._query(sql, [*args, max(1, min(int(limit), 100_000))])
        return [self._row(r) for r in rows]

    def devices(self) -> list[dict]:
        if not self.path.exists():
            return []
        rows = self._query("SELECT device_id, COUNT(*) AS stored, MAX(frame) AS last_frame, "
                           "MAX(timestamp) AS last_timestamp FROM results GROUP BY device_id ORDER BY device_id")
        return [dict(r) for r in rows]

    def file(self, row_id: int, which: str) -> Path | None:
        """The mask or frame file of a row (None when there is none); never a path from the request."""
        if which not in ("mask", "frame") or not self.path.exists():
            return None
        rows = self._query(f"SELECT {which}_path FROM results WHERE id = ?", (row_id,))
        row = rows[0] if rows else None
        if not row or not row[0]:
            return None
        path = (self.root / row[0]).resolve()
        return path if path.is_relative_to(self.root.resolve()) and path.is_file() else None
