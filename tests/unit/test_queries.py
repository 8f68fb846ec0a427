"""The shared queries: binding Grafana's variables the way Grafana does, and the figures they rest on."""

from __future__ import annotations

import pytest

from dashboards import queries as q
from ftel.contract.states import MachineState, MachineType
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
    with pytest.raises(q.UnboundVariableError):
        q.bind("SELECT $nonsense", q.Binding(0, 10))


def test_alias_patterns_are_left_for_grafana() -> None:
    assert q.bind("$tag_workshop $col", q.Binding(0, 10)) == "$tag_workshop $col"


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(ValueError, match="empty time range"):
        q.Binding(10, 10)


def test_variables_used_leaves_out_grafana_builtins() -> None:
    assert q.variables_used(q.machines_in_state(MachineState.RUNNING).influxql) == set(q.MACHINE_VARIABLES)


def test_machine_queries_filter_on_every_machine_variable() -> None:
    for query in (q.utilisation("workshop"), q.downtime_by_reason(), q.worst_machines(), q.current_states()):
        assert q.variables_used(query.influxql) == set(q.MACHINE_VARIABLES), query.name


def test_rated_output_is_what_the_simulated_machines_are_built_to() -> None:
    assert {t: PROFILES[t].units_per_hour for t in MachineType} == dict(q.RATED_UNITS_PER_HOUR)
