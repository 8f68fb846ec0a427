"""Processes a command starts and owns (`ftel run`, `ftel loadtest`, `ftel ingest --processes N`): out of the
terminal's reach, stopped by their parent in the order the data flows, never outliving it.

A terminal's Ctrl-C goes to its whole foreground process group. Children in that group would each stop on
their own, in no order (an ingest worker gone before the gateways drained to it). So each child runs in a
session of its own and takes only the signal its parent sends (ARCHITECTURE.md, decision 11). A parent killed
outright sends none: every ``ftel`` process started here learns its parent's pid (``PARENT_ENV``) and asks the
kernel for a SIGTERM when that parent dies (Linux ``PR_SET_PDEATHSIG``; elsewhere a thread watches for it), so
it stops cleanly instead of running on, unseen.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from ftel.signals import SignalEvent

log = logging.getLogger(__name__)

PARENT_ENV = "FTEL_PARENT_PID"
# Where the kernel cannot tell a child its parent died, the child looks this often.
PARENT_POLL_S = 1.0
_PR_SET_PDEATHSIG = 1

Output = int | IO[bytes] | None


def spawn(
    args: list[str],
    *,
    env: Mapping[str, str] | None = None,
    stdout: Output = None,
    stderr: Output = None,
    nice: int = 0,
) -> subprocess.Popen[bytes]:
    """``ftel <args>`` as a child of this process: in a session of its own (the terminal's Ctrl-C is the
    parent's to handle), stopping by itself should the parent die. Call it from the thread that outlives the
    child (the main thread): Linux tells a child when the thread that started it ends. ``nice`` above 0 runs it
    (and every thread it starts) at that lower priority, through coreutils' nice, which execs it (same pid)."""
    child_env = {**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())}
    niced = ["nice", "-n", str(nice)] if nice else []
    return subprocess.Popen(
        [*niced, sys.executable, "-m", "ftel.app", *args],
        env=child_env,
        stdout=stdout,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_with_parent() -> None:
    """In a process that ``spawn`` started: SIGTERM to itself when its parent dies (a clean stop, as when the
    parent stops it). Does nothing in a process started otherwise (a terminal, systemd)."""
    text = os.environ.get(PARENT_ENV)
    if not text:
        return
    parent = int(text)
    if not _death_signal(signal.SIGTERM):
        threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    if os.getppid() != parent:  # it died before the kernel was asked
        os.kill(os.getpid(), signal.SIGTERM)


def _death_signal(sig: signal.Signals) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return int(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    log.warning("parent process %d is gone; stopping", parent)
    os.kill(os.getpid(), signal.SIGTERM)


def describe_exit(returncode: int) -> str:
    """``exited with code 1`` or ``killed by SIGKILL`` (Popen's negative return code is a signal)."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


class Interrupts:
    """The parent's stop: the first Ctrl-C (or SIGTERM) asks for the ordered stop (``stop``), a second one for
    a stop at once (``abort``). Handlers never raise, so a stop in progress is never cut in the middle of a
    step; the steps poll these events."""

    def __init__(self) -> None:
        self.stop = SignalEvent()
        self.abort = SignalEvent()
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.stop.is_set():
            self.abort.set()
        self.stop.set()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def stop_summary(took_s: float, left: Mapping[str, tuple[int, Path | None]], *, next_run: str) -> tuple[str, bool]:
    """The one line said at the end of a stop: everything confirmed, or how many messages wait in which
    gateway's spool (``left``: gateway id → count, spool file; None: in memory) and that ``next_run`` sends
    them. The flag says whether it is a warning (something is really left behind)."""
    took = f"stopped in {took_s:.1f} s"
    if not left:
        return f"{took}: everything the gateways sent is stored and confirmed", False
    total = sum(n for n, _ in left.values())
    where = "; ".join(f"{n:,} in {gateway_id}'s {path or 'memory (LOST)'}" for gateway_id, (n, path) in left.items())
    return f"{took}: {total:,} messages wait in the gateways' spools ({where}); {next_run} sends them", True
