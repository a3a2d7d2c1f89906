"""The receiver's history: one SQLite row per result plus its mask/frame files (stdlib only).

    STORE/results.sqlite   table `results`: id, device_id, frame, timestamp, task, json, mask_path, frame_path,
                           received_at (paths relative to STORE)
    STORE/<device>/        <frame>_<id>_mask.png, <frame>_<id>_frame.jpg

One writer (the receiver thread) adds rows and commits in batches; readers (the web server's threads)
open their own read-only connections, which WAL mode lets run alongside the writer.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from defectkd.serve.protocol import safe_name

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
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_device_time ON results (device_id, timestamp);
"""
COLUMNS = ("id", "device_id", "frame", "timestamp", "task", "json", "mask_path", "frame_path", "received_at")


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
        self.db.commit()
        self._next_id = (self.db.execute("SELECT MAX(id) FROM results").fetchone()[0] or 0) + 1
        self._dirs: set[str] = set()

    def add(self, header: dict, header_json: str, mask_png: bytes, frame_jpeg: bytes | None) -> int:
        """Write the files, insert the row (uncommitted); returns the row id."""
        row_id = self._next_id
        device = safe_name(header["device_id"])
        if device not in self._dirs:
            (self.root / device).mkdir(exist_ok=True)
            self._dirs.add(device)
        stem = f"{device}/{header['frame']:08d}_{row_id}"
        mask_path = frame_path = None
        if mask_png:
            mask_path = f"{stem}_mask.png"
            (self.root / mask_path).write_bytes(mask_png)
        if frame_jpeg:
            frame_path = f"{stem}_frame.jpg"
            (self.root / frame_path).write_bytes(frame_jpeg)
        self.db.execute("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (row_id, header["device_id"], header["frame"], float(header["timestamp"]), header["task"],
                         header_json, mask_path, frame_path, time.time()))
        self._next_id += 1
        return row_id

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
                until: float | None = None, after_id: int | None = None, task: str | None = None) -> list[dict]:
        """Rows newest first, filtered by device, task, sender timestamp (since < t <= until) and id."""
        if not self.path.exists():
            return []
        where, args = [], []
        for clause, value in (("device_id = ?", device), ("task = ?", task), ("timestamp > ?", since),
                              ("timestamp <= ?", until), ("id > ?", after_id)):
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
