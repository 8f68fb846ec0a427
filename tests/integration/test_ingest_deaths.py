"""A gateway that vanishes while the alert worker is down: ingest writes its death (ingest/deaths.py), so the
boards say its machines are OFFLINE from its last message. Real Mosquitto and InfluxDB, an ingest worker as a
process, no alert worker; the gateway a process that is SIGKILLed (the broker publishes its real last will).
One worker: `ftel auth` grants ingest WRITE only, so a worker dates a death by what it stored itself (exact
alone); several workers reading each other's records are unit-tested (tests/unit/test_ingest_deaths.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dashboards import queries as q
from ftel.contract.states import STATE_ORDER, MachineState
from ftel.security.identities import Role
from ftel.storage.query import InfluxQuery
from tests.integration.test_alerts_deaths import (
    KILL_AT_S,
    StreamTap,
    kill_when_held,
    last_states,
    offline_points,
    plant,
)
from tests.integration.test_alerts_faults import scenario
from tests.support import Services, ftel_env, start_ftel, stop_processes, unique, wait_ready, wait_until

pytestmark = pytest.mark.integration
MACHINES = ("CARD-001", "CARD-002", "SPIN-001")
HOUR_MS = 3_600_000


def test_without_the_alert_worker_a_vanished_gateway_s_machines_are_offline_from_its_last_message_once(
    services: Services, database: str, tmp_path: Path
) -> None:
    site = unique("idth")
    services.grant_plant(plant(site))
    settings = services.settings(database, site=site)
    tap = StreamTap(services.settings(database, identity=services.grant(unique("tap"), Role.SUPERVISOR)), site)
    query = InfluxQuery(services.admin(database).influx)
    logs = [tmp_path / "ingest.log"]
    processes: list[subprocess.Popen[bytes]] = [
        start_ftel(
            ["ingest", "--worker-id", services.grant(unique("ingest"), Role.INGEST)],
            ftel_env(settings, FTEL_INGEST__GROUP=database),
            log,
        )
        for log in logs
    ]
    try:
        for log in logs:
            wait_ready(log)
        sc = scenario(plant(site), speedup=30, tick_s=0.005, lead_s=3.0)
        kill = sc.at(KILL_AT_S)
        last_message_ms = kill_when_held(sc, settings, tmp_path, tap, processes)
        assert last_message_ms == kill  # held there: its heartbeat of that moment was its last word

        # Dead from its last message: every machine OFFLINE then, and the gateway offline, in InfluxDB.
        offline = dict.fromkeys(MACHINES, (last_message_ms, "OFFLINE"))
        wait_until(lambda: last_states(query, site) == offline, timeout_s=60, what="OFFLINE at the last message")
        status = query.rows(f"SELECT last(\"online\") AS online FROM gateway_status WHERE site = '{site}'")
        assert [(r["time"], r["online"]) for r in status] == [(last_message_ms, False)]

        # What the boards read (the state-now panels' own statement) says the same.
        binding = q.Binding(kill - HOUR_MS, kill + 60_000, variables={q.SITE: (site,)})
        board = query.rows(q.bind(q.current_states().influxql, binding))
        code = STATE_ORDER.index(MachineState.OFFLINE)
        assert {r["machine_id"]: (r["time"], r["state_code"]) for r in board} == dict.fromkeys(
            MACHINES, (last_message_ms, code)
        )
        # Exactly once: one OFFLINE point per machine, one death decided.
        assert offline_points(query, site) == dict.fromkeys(MACHINES, 1)
        wait_until(
            # This site's: a worker also hears the retained last wills that earlier tests' gateways left.
            lambda: sum(log.read_text().count(f"gw-yarn ({site}/yarn) vanished") for log in logs) == 1,
            timeout_s=30,
            what="one worker to say it wrote the death",
        )
    finally:
        tap.close()
        stop_processes(reversed(processes), timeout_s=30)
