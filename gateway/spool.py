"""The gateway's durable spool (SQLite): every message it sends, kept on disk until ingest confirms it stored
it, with the checkpoint of the gateway's core in the same transaction.

Bounded (``max_messages``; beyond, new messages are dropped and counted, and the count is kept), ordered (by
sequence number), counted, and durable through a crash or a power cut (WAL, synchronous=FULL: a commit is on
disk before any of its messages goes out). A broker's PUBACK lets go of nothing; only a confirmation does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
CHECKPOINT_KEY = "checkpoint"
DROPPED_KEY = "dropped"
SPOOL_FILE = "spool.sqlite"
# Deletes of confirmed messages go in chunks of this many (SQLite's limit on bound parameters is higher).
_DELETE_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    seq: int
    topic: str
    payload: bytes
    retain: bool


class Spool:
    def __init__(self, directory: Path | None, *, max_messages: int) -> None:
        """``directory`` None: an in-memory spool (a throw-away run that does not outlive its process)."""
        if directory is None:
            self.path: Path | None = None
            self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        else:
            directory.mkdir(parents=True, exist_ok=True)
            self.path = directory / SPOOL_FILE
            # Used by one thread at a time: the one that ticks the gateway, then the one that drains it.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is synced at every commit, so what was committed survives a power cut.
            self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.max_messages = max_messages
        self._count = int(self._db.execute("SELECT count(*) FROM spool").fetchone()[0])
        self.dropped = int(self._meta(DROPPED_KEY) or 0)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def __len__(self) -> int:
        return self._count

    def checkpoint(self) -> str | None:
        return self._meta(CHECKPOINT_KEY)

    def seqs(self) -> list[int]:
        """Every sequence number held, oldest first."""
        return [int(row[0]) for row in self._db.execute("SELECT seq FROM spool ORDER BY seq")]

    def commit(self, entries: Iterable[SpoolEntry], checkpoint: str) -> list[SpoolEntry]:
        """Store ``entries`` and the checkpoint atomically; return the entries kept (the rest did not fit and
        are counted as dropped)."""
        kept: list[SpoolEntry] = []
        dropped = 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for entry in entries:
                if self._count + len(kept) >= self.max_messages:
                    dropped += 1
                    continue
                self._db.execute(
                    "INSERT OR REPLACE INTO spool (seq, topic, payload, retain) VALUES (?, ?, ?, ?)",
                    (entry.seq, entry.topic, entry.payload, int(entry.retain)),
                )
                kept.append(entry)
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (CHECKPOINT_KEY, checkpoint))
            if dropped:
                self._db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (DROPPED_KEY, str(self.dropped + dropped))
                )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._count += len(kept)
        self.dropped += dropped
        return kept

    def confirm(self, seqs: Iterable[int]) -> int:
        """Let go of confirmed messages; return how many were held (a confirmation may repeat)."""
        chosen = list(seqs)
        removed = 0
        self._db.execute("BEGIN")
        try:
            for start in range(0, len(chosen), _DELETE_CHUNK):
                chunk = chosen[start : start + _DELETE_CHUNK]
                marks = ",".join("?" * len(chunk))
                removed += self._db.execute(f"DELETE FROM spool WHERE seq IN ({marks})", chunk).rowcount
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._count -= removed
        return removed

    def read(self, seqs: Iterable[int]) -> Iterator[SpoolEntry]:
        """The entries still held among ``seqs``, in the order asked."""
        for seq in seqs:
            row = self._db.execute("SELECT topic, payload, retain FROM spool WHERE seq = ?", (seq,)).fetchone()
            if row is not None:
                yield SpoolEntry(seq, str(row[0]), bytes(row[1]), bool(row[2]))

    def close(self) -> None:
        self._db.close()
