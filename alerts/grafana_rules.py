"""The alert rules as Grafana alert-rule provisioning (apiVersion 1), for teams that use Grafana alerting.

Built from the same rules file as the worker, by small typed factories; the InfluxQL queries read what ingest
writes (docs/schema.md) through the data source with the fixed uid ``ftel-influxdb``. What InfluxQL cannot say
is approximated and documented in docs/alerts.md (per-reason DOWN limits use the rule's default minutes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from alerts.rules import (
    AlertConfig,
    GatewayOfflineRule,
    MachineDownRule,
    MachineIdleRule,
    MachineOfflineRule,
    OverheatRule,
    RepeatedStopsRule,
    Rule,
    ServiceOverdueRule,
    SlowRunningRule,
    load_config,
)
from ftel.contract.states import STATE_ORDER, MachineState
from ftel.storage.schema import GRAFANA_DATASOURCE_UID as DATASOURCE_UID
from ftel.storage.schema import Field, Measurement, Tag

EXPRESSION_UID = "__expr__"
FOLDER = "Maintenance"
GROUP = "ftel-maintenance"
EVALUATION_INTERVAL = "1m"
RULES_FILE = Path("provisioning") / "alerting" / "ftel-alerts.yaml"
MACHINE_TAGS = (Tag.SITE, Tag.WORKSHOP, Tag.MACHINE_TYPE, Tag.MACHINE_ID)
GATEWAY_TAGS = (Tag.SITE, Tag.WORKSHOP, Tag.GATEWAY_ID)
# Machine meta is written when a gateway starts; look back this far for it.
META_LOOKBACK_S = 30 * 24 * 3600
STATE_LOOKBACK_S = 7 * 24 * 3600

Json = dict[str, Any]


def _group_by(tags: tuple[str, ...]) -> str:
    return ", ".join(f'"{t}"' for t in tags)


def _type_filter(rule: Rule) -> str:
    if not rule.machine_types:
        return ""
    return f' AND "{Tag.MACHINE_TYPE}" =~ /^({"|".join(t.value for t in rule.machine_types)})$/'


def influxql(ref: str, query: str, *, seconds: int) -> Json:
    return {
        "refId": ref,
        "relativeTimeRange": {"from": seconds, "to": 0},
        "datasourceUid": DATASOURCE_UID,
        "model": {
            "refId": ref,
            "query": query,
            "rawQuery": True,
            "resultFormat": "time_series",
            "intervalMs": 60_000,
            "maxDataPoints": 43_200,
        },
    }


def reduce(ref: str, expression: str, reducer: str = "last") -> Json:
    return {
        "refId": ref,
        "datasourceUid": EXPRESSION_UID,
        "relativeTimeRange": {"from": 0, "to": 0},
        "model": {
            "refId": ref,
            "type": "reduce",
            "expression": expression,
            "reducer": reducer,
            "settings": {"mode": "dropNN"},
        },
    }


def math(ref: str, expression: str) -> Json:
    return {
        "refId": ref,
        "datasourceUid": EXPRESSION_UID,
        "relativeTimeRange": {"from": 0, "to": 0},
        "model": {"refId": ref, "type": "math", "expression": expression},
    }


def threshold(ref: str, expression: str, kind: str, *params: float) -> Json:
    return {
        "refId": ref,
        "datasourceUid": EXPRESSION_UID,
        "relativeTimeRange": {"from": 0, "to": 0},
        "model": {
            "refId": ref,
            "type": "threshold",
            "expression": expression,
            "conditions": [{"evaluator": {"type": kind, "params": list(params)}}],
        },
    }


def _state_is(rule: Rule, state: MachineState) -> list[Json]:
    code = STATE_ORDER.index(state)
    query = (
        f'SELECT last("{Field.STATE_CODE}") FROM "{Measurement.MACHINE_STATE}" WHERE $timeFilter{_type_filter(rule)} '
        f"GROUP BY {_group_by(MACHINE_TAGS)}"
    )
    return [
        influxql("A", query, seconds=STATE_LOOKBACK_S),
        reduce("B", "A"),
        threshold("C", "B", "within_range", code - 0.5, code + 0.5),
    ]


def _telemetry(rule: Rule, select: str, *, seconds: int, where: str = "") -> Json:
    return influxql(
        "A",
        f'SELECT {select} FROM "{Measurement.TELEMETRY}" WHERE $timeFilter{where}{_type_filter(rule)} '
        f"GROUP BY {_group_by(MACHINE_TAGS)}",
        seconds=seconds,
    )


def _meta(rule: Rule, field: str) -> Json:
    return influxql(
        "M",
        f'SELECT last("{field}") FROM "{Measurement.MACHINE_INFO}" WHERE $timeFilter{_type_filter(rule)} '
        f"GROUP BY {_group_by(MACHINE_TAGS)}",
        seconds=META_LOOKBACK_S,
    )


def _data(rule: Rule) -> tuple[list[Json], int, str]:
    """(queries and expressions ending in refId C, the 'for' duration in seconds, no-data state)."""
    if isinstance(rule, MachineDownRule):
        return _state_is(rule, MachineState.DOWN), int(rule.minutes * 60), "OK"
    if isinstance(rule, MachineIdleRule):
        return _state_is(rule, MachineState.IDLE), int(rule.minutes * 60), "OK"
    if isinstance(rule, MachineOfflineRule):
        return _state_is(rule, MachineState.OFFLINE), int(rule.minutes * 60), "OK"
    if isinstance(rule, RepeatedStopsRule):
        reasons = f' AND "{Tag.REASON}" =~ /^({"|".join(rule.reasons)})$/' if rule.reasons else ""
        query = (
            f'SELECT sum("{Field.STOPS}") FROM "{Measurement.DOWNTIME}" WHERE $timeFilter{reasons}{_type_filter(rule)} '
            f'GROUP BY {_group_by(MACHINE_TAGS)}, "{Tag.REASON}"'
        )
        return (
            [
                influxql("A", query, seconds=int(rule.window_minutes * 60)),
                reduce("B", "A"),
                threshold("C", "B", "gt", rule.count - 0.5),
            ],
            0,
            "OK",
        )
    if isinstance(rule, GatewayOfflineRule):
        query = (
            f'SELECT count("{Field.SEQ}") FROM "{Measurement.GATEWAY_HEARTBEAT}" WHERE $timeFilter '
            f"GROUP BY {_group_by(GATEWAY_TAGS)}"
        )
        # No heartbeat at all in the window is no data: that is the alert.
        return (
            [
                influxql("A", query, seconds=int(rule.heartbeat_timeout_s)),
                reduce("B", "A"),
                threshold("C", "B", "lt", 1),
            ],
            0,
            "Alerting",
        )
    if isinstance(rule, OverheatRule):
        seconds = int(rule.minutes * 60)
        return (
            [
                _telemetry(rule, f'min("{Field.TEMPERATURE}")', seconds=seconds),
                reduce("B", "A"),
                threshold("C", "B", "gt", rule.limit_c),
            ],
            0,
            "OK",
        )
    if isinstance(rule, SlowRunningRule):
        seconds = int(rule.minutes * 60)
        return (
            [
                _telemetry(
                    rule,
                    f'max("{Field.SPEED}")',
                    seconds=seconds,
                    where=f" AND \"{Field.STATE}\" = '{MachineState.RUNNING.value}'",
                ),
                reduce("B", "A"),
                _meta(rule, Field.RATED_SPEED),
                reduce("R", "M"),
                math("P", "$B / $R * 100"),
                threshold("C", "P", "lt", rule.percent_of_rated),
            ],
            0,
            "OK",
        )
    if isinstance(rule, ServiceOverdueRule):
        return (
            [
                _telemetry(rule, f'last("{Field.RUN_MS_SINCE_SERVICE}") / 3600000', seconds=3600),
                reduce("B", "A"),
                _meta(rule, Field.SERVICE_INTERVAL_H),
                reduce("R", "M"),
                math("P", f"$B - $R * {rule.factor:g}"),
                threshold("C", "P", "gt", 0),
            ],
            0,
            "OK",
        )
    raise TypeError(f"no Grafana export for rule kind {type(rule).__name__}")


def grafana_rule(rule: Rule) -> Json:
    data, for_s, no_data = _data(rule)
    return {
        "uid": f"ftel-{rule.name}"[:40],
        "title": rule.name,
        "condition": "C",
        "data": data,
        "noDataState": no_data,
        "execErrState": "Error",
        "for": f"{for_s}s",
        "annotations": {"summary": rule.description or rule.name, "runbook_url": "docs/alerts.md"},
        "labels": {"severity": rule.severity.value, "team": "maintenance", "source": "ftel"},
        "isPaused": False,
    }


def grafana_rules(config: AlertConfig) -> Json:
    """Grafana's alert-rule provisioning structure for every rule in ``config``."""
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": GROUP,
                "folder": FOLDER,
                "interval": EVALUATION_INTERVAL,
                "rules": [grafana_rule(r) for r in config.rules],
            }
        ],
    }


def write_grafana_rules(out: Path, config: AlertConfig | None = None) -> Path:
    """Write <out>/provisioning/alerting/ftel-alerts.yaml; return its path."""
    path = out / RULES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(grafana_rules(config or load_config()), sort_keys=True, allow_unicode=True)
    path.write_text(text)
    return path
