"""The verdict (pure): what InfluxDB holds per machine against the simulator's ledger.

Per machine the ledger gives: milliseconds in each state, stops and downtime per reason, units and defects (its
``quantities``), how many windows it has, and how many state changes happened. InfluxDB gives the same figures
from the stored ``state_time``, ``downtime`` and ``machine_state`` points. Then

* **lost**: windows and state changes the ledger has and InfluxDB does not (per machine, fewer stored);
* **doubled**: windows and state changes stored beyond the ledger's (a point stored under a second time);
* **wrong**: (machine, quantity) pairs whose stored total differs from the ledger's (a lost window shows here
  too, with the quantities it carried).

Points are idempotent, so a message delivered twice is stored once and counts once; doubled counts what
slipped past that. The run passes when all three are 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from simulators.ledger import LedgerRow

# How many differences the summary and the report list (the counts cover all of them).
SHOWN_DIFFERENCES = 50


@dataclass(slots=True)
class MachineFigures:
    """One machine's figures over the run, from the ledger or from InfluxDB."""

    quantities: Counter[str] = field(default_factory=Counter)
    windows: int = 0
    changes: int = 0


Figures = dict[str, MachineFigures]


def add_ledger_row(figures: Figures, row: LedgerRow) -> None:
    machine = figures.setdefault(row.machine_id, MachineFigures())
    q = machine.quantities
    for state, ms in row.state_ms.items():
        q[state] += ms
    q["units"] += row.units
    q["defects"] += row.defects
    for reason, n in row.stops_by_reason.items():
        q[f"stops:{reason}"] += n
    for reason, ms in row.down_ms_by_reason.items():
        q[f"down:{reason}"] += ms
    machine.windows += 1


def ledger_figures(rows: Iterable[LedgerRow]) -> Figures:
    figures: Figures = {}
    for row in rows:
        add_ledger_row(figures, row)
    return figures


@dataclass(frozen=True, slots=True)
class Verdict:
    machines: int
    machines_exact: int
    windows_expected: int
    windows_stored: int
    windows_lost: int
    windows_doubled: int
    changes_expected: int
    changes_stored: int
    changes_lost: int
    changes_doubled: int
    wrong: int
    differences: tuple[str, ...]

    @property
    def lost(self) -> int:
        return self.windows_lost + self.changes_lost

    @property
    def doubled(self) -> int:
        return self.windows_doubled + self.changes_doubled

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.doubled == 0 and self.wrong == 0


def compare(expected: Mapping[str, MachineFigures], stored: Mapping[str, MachineFigures]) -> Verdict:
    """``stored`` (InfluxDB) against ``expected`` (the ledger), machine by machine. A quantity that is 0 on
    one side and absent on the other is equal."""
    windows_lost = windows_doubled = changes_lost = changes_doubled = wrong = exact = 0
    shown: list[str] = []
    empty = MachineFigures()

    def note(text: str) -> None:
        if len(shown) < SHOWN_DIFFERENCES:
            shown.append(text)

    for machine in sorted(set(expected) | set(stored)):
        e, s = expected.get(machine, empty), stored.get(machine, empty)
        differs = False
        if s.windows != e.windows:
            differs = True
            windows_lost += max(0, e.windows - s.windows)
            windows_doubled += max(0, s.windows - e.windows)
            note(f"{machine} windows: ledger {e.windows} stored {s.windows}")
        if s.changes != e.changes:
            differs = True
            changes_lost += max(0, e.changes - s.changes)
            changes_doubled += max(0, s.changes - e.changes)
            note(f"{machine} state changes: ledger {e.changes} stored {s.changes}")
        for name in sorted(set(e.quantities) | set(s.quantities)):
            if e.quantities[name] != s.quantities[name]:
                differs = True
                wrong += 1
                note(f"{machine} {name}: ledger {e.quantities[name]} stored {s.quantities[name]}")
        exact += not differs
    return Verdict(
        machines=len(set(expected) | set(stored)),
        machines_exact=exact,
        windows_expected=sum(f.windows for f in expected.values()),
        windows_stored=sum(f.windows for f in stored.values()),
        windows_lost=windows_lost,
        windows_doubled=windows_doubled,
        changes_expected=sum(f.changes for f in expected.values()),
        changes_stored=sum(f.changes for f in stored.values()),
        changes_lost=changes_lost,
        changes_doubled=changes_doubled,
        wrong=wrong,
        differences=tuple(shown),
    )
