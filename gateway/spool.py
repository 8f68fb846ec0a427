"""The gateway's durable spool (SQLite): every message it sends, kept on disk until ingest confirms it stored
it, with the checkpoint of the gateway's core in the same transaction. The checkpoint comes in two kinds of
rows: one small whole text, rewritten at every commit, and parts by key (a machine's tracker, its hours so far,
the windows held from one edge), each rewritten only when it changed, so a commit of a few machines' messages
costs a few machines' state, not a workshop's.

Bounded (``max_messages``; beyond, new messages are dropped and counted, and the count is kept), ordered (by
sequence number), counted, and durable through a crash or a power cut (WAL, synchronous=FULL: a commit is on
disk before any of its messages goes out). A simulated gateway's spool may be durable through a crash of the
process only (``power_safe=False``: synchronous=NORMAL, the WAL is synced at its checkpoints, not at every
commit; an OS crash or a power cut may lose the last commits). A broker's PUBACK lets go of nothing; only a
confirmation does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
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
CREATE TABLE IF NOT EXISTS checkpoint_part (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
CHECKPOINT_KEY = "checkpoint"
DROPPED_KEY = "dropped"
SPOOL_FILE = "spool.sqlite"
# Reads and deletes by sequence number go in chunks of this many (SQLite's limit on bound parameters is higher).
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    seq: int
    topic: str
    payload: bytes
    retain: bool


class Spool:
    def __init__(self, directory: Path | None, *, max_messages: int, power_safe: bool = True) -> None:
        """``directory`` None: an in-memory spool (a throw-away run that does not outlive its process).
        ``power_safe`` False: a commit survives the process being killed, not an OS crash or a power cut."""
        if directory is None:
            self.path: Path | None = None
            self._db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        else:
            directory.mkdir(parents=True, exist_ok=True)
            self.path = directory / SPOOL_FILE
            # Used by one thread at a time: the one that ticks the gateway, then the one that drains it.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is synced at every commit, so what was committed survives a power cut. NORMAL: a
            # commit is in the WAL file (the OS has it) when it returns, so it survives the process's death.
            self._db.execute(f"PRAGMA synchronous={'FULL' if power_safe else 'NORMAL'}")
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

    def checkpoint_parts(self) -> dict[str, str]:
        """The checkpoint's parts, by key, as last committed."""
        return {str(key): str(value) for key, value in self._db.execute("SELECT key, value FROM checkpoint_part")}

    def seqs(self) -> list[int]:
        """Every sequence number held, oldest first."""
        return [int(row[0]) for row in self._db.execute("SELECT seq FROM spool ORDER BY seq")]

    def commit(
        self,
        entries: Iterable[SpoolEntry],
        checkpoint: str,
        parts: Mapping[str, str] | None = None,
        gone: Iterable[str] = (),
        *,
        every_part: bool = False,
    ) -> list[SpoolEntry]:
        """Store ``entries``, the checkpoint and the checkpoint's ``parts`` that changed, and let go of the parts
        ``gone``, atomically (``every_part``: ``parts`` are all of them, the others go); return the entries kept
        (the rest did not fit and are counted as dropped)."""
        chosen = list(entries)
        kept = chosen[: max(0, self.max_messages - self._count)]
        dropped = len(chosen) - len(kept)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO spool (seq, topic, payload, retain) VALUES (?, ?, ?, ?)",
                [(entry.seq, entry.topic, entry.payload, int(entry.retain)) for entry in kept],
            )
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (CHECKPOINT_KEY, checkpoint))
            if every_part:
                self._db.execute("DELETE FROM checkpoint_part")
            else:
                self._db.executemany("DELETE FROM checkpoint_part WHERE key = ?", ((key,) for key in gone))
            if parts:
                self._db.executemany("INSERT OR REPLACE INTO checkpoint_part (key, value) VALUES (?, ?)", parts.items())
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
            for chunk, marks in _chunks(chosen):
                removed += self._db.execute(f"DELETE FROM spool WHERE seq IN ({marks})", chunk).rowcount
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._count -= removed
        return removed

    def read(self, seqs: Iterable[int]) -> Iterator[SpoolEntry]:
        """The entries still held among ``seqs``, in the order asked (one query per chunk, not per message)."""
        for chunk, marks in _chunks(list(seqs)):
            found = {
                int(row[0]): SpoolEntry(int(row[0]), str(row[1]), bytes(row[2]), bool(row[3]))
                for row in self._db.execute(
                    f"SELECT seq, topic, payload, retain FROM spool WHERE seq IN ({marks})", chunk
                )
            }
            yield from (found[seq] for seq in chunk if seq in found)

    def close(self) -> None:
        self._db.close()


def _chunks(seqs: list[int]) -> Iterator[tuple[list[int], str]]:
    """``seqs`` in chunks of at most _CHUNK, each with its placeholders for ``IN (…)``."""
    for start in range(0, len(seqs), _CHUNK):
        chunk = seqs[start : start + _CHUNK]
        yield chunk, ",".join("?" * len(chunk))
