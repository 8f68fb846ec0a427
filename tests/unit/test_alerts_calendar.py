"""Time-in-state alerts on the plant calendar (pure): a machine IDLE or DOWN outside planned time raises nothing;
its limit counts planned time only, so a stop at a shift's end is judged from the next shift's start."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from alerts.engine import Engine
from alerts.grafana_rules import grafana_rules
from alerts.rules import AlertConfig, parse_config
from ftel.contract.states import MachineState
from tests.calendars import two_twelves
from tests.unit.test_alerts_core import change, feed, heartbeat

ZONE = ZoneInfo("Asia/Shanghai")


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZONE).timestamp() * 1000)


def config(*, with_calendar: bool = True, planned_time_only: bool = True) -> AlertConfig:
    return parse_config(
        {
            "hold_down_s": 0,
            "rules": [
                {"name": "down", "kind": "machine_down", "minutes": 10, "planned_time_only": planned_time_only},
                {"name": "idle", "kind": "machine_idle", "minutes": 30},
            ],
            "calendar": two_twelves() if with_calendar else None,
        }
    )


def fired(engine: Engine, *moments: str) -> list[tuple[str, str]]:
    """(moment, rule) of every alert that fires while the gateway's clock passes ``moments``."""
    out = []
    for moment in moments:
        for record in feed(engine, [heartbeat(at(moment))]):
            if record.status.value == "firing":
                out.append((moment, record.rule))
    return out


def test_a_stop_at_the_end_of_the_last_shift_before_a_day_off_alerts_in_the_next_shift() -> None:
    engine = Engine(config())
    # Sunday 07:55: five minutes of Saturday's night shift left, then Sunday off.
    feed(engine, [change(at("2026-11-15T07:55"), MachineState.DOWN, "needle_break")])
    assert fired(engine, "2026-11-15T08:06", "2026-11-15T20:00", "2026-11-16T08:04") == []
    assert fired(engine, "2026-11-16T08:05") == [("2026-11-16T08:05", "down")]
    [alert] = engine.lifecycle.alerts()
    assert alert.summary.endswith("DOWN (needle_break) for more than 10.0 min of planned time")


def test_idle_outside_planned_time_never_alerts_and_counts_from_the_next_shift() -> None:
    engine = Engine(config())
    feed(engine, [change(at("2026-11-15T08:00"), MachineState.IDLE)])
    assert fired(engine, "2026-11-15T12:00", "2026-11-15T23:59", "2026-11-16T08:29") == []
    assert fired(engine, "2026-11-16T08:30") == [("2026-11-16T08:30", "idle")]


def test_a_break_pauses_the_count() -> None:
    engine = Engine(config())
    feed(engine, [change(at("2026-11-13T11:55"), MachineState.DOWN, "yarn_break")])
    assert fired(engine, "2026-11-13T12:05", "2026-11-13T12:34") == []
    assert fired(engine, "2026-11-13T12:35") == [("2026-11-13T12:35", "down")]


def test_without_a_calendar_or_with_planned_time_only_off_every_moment_counts() -> None:
    for engine in (Engine(config(with_calendar=False)), Engine(config(planned_time_only=False))):
        feed(engine, [change(at("2026-11-15T07:55"), MachineState.DOWN, "needle_break")])
        assert fired(engine, "2026-11-15T08:04") == []
        assert fired(engine, "2026-11-15T08:05") == [("2026-11-15T08:05", "down")]


def test_the_idle_rule_exports_to_grafana_as_a_state_rule() -> None:
    rules = grafana_rules(config())["groups"][0]["rules"]
    idle = next(r for r in rules if r["title"] == "idle")
    assert idle["for"] == "1800s"
    assert '"machine_state"' in idle["data"][0]["model"]["query"]
