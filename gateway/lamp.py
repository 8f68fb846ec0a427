"""A stack-light (tower lamp) tap, read over polls (pure): each lamp off, steady or blinking; a pulse counter.

An old machine with no controller interface still shows its state on its tower lamp. A digital-input module
wired to the lamps (or a relay box's coils) is polled; each lamp's level is one bit. A polled bit cannot tell a
blinking lamp from a steady one at one sample, so each lamp's levels are judged over time:

- **Debounce**: a new level counts once it has been read for ``debounce_s`` (at two polls that far apart or
  more; 0: at once). It is dated at the poll that first read it; a flicker shorter than that is ignored.
- **Blink**: a blinking lamp changes level at least every ``blink_phase_max_s``. So the time between two
  (debounced) changes of a lamp is a *short* phase if it is at most that long, a *long* one otherwise. A long
  phase is steady (on: STEADY, off: OFF), from the change that began it; a run of short phases is BLINKING, from
  the change that began the run. A single short phase (a lamp lit once for a moment) is a blink too.
- **Latency, not error**: a phase is known to be long only once it has lasted ``blink_phase_max_s``, and short
  once it has ended. Until then the lamp's condition from that change on is undecided, and nothing after it is
  told: the machine's readings are held back (``known_until_ms``) and then told at their own times. So deciding
  adds at most ``blink_phase_max_s`` + ``debounce_s`` + one poll of delay, and no error to the time in a state.
- A blinking lamp that stops blinking is seen to stop at its last change: within one blink phase of the truth.

The poll interval must be shorter than a blink's shortest phase (else a phase may fall between two polls);
half of it or less is safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ftel.contract.states import UNKNOWN_FAULT, MachineState
from gateway.config import LampConfig, ModelConfig, RuleEntry, Signal


class Lamp(StrEnum):  # its values are config.LAMP_CONDITIONS
    """A lamp's condition, as a rule reads it: ``red: blinking``, ``green: steady``; ``true`` is lit (steady
    or blinking), ``false`` off."""

    OFF = "off"
    STEADY = "steady"
    BLINKING = "blinking"


@dataclass(frozen=True, slots=True)
class LampTiming:
    """Plant milliseconds."""

    blink_phase_max_ms: int
    debounce_ms: int = 0

    @staticmethod
    def of(config: LampConfig | None) -> LampTiming:
        c = config or LampConfig()
        return LampTiming(round(c.blink_phase_max_s * 1000), round(c.debounce_s * 1000))


@dataclass(slots=True)
class LampTracker:
    """One lamp over polls (see the module docstring). ``observe`` each poll's bit in time order; ``changes``
    holds the decided conditions, each from its time, and ``known_until_ms`` where deciding has got to
    (exclusive: the condition at every time before it is known)."""

    timing: LampTiming
    level: bool = False
    phase_from_ms: int | None = None  # the change that began the current phase (None before the first poll)
    blinking: bool = False  # the phase before the current one was short: a blink run is on
    decided: bool = False  # the current phase's condition is told
    candidate: tuple[bool, int] | None = None  # a new level read since then, not yet past the debounce
    changes: list[tuple[int, Lamp]] = field(default_factory=list)
    known_until_ms: int = 0

    def observe(self, at_ms: int, lit: bool) -> None:
        if self.phase_from_ms is None:
            self.level, self.phase_from_ms = lit, at_ms
            self.known_until_ms = at_ms
            return
        if lit == self.level:
            self.candidate = None
        elif self.candidate is None:
            self.candidate = (lit, at_ms)
        candidate = self.candidate
        if candidate is not None and at_ms - candidate[1] >= self.timing.debounce_ms:
            self._change(candidate[1])
            candidate = self.candidate = None
        # The level has held from the phase's start up to here (or to the first read of a level not yet sure).
        held_until = candidate[1] if candidate else at_ms
        if not self.decided and held_until - self.phase_from_ms > self.timing.blink_phase_max_ms:
            self._tell(self.phase_from_ms, Lamp.STEADY if self.level else Lamp.OFF)
            self.blinking = False
        if self.decided:
            self.known_until_ms = held_until if candidate else at_ms + 1
        else:
            self.known_until_ms = self.phase_from_ms

    def _change(self, at_ms: int) -> None:
        assert self.phase_from_ms is not None
        if not self.decided:  # the phase ended before it grew long: short, a blink
            if not self.blinking:
                self._tell(self.phase_from_ms, Lamp.BLINKING)
            self.blinking = True
        self.level, self.phase_from_ms, self.decided = not self.level, at_ms, False

    def _tell(self, at_ms: int, condition: Lamp) -> None:
        self.decided = True
        if not self.changes or self.changes[-1][1] is not condition:
            self.changes.append((at_ms, condition))

    def settle(self) -> None:
        """No more polls for now (the unit stopped answering): the current phase is taken as it stands, a blink
        run going on, else the level held."""
        if self.phase_from_ms is not None and not self.decided:
            self._tell(self.phase_from_ms, Lamp.BLINKING if self.blinking else Lamp.STEADY if self.level else Lamp.OFF)
        self.known_until_ms = max(self.known_until_ms, (self.phase_from_ms or 0) + 1)

    def condition_at(self, at_ms: int) -> Lamp | None:
        """The decided condition at ``at_ms`` (None before the first decided one)."""
        found: Lamp | None = None
        for when, condition in self.changes:
            if when > at_ms:
                break
            found = condition
        return found

    def blink_ended_at(self, at_ms: int) -> int | None:
        """When the lamp went dark after blinking, if it is dark at ``at_ms`` after a blink run; else None."""
        index = sum(1 for when, _ in self.changes if when <= at_ms) - 1
        if index < 1:
            return None
        when, condition = self.changes[index]
        return when if condition is Lamp.OFF and self.changes[index - 1][1] is Lamp.BLINKING else None

    def forget_before(self, at_ms: int) -> None:
        """Drop changes superseded before ``at_ms`` (the one in force then stays, and the one before it)."""
        keep = 0
        while keep + 2 < len(self.changes) and self.changes[keep + 2][0] <= at_ms:
            keep += 1
        del self.changes[:keep]


@dataclass(slots=True)
class PulseCounter:
    """Units from a pulse input polled as a bit: each rising edge one unit. A pulse (or the gap between two)
    shorter than the poll interval is missed, so a module's own hardware counter (a register) is better."""

    count: int = 0
    last: bool | None = None

    def observe(self, lit: bool) -> int:
        if lit and self.last is False:
            self.count += 1
        self.last = lit
        return self.count


def lamp_rule(model: ModelConfig) -> list[RuleEntry]:
    """The common lamp convention, for the lamps the model places: red blinking a fault (its reason from the
    fault code where one is mapped), red steady a stop, blue maintenance, yellow blinking setup, yellow steady
    idle, green running; all dark OFFLINE (switched off)."""
    placed = set(model.lamps)
    coded = Signal.FAULT_CODE in (model.modbus or {})
    fault_reason = None if coded else UNKNOWN_FAULT
    rule = [
        (Signal.RED, RuleEntry(state=MachineState.DOWN, when={"red": Lamp.BLINKING.value}, reason=fault_reason)),
        (Signal.RED, RuleEntry(state=MachineState.DOWN, when={"red": Lamp.STEADY.value}, reason=fault_reason)),
        (Signal.BLUE, RuleEntry(state=MachineState.MAINTENANCE, when={"blue": True})),
        (Signal.YELLOW, RuleEntry(state=MachineState.SETUP, when={"yellow": Lamp.BLINKING.value})),
        (Signal.YELLOW, RuleEntry(state=MachineState.IDLE, when={"yellow": Lamp.STEADY.value})),
        (Signal.GREEN, RuleEntry(state=MachineState.RUNNING, when={"green": True})),
    ]
    dark = {lamp.value: False for lamp in model.lamps}
    return [
        *(entry for lamp, entry in rule if lamp in placed),
        RuleEntry(state=MachineState.OFFLINE, when=dark),
        RuleEntry(state=MachineState.IDLE),
    ]
