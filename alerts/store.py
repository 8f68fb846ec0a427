"""The worker's durable state (sqlite3): the engine's state as rows and the outbox of deliveries, in one file.

The engine's state is a small head (its clock) and a row per machine, gateway and
alert (alerts/rows.py); a commit writes the head, the rows that changed since the last commit and the outbox
rows of the transitions they caused, in one transaction; only then does the worker acknowledge the
MQTT messages behind them. After a SIGKILL the broker redelivers whatever was not acknowledged, the engine
(restored from the rows) recomputes the same transitions, and the outbox's key (sink, event id) makes them
land once. Delivered outbox rows are purged after a while (``purge_delivered``).

The worker's consumer and its delivery threads share one store: every call holds the store's lock, so a
transaction of one thread never interleaves with another's on the one connection.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

# ``snapshot`` holds the engine's head (the whole state, in stores written before ``state`` existed); ``state``
# holds a row per subject and alert, in the order they were first written (rowid: an upsert keeps it).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (kind, key)
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    delivered REAL,
    last_error TEXT,
    UNIQUE (sink, event_id)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (sink, delivered, seq);
"""
_UPSERT = (
    "INSERT INTO state (kind, key, body) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body"
)


P = ParamSpec("P")
R = TypeVar("R")


def _locked(method: Callable[Concatenate[Store, P], R]) -> Callable[Concatenate[Store, P], R]:
    @functools.wraps(method)
    def call(store: Store, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with store._lock:
            return method(store, *args, **kwargs)

    return call


@dataclass(frozen=True, slots=True)
class OutboxItem:
    seq: int
    sink: str
    event_id: str
    body: str
    attempts: int


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Opened by whoever builds the worker, then used by its threads, one call at a time (``_lock``).
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    @_locked
    def close(self) -> None:
        self._db.close()

    @_locked
    def snapshot(self) -> str | None:
        """The engine's head as last committed (None: nothing committed yet)."""
        row = self._db.execute("SELECT body FROM snapshot WHERE id = 1").fetchone()
        return None if row is None else str(row[0])

    @_locked
    def rows(self) -> list[tuple[str, str, str]]:
        """Every state row (kind, key, body), in the order they were first written."""
        return [
            (str(k), str(key), str(b))
            for k, key, b in self._db.execute("SELECT kind, key, body FROM state ORDER BY rowid")
        ]

    @_locked
    def commit(
        self,
        snapshot: str,
        items: list[tuple[str, str, str]],
        *,
        upserts: Iterable[tuple[str, str, str]] = (),
        deletes: Iterable[tuple[str, str]] = (),
    ) -> int:
        """Store the head (``snapshot``), the state rows that changed (``upserts`` as (kind, key, body),
        ``deletes`` as (kind, key)) and (sink, event id, body) outbox rows atomically; return how many outbox
        rows are new."""
        added = 0
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO snapshot (id, body) VALUES (1, ?)", (snapshot,))
            self._db.executemany("DELETE FROM state WHERE kind = ? AND key = ?", deletes)
            self._db.executemany(_UPSERT, upserts)
            for sink, event_id, body in items:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO outbox (sink, event_id, body) VALUES (?, ?, ?)",
                    (sink, event_id, body),
                )
                added += cursor.rowcount
        return added

    @_locked
    def due(self, sink: str, *, limit: int, now: float | None = None) -> list[OutboxItem]:
        """Undelivered rows of one sink, oldest first, up to the first that is waiting for a retry."""
        now = time.time() if now is None else now
        rows = self._db.execute(
            "SELECT seq, sink, event_id, body, attempts, next_try FROM outbox "
            "WHERE sink = ? AND delivered IS NULL ORDER BY seq LIMIT ?",
            (sink, limit),
        ).fetchall()
        out: list[OutboxItem] = []
        for seq, sink_, event_id, body, attempts, next_try in rows:
            if next_try > now:
                break  # keep order: later events wait behind one that is backing off
            out.append(OutboxItem(seq, sink_, event_id, body, attempts))
        return out

    @_locked
    def next_retry(self, sink: str) -> float | None:
        row = self._db.execute(
            "SELECT next_try FROM outbox WHERE sink = ? AND delivered IS NULL ORDER BY seq LIMIT 1", (sink,)
        ).fetchone()
        return None if row is None else float(row[0])

    @_locked
    def delivered(self, items: list[OutboxItem]) -> None:
        with self._transaction():
            self._db.executemany("UPDATE outbox SET delivered = ? WHERE seq = ?", [(time.time(), i.seq) for i in items])

    @_locked
    def failed(self, item: OutboxItem, *, retry_in_s: float, error: str) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_try = ?, last_error = ? WHERE seq = ?",
                (time.time() + retry_in_s, error[:500], item.seq),
            )

    @_locked
    def pending(self, sink: str | None = None) -> int:
        if sink is None:
            row = self._db.execute("SELECT count(*) FROM outbox WHERE delivered IS NULL").fetchone()
        else:
            row = self._db.execute(
                "SELECT count(*) FROM outbox WHERE delivered IS NULL AND sink = ?", (sink,)
            ).fetchone()
        return int(row[0])

    @_locked
    def purge_delivered(self, older_than_s: float, *, now: float | None = None) -> int:
        """Forget outbox rows delivered more than ``older_than_s`` ago; return how many."""
        now = time.time() if now is None else now
        with self._transaction():
            cursor = self._db.execute(
                "DELETE FROM outbox WHERE delivered IS NOT NULL AND delivered < ?", (now - older_than_s,)
            )
        return cursor.rowcount

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
