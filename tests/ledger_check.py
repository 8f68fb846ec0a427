"""Compare what InfluxDB holds with the simulator's ledger: per machine and per workshop, exactly."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from ftel.contract.states import STATE_ORDER, state_field
from ftel.storage.query import InfluxQuery
from simulators.ledger import LedgerRow

Totals = dict[str, Counter[str]]


def ledger_totals(rows: Iterable[LedgerRow], key: str) -> Totals:
    totals: Totals = defaultdict(Counter)
    for row in rows:
        t = totals[getattr(row, key)]
        for state, ms in row.state_ms.items():
            t[state] += ms
        t["units"] += row.units
        t["defects"] += row.defects
        for reason, n in row.stops_by_reason.items():
            t[f"stops:{reason}"] += n
        for reason, ms in row.down_ms_by_reason.items():
            t[f"down:{reason}"] += ms
    return {k: +v for k, v in totals.items()}


def stored_totals(query: InfluxQuery, key: str, start_ms: int, end_ms: int) -> Totals:
    where = f"time >= {start_ms}ms AND time < {end_ms}ms"
    sums = ", ".join(f'sum("{state_field(s)}") AS "{s.value}"' for s in STATE_ORDER)
    totals: Totals = defaultdict(Counter)
    for row in query.rows(
        f"SELECT {sums}, sum(units) AS units, sum(defects) AS defects FROM state_time WHERE {where} GROUP BY {key}"
    ):
        t = totals[row[key]]
        for name in [s.value for s in STATE_ORDER] + ["units", "defects"]:
            t[name] += int(row[name] or 0)
    for row in query.rows(
        f"SELECT sum(stops) AS stops, sum(down_ms) AS down FROM downtime WHERE {where} GROUP BY {key}, reason"
    ):
        t = totals[row[key]]
        t[f"stops:{row['reason']}"] += int(row["stops"] or 0)
        t[f"down:{row['reason']}"] += int(row["down"] or 0)
    return {k: +v for k, v in totals.items()}


def differences(expected: Totals, actual: Totals) -> list[str]:
    out = []
    for key in sorted(set(expected) | set(actual)):
        e, a = expected.get(key, Counter()), actual.get(key, Counter())
        for name in sorted(set(e) | set(a)):
            if e[name] != a[name]:
                out.append(f"{key} {name}: ledger {e[name]} stored {a[name]}")
    return out
