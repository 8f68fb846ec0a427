"""A stack-light tap's polls → readings (pure): each lamp's bits judged over polls (gateway/lamp.py), then the
model's rule (the lamp convention by default) at each poll once every lamp's condition there is decided.

Readings are held back until then and told at their own poll times, in order: a lamp machine's readings reach
the gateway up to ``blink_phase_max_s`` + ``debounce_s`` + one poll after their time, with no error added.

Between two lamps (a blinking red that goes dark, then the green that lights), all may be dark for a moment:
a lamp dark for at most one blink phase after blinking still counts as blinking while no other lamp is lit,
so a fault that ends in its lamp's dark phase is not followed by a moment of 'all dark'.
"""

from __future__ import annotations

from collections import deque

from gateway.config import DataType, ModelConfig, Signal
from gateway.driver import Reading
from gateway.lamp import Lamp, LampTiming, LampTracker, PulseCounter
from gateway.signals import RawValue, Sample, SignalInterpreter


class LampInterpreter:
    """The Interpreter (gateway/drivers/poll.py) of a stack-light tap (see the module docstring)."""

    def __init__(self, model: ModelConfig) -> None:
        self._model = model
        self._inner = SignalInterpreter(model)
        self._timing = LampTiming.of(model.lamp)
        self._lamps = self._fresh()
        units = (model.modbus or {}).get(Signal.UNITS)
        self._pulses = PulseCounter() if units is not None and units.type is DataType.BOOL else None
        self._held: deque[tuple[int, dict[str, RawValue], bool]] = deque()

    def _fresh(self) -> dict[str, LampTracker]:
        return {lamp.value: LampTracker(self._timing) for lamp in self._model.lamps}

    @property
    def held(self) -> int:
        """Polls read but not yet told (their lamps' conditions not yet decided)."""
        return len(self._held)

    def conditions(self) -> dict[str, str]:
        """Each lamp's condition as last decided (``undecided`` before any)."""
        return {name: t.changes[-1][1].value if t.changes else "undecided" for name, t in self._lamps.items()}

    def readings(self, at_ms: int, sample: Sample, *, reconnected: bool = False) -> tuple[list[Reading], list[str]]:
        values = dict(sample)
        for name, tracker in self._lamps.items():
            tracker.observe(at_ms, bool(values.pop(name, 0)))
        if self._pulses is not None and Signal.UNITS.value in values:
            values[Signal.UNITS.value] = self._pulses.observe(bool(values[Signal.UNITS.value]))
        self._held.append((at_ms, values, reconnected))
        return self._release(min(t.known_until_ms for t in self._lamps.values()))

    def offline(self, at_ms: int) -> list[Reading]:
        """What the lamps showed up to the last answer, taken as it stands, then OFFLINE; after it the lamps
        are judged afresh (nothing is known of what they did meanwhile)."""
        for tracker in self._lamps.values():
            tracker.settle()
        readings, _ = self._release(at_ms)
        self._lamps = self._fresh()
        if self._pulses is not None:
            self._pulses.last = None  # an edge across the gap is not a pulse we saw
        return [*readings, self._inner.went_offline(at_ms)]

    def _release(self, until_ms: int) -> tuple[list[Reading], list[str]]:
        """Interpret every held poll before ``until_ms``, with its lamps' conditions."""
        out: list[Reading] = []
        refused: list[str] = []
        while self._held and self._held[0][0] < until_ms:
            at_ms, values, reconnected = self._held.popleft()
            reading, why = self._inner.interpret(at_ms, {**values, **self._conditions(at_ms)}, reconnected=reconnected)
            refused += why
            if reading is not None:
                out.append(reading)
            for tracker in self._lamps.values():
                tracker.forget_before(at_ms)
        return out, refused

    def _conditions(self, at_ms: int) -> dict[str, RawValue]:
        shown = {name: t.condition_at(at_ms) or Lamp.OFF for name, t in self._lamps.items()}
        if all(c is Lamp.OFF for c in shown.values()):
            for name, tracker in self._lamps.items():
                ended = tracker.blink_ended_at(at_ms)
                if ended is not None and at_ms - ended <= self._timing.blink_phase_max_ms:
                    shown[name] = Lamp.BLINKING
        return {name: c.value for name, c in shown.items()}
