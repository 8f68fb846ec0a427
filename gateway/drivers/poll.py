"""Polled machines on one asyncio loop per gateway, in a background thread.

The gateway's runner is synchronous: it calls ``read(at_ms)`` on every driver at each window edge, telemetry
tick and tick. A controller is slow, or silent, on its own schedule. So each machine is polled by its own
task, at its own interval with its own time limit, and ``read(at_ms)`` only hands over what the polls have seen
up to ``at_ms``: a reading per poll, stamped on the gateway's clock when it was asked. A machine that does
not answer never holds up another one or the runner.

- ``offline_after`` failed polls in a row (a time-out, a refusal, a broken connection) make the machine
  OFFLINE from the moment the first of them was sent; the next answer ends it.
- A time-out noticed much later than it was due says that this host, not the controller, was stalled (a busy
  machine, a long pause of the process): an answer may have been waiting unread. Such a poll proves nothing:
  it is not counted as a failure, and the next poll asks again.
- After a failure the connection is dropped and made again at the next poll; a connection that cannot be made
  is tried again after ``reconnect_min_s``, doubling up to ``reconnect_max_s`` (with jitter: the project's one
  ``RetryPolicy``), for as long as the gateway runs: the machine is OFFLINE meanwhile, and comes back.
- Where the source offers it (OPC UA subscriptions), a change it reports triggers a poll at once, so state
  changes are seen sooner than the poll interval; the poll reads every signal together, so the state is
  decided from one consistent sample.
- A source on a shared bus (units on one serial line, or behind one Modbus TCP→RTU gateway) takes its turn
  before it is asked: the poll is stamped, and its time limit starts, when its turn comes, so the time spent
  waiting behind the other units is neither a failure nor an error in the stamp.

Timing in the configuration is plant time; with a simulated clock running ``time_scale`` times faster than the
wall clock, waits and time limits are that much shorter in wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from ftel.retry import RetryPolicy
from ftel.settings import PollSettings
from gateway.driver import MachineInfo, Reading
from gateway.drivers.errors import DriverError, SourceError
from gateway.signals import Sample

log = logging.getLogger(__name__)

# A stopping loop gives each source this long (wall seconds) to close its connection.
CLOSE_WAIT_S = 2.0
# Connecting takes several round trips (an OPC UA session, browsing for the machine): it may take at least this
# long in wall seconds, whatever the poll's time limit. A controller that refuses a connection fails at once.
CONNECT_MIN_S = 5.0
# A time-out noticed this much (of the time limit) after it was due means the loop itself was stalled.
STALL_FRACTION = 0.5


def connect_limit_s(timeout_s: float) -> float:
    """The time limit (wall seconds) of making a connection, for a poll's time limit of ``timeout_s``."""
    return max(CONNECT_MIN_S, timeout_s)


class Source(Protocol):
    """One machine's controller, as a driver sees it. Raises SourceError (or OSError / TimeoutError)."""

    async def connect(self) -> None: ...

    async def read(self) -> Sample: ...

    async def watch(self, changed: Callable[[], None]) -> bool:
        """Call ``changed`` when the controller reports a change; False when it offers no such thing."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class TakesTurns(Protocol):
    """Optional for a source on a shared bus: its poll waits for its turn (and holds the bus through it)."""

    def turn(self) -> AbstractAsyncContextManager[None]: ...


class Interpreter(Protocol):
    """A machine's samples → readings (gateway/signals.py, or gateway/lamp.py for a stack-light tap, whose
    readings may come a little after their samples, in time order)."""

    def readings(self, at_ms: int, sample: Sample, *, reconnected: bool) -> tuple[list[Reading], list[str]]:
        """The readings this sample decides (each stamped with its own time) and what it refused, by reason."""
        ...

    def offline(self, at_ms: int) -> list[Reading]:
        """The machine stopped answering at ``at_ms``: what is still held back, then OFFLINE."""
        ...


_DEFAULTS = PollSettings()


@dataclass(frozen=True, slots=True)
class PollTiming:
    """Plant seconds (see the module docstring); the defaults are the settings'."""

    interval_s: float
    timeout_s: float
    offline_after: int = _DEFAULTS.offline_after
    reconnect_min_s: float = _DEFAULTS.reconnect_min_s
    reconnect_max_s: float = _DEFAULTS.reconnect_max_s
    subscribe: bool = False

    @property
    def reconnect(self) -> RetryPolicy:
        """Waits between connection attempts (plant seconds): the policy's jitter spreads machines that failed
        together."""
        return RetryPolicy(self.reconnect_min_s, self.reconnect_max_s)


@dataclass(frozen=True, slots=True)
class LoopClock:
    now_ms: Callable[[], int]
    time_scale: float = 1.0  # plant seconds per wall second

    def wall_s(self, plant_s: float) -> float:
        return plant_s / self.time_scale


class PolledMachine:
    """A MachineDriver for one polled controller (see the module docstring)."""

    def __init__(
        self,
        info: MachineInfo,
        source: Source,
        timing: PollTiming,
        interpreter: Interpreter,
        *,
        resume_key: str,
    ) -> None:
        self._info = info
        self._source = source
        self._turn: Callable[[], AbstractAsyncContextManager[None]] = (
            source.turn if isinstance(source, TakesTurns) else nullcontext
        )
        self._timing = timing
        self._interpreter = interpreter
        self._resume_key = resume_key
        self._lock = threading.Lock()
        self._pending: list[Reading] = []
        self._stamp = 0  # the newest reading's time: readings are strictly increasing in time
        self._refusals: dict[str, int] = {}
        self._failures = 0
        self._first_failure_ms = 0
        self._offline = False
        self.polls = 0
        self.stalls = 0  # polls not counted: this host stalled past their time limit

    # -- the driver protocol (runner thread) -----------------------------------------------------------------

    @property
    def info(self) -> MachineInfo:
        return self._info

    @property
    def resume_key(self) -> str:
        return self._resume_key

    def read(self, at_ms: int) -> list[Reading]:
        with self._lock:
            n = 0
            while n < len(self._pending) and self._pending[n].at_ms <= at_ms:
                n += 1
            out = self._pending[:n]
            del self._pending[:n]
        return out

    def resume(self, at_ms: int) -> bool:
        """A controller only tells the present: the gateway counts the time it was away as OFFLINE."""
        return False

    def refusals(self) -> dict[str, int]:
        """What this machine's controller said that was refused, by reason (out_of_range:temperature, …)."""
        with self._lock:
            return dict(self._refusals)

    @property
    def offline(self) -> bool:
        return self._offline

    # -- the poll loop (loop thread) -------------------------------------------------------------------------

    def _add(self, reading: Reading) -> None:
        with self._lock:
            at = max(reading.at_ms, self._stamp + 1)
            self._stamp = at
            self._pending.append(reading if at == reading.at_ms else replace(reading, at_ms=at))

    def _refuse(self, reasons: Sequence[str], at_ms: int) -> None:
        if not reasons:
            return
        with self._lock:
            for reason in reasons:
                n = self._refusals[reason] = self._refusals.get(reason, 0) + 1
                if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th… time: enough to see it without flooding the log
                    log.warning("machine %s: refused %s (%d so far, at %d)", self._info.machine_id, reason, n, at_ms)

    def _answered(self, at_ms: int, sample: Sample, *, reconnected: bool) -> None:
        self.polls += 1
        if self._offline:
            log.info("machine %s answers again", self._info.machine_id)
        self._failures, self._offline = 0, False
        readings, refused = self._interpreter.readings(at_ms, sample, reconnected=reconnected)
        self._refuse(refused, at_ms)
        for reading in readings:
            self._add(reading)

    def _failed(self, sent_ms: int, error: BaseException) -> None:
        self._failures += 1
        if self._failures == 1:
            self._first_failure_ms = sent_ms
        if self._failures == self._timing.offline_after and not self._offline:
            self._offline = True
            log.warning(
                "machine %s does not answer (%s): OFFLINE from %d",
                self._info.machine_id,
                _describe(error),
                self._first_failure_ms,
            )
            for reading in self._interpreter.offline(self._first_failure_ms):
                self._add(reading)
        else:
            log.debug("machine %s: poll failed: %s", self._info.machine_id, _describe(error))

    async def run(self, clock: LoopClock, stopping: asyncio.Event) -> None:
        """Poll until ``stopping``: connect, read at each interval (or at once when the source reports a change),
        reconnect after a failure."""
        t = self._timing
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        connected, lost, attempts = False, False, 0
        next_poll = loop.time()
        while not stopping.is_set():
            if not connected:
                sent = clock.now_ms()
                try:
                    await asyncio.wait_for(self._source.connect(), connect_limit_s(clock.wall_s(t.timeout_s)))
                    connected, attempts = True, 0
                    if t.subscribe:
                        await self._watch(clock, changed)
                except (SourceError, OSError, TimeoutError) as error:
                    self._failed(sent, error)
                    await self._close(clock)
                    wait = t.reconnect.delay(attempts)
                    attempts += 1
                    await _wait(stopping, None, clock.wall_s(wait))
                    next_poll = loop.time()
                    continue
            changed.clear()
            limit = clock.wall_s(t.timeout_s)
            async with self._turn():
                sent, asked = clock.now_ms(), loop.time()
                outcome = await _attempt(self._source, limit)
                took = loop.time() - asked
            if isinstance(outcome, Exception):
                failure = outcome
                if isinstance(failure, TimeoutError) and took > limit * (1 + STALL_FRACTION):
                    self.stalls += 1
                    log.debug("machine %s: poll timed out while this host stalled; not counted", self._info.machine_id)
                else:
                    self._failed(sent, failure)
                    lost = True
                connected = False
                await self._close(clock)
            else:
                # Stamped when asked: the answer tells the controller as it was between asking and answering,
                # and the time of asking keeps its cadence whatever the answer's delay.
                self._answered(sent, outcome, reconnected=lost)
                lost = False
            next_poll = max(next_poll + clock.wall_s(t.interval_s), loop.time())
            await _wait(stopping, changed, next_poll - loop.time())
        await self._close(clock)

    async def _watch(self, clock: LoopClock, changed: asyncio.Event) -> None:
        try:
            offered = await asyncio.wait_for(self._source.watch(changed.set), clock.wall_s(self._timing.timeout_s))
        except (SourceError, OSError, TimeoutError) as error:
            log.info("machine %s: no subscription (%s); polling only", self._info.machine_id, _describe(error))
            return
        if not offered:
            log.info("machine %s: the server offers no subscription; polling only", self._info.machine_id)

    async def _close(self, clock: LoopClock) -> None:
        with contextlib.suppress(SourceError, OSError, TimeoutError):
            await asyncio.wait_for(self._source.close(), max(CLOSE_WAIT_S, clock.wall_s(self._timing.timeout_s)))


async def _attempt(source: Source, limit_s: float) -> Sample | Exception:
    """One read within ``limit_s``: its sample, or why it failed."""
    try:
        return await asyncio.wait_for(source.read(), limit_s)
    except (SourceError, OSError, TimeoutError) as error:
        return error


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return str(error) or type(error).__name__


async def _wait(stopping: asyncio.Event, changed: asyncio.Event | None, timeout_s: float) -> None:
    """Until ``stopping`` or ``changed`` is set, or ``timeout_s`` passed."""
    if timeout_s <= 0 or stopping.is_set():
        return
    waiters = [asyncio.ensure_future(stopping.wait())]
    if changed is not None:
        waiters.append(asyncio.ensure_future(changed.wait()))
    _, pending = await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    for waiter in pending:
        waiter.cancel()


class PollLoop:
    """The asyncio loop, in its own thread, that polls every machine of one gateway."""

    def __init__(self, machines: Sequence[PolledMachine], clock: LoopClock, *, name: str = "poll") -> None:
        self.machines = list(machines)
        self._clock = clock
        self._name = name
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        if not self.machines or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # kept for stop() to report; a dead poller must not pass unnoticed
            self._error = error
            log.exception("poll loop %s stopped on an error", self._name)
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._ready.set()
        tasks = [asyncio.create_task(m.run(self._clock, self._stopping), name=m.info.machine_id) for m in self.machines]
        await asyncio.gather(*tasks)

    def stop(self, timeout_s: float = 10.0) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended on its own
                loop.call_soon_threadsafe(stopping.set)
        if thread is not None:
            thread.join(timeout_s)
        if self._error is not None:
            raise DriverError(f"the poll loop {self._name} failed: {self._error}") from self._error

    def refusals(self) -> dict[str, dict[str, int]]:
        return {m.info.machine_id: r for m in self.machines if (r := m.refusals())}

    def __enter__(self) -> PollLoop:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
