"""A worker process's readiness, which a parent waits on without reading its log.

The parent names a file in the child's settings (``FTEL_READY_FILE``, removing one left from before) and starts
it; the worker creates the file, by a rename so it is whole when it appears, once the broker has granted its
subscriptions. The parent waits for the file, for the process to end, or for its own stop. A file rather than
the retained health topic: the parent needs no broker identity of its own, and a file removed before the start
cannot be mistaken for an earlier run's (a retained message can).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from enum import StrEnum
from pathlib import Path

READY_FILE_ENV = "FTEL_READY_FILE"
# How often a parent looks for the file.
LOOK_EVERY_S = 0.05


class Readiness(StrEnum):
    READY = "ready"
    EXITED = "exited"  # the process ended first
    TIMED_OUT = "timed out"
    STOPPED = "stopped"  # the parent was asked to stop first


def announce_ready(path: Path | None, who: str) -> None:
    """The worker's side: say it is ready (nothing when no parent asked)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(f"{who} pid {os.getpid()}\n")
    partial.replace(path)


def ready_env(path: Path) -> dict[str, str]:
    """The parent's side, before the start: the environment that asks a child to announce itself at ``path``
    (a file left from an earlier run removed)."""
    path.unlink(missing_ok=True)
    return {READY_FILE_ENV: str(path)}


def wait_ready(
    path: Path,
    process: subprocess.Popen[bytes],
    *,
    timeout_s: float,
    stop: threading.Event | None = None,
) -> Readiness:
    """The parent's side, after the start: wait until the child is ready, ends, the time is up or ``stop``."""
    deadline = time.monotonic() + timeout_s
    stop = stop or threading.Event()
    while not path.exists():
        if stop.is_set():
            return Readiness.STOPPED
        if process.poll() is not None:
            return Readiness.EXITED
        if time.monotonic() > deadline:
            return Readiness.TIMED_OUT
        stop.wait(LOOK_EVERY_S)
    return Readiness.READY
