"""Simulated jobs: knitting machines change style and order (seeded), as a knitter does at a changeover, and
now and then go on to the next order of the same style while running. Each change is told the way every job
change is (ftel/plant/orders.py): with what the machine's window had made before it, read from the same segments
the gateway reads; the ledger attributes the pieces from the segments on its own (simulators/ledger.py).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator

from ftel.contract.states import MachineState, MachineType
from ftel.plant.orders import Counts, Job, JobChange, Order, OrderBook, parse_order_book
from simulators.machine import MachineModel, Segment, count_defects, stable_seed

# Machine types that knit styles to orders (carding and spinning make lots of fibre and yarn, not pieces).
JOB_TYPES = (MachineType.KNITTING,)
# Chance that a changeover (SETUP) is a change of style and order.
STYLE_CHANGE_AT_SETUP = 0.5
# Chance that a running stretch longer than RUN_SWITCH_MIN_MS goes on to another order of its style midway.
ORDER_SWITCH_WHILE_RUNNING = 0.2
RUN_SWITCH_MIN_MS = 10 * 60_000
SIMULATOR = "simulator"

DEFAULT_ORDERS = """\
# The simulated knitting workshop's styles and orders (docs/orders.md); a knit piece takes 720 s at rated speed.
styles:
  - id: V-NECK-12G
    name: V-neck pullover, 12 gauge
    standard_s: 700
    program: 17
    program_name: VNECK12
  - id: CREW-12G
    name: Crew-neck pullover, 12 gauge
    standard_s: 760
    program: 18
    program_name: CREW12
  - id: CARDIGAN-12G
    name: Cardigan, 12 gauge
    standard_s: 680
    program: 23
    program_name: CARDI12
orders:
  - {id: PO-2611, style: V-NECK-12G, target: 300, customer: Erdos}
  - {id: PO-2612, style: V-NECK-12G, target: 150, customer: Loro}
  - {id: PO-2613, style: CREW-12G, target: 200, customer: Erdos}
  - {id: PO-2614, style: CARDIGAN-12G, target: 120, customer: Naadam}
"""


def default_order_book() -> OrderBook:
    return parse_order_book(DEFAULT_ORDERS, source="simulators/jobs.py")


def _job(order: Order) -> Job:
    return Job(order.style, order.id)


class _Counter:
    """What the machine has made up to any moment of the segments seen so far (its counters, as the gateway
    reads them)."""

    def __init__(self, model: MachineModel) -> None:
        self.model = model
        self.starts: list[int] = []
        self.segments: list[Segment] = []
        self.run_at_start: list[int] = []
        self._run = 0

    def add(self, segment: Segment) -> None:
        self.starts.append(segment.start_ms)
        self.segments.append(segment)
        self.run_at_start.append(self._run)
        if segment.state is MachineState.RUNNING:
            self._run += segment.end_ms - segment.start_ms

    def at(self, t: int) -> tuple[int, int]:
        """(units, RUNNING ms) from the machine's start to ``t``."""
        if t <= self.model.start_ms:
            return 0, 0
        i = bisect.bisect_right(self.starts, t) - 1
        segment = self.segments[i]
        running = segment.state is MachineState.RUNNING
        return self.model.units_at(segment, t), self.run_at_start[i] + (t - segment.start_ms if running else 0)

    def before(self, at_ms: int, window_ms: int) -> Counts:
        """What the window holding ``at_ms`` made before it."""
        units_start, run_start = self.at(at_ms - at_ms % window_ms)
        units, run = self.at(at_ms)
        rate = self.model.profile.defect_rate_bp
        return Counts(units - units_start, count_defects(self.model.seed, units_start, units, rate), run - run_start)


def program_of(book: OrderBook, style_id: str) -> str:
    """What the controller shows for a style: its program number, else its program name, else its id."""
    style = book.style(style_id)
    if style is not None and style.program is not None:
        return str(style.program)
    if style is not None and style.program_name is not None:
        return style.program_name
    return style_id


def simulated_programs(model: MachineModel, book: OrderBook, *, end_ms: int) -> list[tuple[int, str]]:
    """(from when, program) of the machine's controller: its style's program at each change of style (a change
    of order within a style does not show on the controller)."""
    out: list[tuple[int, str]] = []
    for change in simulated_job_changes(model, book, end_ms=end_ms, window_ms=60_000):
        program = program_of(book, change.job.style)
        if not out or out[-1][1] != program:
            out.append((change.at_ms, program))
    return out


def simulated_job_changes(model: MachineModel, book: OrderBook, *, end_ms: int, window_ms: int) -> Iterator[JobChange]:
    """The machine's job changes before ``end_ms`` (none for a type that does not knit, or an empty book): the
    first at its start, then at some changeovers and some long running stretches."""
    if model.spec.type not in JOB_TYPES or not book.orders:
        return
    rng = random.Random(stable_seed(model.seed, "jobs"))
    counter = _Counter(model)
    current = rng.choice(book.orders)
    yield JobChange(model.spec.id, model.start_ms, _job(current), source=SIMULATOR)
    for segment in model.segments():
        if segment.start_ms >= end_ms:
            return
        counter.add(segment)
        at: int | None = None
        chosen: Order | None = None
        if segment.state is MachineState.SETUP and rng.random() < STYLE_CHANGE_AT_SETUP:
            others = [o for o in book.orders if o.style != current.style]
            at, chosen = segment.start_ms, rng.choice(others) if others else None
        elif (
            segment.state is MachineState.RUNNING
            and segment.end_ms - segment.start_ms > RUN_SWITCH_MIN_MS
            and rng.random() < ORDER_SWITCH_WHILE_RUNNING
        ):
            same = [o for o in book.orders if o.style == current.style and o.id != current.id]
            at = rng.randrange(segment.start_ms + 1, segment.end_ms)
            chosen = rng.choice(same) if same else None
        if at is None or chosen is None or not model.start_ms < at < end_ms:
            continue
        current = chosen
        yield JobChange(model.spec.id, at, _job(chosen), before=counter.before(at, window_ms), source=SIMULATOR)
