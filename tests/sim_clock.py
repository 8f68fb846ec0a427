"""Simulated time for the gateways of one test run, paced together so that what the run simulates does not
depend on how loaded the machine is.

A plain SimClock gives each gateway the plant time that goes with the wall clock. Under load one gateway can
lag the others by a few hundred milliseconds, in its loop or in getting its messages through the broker (it
keeps up to a thousand in flight), which at a speed-up of 300 to 1000 is minutes of plant time: its heartbeats
reach the subscribers late (a false "gateway silent"), and its next tick covers minutes at once (its messages
come in a lump, and what they show is seen late). A PacedClock gives a gateway the same time as the SimClock,
except:

* never more than ``max_step_ms`` past the time it gave before, so no tick covers more than a heartbeat
  interval (a gateway behind the SimClock catches up in more ticks, not in bigger ones);
* never more than ``max_lead_ms`` past the newest heartbeat that has reached a subscriber from the slowest
  of the other gateways of the run: a PaceKeeper, subscribed to the run's heartbeats, keeps that in a small
  file of slots, one per gateway, that every gateway's clock reads (threads and processes alike). The broker
  hands every subscriber the messages in the order it took them, so when anything stamped ``t`` reaches the
  alert worker, every other gateway's heartbeat of ``t - max_lead_ms`` or later has reached it before. A
  gateway that lags holds the others back instead of falling behind them: the run takes longer in wall time
  and is the same in plant time. (Its own heartbeats do not hold a gateway back: it must always be able to
  reach its next one.);
* never past ``hold_at_ms`` when given: the test decides what happens there (say, kill the gateway).
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from pydantic import ValidationError

from ftel.contract.models import Heartbeat
from ftel.contract.topics import PREFIX
from ftel.mqtt import paho_client
from ftel.settings import MqttSettings
from simulators.clock import SimClock

# One heartbeat interval: each tick's messages are at most that far apart (an alert is seen within it).
MAX_STEP_MS = 10_000
# Two heartbeat intervals (a gateway reaches its next heartbeat before it waits for it to be delivered): what a
# subscriber has from any gateway is never more than that behind the newest message, well inside the 45 s after
# which the alert engine calls a gateway silent.
MAX_LEAD_MS = 20_000
_SLOT = struct.Struct("<q")
# A slot that paces nobody: its gateway is not running (killed, or not started yet), and nothing waits for it.
IDLE = -1


@dataclass(frozen=True)
class Pace:
    """The progress of each gateway of a run: slot i holds the time of gateway i's newest heartbeat that has
    reached a subscriber, or IDLE."""

    path: Path
    slots: int

    @classmethod
    def create(cls, path: Path, *, slots: int, start_ms: int) -> Pace:
        """Every gateway at the start: none runs ahead before the slowest to start (a process) has begun."""
        path.write_bytes(_SLOT.pack(start_ms) * slots)
        return cls(path, slots)

    def open(self) -> _Slots:
        return _Slots(self)

    def set(self, slot: int, value_ms: int) -> None:
        with self.open() as slots:
            slots.write(slot, value_ms)

    def advance(self, slot: int, value_ms: int) -> None:
        """Raise the slot to ``value_ms`` (an older heartbeat, or one of a gateway parked ahead, leaves it)."""
        with self.open() as slots:
            current = slots.read()[slot]
            if value_ms > current:
                slots.write(slot, value_ms)

    def get(self, slot: int) -> int:
        with self.open() as slots:
            return slots.read()[slot]


class _Slots:
    """The slots file, locked while open (flock: between threads with their own descriptors and processes)."""

    def __init__(self, pace: Pace) -> None:
        self._pace = pace
        self._fd = os.open(pace.path, os.O_RDWR)

    def __enter__(self) -> _Slots:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)

    def read(self) -> list[int]:
        data = os.pread(self._fd, _SLOT.size * self._pace.slots, 0)
        return [value for (value,) in _SLOT.iter_unpack(data)]

    def write(self, slot: int, value_ms: int) -> None:
        os.pwrite(self._fd, _SLOT.pack(value_ms), slot * _SLOT.size)


class PacedClock:
    """``now_ms`` for one gateway of a paced run (see the module docstring); monotonic."""

    def __init__(
        self,
        clock: SimClock,
        *,
        pace: Pace | None = None,
        slot: int | None = None,
        start_ms: int | None = None,
        hold_at_ms: int | None = None,
        max_step_ms: int = MAX_STEP_MS,
        max_lead_ms: int = MAX_LEAD_MS,
    ) -> None:
        """``slot``: this gateway's in ``pace``. ``start_ms``: the time this gateway starts from (steps count
        from there; default: no bound on the first step)."""
        self._clock = clock
        self._pace = pace
        self._slot = slot
        self._hold_at_ms = hold_at_ms
        self._max_step_ms = max_step_ms
        self._max_lead_ms = max_lead_ms
        self._given = start_ms

    def now_ms(self) -> int:
        target = self._clock.now_ms()
        if self._given is not None:
            target = min(target, self._given + self._max_step_ms)
        if self._hold_at_ms is not None:
            target = min(target, self._hold_at_ms)
        allowed = self.allowed_ms()
        if allowed is not None:
            target = min(target, allowed)
        given = target if self._given is None else max(self._given, target)
        self._given = given
        return given

    def allowed_ms(self) -> int | None:
        """How far the others let this gateway go: the slowest one's newest delivered heartbeat plus the lead
        (None: nobody to wait for)."""
        if self._pace is None:
            return None
        with self._pace.open() as slots:
            delivered = [v for i, v in enumerate(slots.read()) if i != self._slot and v != IDLE]
        return min(delivered) + self._max_lead_ms if delivered else None


class PaceKeeper:
    """Subscribed to the heartbeats of a run's gateways (a real MQTT client), it raises each gateway's slot to
    the newest heartbeat that reached it."""

    def __init__(self, mqtt: MqttSettings, *, site: str, pace: Pace, slots: Mapping[str, int]) -> None:
        """``slots``: gateway id -> its slot in ``pace``."""
        self._pace = pace
        self._slots = dict(slots)
        self._subscribed = threading.Event()
        self._client = paho_client(mqtt, client_id=mqtt.username or "")
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.connect(mqtt.host, mqtt.port)
        self._client.subscribe(f"{PREFIX}/{site}/+/gateway/+/heartbeat", qos=1)
        self._client.loop_start()
        if not self._subscribed.wait(30):
            raise RuntimeError("the pace keeper got no answer to its subscription")

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        try:
            beat = Heartbeat.model_validate_json(message.payload)
        except ValidationError:
            return
        slot = self._slots.get(beat.gateway_id)
        if slot is not None:
            self._pace.advance(slot, beat.ts)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
