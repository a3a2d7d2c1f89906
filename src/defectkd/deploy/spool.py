"""The device's durable outbox: every result waits here, on disk, until the receiver acknowledges it (no torch).

One SQLite file (stdlib, one writer: the sink's sender thread) holds the encoded messages not yet acknowledged and
the next sequence number, so a sender that is killed or rebooted resends what was pending and numbers on where it
stopped. `boot` is a random id made when the spool file is made: the receiver deduplicates by (device, boot, seq),
so a fresh spool (or `path=None`, memory only) can never collide with what an older one sent.

Bounded: beyond `max_messages` or `max_bytes` the oldest pending messages are dropped and counted, so a device that
is offline for days keeps its newest results and its disk.
"""

from __future__ import annotations

import secrets
import sqlite3
import struct
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY, body BLOB NOT NULL, size INTEGER NOT NULL,
                                    sent_at REAL NOT NULL DEFAULT 0, tries INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def pack(parts: list[bytes]) -> bytes:
    """Message parts as one blob: a 4-byte count, then each part's 4-byte length and bytes."""
    out = [struct.pack("<I", len(parts))]
    for p in parts:
        out += [struct.pack("<I", len(p)), bytes(p)]
    return b"".join(out)


def unpack(blob: bytes) -> list[bytes]:
    (n,), at, parts = struct.unpack_from("<I", blob), 4, []
    for _ in range(n):
        (size,) = struct.unpack_from("<I", blob, at)
        parts.append(blob[at + 4:at + 4 + size])
        at += 4 + size
    return parts


class SpoolError(ValueError):
    """A spool file that cannot be opened or written (the CLI prints one line)."""


class Spool:
    """`put(parts) -> seq`, `due(...)`, `mark_sent(seqs)`, `ack(seqs)`; `len()` is what still waits."""

    def __init__(self, path: str | Path | None = None, max_messages: int = 10_000,
                 max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_messages < 1 or max_bytes < 1:
            raise SpoolError("the spool's limits must be >= 1")
        self.path = Path(path) if path else None
        self.max_messages, self.max_bytes = int(max_messages), int(max_bytes)
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path) if self.path else ":memory:", check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self.boot = self._meta("boot") or self._set_meta("boot", secrets.token_hex(8))
            self.next_seq = int(self._meta("next_seq") or 0)
            self.db.execute("UPDATE pending SET sent_at = 0")  # what a dead process had in flight is due again
            self.db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"spool {self.path or ':memory:'}: {exc}") from None
        self.carried_over = len(self)

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> str:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        return value

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]

    def take_seq(self) -> int:
        """The next sequence number (persisted with the message that uses it)."""
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def put(self, seq: int, parts: list[bytes]) -> int:
        """Store one encoded message under `seq`; returns how many old messages the bounds dropped."""
        body = pack(parts)
        self.db.execute("INSERT OR REPLACE INTO pending (seq, body, size) VALUES (?, ?, ?)", (seq, body, len(body)))
        self._set_meta("next_seq", str(max(self.next_seq, seq + 1)))
        dropped = self._enforce_bounds()
        self.db.commit()
        return dropped

    def _enforce_bounds(self) -> int:
        count, size = self.db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM pending").fetchone()
        dropped = 0
        while count > 1 and (count > self.max_messages or size > self.max_bytes):
            seq, n = self.db.execute("SELECT seq, size FROM pending ORDER BY seq LIMIT 1").fetchone()
            self.db.execute("DELETE FROM pending WHERE seq = ?", (seq,))
            count, size, dropped = count - 1, size - n, dropped + 1
        return dropped

    def due(self, resend_after: float, limit: int, now: float | None = None) -> list[tuple[int, list[bytes], int]]:
        """Up to `limit` (seq, parts, tries) never sent, or sent more than `resend_after` s ago, oldest first."""
        now = time.monotonic() if now is None else now
        rows = self.db.execute("SELECT seq, body, tries FROM pending WHERE sent_at = 0 OR sent_at < ? ORDER BY seq "
                               "LIMIT ?", (now - resend_after, max(0, limit))).fetchall()
        return [(seq, unpack(body), tries) for seq, body, tries in rows]

    def in_flight(self, resend_after: float, now: float | None = None) -> int:
        """Messages sent and still within their wait for an acknowledgement."""
        now = time.monotonic() if now is None else now
        return self.db.execute("SELECT COUNT(*) FROM pending WHERE sent_at >= ?", (now - resend_after,)).fetchone()[0]

    def mark_sent(self, seqs: list[int], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.db.executemany("UPDATE pending SET sent_at = ?, tries = tries + 1 WHERE seq = ?", [(now, s) for s in seqs])
        self.db.commit()

    def ack(self, seqs: list[int]) -> int:
        """Forget acknowledged (or finally refused) messages; returns how many were still pending."""
        if not seqs:
            return 0
        cur = self.db.executemany("DELETE FROM pending WHERE seq = ?", [(int(s),) for s in seqs])
        self.db.commit()
        return cur.rowcount

    def close(self) -> None:
        self.db.commit()
        self.db.close()
