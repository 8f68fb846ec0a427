"""Controller counters → one count that only goes up (pure).

A controller's unit counter wraps at its width (65535 → 0 on a 16-bit register) and starts again from zero
when the controller restarts. The gateway keeps its own total, which starts at zero when it first reads the
counter and advances by what the counter advanced:

- up by ``d``: ``d``;
- down, by less than a wrap explains (``new + 2**bits − old ≤ max_step``) and with the connection held since
  the last reading: a wrap, ``new + 2**bits − old``;
- down otherwise: a reset (restart), ``new`` (the units counted since the restart). What the controller made
  between the last poll and its restart was never seen, and is not counted;
- any step beyond ``max_step`` is no production but a misreading (a wrong register, a reset to garbage): it
  counts nothing, and the counter goes on from its new value (``Step.JUMP``, which the driver counts).

So the total never goes down and nothing is counted twice; a reset that lands above the old value cannot be
told from production and counts as such (docs/gateway.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Step(StrEnum):
    FIRST = "first"
    UP = "up"
    WRAP = "wrap"
    RESET = "reset"
    JUMP = "jump"


@dataclass(frozen=True, slots=True)
class CounterSpec:
    bits: int | None  # None: never wraps (a float or a 64-bit value read as such)
    max_step: int


@dataclass(frozen=True, slots=True)
class Count:
    raw: int  # the controller's value at the last reading
    total: int  # ours: units since we first read the counter


def advance(count: Count | None, raw: int, spec: CounterSpec, *, reconnected: bool = False) -> tuple[Count, Step]:
    """The count after reading ``raw``; ``reconnected``: the connection was lost since the last reading (a
    controller that went away and came back may have restarted, so a decrease is a reset, never a wrap)."""
    if count is None:
        return Count(raw, 0), Step.FIRST
    step, delta = Step.RESET, raw
    if raw >= count.raw:
        step, delta = Step.UP, raw - count.raw
    elif spec.bits is not None and not reconnected and raw + (1 << spec.bits) - count.raw <= spec.max_step:
        step, delta = Step.WRAP, raw + (1 << spec.bits) - count.raw
    if delta > spec.max_step:
        return Count(raw, count.total), Step.JUMP
    return Count(raw, count.total + delta), step
