"""Operator reasons (pure): which stops are unexplained, the reason lists, choices attributed exactly once."""

from __future__ import annotations

from datetime import date

import pytest

from ftel.contract.states import UNKNOWN_FAULT, MachineState, MachineType
from ftel.errors import ConfigError
from ftel.plant.calendar import parse_calendar
from ftel.plant.reasons import (
    Choice,
    MachineRef,
    ReasonBook,
    ReasonError,
    ReasonGroup,
    Stop,
    UnexplainedRule,
    classified_downtime,
    latest_choices,
    make_choice,
    parse_reasons,
    stop_figures,
)
from ftel.security.credentials import Credentials
from ftel.security.errors import AuthError
from ftel.security.identities import Identity, InfluxUser, Role, grants
from ftel.storage.lineproto import encode_point
from ftel.storage.points import reason_points
from ftel.storage.schema import Measurement
from operators.accounts import Accounts
from operators.sessions import Sessions
from tests.calendars import TWO_TWELVES

KNIT = MachineRef("qinghe", "knit-1", MachineType.KNITTING, "KNIT-001")
MIN = 60_000
LIMIT = 15 * MIN
RULE = UnexplainedRule(LIMIT, None, {"knitting": 30_000})


def _stop(state: MachineState, reason: str, start: int, end: int | None) -> Stop:
    return Stop(KNIT, state, reason, start, end)


def test_down_with_unknown_fault_and_long_idles_are_unexplained_and_nothing_else_is() -> None:
    def unexplained(stop: Stop) -> int | None:
        return RULE.ms(stop, 100 * MIN)

    assert unexplained(_stop(MachineState.DOWN, UNKNOWN_FAULT, 0, 3 * MIN)) == 3 * MIN
    assert unexplained(_stop(MachineState.DOWN, "yarn_break", 0, 3 * MIN)) is None
    assert unexplained(_stop(MachineState.IDLE, "", 0, LIMIT)) == LIMIT
    assert unexplained(_stop(MachineState.IDLE, "", 0, LIMIT - 1)) is None
    assert unexplained(_stop(MachineState.DOWN, UNKNOWN_FAULT, 40 * MIN, None)) == 60 * MIN  # open: until now
    assert unexplained(_stop(MachineState.DOWN, UNKNOWN_FAULT, 0, 29_999)) is None  # a micro-stop: counted apart
    assert unexplained(_stop(MachineState.DOWN, UNKNOWN_FAULT, 0, 30_000)) == 30_000


def test_an_idle_counts_only_its_planned_time() -> None:
    calendar = parse_calendar(TWO_TWELVES)
    day = calendar.shifts_on(date(2026, 3, 6))[0]
    # Across the shift change (both sides planned): 20 minutes; 30 are asked for, so it needs no reason.
    idle = _stop(MachineState.IDLE, "", day.end_ms - 10 * MIN, day.end_ms + 10 * MIN)
    assert UnexplainedRule(LIMIT, calendar).ms(idle, day.end_ms) == 20 * MIN
    assert UnexplainedRule(30 * MIN, calendar).ms(idle, day.end_ms) is None


def test_the_list_is_the_machine_types_faults_and_the_plants_codes_grouped() -> None:
    book = parse_reasons(
        "reasons:\n"
        "  - {code: no_yarn, label: No yarn, group: unplanned}\n"
        "  - {code: style_change, label: Style change, group: changeover, machine_types: [knitting]}\n"
    )
    knitting = {r.code: r.group for r in book.choices(MachineType.KNITTING)}
    assert knitting["yarn_break"] is ReasonGroup.UNPLANNED
    assert knitting["style_change"] is ReasonGroup.CHANGEOVER
    assert UNKNOWN_FAULT not in knitting
    assert "style_change" not in {r.code for r in book.choices(MachineType.CARDING)}
    with pytest.raises(ReasonError, match="not a reason for a carding machine"):
        book.reason(MachineType.CARDING, "yarn_break")


def test_a_bad_reasons_file_is_refused_naming_the_line() -> None:
    with pytest.raises(ConfigError, match=r"line 3, reasons\[1\]\.group"):
        parse_reasons("reasons:\n  - {code: a, label: A, group: planned}\n  - {code: b, label: B, group: lunch}\n")
    with pytest.raises(ConfigError, match="machine reason already"):
        parse_reasons("reasons:\n  - {code: yarn_break, label: Y, group: unplanned}\n")
    with pytest.raises(ConfigError, match="listed twice"):
        parse_reasons("reasons:\n  - {code: a, label: A, group: planned}\n  - {code: a, label: B, group: planned}\n")


def test_a_choice_for_a_stop_with_a_machine_reason_is_refused() -> None:
    book = ReasonBook()
    stop = _stop(MachineState.DOWN, "needle_break", 0, MIN)
    with pytest.raises(ReasonError, match="has a machine reason"):
        make_choice(book, stop, "no_yarn", who="op", at_ms=2 * MIN, rule=RULE)


def test_a_correction_replaces_the_choice_so_the_stop_counts_once() -> None:
    book = ReasonBook()
    stops = [
        _stop(MachineState.DOWN, UNKNOWN_FAULT, 0, 10 * MIN),
        _stop(MachineState.IDLE, "", 20 * MIN, 50 * MIN),
        _stop(MachineState.DOWN, UNKNOWN_FAULT, 60 * MIN, 65 * MIN),
    ]
    first = make_choice(book, stops[0], "no_yarn", who="li", at_ms=11 * MIN, rule=RULE)
    fixed = make_choice(book, stops[0], "needle_break", who="wang", at_ms=30 * MIN, rule=RULE)
    idle = make_choice(book, stops[1], "meeting", who="li", at_ms=51 * MIN, rule=RULE)
    standing = {key: c.reason for key, c in latest_choices([fixed, idle, first]).items()}
    assert standing == {(KNIT.machine_id, 0): "needle_break", (KNIT.machine_id, 20 * MIN): "meeting"}
    figures = stop_figures(stops, standing, rule=RULE)
    assert (figures.classified.count, figures.classified.ms) == (2, 40 * MIN)
    assert (figures.unexplained.count, figures.unexplained.ms) == (1, 5 * MIN)
    assert {code: (t.count, t.ms) for code, t in figures.by_reason.items()} == {
        "meeting": (1, 30 * MIN),
        "needle_break": (1, 10 * MIN),
    }
    assert figures.unexplained_share == pytest.approx(5 / 45)
    # The Pareto over [5, 62) min: the classified DOWN's part inside moves from unknown_fault to its reason.
    down = {UNKNOWN_FAULT: 7 * MIN, "yarn_break": MIN}
    assert classified_downtime(down, stops, standing, start_ms=5 * MIN, end_ms=62 * MIN) == {
        UNKNOWN_FAULT: 2 * MIN,
        "needle_break": 5 * MIN,
        "yarn_break": MIN,
    }


def test_a_choice_is_stored_at_the_stops_start_so_a_correction_overwrites_it() -> None:
    def choice(reason: str, at_ms: int) -> Choice:
        return Choice(KNIT, 5 * MIN, MachineState.DOWN, reason, ReasonGroup.UNPLANNED, "li", at_ms)

    first, second = reason_points(choice("no_yarn", 6 * MIN)), reason_points(choice("needle_break", 9 * MIN))
    assert [p.measurement for p in first] == [Measurement.STOP_REASON, Measurement.STOP_REASON_LOG]
    standing = (first[0], second[0])
    assert (standing[0].measurement, standing[0].tags, standing[0].time_ms) == (
        standing[1].measurement,
        standing[1].tags,
        standing[1].time_ms,
    )
    assert first[1].time_ms != second[1].time_ms  # the log keeps both
    assert 'reason="needle_break"' in encode_point(second[0])


def test_an_operator_is_bound_to_a_site_and_its_workshops_and_writes_only_to_influxdb() -> None:
    operator = Identity("li", Role.OPERATOR, "qinghe", "knit-1,knit-2")
    assert operator.workshops == ("knit-1", "knit-2")
    assert operator.influx_user is InfluxUser.OPERATOR
    assert grants(operator).publish == ()
    assert grants(operator).receive == ()
    with pytest.raises(AuthError, match="needs its site and workshop"):
        Identity("li", Role.OPERATOR)
    with pytest.raises(AuthError, match="not a valid name"):
        Identity("li", Role.OPERATOR, "qinghe", "knit 1")


def test_operator_accounts_keep_only_hashes_and_sign_in_by_name_and_password() -> None:
    operator = Identity("li", Role.OPERATOR, "qinghe", "knit")
    credentials = Credentials.model_validate(
        {
            "identities": {
                "li": {"role": "operator", "password": "s3cret", "site": "qinghe", "workshop": "knit"},
                "supervisor": {"role": "supervisor", "password": "other"},
            }
        }
    )
    accounts = Accounts.from_credentials(credentials)
    assert set(accounts.by_name) == {"li"}  # only operators sign in to the page
    assert b"s3cret" not in accounts.by_name["li"].digest
    assert accounts.sign_in("li", "s3cret") == operator
    assert accounts.sign_in("li", "S3cret") is None
    assert accounts.sign_in("supervisor", "other") is None


def test_a_session_ends_after_its_idle_time_and_checks_its_csrf_token() -> None:
    now = [0.0]
    sessions = Sessions(idle_s=60, clock=lambda: now[0])
    session = sessions.new()
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok(None)
    assert not session.csrf_ok(session.csrf[:-1] + "x")
    now[0] = 59
    assert sessions.get(session.id) is session  # used: its idle time starts again
    now[0] = 118
    assert sessions.get(session.id) is session
    now[0] = 179
    assert sessions.get(session.id) is None
    assert sessions.get("made-up") is None
