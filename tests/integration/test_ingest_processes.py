"""`ftel ingest --processes N` on the real broker and InfluxDB: Ctrl-C to its whole process group (as a terminal
sends it to a foreground job) is the supervisor's to handle, and a worker that keeps dying is started again
with a growing backoff, said on its retained health topic, while the other goes on storing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from ftel.contract.topics import health_topic
from ftel.plant.layout import default_plant
from ftel.security.identities import Role
from ftel.storage.query import InfluxQuery
from tests.integration.test_pipeline import HOUR_MS, pinned_start, simulate, wait_for_exact
from tests.support import MqttProbe, Services, ftel_env, wait_for_log, wait_until

pytestmark = pytest.mark.integration


def start_supervisor(env: dict[str, str], first_id: str, log: Path) -> subprocess.Popen[bytes]:
    """`ftel ingest --processes 2` as a shell starts a job: in a process group of its own."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ftel.app", "ingest", "--processes", "2", "--worker-id", first_id],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0,
        )


def worker_process(supervisor: subprocess.Popen[bytes], worker_id: str) -> psutil.Process | None:
    for child in psutil.Process(supervisor.pid).children():
        try:
            if child.cmdline()[-1] == worker_id:
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def subscriptions(log: Path, worker_id: str) -> int:
    """How many times the worker has logged its subscription (its own lines; the supervisor's warnings quote
    a dead worker's last line)."""
    mine = f" ingest.worker: worker {worker_id} subscribed"
    return sum(1 for line in log.read_text().splitlines() if mine in line and "ingest.supervisor" not in line)


def healths(probe: MqttProbe, worker_id: str) -> list[dict[str, object]]:
    return [json.loads(p) for p in probe.received(health_topic("ingest", worker_id)) if p]


@pytest.fixture
def workers(services: Services, database: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Two worker identities of this test, the environment of its processes, a probe on their health topics."""
    services.grant_plant(default_plant())
    ids = [services.grant(f"{database}-{n}", Role.INGEST) for n in (1, 2)]
    env = ftel_env(
        services.settings(database),
        FTEL_INGEST__GROUP=database,
        FTEL_INGEST__HEALTH_INTERVAL_S="1",
        FTEL_GATEWAY__STATE_DIR=str(tmp_path / "gateways"),
    )
    probe = MqttProbe(services.admin(database).mqtt).connect()
    probe.subscribe(health_topic("ingest", "+"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        yield ids, env, probe, processes
    finally:
        probe.close()
        for process in processes:  # a supervisor's workers stop with it (they watch their parent)
            if process.poll() is None:
                process.kill()
                process.wait()


def test_ctrl_c_to_the_whole_group_is_the_supervisor_s_and_both_workers_stop_clean(workers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids, env, probe, processes = workers
    log = tmp_path / "ingest.log"
    supervisor = start_supervisor(env, ids[0], log)
    processes.append(supervisor)
    for worker_id in ids:
        wait_for_log(log, f"worker {worker_id} subscribed")
    gateways = simulate(env, pinned_start(), "2h", 300, tmp_path / "sim.log")
    processes.append(gateways)

    def both_took_messages() -> bool:
        return all(any(int(str(h["messages_in"])) > 0 for h in healths(probe, w)) for w in ids)

    wait_until(both_took_messages, timeout_s=60, what="both workers to take messages")
    children = psutil.Process(supervisor.pid).children()
    assert len(children) == 2
    os.killpg(supervisor.pid, signal.SIGINT)  # what a terminal does on Ctrl-C to its foreground job
    assert supervisor.wait(timeout=90) == 0, log.read_text()[-3000:]
    _, alive = psutil.wait_procs(children, timeout=15)
    assert alive == []
    said = log.read_text()
    assert "stopping 2 ingest workers" in said
    # Each worker's last health is one the broker acknowledged before the worker went (LAST_WORD_QOS), and
    # Mosquitto hands out messages in the order it took them: once this arrives, so has every last health.
    marker = health_topic("ingest", f"{ids[0]}-marker")
    probe.publish(marker, b"{}")
    probe.wait_for(marker, b"{}")
    for worker_id in ids:
        assert f"ingest worker {worker_id} stopped" in said
        # Each one's last word on its retained health: it wrote, confirmed and acknowledged all it held.
        last = healths(probe, worker_id)[-1]
        assert (last["state"], last["unacked"]) == ("ok", 0), last


def test_a_worker_that_keeps_dying_backs_off_says_why_on_its_health_and_the_other_goes_on(  # type: ignore[no-untyped-def]
    workers, services: Services, database: str, tmp_path: Path
) -> None:
    ids, env, probe, processes = workers
    survivor, victim = ids
    log = tmp_path / "ingest.log"
    supervisor = start_supervisor(env, survivor, log)
    processes.append(supervisor)
    for worker_id in ids:
        wait_for_log(log, f"worker {worker_id} subscribed")
    start = pinned_start()
    gateways = simulate(env, start, "1h", 150, tmp_path / "sim.log")
    processes.append(gateways)
    wait_until(lambda: healths(probe, survivor), timeout_s=30, what="the survivor's health")

    downs: list[dict[str, object]] = []
    stored_before = int(str(healths(probe, survivor)[-1]["points_written"]))
    killed: set[int] = set()
    for death in (1, 2, 3):
        # Each time it has started again and subscribed (it died as it began to work), kill -9.
        child = wait_until(
            lambda: (p := worker_process(supervisor, victim)) and p.pid not in killed and p,
            timeout_s=120,
            what=f"{victim} started again",
        )
        wait_until(
            lambda: subscriptions(log, victim) >= death,  # noqa: B023 - used at once
            timeout_s=60,
            what=f"{victim} subscribed",
        )
        killed.add(child.pid)
        child.kill()

        def down_health() -> dict[str, object] | None:
            said = [h for h in healths(probe, victim) if h.get("state") == "restarting"]
            return next((h for h in said if h["deaths_in_a_row"] == death), None)  # noqa: B023 - used at once

        downs.append(wait_until(down_health, timeout_s=30, what=f"death {death} on {victim}'s health"))

    print("\n" + "\n".join(json.dumps(h) for h in downs))
    for health in downs:
        assert str(health["reason"]).startswith("killed by SIGKILL after"), health
        assert health["worker"] == victim
        # What it wrote last, up to its death: it had just subscribed.
        assert any("subscribed" in line for line in health["stderr_tail"]), health  # type: ignore[attr-defined]
    delays = [float(str(h["next_start_in_s"])) for h in downs]
    assert delays[0] < delays[1] < delays[2], delays
    assert len({h["since_ms"] for h in downs}) == 1  # one run of deaths, since the first
    said = log.read_text()
    assert said.count(f"ingest worker {victim} killed by SIGKILL") == 3
    assert "3 deaths in a row" in said

    # The other worker went on storing, and the victim comes back by itself.
    assert int(str(healths(probe, survivor)[-1]["points_written"])) > stored_before
    wait_until(lambda: healths(probe, victim)[-1].get("state") == "ok", timeout_s=120, what=f"{victim} running again")
    assert gateways.wait(timeout=300) == 0, (tmp_path / "sim.log").read_text()[-3000:]
    assert wait_for_exact(InfluxQuery(services.admin(database).influx), start, start + HOUR_MS) == []
    os.killpg(supervisor.pid, signal.SIGINT)
    assert supervisor.wait(timeout=90) == 0


def test_a_second_ctrl_c_stops_the_workers_at_once(workers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids, env, _probe, processes = workers
    log = tmp_path / "ingest.log"
    supervisor = start_supervisor(env, ids[0], log)
    processes.append(supervisor)
    for worker_id in ids:
        wait_for_log(log, f"worker {worker_id} subscribed")
    children = psutil.Process(supervisor.pid).children()
    frozen = worker_process(supervisor, ids[1])
    assert frozen is not None
    frozen.suspend()  # it cannot finish its stop: the supervisor waits for it
    os.killpg(supervisor.pid, signal.SIGINT)
    wait_for_log(log, f"ingest worker {ids[0]} stopped")
    os.killpg(supervisor.pid, signal.SIGINT)
    assert supervisor.wait(timeout=60) == 1  # a worker did not stop by itself
    _, alive = psutil.wait_procs(children, timeout=15)
    assert alive == []
    said = log.read_text()
    assert f"ingest worker {ids[1]} killed by SIGKILL" in said
    assert "stopped at once: what the workers held unacknowledged, the broker hands out again" in said


def test_the_workers_stop_cleanly_by_themselves_when_the_supervisor_is_killed_outright(  # type: ignore[no-untyped-def]
    workers, tmp_path: Path
) -> None:
    ids, env, _probe, processes = workers
    log = tmp_path / "ingest.log"
    supervisor = start_supervisor(env, ids[0], log)
    processes.append(supervisor)
    for worker_id in ids:
        wait_for_log(log, f"worker {worker_id} subscribed")
    children = psutil.Process(supervisor.pid).children()
    supervisor.kill()
    supervisor.wait()
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []
    # Their own clean stop (the kernel's SIGTERM), each with its last word.
    for worker_id in ids:
        wait_for_log(log, f"worker {worker_id} stopped: IngestStats")
