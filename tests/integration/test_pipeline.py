"""The whole pipeline through real Mosquitto and InfluxDB: simulated gateways → broker → ingest → InfluxDB,
checked against the simulator's ledger to the millisecond."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ftel.plant.layout import default_plant
from ftel.security.identities import Role
from ftel.settings import Settings
from ftel.storage.query import InfluxQuery
from simulators.ledger import plant_ledger
from tests import sim_start
from tests.ledger_check import differences, ledger_totals, stored_totals
from tests.support import Services, ftel_env, start_ftel, wait_for_log, wait_ready, wait_until

pytestmark = pytest.mark.integration
HOUR_MS = 3_600_000
WINDOW_MS = 60_000


def pinned_start() -> int:
    """The pinned start of a two-hour run (tests/sim_start.py): in the past, the same history every time."""
    return sim_start.start_ms(span_ms=2 * HOUR_MS)


def simulate(env: dict[str, str], start_ms: int, duration: str, speedup: int, log: Path) -> subprocess.Popen[bytes]:
    return start_ftel(
        ["simulate", "run", "--duration", duration, "--speedup", str(speedup), "--start-ms", str(start_ms)],
        env,
        log,
    )


def wait_for_exact(query: InfluxQuery, start_ms: int, end_ms: int, key: str = "machine_id") -> list[str]:
    """Poll until what InfluxDB holds equals the ledger (or give up and return the differences)."""
    expected = ledger_totals(plant_ledger(default_plant(), start_ms=start_ms, end_ms=end_ms, window_ms=WINDOW_MS), key)
    last: list[str] = []

    def same() -> bool:
        nonlocal last
        last = differences(expected, stored_totals(query, key, start_ms, end_ms))
        return not last

    try:
        wait_until(same, timeout_s=90, what="InfluxDB to hold exactly the ledger", every_s=1)
    except AssertionError:
        return last
    return []


def worker_counts(query: InfluxQuery) -> dict[str, int]:
    rows = query.rows("SELECT last(messages_in) AS m FROM ingest_health GROUP BY worker")
    return {r["worker"]: int(r["m"]) for r in rows}


def took(query: InfluxQuery, worker: str, *, more_than: int) -> int | None:
    """How many messages ``worker`` has reported taking, if more than ``more_than``."""
    count = worker_counts(query).get(worker, 0)
    return count if count > more_than else None


PROGRESS = re.compile(r"gateway (\S+) sim .* spool (\d+) .*broker away")


def spooled_while_away(log: Path) -> bool:
    """Every gateway of the run has reported, with the broker away, a deeper spool than when it found it away."""
    depths: dict[str, list[int]] = {}
    for line in log.read_text(errors="replace").splitlines():
        if found := PROGRESS.search(line):
            depths.setdefault(found[1], []).append(int(found[2]))
    every = {w.id for w in default_plant().workshops}
    return set(depths) == every and all(max(d) > d[0] for d in depths.values())


@pytest.fixture
def pipeline(services: Services, database: str, tmp_path: Path) -> tuple[Settings, dict[str, str], Path]:
    # The default plant's gateways, bound to its site (other tests bind the same gateway ids to theirs).
    services.grant_plant(default_plant())
    settings = services.settings(database)
    # Each test gets its own shared-subscription group, so workers of other tests never take its messages.
    env = ftel_env(
        settings,
        FTEL_INGEST__GROUP=database,
        FTEL_INGEST__HEALTH_INTERVAL_S="1",
        FTEL_GATEWAY__STATE_DIR=str(tmp_path / "gateways"),
    )
    return settings, env, tmp_path


def start_worker(services: Services, env: dict[str, str], name: str, logs: Path) -> subprocess.Popen[bytes]:
    """An ingest worker process; its worker id is its identity."""
    services.grant(name, Role.INGEST)
    log = logs / f"{name}.log"
    process = start_ftel(["ingest", "--worker-id", name], env, log)
    wait_ready(log)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def test_two_simulated_hours_arrive_exactly_and_two_workers_share_the_load(services: Services, pipeline) -> None:  # type: ignore[no-untyped-def]
    settings, env, logs = pipeline
    group = settings.influx.database
    workers = [start_worker(services, env, f"{group}-a", logs), start_worker(services, env, f"{group}-b", logs)]
    start = pinned_start()
    gateways = simulate(env, start, "2h", 900, logs / "sim.log")
    assert gateways.wait(timeout=300) == 0, (logs / "sim.log").read_text()
    query = InfluxQuery(services.admin(group).influx)
    assert wait_for_exact(query, start, start + 2 * HOUR_MS) == []
    assert wait_for_exact(query, start, start + 2 * HOUR_MS, key="workshop") == []

    def both_reported() -> dict[str, int] | None:
        counts = worker_counts(query)
        return counts if len(counts) == 2 and all(counts.values()) else None

    counts = wait_until(both_reported, timeout_s=30, what="health from both workers")
    total = sum(counts.values())
    # Both workers took a real share of the stream (round-robin gives about half each).
    assert min(counts.values()) > total * 0.2, counts
    for worker in workers:
        stop(worker)


def test_a_worker_killed_mid_run_and_restarted_loses_and_doubles_nothing(services: Services, pipeline) -> None:  # type: ignore[no-untyped-def]
    settings, env, logs = pipeline
    group = settings.influx.database
    steady = start_worker(services, env, f"{group}-a", logs)
    victim = start_worker(services, env, f"{group}-b", logs)
    start = pinned_start()
    query = InfluxQuery(services.admin(group).influx)
    gateways = simulate(env, start, "2h", 600, logs / "sim.log")
    # Killed while it takes its share of the stream (it has reported taking some): it holds messages it has not
    # acknowledged yet.
    wait_until(lambda: took(query, f"{group}-b", more_than=0), timeout_s=60, what="the victim to take messages")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # Its session keeps collecting its share while it is dead: the stream goes on (the other worker takes more).
    taken = worker_counts(query).get(f"{group}-a", 0)
    wait_until(lambda: took(query, f"{group}-a", more_than=taken), timeout_s=60, what="the stream to go on")
    victim = start_worker(services, env, f"{group}-b", logs)
    assert gateways.wait(timeout=300) == 0
    assert wait_for_exact(query, start, start + 2 * HOUR_MS) == []
    for worker in (steady, victim):
        stop(worker)


def test_the_gateway_spools_through_a_broker_outage_and_nothing_is_lost(tmp_path: Path, database: str) -> None:
    from ftel.stack import LocalStack
    from tests.support import Services

    stack = LocalStack.on_free_ports(tmp_path / "own-stack")
    stack.up()
    try:
        own = Services(stack)
        own.grant_plant(default_plant())
        settings = own.settings(database)
        env = ftel_env(settings)
        worker = start_worker(own, env, "outage-worker", tmp_path)
        start = pinned_start()
        gateways = simulate(env, start, "2h", 300, tmp_path / "sim.log")
        wait_for_log(tmp_path / "sim.log", "published", timeout_s=60)
        stack.mosquitto.stop()  # the broker goes away mid-run…
        wait_until(lambda: spooled_while_away(tmp_path / "sim.log"), timeout_s=60, what="gateways to spool")
        stack.up()  # …and comes back with its persisted sessions
        assert gateways.wait(timeout=300) == 0
        log = (tmp_path / "sim.log").read_text()
        assert "dropped 0" in log.splitlines()[-1]
        assert wait_for_exact(InfluxQuery(own.admin(database).influx), start, start + 2 * HOUR_MS) == []
        stop(worker)
    finally:
        stack.down()


def test_ftel_stack_up_status_down(tmp_path: Path) -> None:
    from ftel.stack import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("FTEL_")}
    env |= {
        "FTEL_MQTT__PORT": str(free_port()),
        "FTEL_INFLUX__URL": f"http://127.0.0.1:{free_port()}",
        "FTEL_STACK__DIR": str(tmp_path / "stack"),
    }

    def ftel(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "ftel.app", "stack", *args],
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        assert ftel("up").count("answering") == 2
        assert ftel("status").count("running") == 2
    finally:
        assert ftel("down").count("stopped") == 2
