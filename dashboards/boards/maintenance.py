"""Maintenance: machines down now and for how long, repeated faults, run-hours since service, open alerts."""

from __future__ import annotations

from grafana_foundation_sdk.builders import table

from dashboards import panels as p
from dashboards import queries as q
from dashboards.board import Board, Row

UID = "ftel-maintenance"


def down_now() -> table.Panel:
    return p.table_panel(
        "Machines down now",
        "Machines DOWN at the range end, the reason, and since when.",
        q.down_now(),
        transformations=[
            p.organise(
                {"Time": "Down since", "machine_id": "Machine", "workshop": "Workshop", "reason": "Reason"},
                hide=("state_code",),
            )
        ],
    ).override_by_name("Down since", p.unit_is("dateTimeFromNow"))


def run_hours() -> table.Panel:
    return p.table_panel(
        "Run-hours since last maintenance",
        "Running hours since each machine's last MAINTENANCE, next to its service interval.",
        q.run_hours_since_service(),
        q.machine_info("service_interval_h"),
        transformations=[
            p.transform("merge", {}),
            p.organise(
                {
                    "machine_id": "Machine",
                    "workshop": "Workshop",
                    "run_hours": "Run-hours",
                    "service_interval_h": "Service interval (h)",
                }
            ),
            p.sort_by("Run-hours"),
        ],
    ).decimals(1)


def board() -> Board:
    return Board(
        uid=UID,
        title="Maintenance",
        description="What maintenance should look at: stops now, repeated faults, service due, open alerts.",
        # A crew looks after a workshop or a few: it opens on one (a county's lists would be tens of thousands
        # of rows, and each a pass over every machine).
        variables=[*p.machine_variables(without_all={q.WORKSHOP}), p.resolution_variable()],
        rows=[
            Row(
                "Now",
                [
                    down_now(),
                    p.table_panel(
                        "Open alerts",
                        "Alerts firing or acknowledged (the alert worker writes them).",
                        q.open_alerts(),
                        transformations=[
                            p.organise(
                                {
                                    "rule": "Rule",
                                    "severity": "Severity",
                                    "subject": "Subject",
                                    "workshop": "Workshop",
                                    "status": "Status",
                                    "summary": "Summary",
                                }
                            )
                        ],
                    ),
                ],
            ),
            Row(
                "Due",
                [
                    p.table_panel(
                        "Repeated faults",
                        f"Machines stopped {q.REPEATED_FAULT_STOPS}+ times for one reason in the range "
                        "(at 1h: in the hours that start in it).",
                        q.repeated_faults(),
                        transformations=[
                            p.organise(
                                {
                                    "machine_id": "Machine",
                                    "workshop": "Workshop",
                                    "reason": "Reason",
                                    "stops": "Stops",
                                }
                            ),
                            p.sort_by("Stops"),
                        ],
                    ),
                    run_hours(),
                ],
            ),
        ],
    )
