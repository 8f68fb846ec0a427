"""Stop events that a signal handler may set.

``threading.Event.set`` takes the event's lock. A Python signal handler runs in the main thread between two
bytecodes, which may be inside ``Event.wait`` on that same event with its lock held (``Condition.wait`` takes it
back before it returns): the handler's ``set`` then waits for a lock its own thread holds, and the process
hangs for good. Rare, but a loaded machine finds it (a second Ctrl-C that never stopped ``ftel ingest
--processes``). A ``SignalEvent`` is set without a lock: a flag and a byte written to a pipe, which ``wait``
selects on.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading


class SignalEvent(threading.Event):
    """A ``threading.Event`` whose ``set`` is safe in a signal handler (and from any thread): every waiter,
    in any thread, wakes when it is set."""

    def __init__(self) -> None:
        super().__init__()
        self._is_set = False
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    def is_set(self) -> bool:
        return self._is_set

    def set(self) -> None:
        if self._is_set:
            return
        self._is_set = True
        # The pipe stays readable: every later wait returns at once. Full only if already written (a handler and
        # a thread at once).
        with contextlib.suppress(BlockingIOError):
            os.write(self._write_fd, b"!")

    def clear(self) -> None:
        self._is_set = False
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 64):
                pass

    def wait(self, timeout: float | None = None) -> bool:
        if not self._is_set:
            # A signal during the select runs its handler, and the select goes on with what is left (PEP 475)
            # and sees the byte the handler wrote.
            select.select([self._read_fd], [], [], timeout)
        return self._is_set

    def close(self) -> None:
        os.close(self._read_fd)
        os.close(self._write_fd)


def stop_on_signals() -> SignalEvent:
    """An event set by the first SIGINT or SIGTERM: a process's clean stop."""
    stop = SignalEvent()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop
