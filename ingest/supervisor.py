"""`ftel ingest --processes N`: N worker processes on one host, supervised.

The supervisor owns their stop (its children take no Ctrl-C from the terminal; see ftel/children.py): on Ctrl-C
or SIGTERM each worker is asked to stop and writes and confirms what it holds; a second Ctrl-C stops them at
once (what they held unacknowledged, the broker hands out again). A worker that dies is started again after a
backoff that doubles at each death in a row (``RestartBackoff``), so one that dies at every start is not
restarted in a tight loop while the others go on; each death is said in the log and on the worker's retained
health topic, with the reason: how it ended and the last lines it wrote.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from ftel.children import Interrupts, describe_exit, spawn
from ftel.contract.topics import health_topic
from ftel.errors import FtelError
from ftel.mqtt_transport import PahoTransport
from ftel.security.credentials import with_identity
from ftel.settings import Settings
from ftel.storage.writer import RetryPolicy

log = logging.getLogger(__name__)

POLL_S = 0.2
# A worker asked to stop writes and confirms what it holds (its own drain takes at most 30 s).
STOP_TIMEOUT_S = 60.0
# The last lines of a worker's stderr kept to say why it died.
TAIL_LINES = 20
# Of those, how many the health topic carries (the log has them all).
HEALTH_TAIL_LINES = 5


@dataclass
class RestartBackoff:
    """How long a dead worker waits before it starts again (pure): the policy's backoff by deaths in a row;
    a worker that lived ``reset_after_s`` before it died starts the count afresh."""

    policy: RetryPolicy
    reset_after_s: float
    deaths_in_a_row: int = 0

    def after_death(self, lived_s: float, draw: Callable[[], float] = random.random) -> float:
        if lived_s >= self.reset_after_s:
            self.deaths_in_a_row = 0
        delay = self.policy.backoff(self.deaths_in_a_row, draw)
        self.deaths_in_a_row += 1
        return delay


def restart_backoff(settings: Settings) -> RestartBackoff:
    i = settings.ingest
    return RestartBackoff(RetryPolicy(i.restart_initial_s, i.restart_max_s), i.restart_reset_after_s)


def down_health(
    worker_id: str,
    *,
    reason: str,
    tail: list[str],
    deaths_in_a_row: int,
    next_start_in_s: float,
    since_ms: int,
    ts: int,
) -> dict[str, object]:
    """What the worker's retained health says while it is down (the worker's own health replaces it once it
    runs again): ``state`` "restarting", the reason, its last lines, and when it starts again."""
    return {
        "worker": worker_id,
        "state": "restarting",
        "reason": reason,
        "stderr_tail": tail[-HEALTH_TAIL_LINES:],
        "deaths_in_a_row": deaths_in_a_row,
        "next_start_in_s": round(next_start_in_s, 1),
        "since_ms": since_ms,
        "ts": ts,
    }


def publish_down_health(settings: Settings, worker_id: str, health: dict[str, object]) -> None:
    """Say it on the worker's health topic, as the worker: its identity is the one that may publish there.
    The broker takes the identity as the client id, so this is the worker's own persistent session, resumed
    (never cleaned: what waits in it is the worker's) and left with the worker's expiry; whatever the broker
    hands over meanwhile is never acknowledged, so it waits there for the worker. Called only while the worker
    is down, and returns before it starts again."""
    worker = with_identity(settings, worker_id)
    transport = PahoTransport(
        worker.mqtt,
        client_id=worker_id,
        session_expiry_s=settings.ingest.session_expiry_s,
        receive_maximum=1,
        on_message=lambda topic, payload, mid, qos: None,
    )
    try:
        transport.connect()
        transport.publish(health_topic("ingest", worker_id), json.dumps(health).encode(), retain=True)
        transport.disconnect()  # the PUBLISH goes out before the DISCONNECT, in order on one connection
    finally:
        transport.close()


@dataclass
class _Child:
    worker_id: str
    backoff: RestartBackoff
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    start_at: float = 0.0  # monotonic time of its next start while it is down
    down_since_ms: int = 0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    reader: threading.Thread | None = None


def _pass_through(stream: IO[bytes], tail: deque[str]) -> None:
    """The worker's stderr to ours, line by line, keeping the last lines to say why it died."""
    for line in stream:
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()
        tail.append(line.decode(errors="replace").rstrip())


class Supervisor:
    def __init__(self, settings: Settings, ids: list[str], passthrough: list[str]) -> None:
        self.settings = settings
        self._passthrough = passthrough
        self._children = {worker_id: _Child(worker_id, restart_backoff(settings)) for worker_id in ids}

    def run(self, interrupts: Interrupts) -> int:
        for child in self._children.values():
            self._start(child)
        log.info("started %d ingest worker processes: %s", len(self._children), ", ".join(self._children))
        while not interrupts.stop.wait(POLL_S):
            now = time.monotonic()
            for child in self._children.values():
                if child.process is None:
                    if now >= child.start_at:
                        self._start(child)
                elif child.process.poll() is not None:
                    self._died(child)
        return self._stop(interrupts.abort)

    def _start(self, child: _Child) -> None:
        args = [*self._passthrough, "ingest", "--worker-id", child.worker_id]
        child.process = spawn(args, stderr=subprocess.PIPE)
        assert child.process.stderr is not None
        child.started = time.monotonic()
        child.tail.clear()
        child.reader = threading.Thread(
            target=_pass_through, args=(child.process.stderr, child.tail), name=f"{child.worker_id}-stderr", daemon=True
        )
        child.reader.start()

    def _died(self, child: _Child) -> None:
        assert child.process is not None
        assert child.reader is not None
        child.reader.join(timeout=5)  # its last lines, up to the end of the pipe
        how = describe_exit(child.process.returncode)
        lived = time.monotonic() - child.started
        delay = child.backoff.after_death(lived)
        if child.backoff.deaths_in_a_row == 1:
            child.down_since_ms = time.time_ns() // 1_000_000
        tail = list(child.tail)
        last = f"; its last line: {tail[-1]}" if tail else ""
        log.warning(
            "ingest worker %s %s after %.1f s (%d deaths in a row); starting it again in %.1f s, the other workers "
            "go on%s",
            child.worker_id,
            how,
            lived,
            child.backoff.deaths_in_a_row,
            delay,
            last,
        )
        health = down_health(
            child.worker_id,
            reason=f"{how} after {lived:.1f} s",
            tail=tail,
            deaths_in_a_row=child.backoff.deaths_in_a_row,
            next_start_in_s=delay,
            since_ms=child.down_since_ms,
            ts=time.time_ns() // 1_000_000,
        )
        try:
            publish_down_health(self.settings, child.worker_id, health)
        except FtelError as error:  # the broker away, the identity missing: the log has said it
            log.warning("could not say so on %s: %s", health_topic("ingest", child.worker_id), error)
        child.process = None
        child.start_at = time.monotonic() + delay

    def _stop(self, abort: threading.Event) -> int:
        running = {c.worker_id: c.process for c in self._children.values() if c.process and c.process.poll() is None}
        log.info(
            "stopping %d ingest workers (%s): each writes and confirms what it holds (Ctrl-C again stops at once)",
            len(running),
            ", ".join(running),
        )
        began = time.monotonic()
        for process in running.values():
            process.terminate()
        codes: list[int] = []
        while running:
            if abort.is_set() or time.monotonic() - began > STOP_TIMEOUT_S:
                for process in running.values():
                    process.kill()
                    process.wait()
            for worker_id, process in list(running.items()):
                if process.poll() is not None:
                    codes.append(process.returncode)
                    ended = "stopped" if process.returncode == 0 else describe_exit(process.returncode)
                    log.info("ingest worker %s %s", worker_id, ended)
                    del running[worker_id]
            if running:
                abort.wait(POLL_S)
        for child in self._children.values():
            if child.reader is not None:
                child.reader.join(timeout=5)
        if abort.is_set():
            log.warning(
                "stopped at once: what the workers held unacknowledged, the broker hands out again at their next start"
            )
        return 0 if all(code == 0 for code in codes) else 1
