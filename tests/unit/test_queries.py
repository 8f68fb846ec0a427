"""The shared queries: binding Grafana's variables the way Grafana does, and the figures they rest on."""

from __future__ import annotations

import re

import pytest

from dashboards import queries as q
from dashboards.errors import QueryShapeError, UnboundVariableError
from dashboards.report_data import report_readings
from ftel.contract.limits import MACHINE_HOUR_SPREAD_WINDOWS
from ftel.contract.states import MachineState, MachineType
from ftel.errors import FtelError
from ftel.storage.schema import Measurement
from simulators.profiles import PROFILES


def test_binds_time_filter_as_grafana_does_with_an_inclusive_end() -> None:
    text = q.bind("SELECT * FROM x WHERE $timeFilter GROUP BY time($__interval)", q.Binding(1000, 5000, 60_000))
    assert text == "SELECT * FROM x WHERE time >= 1000ms AND time <= 4999ms GROUP BY time(60000ms)"


def test_binds_range_end_for_questions_about_now() -> None:
    assert q.bind("time <= ${__to}ms", q.Binding(0, 10)) == "time <= 9ms"


def test_all_selects_every_value_and_several_values_become_an_escaped_alternation() -> None:
    binding = q.Binding(0, 10, variables={"machine": ("KNIT-001", "a.b")})
    assert q.bind("/^$workshop$/ /^$machine$/", binding) == r"/^.*$/ /^(KNIT\-001|a\.b)$/"


def test_an_unknown_variable_is_an_error_not_a_silent_blank() -> None:
    with pytest.raises(UnboundVariableError) as caught:
        q.bind("SELECT $nonsense", q.Binding(0, 10))
    assert isinstance(caught.value, FtelError)
    assert "$nonsense is neither Grafana's own variable nor a board variable" in str(caught.value)
    assert "add the variable to the boards" in str(caught.value)


def test_alias_patterns_are_left_for_grafana() -> None:
    assert q.bind("$tag_workshop $col", q.Binding(0, 10)) == "$tag_workshop $col"


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(ValueError, match="empty time range"):
        q.Binding(10, 10)


def test_variables_used_leaves_out_grafana_builtins() -> None:
    query = q.machines_in_state_from_points(MachineState.RUNNING)
    assert q.variables_used(query.influxql) == set(q.MACHINE_VARIABLES)


def test_state_now_counts_read_the_snapshot_which_holds_no_machine() -> None:
    for query in (q.machines_in_state(MachineState.DOWN), q.machines_by_state()):
        assert f'FROM "{Measurement.ROLLUP_STATE_NOW}"' in query.influxql, query.name
        assert Measurement.MACHINE_STATE not in query.influxql, query.name
        assert q.variables_used(query.influxql) == set(q.WORKSHOP_VARIABLES), query.name
    with pytest.raises(QueryShapeError, match="no machine"):
        q.machines_in_state(MachineState.DOWN, q.MACHINE_VARIABLES)
    with pytest.raises(QueryShapeError, match="no machine"):
        q.machines_by_state(q.MACHINE_VARIABLES)


def test_per_machine_queries_filter_on_every_machine_variable_and_the_resolution() -> None:
    for query in (q.worst_machines(), q.repeated_faults()):
        assert q.variables_used(query.influxql) == {*q.MACHINE_VARIABLES, q.RESOLUTION}, query.name
    assert q.variables_used(q.current_states().influxql) == set(q.MACHINE_VARIABLES)


def test_workshop_queries_read_the_rollups_which_hold_no_machine() -> None:
    for query in (q.utilisation("workshop"), q.downtime_by_reason(), q.oee(MachineType.CARDING)):
        assert q.variables_used(query.influxql) == {*q.WORKSHOP_VARIABLES, q.RESOLUTION}, query.name
        assert any(f'"{m}"' in query.influxql for m in (Measurement.ROLLUP_STATE_TIME, Measurement.ROLLUP_DOWNTIME))
        assert f'"{Measurement.STATE_TIME}"' not in query.influxql
    with pytest.raises(ValueError, match="no machine"):
        q.Reading("workshop", q.MACHINE_VARIABLES)


def test_one_machine_reads_its_own_windows_whatever_the_resolution() -> None:
    text = q.utilisation(reading=q.ONE_MACHINE).influxql
    assert f'FROM "{Measurement.STATE_TIME}" WHERE' in text
    assert q.variables_used(text) == set(q.MACHINE_VARIABLES)


def test_the_resolution_picks_the_rollups_or_the_machines_own_windows() -> None:
    binding = q.Binding(0, q.MS_PER_HOUR, resolution=q.HOUR)
    assert q.bind('"resolution" =~ /^(${resolution:raw})$/', binding) == '"resolution" =~ /^(1h)$/'
    # At one minute the pattern also matches a missing tag: a machine's own windows carry none.
    assert re.fullmatch(f"({q.RESOLUTION_PATTERNS[q.MINUTE]})", "")
    assert re.fullmatch(f"({q.RESOLUTION_PATTERNS[q.MINUTE]})", q.MINUTE)
    assert not re.fullmatch(f"({q.RESOLUTION_PATTERNS[q.HOUR]})", "")
    with pytest.raises(ValueError, match="resolution"):
        q.Binding(0, 10, resolution="5m")


def test_a_shift_of_whole_hours_is_read_at_one_hour() -> None:
    eight, sixteen = 8 * q.MS_PER_HOUR, 16 * q.MS_PER_HOUR
    assert q.range_slices(eight, sixteen) == (q.Slice(q.between(eight, sixteen), q.HOUR),)


def test_a_range_of_part_hours_reads_its_edges_by_the_minute() -> None:
    start, end = 8 * q.MS_PER_HOUR + 17 * q.MS_PER_MINUTE, 16 * q.MS_PER_HOUR + 5 * q.MS_PER_MINUTE
    nine, sixteen = 9 * q.MS_PER_HOUR, 16 * q.MS_PER_HOUR
    assert q.range_slices(start, end) == (
        q.Slice(q.between(start, nine), q.MINUTE),
        q.Slice(q.between(nine, sixteen), q.HOUR),
        q.Slice(q.between(sixteen, end), q.MINUTE),
    )
    within = (start, start + 20 * q.MS_PER_MINUTE)
    assert q.range_slices(*within) == (q.Slice(q.between(*within), q.MINUTE),)
    # Across one hour boundary without a whole hour inside: minutes only.
    across = (start, nine + 10 * q.MS_PER_MINUTE)
    assert q.range_slices(*across) == (q.Slice(q.between(*across), q.MINUTE),)


def test_workshop_slices_add_up_in_one_statement_machine_slices_do_not() -> None:
    slices = q.range_slices(17 * q.MS_PER_MINUTE, 3 * q.MS_PER_HOUR)
    text = q.utilisation(reading=q.WORKSHOPS.with_slices(slices)).influxql
    assert text.count("(SELECT ") == 2
    assert q.variables_used(text) == set(q.WORKSHOP_VARIABLES)
    with pytest.raises(ValueError, match="one slice per statement"):
        q.EACH_MACHINE.with_slices(slices)


def test_per_machine_questions_read_machine_hours_at_one_hour_and_either_on_a_board() -> None:
    hours = q.Reading("machine", q.MACHINE_VARIABLES, (q.Slice("$timeFilter", q.HOUR),))
    text = q.worst_machines(reading=hours).influxql
    assert f'FROM "{Measurement.MACHINE_HOURS}" WHERE' in text
    assert f'"{Measurement.STATE_TIME}"' not in text
    assert f'FROM "{Measurement.STATE_TIME}", "{Measurement.MACHINE_HOURS}" WHERE' in q.worst_machines().influxql


def test_rated_output_is_what_the_simulated_machines_are_built_to() -> None:
    assert {t: PROFILES[t].units_per_hour for t in MachineType} == dict(q.RATED_UNITS_PER_HOUR)


def test_hours_whose_roll_ups_may_still_be_coming_are_read_by_the_minute() -> None:
    eight, fifteen, sixteen = 8 * q.MS_PER_HOUR, 15 * q.MS_PER_HOUR, 16 * q.MS_PER_HOUR
    # A report of the 08:00-16:00 shift at 16:05: the last hour's machine roll-ups may not all be in yet.
    just_after = sixteen + 5 * q.MS_PER_MINUTE - (MACHINE_HOUR_SPREAD_WINDOWS + 1) * q.WINDOW_MS
    assert q.range_slices(eight, sixteen, hours_until_ms=just_after) == (
        q.Slice(q.between(eight, fifteen), q.HOUR),
        q.Slice(q.between(fifteen, sixteen), q.MINUTE),
    )
    assert q.range_slices(eight, sixteen, hours_until_ms=sixteen) == q.range_slices(eight, sixteen)


def test_the_report_reads_the_hour_that_just_ended_from_its_minutes_until_its_roll_ups_are_all_in() -> None:
    eight, sixteen = 8 * q.MS_PER_HOUR, 16 * q.MS_PER_HOUR
    shift = q.Binding(eight, sixteen)
    spread_ms = (MACHINE_HOUR_SPREAD_WINDOWS + 1) * q.WINDOW_MS
    soon = report_readings(shift, now_ms=sixteen + spread_ms - 1)
    assert [s.resolution for r in soon.machines for s in r.slices] == [q.HOUR, q.MINUTE]
    assert [s.resolution for s in soon.workshops.slices] == [q.HOUR, q.MINUTE]
    later = report_readings(shift, now_ms=sixteen + spread_ms)
    assert [s.resolution for r in later.machines for s in r.slices] == [q.HOUR]
    assert later == report_readings(shift)
