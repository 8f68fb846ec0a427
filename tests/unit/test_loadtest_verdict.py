"""The load test's verdict: InfluxDB's figures per machine against the ledger's (pure)."""

from __future__ import annotations

from collections import Counter

from loadtest.verdict import SHOWN_DIFFERENCES, MachineFigures, compare, ledger_figures
from simulators.ledger import LedgerRow


def row(machine: str, window: int, *, running: int, down: int = 0, reason: str = "", units: int = 0) -> LedgerRow:
    r = LedgerRow("s", "w", "carding", machine, window * 60_000, 60_000)
    r.state_ms["RUNNING"] = running
    r.state_ms["DOWN"] = down
    if down:
        r.down_ms_by_reason[reason] = down
        r.stops_by_reason[reason] = 1
    r.units = units
    return r


def figures(quantities: dict[str, int], *, windows: int, changes: int) -> MachineFigures:
    return MachineFigures(Counter(quantities), windows, changes)


def test_the_ledger_folds_into_per_machine_totals_and_window_counts() -> None:
    folded = ledger_figures(
        [row("M1", 0, running=60_000, units=3), row("M1", 1, running=50_000, down=10_000, reason="feed_empty")]
    )
    m1 = folded["M1"]
    assert m1.windows == 2
    assert m1.quantities["RUNNING"] == 110_000
    assert m1.quantities["DOWN"] == 10_000
    assert m1.quantities["down:feed_empty"] == 10_000
    assert m1.quantities["stops:feed_empty"] == 1
    assert m1.quantities["units"] == 3


def test_equal_figures_pass_and_zero_equals_absent() -> None:
    expected = {"M1": figures({"RUNNING": 60_000, "OFFLINE": 0}, windows=1, changes=2)}
    stored = {"M1": figures({"RUNNING": 60_000}, windows=1, changes=2)}
    verdict = compare(expected, stored)
    assert verdict.passed
    assert (verdict.lost, verdict.doubled, verdict.wrong) == (0, 0, 0)
    assert verdict.machines_exact == 1
    assert verdict.differences == ()


def test_a_missing_window_is_lost_and_its_quantities_are_wrong() -> None:
    expected = {"M1": figures({"RUNNING": 120_000, "units": 4}, windows=2, changes=1)}
    stored = {"M1": figures({"RUNNING": 60_000, "units": 2}, windows=1, changes=1)}
    verdict = compare(expected, stored)
    assert not verdict.passed
    assert verdict.windows_lost == 1
    assert verdict.lost == 1
    assert verdict.doubled == 0
    assert verdict.wrong == 2
    assert "M1 windows: ledger 2 stored 1" in verdict.differences


def test_a_state_change_stored_twice_is_doubled_and_one_missing_is_lost() -> None:
    expected = {"M1": figures({}, windows=1, changes=3), "M2": figures({}, windows=1, changes=3)}
    stored = {"M1": figures({}, windows=1, changes=4), "M2": figures({}, windows=1, changes=2)}
    verdict = compare(expected, stored)
    assert (verdict.changes_doubled, verdict.changes_lost) == (1, 1)
    assert (verdict.doubled, verdict.lost) == (1, 1)
    assert (verdict.changes_expected, verdict.changes_stored) == (6, 6)
    assert verdict.machines_exact == 0


def test_a_machine_only_in_influxdb_is_doubled_and_one_never_stored_is_lost() -> None:
    expected = {"M1": figures({"RUNNING": 1}, windows=1, changes=0)}
    stored = {"M9": figures({"RUNNING": 1}, windows=1, changes=0)}
    verdict = compare(expected, stored)
    assert verdict.machines == 2
    assert (verdict.windows_lost, verdict.windows_doubled, verdict.wrong) == (1, 1, 2)


def test_a_wrong_downtime_reason_is_wrong_although_nothing_was_lost() -> None:
    expected = {"M1": figures({"down:yarn_break": 5_000, "stops:yarn_break": 1}, windows=1, changes=2)}
    stored = {"M1": figures({"down:needle_break": 5_000, "stops:needle_break": 1}, windows=1, changes=2)}
    verdict = compare(expected, stored)
    assert (verdict.lost, verdict.doubled, verdict.wrong) == (0, 0, 4)
    assert not verdict.passed


def test_the_differences_listed_are_capped_but_all_are_counted() -> None:
    expected = {f"M{i}": figures({"RUNNING": 1}, windows=1, changes=0) for i in range(SHOWN_DIFFERENCES + 10)}
    verdict = compare(expected, {})
    assert verdict.windows_lost == SHOWN_DIFFERENCES + 10
    assert len(verdict.differences) == SHOWN_DIFFERENCES
