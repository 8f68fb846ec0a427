"""Styles and orders (pure; docs/orders.md): a style (a knitting pattern / program) with its standard time per
piece, an order with its style and target pieces, and which job (style and order) a machine is on, over time.

How a job change travels: as a point written by whoever sets it (``job_point`` in ftel/storage/points.py), not
through the wire contract. The simulator writes them for its machines, the operator page when an operator sets
a machine's job, a controller reader when the program it reads changes. A change at ``at_ms`` carries what the
machine's current gateway window (the one holding ``at_ms``) had accumulated before it: units, defects and
RUNNING time. With these the windows split exactly at the change, and nothing else needs to (see ``split``).

How the operator page writes a change: read the machine's current job (``current_job`` in dashboards/orders_data.py),
make the change with ``hand_set_change`` (it checks the order and style against the book and keeps the part the
operator did not change), and write ``job_point(change, ...)`` with the storage writer. A change entered by hand
takes effect at the next window edge, where the window has accumulated nothing yet (nobody at the page knows the
counters mid-window), so its ``before`` is zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ftel.errors import ConfigError
from ftel.plant.yamlfile import parse_yaml

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
# Who set a job: the controller's program, a person at the operator page, the simulator's ground truth.
SOURCES = ("controller", "operator", "simulator")


class OrdersError(ConfigError):
    """Job changes that do not fit a machine's windows (a ``before`` past the window's own counts, or
    decreasing): the text names the machine and the moment."""


class Style(BaseModel):
    """A pattern / program. ``program`` (a Modbus register's number) or ``program_name`` (an OPC UA program-name
    variable's text) is what the controller says when it runs this style."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Name
    name: str = ""
    standard_s: float = Field(gt=0, le=86_400, description="standard knitting time per piece, seconds")
    program: int | None = Field(default=None, ge=0, le=65_535)
    program_name: str | None = None


class Order(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Name
    style: Name
    target: int = Field(gt=0, description="pieces to make (good pieces count towards it)")
    customer: str = ""


class OrderBook(BaseModel):
    """The plant's styles and orders (the orders file, docs/orders.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    styles: tuple[Style, ...] = ()
    orders: tuple[Order, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        styles = [s.id for s in self.styles]
        if len(set(styles)) != len(styles):
            raise ValueError(f"style ids must be unique; repeated: {_repeated(styles)}")
        orders = [o.id for o in self.orders]
        if len(set(orders)) != len(orders):
            raise ValueError(f"order ids must be unique; repeated: {_repeated(orders)}")
        for order in self.orders:
            if order.style not in styles:
                raise ValueError(f"order {order.id} names style {order.style!r}, which styles do not list")
        programs = [s.program for s in self.styles if s.program is not None]
        if len(set(programs)) != len(programs):
            raise ValueError(f"a program number maps to one style; repeated: {_repeated(programs)}")
        names = [s.program_name for s in self.styles if s.program_name is not None]
        if len(set(names)) != len(names):
            raise ValueError(f"a program name maps to one style; repeated: {_repeated(names)}")
        return self

    def style(self, style_id: str) -> Style | None:
        return next((s for s in self.styles if s.id == style_id), None)

    def order(self, order_id: str) -> Order | None:
        return next((o for o in self.orders if o.id == order_id), None)

    def style_for_program(self, program: int | str) -> Style | None:
        """The style a controller's program (a number from a register, or a name from an OPC UA variable) runs;
        None when the table does not know it."""
        if isinstance(program, int):
            return next((s for s in self.styles if s.program == program), None)
        return next((s for s in self.styles if s.program_name == program), None)

    def style_for_text(self, program: str) -> Style | None:
        """As a change read from a controller carries it: a number (a register's) or a name (an OPC UA
        variable's)."""
        text = program.strip()
        return self.style_for_program(int(text)) if text.isdigit() else self.style_for_program(text)


def _repeated(values: Sequence[object]) -> str:
    return ", ".join(sorted({str(v) for v in values if values.count(v) > 1}))


def parse_order_book(text: str, *, source: str = "orders") -> OrderBook:
    book, _ = parse_yaml(text, OrderBook, source=source, what="an orders file")
    return book


def load_order_book(path: Path) -> OrderBook:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the orders file ({error.strerror})") from error
    return parse_order_book(text, source=str(path))


@dataclass(frozen=True, slots=True)
class Counts:
    """What a machine made in some stretch: units (pieces), defective ones, RUNNING milliseconds."""

    units: int = 0
    defects: int = 0
    run_ms: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.units + other.units, self.defects + other.defects, self.run_ms + other.run_ms)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.units - other.units, self.defects - other.defects, self.run_ms - other.run_ms)


@dataclass(frozen=True, slots=True, order=True)
class Job:
    """What a machine is on: a style, and the order it knits it for ("" when no order is set)."""

    style: str
    order: str = ""


@dataclass(frozen=True, slots=True)
class JobChange:
    """From ``at_ms`` the machine is on ``job``; ``before`` is what its window holding ``at_ms`` had made before
    ``at_ms`` (zero at a window's edge). A change read from a controller names its ``program`` and no job yet:
    ``resolve_programs`` gives it one from the orders file, at read time."""

    machine_id: str
    at_ms: int
    job: Job
    before: Counts = Counts()
    source: str = "operator"
    who: str = ""
    program: str = ""


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """One machine's gateway window: its start, length and what it made (the state_time point's fields)."""

    machine_id: str
    window_start: int
    window_ms: int
    counts: Counts


def next_window_edge(at_ms: int, window_ms: int) -> int:
    """The first window edge at or after ``at_ms``: where a change entered by hand takes effect."""
    return -(-at_ms // window_ms) * window_ms


def hand_set_change(
    book: OrderBook,
    *,
    machine_id: str,
    now_ms: int,
    window_ms: int,
    current: Job | None,
    order: str | None = None,
    style: str | None = None,
    who: str,
) -> JobChange:
    """An operator's change: ``order`` (its style comes with it), or ``style`` alone (the order kept only when it
    is of that style), taking effect at the next window edge."""
    if order is not None:
        known = book.order(order)
        if known is None:
            raise OrdersError(f"{machine_id}: no order {order!r} in the orders file; add it there first")
        if style is not None and style != known.style:
            raise OrdersError(f"{machine_id}: order {order} is for style {known.style}, not {style}")
        job = Job(known.style, known.id)
    elif style is not None:
        if book.style(style) is None:
            raise OrdersError(f"{machine_id}: no style {style!r} in the orders file; add it there first")
        kept = current.order if current is not None and (o := book.order(current.order)) and o.style == style else ""
        job = Job(style, kept)
    else:
        raise OrdersError(f"{machine_id}: say which order or which style the machine is on")
    return JobChange(machine_id, next_window_edge(now_ms, window_ms), job, source="operator", who=who)


def unknown_program_style(program: str) -> str:
    """The style a program the orders file does not know is shown as: the program itself, so it is seen."""
    return f"program {program}"


def resolve_programs(changes: Iterable[JobChange], book: OrderBook) -> list[JobChange]:
    """Changes read from a controller (a ``program``, no job) given their job from the orders file, at read time
    (a table corrected later applies to the past too): the program's style, keeping the machine's order when it
    is for that style (an operator set the order; the controller only knows the program). A change that leaves
    the machine on the job it is on (a gateway re-stating the program after a restart) is dropped. In time order
    per machine."""
    out: list[JobChange] = []
    current: dict[str, Job] = {}
    for change in sorted(changes, key=lambda c: (c.machine_id, c.at_ms)):
        job = change.job
        if change.program and not job.style:
            style = book.style_for_text(change.program)
            name = style.id if style else unknown_program_style(change.program)
            now = current.get(change.machine_id)
            job = Job(name, now.order if now is not None and now.style == name else "")
        if current.get(change.machine_id) == job and change.program:
            continue
        current[change.machine_id] = job
        out.append(replace(change, job=job))
    return out


def split(windows: Iterable[WindowCounts], changes: Iterable[JobChange]) -> Iterator[tuple[Job, WindowCounts]]:
    """Each window's counts cut at the job changes inside it and given to the job the machine was on: a change
    at ``at_ms`` ends the previous job's part with ``before`` (less what earlier changes in the window took).
    Time a machine spends before its first change belongs to no job and is left out. Windows and changes of
    any machines, in any order."""
    by_machine: dict[str, list[JobChange]] = {}
    for change in changes:
        by_machine.setdefault(change.machine_id, []).append(change)
    for found in by_machine.values():
        found.sort(key=lambda c: c.at_ms)
    for window in sorted(windows, key=lambda w: (w.machine_id, w.window_start)):
        machine_changes = by_machine.get(window.machine_id, [])
        end = window.window_start + window.window_ms
        current = _job_at(machine_changes, window.window_start)
        taken = Counts()
        for change in machine_changes:
            if not window.window_start < change.at_ms < end:
                continue
            part = change.before - taken
            _check(window, change, part)
            if current is not None:
                yield current, WindowCounts(window.machine_id, window.window_start, window.window_ms, part)
            taken, current = change.before, change.job
        rest = window.counts - taken
        if rest.units < 0 or rest.defects < 0 or rest.run_ms < 0:
            raise OrdersError(
                f"{window.machine_id}: job changes in the window at {window.window_start} ms claim more "
                f"({taken}) than the window made ({window.counts}); rewrite the change with its window's counts"
            )
        if current is not None:
            yield current, WindowCounts(window.machine_id, window.window_start, window.window_ms, rest)


def _job_at(changes: Sequence[JobChange], at_ms: int) -> Job | None:
    """The job a machine is on at ``at_ms`` (a change at ``at_ms`` itself counts)."""
    current: Job | None = None
    for change in changes:
        if change.at_ms > at_ms:
            break
        current = change.job
    return current


def _check(window: WindowCounts, change: JobChange, part: Counts) -> None:
    if part.units < 0 or part.defects < 0 or part.run_ms < 0:
        raise OrdersError(
            f"{change.machine_id}: the job change at {change.at_ms} ms says less was made before it "
            f"({change.before}) than an earlier change in the same window; counts before a change only grow"
        )


def totals(parts: Iterable[tuple[Job, WindowCounts]]) -> dict[Job, Counts]:
    """Per job, the sum of its parts of windows."""
    out: dict[Job, Counts] = {}
    for job, part in parts:
        out[job] = out.get(job, Counts()) + part.counts
    return out


@dataclass(frozen=True, slots=True)
class StyleFigures:
    """Per style over a period: pieces, defects, RUNNING time; time per piece against the standard."""

    style: str
    standard_s: float | None
    counts: Counts

    @property
    def seconds_per_piece(self) -> float | None:
        return self.counts.run_ms / 1000 / self.counts.units if self.counts.units else None

    @property
    def performance(self) -> float | None:
        """Standard time of the pieces made over the RUNNING time they took (1.0: at the standard)."""
        if self.standard_s is None or not self.counts.run_ms:
            return None
        return self.standard_s * 1000 * self.counts.units / self.counts.run_ms


@dataclass(frozen=True, slots=True)
class OrderFigures:
    """One order: what was made in the period, what is made to date against its target, and when it will be
    done at the period's rate of good pieces."""

    order: str
    style: str
    target: int | None
    period: Counts
    to_date: Counts
    machines: int
    period_ms: int
    as_of_ms: int

    @property
    def good_to_date(self) -> int:
        return self.to_date.units - self.to_date.defects

    @property
    def progress(self) -> float | None:
        return self.good_to_date / self.target if self.target else None

    @property
    def remaining(self) -> int | None:
        return max(0, self.target - self.good_to_date) if self.target else None

    @property
    def estimated_finish_ms(self) -> int | None:
        """``as_of_ms`` plus the remaining good pieces at the period's rate of good pieces (per elapsed ms);
        ``as_of_ms`` when done, None when nothing good was made in the period."""
        remaining = self.remaining
        if remaining is None:
            return None
        if remaining == 0:
            return self.as_of_ms
        good = self.period.units - self.period.defects
        if good <= 0 or self.period_ms <= 0:
            return None
        return self.as_of_ms + -(-remaining * self.period_ms // good)


def style_figures(book: OrderBook, period: Mapping[Job, Counts]) -> list[StyleFigures]:
    by_style: dict[str, Counts] = {}
    for job, counts in period.items():
        by_style[job.style] = by_style.get(job.style, Counts()) + counts
    return [
        StyleFigures(style, s.standard_s if (s := book.style(style)) else None, counts)
        for style, counts in sorted(by_style.items())
    ]


def order_figures(
    book: OrderBook,
    period: Mapping[Job, Counts],
    to_date: Mapping[Job, Counts],
    machines: Mapping[str, int],
    *,
    period_ms: int,
    as_of_ms: int,
) -> list[OrderFigures]:
    """Per order named by a job in ``to_date`` (or in the book): ``period`` over the report's range, ``to_date``
    from the order's first change to ``as_of_ms``; ``machines``: how many machines worked on it in the period."""
    names = {job.order for job in (*period, *to_date) if job.order} | {o.id for o in book.orders}
    out: list[OrderFigures] = []
    for name in sorted(names):
        order = book.order(name)
        styles = sorted({job.style for job in (*period, *to_date) if job.order == name})
        style = order.style if order else (styles[0] if styles else "")
        out.append(
            OrderFigures(
                order=name,
                style=style,
                target=order.target if order else None,
                period=_sum(counts for job, counts in period.items() if job.order == name),
                to_date=_sum(counts for job, counts in to_date.items() if job.order == name),
                machines=machines.get(name, 0),
                period_ms=period_ms,
                as_of_ms=as_of_ms,
            )
        )
    return out


def _sum(counts: Iterable[Counts]) -> Counts:
    total = Counts()
    for c in counts:
        total += c
    return total
