"""A plant under load through the real pipeline, with faults injected and InfluxDB compared with the ledger.

Each scenario gets its own stack (Mosquitto and InfluxDB on free ports, secured as `ftel stack up` secures
them), a generated plant, ingest workers and gateways as their own processes (`ftel ingest`, `ftel gateway`,
as deployed, so SIGKILL is a real crash), and optionally the fault proxies of tests/faults/proxies.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ftel.contract.states import MachineState
from ftel.plant.layout import Plant, dump_plant
from ftel.security.identities import Role
from ftel.settings import Settings
from ftel.stack import LocalStack
from ftel.storage.query import InfluxQuery
from simulators.clock import SimClock, wall_ms
from simulators.ledger import plant_ledger
from simulators.machine import plant_models
from simulators.plant import generate_plant
from tests.faults.proxies import HttpFaultProxy, TcpProxy
from tests.ledger_check import differences, ledger_totals, stored_totals
from tests.support import Services, ftel_env, start_ftel, unique, wait_for_log, wait_ready, wait_until

HOUR_MS = 3_600_000
WINDOW_MS = 60_000
# Gateway and worker processes need this long to start; the plant's clock starts after it.
LEAD_S = 6.0


@dataclass
class FaultRig:
    root: Path
    machines: int = 120
    per_workshop: int = 40
    speedup: float = 20.0
    wall_s: float = 90.0  # how long the plant runs, in wall seconds
    influx_proxy: bool = False
    worker_env: dict[str, str] = field(default_factory=dict)
    gateway_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stack = LocalStack.on_free_ports(self.root / "stack")
        self.stack.up()
        self.services = Services(self.stack)
        self.database = unique("faults")
        self.settings: Settings = self.services.settings(self.database)
        self.query = InfluxQuery(self.services.admin(self.database).influx)
        self.plant: Plant = generate_plant(self.machines, site=unique("f"), per_workshop=self.per_workshop)
        self.services.grant_plant(self.plant)
        self.plant_file = self.root / "plant.yaml"
        self.plant_file.write_text(dump_plant(self.plant))
        self.group = unique("g")
        duration_ms = int(self.wall_s * self.speedup * 1000)
        duration_ms -= duration_ms % WINDOW_MS
        now = wall_ms()
        # In the past, so the plant's clock (capped at real time) never waits for the wall clock.
        self.start_ms = (now - duration_ms - HOUR_MS) // HOUR_MS * HOUR_MS
        self.end_ms = self.start_ms + duration_ms
        self.clock = SimClock(self.start_ms, self.speedup, now + int(LEAD_S * 1000))
        self.influx_faults = HttpFaultProxy(self.stack.influx_url) if self.influx_proxy else None
        self.mqtt_proxies: dict[str, TcpProxy] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = self.root / "logs"
        self.logs.mkdir(exist_ok=True)
        self._base_env = ftel_env(
            self.settings,
            FTEL_INGEST__GROUP=self.group,
            FTEL_INGEST__HEALTH_INTERVAL_S="1",
            FTEL_GATEWAY__STATE_DIR=str(self.root / "gateways"),
            FTEL_SITE=self.plant.site,
        )

    # -- processes -----------------------------------------------------------------------------------------

    def start_worker(self, name: str, *, wait: bool = True) -> subprocess.Popen[bytes]:
        self.services.grant(name, Role.INGEST)
        env = {**self._base_env, **self.worker_env}
        if self.influx_faults is not None:
            env["FTEL_INFLUX__URL"] = self.influx_faults.url
        log = self.logs / f"{name}.log"
        process = self.processes[name] = start_ftel(["ingest", "--worker-id", name], env, log)
        if wait:
            wait_ready(log)  # this start's: start_ftel removed the last one's file
        return process

    def start_gateway(self, workshop: str, *, via_proxy: bool = False) -> subprocess.Popen[bytes]:
        env = {**self._base_env, **self.gateway_env}
        if via_proxy:
            proxy = self.mqtt_proxies.get(workshop) or TcpProxy(self.stack.mqtt_port)
            self.mqtt_proxies[workshop] = proxy
            env["FTEL_MQTT__PORT"] = str(proxy.port)
        args = [
            "gateway",
            "--workshop",
            workshop,
            "--plant",
            str(self.plant_file),
            "--start-ms",
            str(self.start_ms),
            "--anchor-ms",
            str(self.clock.anchor_wall_ms),
            "--speedup",
            str(self.speedup),
            "--duration",
            f"{(self.end_ms - self.start_ms) // 1000}s",
        ]
        process = self.processes[f"gateway-{workshop}"] = start_ftel(args, env, self.logs / f"gateway-{workshop}.log")
        return process

    def start_gateways(self, *, via_proxy: tuple[str, ...] = ()) -> None:
        for workshop in self.plant.workshops:
            self.start_gateway(workshop.id, via_proxy=workshop.id in via_proxy)

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    def wait_gateways(self, timeout_s: float) -> None:
        """Every gateway ran to the end and drained its spool (its last line says spool 0)."""
        deadline = time.monotonic() + timeout_s
        for name, process in self.processes.items():
            if name.startswith("gateway-"):
                process.wait(max(1.0, deadline - time.monotonic()))
                assert process.returncode == 0, (self.logs / f"{name}.log").read_text()[-3000:]

    def wait_sim(self, seconds_into_run: float) -> None:
        target = self.start_ms + int(seconds_into_run * self.speedup * 1000)
        wait_until(lambda: self.clock.now_ms() >= target, timeout_s=seconds_into_run + 120, what="plant time")

    # -- the broker and InfluxDB -----------------------------------------------------------------------------

    def kill_broker(self) -> None:
        pid = self.stack.mosquitto.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # this process started it: reap it, or its pid lives on as a zombie

    def lose_broker_disk(self) -> None:
        for path in (self.stack.directory / "mosquitto").glob("*.db*"):
            path.unlink()

    def restart_services(self) -> None:
        self.stack.up()

    def stop_influx(self) -> None:
        self.stack.influxdb.stop()

    # -- the verdict -----------------------------------------------------------------------------------------

    def differences(self) -> list[str]:
        rows = plant_ledger(self.plant, start_ms=self.start_ms, end_ms=self.end_ms, window_ms=WINDOW_MS)
        expected = ledger_totals(rows, "machine_id")
        return differences(expected, stored_totals(self.query, "machine_id", self.start_ms, self.end_ms))

    def wait_exact(self, timeout_s: float) -> None:
        last: list[str] = []

        def same() -> bool:
            nonlocal last
            last = self.differences()
            return not last

        try:
            wait_until(same, timeout_s=timeout_s, what="InfluxDB to equal the ledger", every_s=2)
        except AssertionError:
            machines = sorted({d.split()[0] for d in last})[:3]
            windows = self.window_differences(machines)
            raise AssertionError(
                f"{len(last)} differences with the ledger, e.g. {last[:8]}; windows: {windows}"
            ) from None

    def window_differences(self, machines: list[str]) -> list[str]:
        """Which windows of these machines differ from the ledger (to see what went wrong)."""
        out: list[str] = []
        rows = plant_ledger(self.plant, start_ms=self.start_ms, end_ms=self.end_ms, window_ms=WINDOW_MS)
        expected = {(r.machine_id, r.window_start): r.state_ms for r in rows if r.machine_id in machines}
        for machine in machines:
            stored = self.query.rows(
                f"SELECT * FROM state_time WHERE machine_id = '{machine}' AND time >= {self.start_ms}ms "
                f"AND time < {self.end_ms}ms"
            )
            seen = set()
            for row in stored:
                key = (machine, int(row["time"]))
                seen.add(key)
                got = {s: row.get(f"{s.lower()}_ms") for s in ("RUNNING", "IDLE", "SETUP", "DOWN", "MAINTENANCE")}
                want = {s: ms for s, ms in expected.get(key, {}).items() if s != "OFFLINE"}
                if got != want:
                    out.append(f"{machine}@{(key[1] - self.start_ms) // 1000}s stored {got} ledger {want}")
            out.extend(f"{m}@{(t - self.start_ms) // 1000}s missing" for m, t in expected if (m, t) not in seen)
        return out[:12]

    def event_counts(self) -> tuple[Counter[str], Counter[str]]:
        """State changes per machine: (in the ledger, stored). Equal means none lost and none doubled."""
        expected: Counter[str] = Counter()
        for _, model in plant_models(self.plant, start_ms=self.start_ms):
            for segment in model.segments():
                if segment.start_ms >= self.end_ms:
                    break
                if segment.start_ms > self.start_ms:
                    expected[model.spec.id] += 1
        stored: Counter[str] = Counter()
        for row in self.query.rows(
            f'SELECT count("prev_duration_ms") AS n FROM "machine_state" WHERE time > {self.start_ms}ms '
            f"AND time < {self.end_ms}ms GROUP BY machine_id"
        ):
            stored[row["machine_id"]] = int(row["n"])
        return expected, stored

    def states_before_end(self) -> tuple[dict[str, str], dict[str, str]]:
        """Each machine's state just before the end: (the ledger's, InfluxDB's "state now" at that moment)."""
        at = self.end_ms - 1
        expected: dict[str, str] = {}
        for _, model in plant_models(self.plant, start_ms=self.start_ms):
            state = MachineState.OFFLINE
            for segment in model.segments():
                if segment.start_ms > at:
                    break
                state = segment.state
            expected[model.spec.id] = state.value
        stored = {
            row["machine_id"]: row["state"]
            for row in self.query.rows(
                f'SELECT last("state") AS state FROM "machine_state" WHERE time <= {at}ms GROUP BY machine_id'
            )
        }
        return expected, stored

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(10)
        for proxy in self.mqtt_proxies.values():
            proxy.close()
        if self.influx_faults is not None:
            self.influx_faults.close()
        self.query.close()
        self.stack.down()


def log_tail(rig: FaultRig, name: str, chars: int = 2000) -> str:
    path = rig.logs / f"{name}.log"
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


__all__ = ["FaultRig", "log_tail", "wait_for_log"]
