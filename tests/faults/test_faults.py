"""Nothing lost, nothing doubled, through every fault: a generated plant under load through the real pipeline
(own Mosquitto and InfluxDB per scenario, workers and gateways as processes), one fault injected, and then
InfluxDB compared with the simulator's ledger per machine to the millisecond and per state change.

`make faults` runs these (in parallel, longest first); CI runs them after `make test`."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import FaultRig, log_tail

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1800)]


@pytest.fixture
def rigs(request: pytest.FixtureRequest, artifacts_dir: Path) -> Iterator[list[FaultRig]]:
    made: list[FaultRig] = []
    yield made
    for rig in made:
        rig.close()
        # Kept for after the run (pytest rotates its temporary directories away).
        keep = artifacts_dir / "faults" / request.node.name
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(rig.logs, keep)
        broker_log = rig.stack.directory / "mosquitto" / "mosquitto.log"
        if broker_log.exists():
            shutil.copy(broker_log, keep / "mosquitto.log")


def rig_for(rigs: list[FaultRig], tmp_path: Path, **options: object) -> FaultRig:
    rig = FaultRig(tmp_path, **options)  # type: ignore[arg-type]
    rigs.append(rig)
    return rig


def verdict(rig: FaultRig, *, timeout_s: float = 240) -> None:
    """InfluxDB equals the ledger: every machine's milliseconds per state, stops and downtime per reason, units
    and defects; every state change stored once; "state now" true just before the end."""
    rig.wait_exact(timeout_s)
    expected, stored = rig.event_counts()
    assert stored == expected, "state changes lost or doubled"
    ledger_states, stored_states = rig.states_before_end()
    wrong = {m: (s, stored_states.get(m)) for m, s in ledger_states.items() if stored_states.get(m) != s}
    assert not wrong, f"state now differs for {len(wrong)} machines, e.g. {list(wrong.items())[:5]}"


# -- `make faults` hands these out four at a time, longest first (the 3-minute cut-off, the 2-minute InfluxDB stop,
# the 404/401 minute), so that the whole suite takes about as long as its longest scenario. Each fault lasts as
# long as its claim needs in wall time: the cut-off spans several reconnect backoffs at their cap and holds 90
# minutes of plant time in the spool (30x); the stop spans the writer's retries at their cap. ------------------


def test_a_gateway_cut_off_from_the_broker_for_three_minutes_loses_nothing(rigs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rig = rig_for(rigs, tmp_path, wall_s=40 + 180 + 40, speedup=30.0)
    rig.start_worker("ingest-a")
    first = rig.plant.workshops[0].id
    rig.start_gateways(via_proxy=(first,))
    rig.wait_sim(40)
    rig.mqtt_proxies[first].cut()
    rig.wait_sim(40 + 180)
    rig.mqtt_proxies[first].mend()
    rig.wait_gateways(timeout_s=600)
    verdict(rig)


def test_influxdb_answering_404_then_401_for_half_a_minute_each_loses_nothing(rigs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rig = rig_for(rigs, tmp_path, wall_s=40 + 60 + 40, influx_proxy=True)
    rig.start_worker("ingest-a")
    rig.start_gateways()
    rig.wait_sim(40)
    assert rig.influx_faults is not None
    rig.influx_faults.refuse(404)
    time.sleep(30)
    rig.influx_faults.refuse(401)
    time.sleep(30)
    rig.influx_faults.forward()
    rig.wait_gateways(timeout_s=600)
    verdict(rig)
    assert rig.influx_faults.refused > 0
    log = log_tail(rig, "ingest-a", 10**7)
    assert "404" in log
    assert "401" in log


def test_influxdb_stopped_for_two_minutes_loses_nothing(rigs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rig = rig_for(rigs, tmp_path, wall_s=40 + 120 + 40)
    rig.start_worker("ingest-a")
    rig.start_worker("ingest-b")
    rig.start_gateways()
    rig.wait_sim(40)
    rig.stop_influx()
    time.sleep(120)
    rig.restart_services()
    rig.wait_gateways(timeout_s=900)
    verdict(rig)
    assert "InfluxDB does not take writes" in log_tail(rig, "ingest-a", 10**7)


def test_a_worker_killed_for_good_while_another_runs_loses_nothing(rigs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rig = rig_for(rigs, tmp_path)
    rig.start_worker("ingest-a")
    rig.start_worker("ingest-b")
    rig.start_gateways()
    rig.wait_sim(30)
    rig.kill("ingest-b")
    rig.wait_gateways(timeout_s=600)
    verdict(rig)


def test_a_worker_killed_and_restarted_loses_and_doubles_nothing(rigs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rig = rig_for(rigs, tmp_path)
    rig.start_worker("ingest-a")
    rig.start_worker("ingest-b")
    rig.start_gateways()
    rig.wait_sim(30)
    rig.kill("ingest-b")
    time.sleep(5)
    rig.start_worker("ingest-b")
    rig.wait_gateways(timeout_s=600)
    verdict(rig)


def test_the_broker_killed_and_restarted_loses_nothing(rigs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rig = rig_for(rigs, tmp_path)
    rig.start_worker("ingest-a")
    rig.start_gateways()
    rig.wait_sim(30)
    rig.kill_broker()
    time.sleep(20)
    rig.restart_services()
    rig.wait_gateways(timeout_s=600)
    verdict(rig)


def test_the_broker_restarted_without_its_disk_loses_nothing(rigs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rig = rig_for(rigs, tmp_path)
    rig.start_worker("ingest-a")
    rig.start_gateways()
    rig.wait_sim(30)
    rig.kill_broker()
    rig.lose_broker_disk()
    time.sleep(5)
    rig.restart_services()
    rig.wait_gateways(timeout_s=600)
    verdict(rig)


def test_a_gateway_killed_and_restarted_resumes_without_loss_or_phantom_stops(rigs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rig = rig_for(rigs, tmp_path)
    rig.start_worker("ingest-a")
    rig.start_gateways()
    victim = rig.plant.workshops[1].id
    rig.wait_sim(30)
    rig.kill(f"gateway-{victim}")
    time.sleep(10)
    rig.start_gateway(victim)
    rig.wait_gateways(timeout_s=600)
    verdict(rig)
