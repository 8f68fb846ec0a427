"""Styles and orders (pure): the orders file refused by line, programs mapped to styles, windows split exactly at
job changes, and the figures per style and per order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftel.contract.models import ProgramChange
from ftel.contract.states import MachineType
from ftel.errors import ConfigError
from ftel.plant.orders import (
    Counts,
    Job,
    JobChange,
    OrdersError,
    WindowCounts,
    hand_set_change,
    next_window_edge,
    order_figures,
    parse_order_book,
    resolve_programs,
    split,
    style_figures,
    totals,
)
from ftel.storage.points import job_point, to_points
from ftel.storage.schema import Field, Measurement

BOOK = parse_order_book(
    """\
styles:
  - id: V-NECK-12G
    standard_s: 900
    program: 17
    program_name: VNECK12
  - id: CARDIGAN-7G
    standard_s: 1500
    program: 23
orders:
  - id: PO-1001
    style: V-NECK-12G
    target: 40
  - id: PO-1002
    style: CARDIGAN-7G
    target: 10
"""
)
A = Job("V-NECK-12G", "PO-1001")
B = Job("CARDIGAN-7G", "PO-1002")


def test_a_program_number_or_name_from_the_controller_maps_to_its_style() -> None:
    assert BOOK.style_for_program(17) == BOOK.style("V-NECK-12G")
    assert BOOK.style_for_program("VNECK12") == BOOK.style("V-NECK-12G")
    assert BOOK.style_for_program(23) == BOOK.style("CARDIGAN-7G")
    assert BOOK.style_for_program(99) is None


def test_an_order_naming_an_unknown_style_is_refused_with_its_line() -> None:
    text = "styles:\n  - id: S1\n    standard_s: 60\norders:\n  - id: PO-1\n    style: S2\n    target: 5\n"
    with pytest.raises(ConfigError, match=r"orders line 1.*order PO-1 names style 'S2'"):
        parse_order_book(text)


def test_a_negative_standard_time_is_refused_on_its_line() -> None:
    text = "styles:\n  - id: S1\n    standard_s: -4\n"
    with pytest.raises(ConfigError, match=r"orders line 3, styles\[0\]\.standard_s"):
        parse_order_book(text)


def test_two_styles_on_one_program_number_are_refused() -> None:
    text = "styles:\n  - id: S1\n    standard_s: 60\n    program: 5\n  - id: S2\n    standard_s: 60\n    program: 5\n"
    with pytest.raises(ConfigError, match="a program number maps to one style; repeated: 5"):
        parse_order_book(text)


def test_a_change_mid_window_splits_the_window_at_what_it_had_made_before() -> None:
    windows = [
        WindowCounts("K1", 0, 60_000, Counts(10, 1, 50_000)),
        WindowCounts("K1", 60_000, 60_000, Counts(6, 0, 60_000)),
    ]
    changes = [
        JobChange("K1", 0, A),
        JobChange("K1", 90_000, B, before=Counts(4, 0, 30_000)),
    ]
    assert totals(split(windows, changes)) == {A: Counts(14, 1, 80_000), B: Counts(2, 0, 30_000)}


def test_two_changes_in_one_window_each_take_their_own_part() -> None:
    windows = [WindowCounts("K1", 0, 60_000, Counts(9, 2, 45_000))]
    changes = [
        JobChange("K1", -5, A),
        JobChange("K1", 20_000, B, before=Counts(3, 1, 15_000)),
        JobChange("K1", 40_000, A, before=Counts(7, 1, 35_000)),
    ]
    assert totals(split(windows, changes)) == {A: Counts(5, 2, 25_000), B: Counts(4, 0, 20_000)}


def test_time_before_a_machines_first_job_belongs_to_no_job() -> None:
    windows = [WindowCounts("K1", 0, 60_000, Counts(9, 0, 45_000))]
    assert totals(split(windows, [JobChange("K1", 30_000, A, before=Counts(5, 0, 25_000))])) == {
        A: Counts(4, 0, 20_000)
    }
    assert totals(split(windows, [JobChange("K2", 0, A)])) == {}


def test_a_change_claiming_more_than_its_window_made_is_refused_naming_the_machine() -> None:
    windows = [WindowCounts("K1", 0, 60_000, Counts(3, 0, 10_000))]
    with pytest.raises(OrdersError, match="K1: job changes in the window at 0 ms claim more"):
        list(split(windows, [JobChange("K1", 0, A), JobChange("K1", 30_000, B, before=Counts(4, 0, 5_000))]))


@given(
    st.lists(st.tuples(st.integers(0, 50), st.integers(0, 60_000)), min_size=1, max_size=6),
    st.lists(st.integers(1, 359_999), max_size=8),
)
def test_splitting_keeps_every_count_of_the_windows_after_the_first_change(
    made: list[tuple[int, int]], cuts: list[int]
) -> None:
    """Whatever the changes (their ``before`` read from a uniform rate inside each window), the parts add up to
    the windows'."""
    windows = [WindowCounts("K1", i * 60_000, 60_000, Counts(u, 0, r)) for i, (u, r) in enumerate(made)]
    changes = [JobChange("K1", 0, A)]
    for n, at in enumerate(sorted(set(cuts))):
        window = windows[at // 60_000] if at // 60_000 < len(windows) else None
        share = (at % 60_000) / 60_000
        before = Counts(int(window.counts.units * share), 0, int(window.counts.run_ms * share)) if window else Counts()
        changes.append(JobChange("K1", at, B if n % 2 == 0 else A, before=before))
    got = totals(split(windows, changes))
    assert sum((c for c in got.values()), Counts()) == sum((w.counts for w in windows), Counts())


def test_performance_is_standard_time_of_the_pieces_over_their_running_time() -> None:
    [cardigan, vneck] = style_figures(BOOK, {A: Counts(8, 1, 8 * 1_000_000), B: Counts(2, 0, 2_500_000)})
    assert vneck.style == "V-NECK-12G"
    assert vneck.seconds_per_piece == 1000
    assert vneck.performance == pytest.approx(0.9)
    assert cardigan.performance == pytest.approx(1.2)


def test_order_progress_counts_good_pieces_and_the_finish_follows_the_periods_rate() -> None:
    [po1, po2] = order_figures(
        BOOK,
        period={A: Counts(12, 2, 0)},
        to_date={A: Counts(32, 2, 0), B: Counts(10, 0, 0)},
        machines={"PO-1001": 2},
        period_ms=3_600_000,
        as_of_ms=1_000_000,
    )
    assert (po1.order, po1.good_to_date, po1.progress, po1.remaining) == ("PO-1001", 30, 0.75, 10)
    # 10 good pieces an hour: the 10 left take one more hour.
    assert po1.estimated_finish_ms == 1_000_000 + 3_600_000
    assert po2.remaining == 0
    assert po2.estimated_finish_ms == 1_000_000
    assert po2.machines == 0


def test_a_hand_set_change_takes_effect_at_the_next_window_edge() -> None:
    assert next_window_edge(120_001, 60_000) == 180_000
    assert next_window_edge(120_000, 60_000) == 120_000


def test_a_job_change_is_one_point_of_the_machine_with_its_counts_before() -> None:
    point = job_point(
        JobChange("KNIT-001", 90_000, B, before=Counts(4, 1, 30_000), source="operator", who="li"),
        site="qinghe",
        workshop="knit",
        machine_type="knitting",
    )
    assert point.measurement == Measurement.MACHINE_JOB
    assert point.fields[Field.ORDER] == "PO-1002"
    assert point.fields[Field.UNITS_BEFORE] == 4
    assert point.fields[Field.SET_BY] == "li"
    assert point.time_ms == 90_000


def test_an_operator_setting_an_order_puts_the_machine_on_its_style_at_the_next_window_edge() -> None:
    change = hand_set_change(
        BOOK, machine_id="K1", now_ms=61_000, window_ms=60_000, current=A, order="PO-1002", who="li"
    )
    assert (change.at_ms, change.job, change.before, change.source, change.who) == (
        120_000,
        B,
        Counts(),
        "operator",
        "li",
    )


def test_an_operator_changing_only_the_style_keeps_no_order_of_another_style() -> None:
    kept = hand_set_change(BOOK, machine_id="K1", now_ms=0, window_ms=60_000, current=A, style="V-NECK-12G", who="li")
    assert kept.job == A
    dropped = hand_set_change(
        BOOK, machine_id="K1", now_ms=0, window_ms=60_000, current=A, style="CARDIGAN-7G", who="li"
    )
    assert dropped.job == Job("CARDIGAN-7G", "")


def test_an_unknown_order_or_a_mismatched_style_is_refused_with_what_to_do() -> None:
    with pytest.raises(OrdersError, match="no order 'PO-9' in the orders file; add it there first"):
        hand_set_change(BOOK, machine_id="K1", now_ms=0, window_ms=60_000, current=None, order="PO-9", who="li")
    with pytest.raises(OrdersError, match="order PO-1001 is for style V-NECK-12G, not CARDIGAN-7G"):
        hand_set_change(
            BOOK,
            machine_id="K1",
            now_ms=0,
            window_ms=60_000,
            current=None,
            order="PO-1001",
            style="CARDIGAN-7G",
            who="li",
        )


def test_a_controllers_program_is_resolved_to_its_style_keeping_an_order_of_that_style() -> None:
    read = [
        JobChange("K1", 0, Job(""), source="controller", program="17"),
        JobChange("K1", 60_000, A, source="operator", who="li"),
        # The gateway restarts and re-states the program: nothing changes, the order stays.
        JobChange("K1", 90_000, Job(""), before=Counts(1, 0, 20_000), source="controller", program="17"),
        JobChange("K1", 120_000, Job(""), source="controller", program="23"),
        JobChange("K1", 180_000, Job(""), source="controller", program="99"),
        JobChange("K2", 0, Job(""), source="controller", program="VNECK12"),
    ]
    assert [(c.machine_id, c.at_ms, c.job) for c in resolve_programs(read, BOOK)] == [
        ("K1", 0, Job("V-NECK-12G", "")),
        ("K1", 60_000, A),
        ("K1", 120_000, Job("CARDIGAN-7G", "")),
        ("K1", 180_000, Job("program 99", "")),
        ("K2", 0, Job("V-NECK-12G", "")),
    ]


def test_a_program_change_from_a_gateway_is_stored_as_a_controller_job_change() -> None:
    message = ProgramChange(
        site="qinghe",
        workshop="knit",
        gateway_id="gw-knit",
        seq=7,
        ts=1_790_000_030_000,
        machine_type=MachineType.KNITTING,
        machine_id="KNIT-001",
        program="23",
        units_before=1,
        defects_before=0,
        run_ms_before=25_000,
    )
    [point] = to_points(message)
    assert point.measurement == Measurement.MACHINE_JOB
    assert point.time_ms == message.ts
    assert {k: point.fields[k] for k in (Field.PROGRAM, Field.STYLE, Field.SOURCE, Field.SET_BY)} == {
        Field.PROGRAM: "23",
        Field.STYLE: "",
        Field.SOURCE: "controller",
        Field.SET_BY: "gw-knit",
    }
    assert (point.fields[Field.UNITS_BEFORE], point.fields[Field.RUN_MS_BEFORE]) == (1, 25_000)
