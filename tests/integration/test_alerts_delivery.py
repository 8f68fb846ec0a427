"""Delivery survives its failures: a webhook receiver that is down, then answers 500, then is slow never holds
up evaluation and gets every transition; the worker killed with SIGKILL and restarted neither repeats nor
loses an alert. Real Mosquitto, InfluxDB, HTTP receiver and `ftel alerts run` processes."""

from __future__ import annotations

import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from alerts.lifecycle import Status
from alerts.rules import WebhookTarget, load_config
from ftel.contract.states import MachineState, MachineType
from ftel.plant.layout import InjectedAnomaly, InjectedServiceOverdue, InjectedState, MachineSpec, Plant, Workshop
from ftel.security.identities import Role
from ftel.stack.services import free_port
from ftel.storage.query import InfluxQuery
from tests.integration.test_alerts_faults import (
    MAX_LATENCY_MS,
    MINUTE_S,
    AlertTap,
    gateway_process,
    scenario,
    worker_process,
)
from tests.support import Services, unique, wait_ready, wait_until

pytestmark = pytest.mark.integration
FAIL_FIRST = 3  # requests answered 500
SLOW_NEXT = 2  # then requests answered only after the client's timeout
WEBHOOK_TIMEOUT_S = 0.5


class Receiver:
    """A real webhook receiver on loopback: 500 for the first requests, then slow, then fine."""

    def __init__(self, port: int) -> None:
        self.bodies: list[dict[str, object]] = []
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver._lock:
                    receiver.requests += 1
                    n = receiver.requests
                if n <= FAIL_FIRST:
                    self.send_response(500)
                    self.end_headers()
                    return
                if n <= FAIL_FIRST + SLOW_NEXT:
                    time.sleep(WEBHOOK_TIMEOUT_S * 3)
                with receiver._lock:
                    receiver.bodies.append(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def event_ids(self) -> set[str]:
        with self._lock:
            return {str(b["event_id"]) for b in self.bodies}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def plant(site: str) -> Plant:
    return Plant(
        site=site,
        workshops=(
            Workshop(
                id="yarn",
                name="Yarn",
                gateway_id="gw-yarn",
                machines=(
                    MachineSpec(id="CARD-001", type=MachineType.CARDING),
                    MachineSpec(id="CARD-002", type=MachineType.CARDING),
                    MachineSpec(id="SPIN-001", type=MachineType.SPINNING),
                ),
            ),
        ),
        injected_anomalies=(
            InjectedAnomaly(
                machine_id="CARD-001", at_s=5 * MINUTE_S, duration_s=10 * MINUTE_S, temperature_rise_c=40.0
            ),
        ),
        injected_states=(
            InjectedState(machine_id="SPIN-001", at_s=5 * MINUTE_S, duration_s=15 * MINUTE_S, reason="ends_down"),
            InjectedState(
                machine_id="CARD-002",
                at_s=15 * MINUTE_S,
                duration_s=10 * MINUTE_S,
                state=MachineState.MAINTENANCE,
            ),
        ),
        injected_service_overdue=(InjectedServiceOverdue(machine_id="CARD-002", run_hours=170.0),),
    )


def test_webhook_failures_and_sigkill_neither_block_nor_lose_nor_repeat_alerts(  # noqa: PLR0915
    services: Services, database: str, tmp_path: Path
) -> None:
    site = unique("dlv")
    services.grant_plant(plant(site))
    # The gateway finds its identity (gw-yarn) in the credentials file; the worker and the tap each connect as
    # their own identity (the broker binds a session to its identity).
    settings = services.settings(database, site=site)
    worker_settings = services.settings(database, site=site, identity=services.grant(unique("alerts"), Role.ALERTS))
    tap_settings = services.settings(database, site=site, identity=services.grant(unique("tap"), Role.SUPERVISOR))
    port = free_port()  # nothing listens yet: the receiver is down
    config = load_config()
    hook = WebhookTarget(
        name="board",
        url=f"http://127.0.0.1:{port}/alerts",
        timeout_s=WEBHOOK_TIMEOUT_S,
        retry_initial_s=0.2,
        retry_max_s=1.0,
        allow_hosts=("127.0.0.1",),  # the receiver is on loopback, which webhooks may not reach unless allowed
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(config.model_copy(update={"webhooks": (hook,)}).model_dump(mode="json")))
    group = unique("alerts")
    tap = AlertTap(tap_settings, site)
    receiver: Receiver | None = None
    log = tmp_path / "worker.log"
    worker = worker_process(worker_settings, tmp_path, group, log, rules=rules)
    gateway = None
    try:
        wait_ready(log)
        sc = scenario(plant(site), speedup=300, tick_s=0.005, lead_s=2.0)
        end = sc.at(30 * MINUTE_S)
        gateway = gateway_process(
            sc, settings, "yarn", end_ms=end, plant_file=tmp_path / "plant.json", first_read_ms=sc.start_ms
        )
        # Killed after the overheat alert fired (due about 8 plant minutes in); the DOWN alert becomes due (17
        # minutes in) while the worker is dead, unless a loaded host made the worker lag that far behind.
        sc.wait_for_sim(sc.at(12 * MINUTE_S))
        wait_until(
            lambda: any(r.rule == "overheat" for r in tap.snapshot()),
            timeout_s=60,
            what="the overheat alert before the kill",
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        sc.wait_for_sim(sc.at(19 * MINUTE_S))
        worker = worker_process(worker_settings, tmp_path, group, log, rules=rules)
        sc.wait_for_sim(sc.at(22 * MINUTE_S))
        receiver = Receiver(port)
        gateway.wait(120)

        expected = {("overheat", "CARD-001"), ("machine-down", "SPIN-001"), ("service-overdue", "CARD-002")}

        def resolved() -> bool:
            return {(r.rule, r.subject) for r in tap.final().values() if r.status is Status.RESOLVED} >= expected

        wait_until(resolved, timeout_s=60, what="every alert resolved")
        final = tap.final()
        events = {f"{alert_id}:{s}" for alert_id in final for s in ("firing", "resolved")}
        wait_until(
            lambda: receiver is not None and receiver.event_ids() >= events,
            timeout_s=60,
            what="every transition at the webhook",
        )
    finally:
        tap.close()
        if gateway is not None and gateway.poll() is None:
            gateway.kill()
            gateway.wait(10)
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        if receiver is not None:
            receiver.close()

    problems = tap.by_problem()
    assert set(problems) == expected
    assert all(len(ids) == 1 for ids in problems.values()), f"an alert repeated: {problems}"
    latency = {r.rule: r.fired_ms - r.condition_ms for r in final.values()}
    print("alert latency across webhook outage and SIGKILL (simulated ms):", latency)
    assert all(0 <= ms <= MAX_LATENCY_MS for ms in latency.values()), latency
    assert receiver.event_ids() == events
    assert receiver.requests > FAIL_FIRST + SLOW_NEXT
    body = next(b for b in receiver.bodies if b["rule"] == "machine-down" and b["status"] == "resolved")
    assert body["subject"] == "SPIN-001"
    assert body["duration_s"] == 15 * 60
    assert body["version"] == 1

    query = InfluxQuery(services.admin(database).influx)
    wait_until(
        lambda: (
            {(r["alert_id"], r["status"]) for r in query.rows('SELECT "alert_id", "status" FROM "alerts"')}
            == {(a, s) for a in final for s in ("firing", "resolved")}
        ),
        timeout_s=30,
        what="one firing and one resolved point per alert in InfluxDB",
    )
