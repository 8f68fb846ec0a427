"""Simulated operators: they give some unexplained stops a reason a while after the stop ends, and correct a few
of their choices later, exactly as the operator page would (``make_choice``, then ``record_choice``).

Everything is drawn from a hash of the machine and the stop's start, not from the machine's random stream, so
the simulated machines behave as they did before anyone explained their stops. Only choices made before the
simulated period ends exist (a choice after it has not been made yet).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ftel.contract.states import MachineState
from ftel.plant.reasons import Choice, MachineRef, ReasonBook, Stop, UnexplainedRule, make_choice
from simulators.machine import MachineModel, Segment, stable_seed

# Of the unexplained stops, how many in a hundred someone explains, and how many of those choices are corrected.
CLASSIFIED_PERCENT = 60
CORRECTED_PERCENT = 20
# The first choice comes this long after the stop ends, at most (seeded); a correction as long after that.
MAX_DELAY_MS = 30 * 60_000
MIN_DELAY_MS = 30_000
OPERATORS = ("op-li", "op-wang", "op-zhang")


@dataclass(frozen=True, slots=True)
class OperatorPlay:
    """How the simulated operators judge stops: as the page does (its reasons and its rule)."""

    book: ReasonBook
    rule: UnexplainedRule


def segment_stop(machine: MachineRef, segment: Segment, *, end_ms: int) -> Stop | None:
    """The stop a DOWN or IDLE segment is, as the gateway reports it (open when it lasts past ``end_ms``)."""
    if segment.state not in (MachineState.DOWN, MachineState.IDLE) or segment.start_ms >= end_ms:
        return None
    finished = segment.end_ms if segment.end_ms < end_ms else None
    return Stop(machine, segment.state, segment.reason or "", segment.start_ms, finished)


def _delay(seed: int, what: str, start_ms: int) -> int:
    return MIN_DELAY_MS + stable_seed(seed, what, start_ms) % (MAX_DELAY_MS - MIN_DELAY_MS)


def simulated_choices(model: MachineModel, machine: MachineRef, play: OperatorPlay, *, end_ms: int) -> Iterator[Choice]:
    """Every choice the operators make for the machine's stops before ``end_ms``, in the order they make them
    per stop (a correction after the choice it replaces)."""
    choices = play.book.choices(machine.machine_type)
    for segment in model.segments():
        if segment.start_ms >= end_ms:
            return
        stop = segment_stop(machine, segment, end_ms=end_ms)
        if stop is None or stop.end_ms is None:
            continue
        if play.rule.ms(stop, stop.end_ms) is None:
            continue
        draw = stable_seed(model.seed, "operator", stop.start_ms)
        if draw % 100 >= CLASSIFIED_PERCENT:
            continue
        at = stop.end_ms + _delay(model.seed, "first", stop.start_ms)
        if at >= end_ms:
            continue
        who = OPERATORS[draw % len(OPERATORS)]
        first = choices[(draw // 100) % len(choices)]
        yield make_choice(play.book, stop, first.code, who=who, at_ms=at, rule=play.rule)
        if (draw // 10_000) % 100 >= CORRECTED_PERCENT:
            continue
        later = at + _delay(model.seed, "correction", stop.start_ms)
        corrected = choices[((draw // 100) + 1) % len(choices)]
        if later < end_ms:
            yield make_choice(
                play.book,
                stop,
                corrected.code,
                who=OPERATORS[(draw + 1) % len(OPERATORS)],
                at_ms=later,
                rule=play.rule,
            )
