"""Real machines through the real pipeline: simulated workshops served as Modbus TCP and OPC UA controllers
(`ftel simulate serve`), read by `ftel gateway --config` as real controllers, through Mosquitto and an ingest
worker into InfluxDB, compared with the ledger.

What a polling gateway can promise, and what is checked:
- stops by reason, units and defects per machine equal the ledger exactly (every natural stop lasts at least
  MIN_STOP_S = 10 s, more than three poll intervals; counters are read after the plant's end, where the served
  machines hold still);
- time in each state differs from the ledger by at most one poll interval per period of that state: a change is
  seen at the first poll after it (each period's start and end are each seen up to a poll late).

The plant runs at SPEEDUP× with a poll interval of POLL_S plant seconds (POLL_S / SPEEDUP wall seconds).
"""

from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from dashboards import queries as q
from dashboards.orders_data import read_changes
from ftel.contract.states import STATE_ORDER, MachineState, MachineType
from ftel.plant.layout import MachineSpec, Plant, Workshop, dump_plant
from ftel.security.identities import Role
from ftel.storage.query import InfluxQuery
from simulators.clock import wall_ms
from simulators.driver import SimulatedDriver
from simulators.jobs import default_order_book, simulated_job_changes
from simulators.ledger import plant_ledger
from simulators.machine import MachineModel, plant_models
from simulators.serve.faults import Faults, Garble, Restart, Silence, dump_faults
from tests import sim_start
from tests.ledger_check import Totals, differences, ledger_totals, stored_totals
from tests.support import Services, ftel_env, start_ftel, stop_processes, unique, wait_ready, wait_until

pytestmark = pytest.mark.integration

# The servers and gateways are Python processes on a shared 2-core machine: a stall of the server past
# (MIN_STOP_S - POLL_S) / SPEEDUP wall seconds (700 ms) could hide a 10 s stop, and one past the time limit
# (600 ms) looks like a silent machine. A speed-up of 10 keeps both above the stalls seen with the fault scenarios
# running beside the suite (at 15, an OPC UA server once stalled past its 400 ms).
SPEEDUP = 10
POLL_S = 3
POLL_MS = POLL_S * 1000
# One failed poll makes a machine OFFLINE, with a time limit of two poll intervals: a silent machine is OFFLINE
# within three polls of going quiet (the next poll, plus its time limit), and the gateway's host may stall for
# two poll intervals (600 ms wall) without a machine seeming to fall silent.
TIMEOUT_S = 2 * POLL_S
OFFLINE_AFTER = 1
WINDOW_MS = 60_000
OVERRUN_MS = 60_000  # the gateways read one window past the end (the served machines hold still there)
# Wall seconds from the first server's start to the plant's: for the servers and gateways (Python processes on a
# loaded host) to start and connect. A gateway that connects after it misses the plant's first moments: on a
# 2-core host running the suite and more, an OPC UA server took 14 s to load its nodesets and its gateway 8 s more.
LEAD_S = 40
EXACT = ("units", "defects")


def machines(prefix: str, machine_type: MachineType, count: int) -> tuple[MachineSpec, ...]:
    return tuple(MachineSpec(id=f"{prefix}-{i + 1:03d}", type=machine_type) for i in range(count))


@dataclass
class Rig:
    """One stack test's worth of plumbing: a worker, served workshops, their gateways, the ledger."""

    services: Services
    root: Path
    plant: Plant
    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        self.database = unique("real")
        self.settings = self.services.settings(self.database)
        self.services.grant_plant(self.plant)
        self.plant_file = self.root / "plant.yaml"
        self.plant_file.write_text(dump_plant(self.plant))
        self.anchor_ms: int | None = None  # set when the first server starts
        self.env = ftel_env(
            self.settings,
            FTEL_INGEST__GROUP=self.database,
            FTEL_GATEWAY__STATE_DIR=str(self.root / "gateways"),
            FTEL_SITE=self.plant.site,
        )
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.query = InfluxQuery(self.services.admin(self.database).influx)

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def start_worker(self) -> None:
        name = self.services.grant(f"{self.database}-w", Role.INGEST)
        self.processes["worker"] = start_ftel(["ingest", "--worker-id", name], self.env, self.log("worker"))
        wait_ready(self.log("worker"))

    def serve(self, workshop: str, protocol: str, *, faults: Faults | None = None, counter_start: int = 0) -> Path:
        config = self.root / f"{workshop}.gateway.yaml"
        if self.anchor_ms is None:
            self.anchor_ms = wall_ms() + LEAD_S * 1000
        args = [
            "simulate", "serve", "--protocol", protocol, "--plant", str(self.plant_file), "--workshop", workshop,
            "--start-ms", str(self.start_ms), "--anchor-ms", str(self.anchor_ms), "--speedup", str(SPEEDUP),
            "--duration", f"{(self.end_ms - self.start_ms) // 1000}s", "--overrun", f"{OVERRUN_MS // 1000}s",
            "--poll-interval-s", str(POLL_S), "--timeout-s", str(TIMEOUT_S), "--offline-after", str(OFFLINE_AFTER),
            "--gateway-config", str(config), "--counter-start", str(counter_start),
        ]  # fmt: skip
        if faults is not None:
            faults_file = self.root / f"{workshop}.faults.yaml"
            faults_file.write_text(dump_faults(faults))
            args += ["--faults", str(faults_file)]
        self.processes[f"serve-{workshop}"] = start_ftel(args, self.env, self.log(f"serve-{workshop}"))
        return config

    def start_gateway(self, workshop: str, config: Path) -> None:
        wait_until(config.exists, timeout_s=60, what=f"{config.name} (the served {workshop})")
        self.processes[f"gateway-{workshop}"] = start_ftel(
            ["gateway", "--config", str(config)], self.env, self.log(f"gateway-{workshop}")
        )

    def wait_gateways(self) -> None:
        span_s = (self.end_ms + OVERRUN_MS - self.start_ms) / 1000 / SPEEDUP
        for name, process in self.processes.items():
            if name.startswith("gateway-"):
                assert process.wait(timeout=LEAD_S + span_s + 120) == 0, self.log(name).read_text()[-3000:]

    def close(self) -> None:
        stop_processes(self.processes.values(), timeout_s=15)
        self.query.close()

    # -- the verdict -------------------------------------------------------------------------------------------

    def models(self, workshop: str) -> dict[str, MachineModel]:
        return {m.spec.id: m for _, m in plant_models(self.plant, start_ms=self.start_ms, workshop=workshop)}

    def ledger(self, workshop: str) -> Totals:
        rows = plant_ledger(
            self.plant, start_ms=self.start_ms, end_ms=self.end_ms, window_ms=WINDOW_MS, workshop=workshop
        )
        return ledger_totals(rows, "machine_id")

    def stored(self, until_ms: int) -> Totals:
        return stored_totals(self.query, "machine_id", self.start_ms, until_ms)

    def wait_stored(self, workshop: str, machine_ids: list[str]) -> tuple[Totals, Totals]:
        """Wait until the counts of these machines equal the ledger's; return (ledger, stored) for the verdict."""
        expected = {m: t for m, t in self.ledger(workshop).items() if m in machine_ids}
        last: list[str] = []

        def counts_equal() -> bool:
            nonlocal last
            stored = self.stored(self.end_ms + OVERRUN_MS)
            last = differences(_counts(expected), _counts({m: stored.get(m, Counter()) for m in machine_ids}))
            return not last

        try:
            wait_until(counts_equal, timeout_s=60, what="stops, units and defects equal to the ledger", every_s=1)
        except AssertionError:
            raise AssertionError(f"{workshop}: {len(last)} differences with the ledger: {last[:12]}") from None
        return expected, self.stored(self.end_ms)

    def state_time_errors(self, workshop: str, expected: Totals, stored: Totals) -> list[str]:
        """Per machine and state (and per DOWN reason): where the stored time is further from the ledger than
        one poll interval per period of that state; also prints the largest error relative to its bound."""
        periods = self.periods(workshop)
        worst, out = 0.0, []
        for machine_id, ledger in expected.items():
            got = stored.get(machine_id, Counter())
            keys = [s.value for s in STATE_ORDER] + [k for k in ledger if k.startswith("down:")]
            for key in keys:
                error = abs(got[key] - ledger[key])
                bound = periods[machine_id][key] * POLL_MS
                if error:
                    worst = max(worst, error / bound if bound else float("inf"))
                if error > bound:
                    out.append(f"{machine_id} {key}: ledger {ledger[key]} stored {got[key]} (bound {bound})")
        print(f"{workshop}: largest state-time error = {worst:.2f} of its bound (periods × {POLL_MS} ms)")
        return out

    def style_errors(self, workshop: str) -> list[str]:
        """Per machine: the styles stored from its controller's program against the simulated ones, in order, each
        change stored at most one poll interval after it happened (the first one when the gateway first read the
        controller: before the plant's start, the controller shows the machine as at its start)."""
        book = default_order_book()
        stored: dict[str, list[tuple[int, str]]] = {}
        binding = q.Binding(self.start_ms, self.end_ms + OVERRUN_MS, variables={q.WORKSHOP: (workshop,)})
        for found in read_changes(self.query, binding, book):
            stored.setdefault(found.change.machine_id, []).append((found.change.at_ms, found.change.job.style))
        out = []
        for machine_id, model in self.models(workshop).items():
            expected: list[tuple[int, str]] = []
            for change in simulated_job_changes(model, book, end_ms=self.end_ms, window_ms=WINDOW_MS):
                if not expected or expected[-1][1] != change.job.style:
                    expected.append((change.at_ms, change.job.style))
            got = stored.get(machine_id, [])
            if [s for _, s in got] != [s for _, s in expected]:
                out.append(f"{machine_id}: styles {[s for _, s in got]}, simulated {[s for _, s in expected]}")
                continue
            out += [
                f"{machine_id}: {style} stored at {seen}, changed at {at}"
                for index, ((at, style), (seen, _)) in enumerate(zip(expected, got, strict=True))
                if not (at if index else 0) <= seen <= at + POLL_MS
            ]
        return out

    def periods(self, workshop: str) -> dict[str, Counter[str]]:
        """How many periods of each state (and DOWN reason) each machine has in [start, end)."""
        out: dict[str, Counter[str]] = {}
        for machine_id, model in self.models(workshop).items():
            counts: Counter[str] = Counter()
            for segment in model.segments():
                if segment.start_ms >= self.end_ms:
                    break
                counts[segment.state.value] += 1
                if segment.reason and segment.state is MachineState.DOWN:
                    counts[f"down:{segment.reason}"] += 1
            out[machine_id] = counts
        return out


def _counts(totals: Totals) -> Totals:
    return {m: Counter({k: v for k, v in t.items() if k in EXACT or k.startswith("stops:")}) for m, t in totals.items()}


@pytest.fixture
def rig_factory(services: Services, tmp_path: Path):  # type: ignore[no-untyped-def]
    rigs: list[Rig] = []

    def make(plant: Plant, minutes: int) -> Rig:
        start = sim_start.start_ms(span_ms=2 * 3_600_000)
        rig = Rig(services, tmp_path, plant, start, start + minutes * 60_000)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


@pytest.mark.minutes
def test_a_modbus_and_an_opcua_workshop_equal_the_ledger_for_half_an_hour(rig_factory) -> None:  # type: ignore[no-untyped-def]
    site = unique("rm")
    plant = Plant(
        site=site,
        seed=7,
        workshops=(
            Workshop(
                id="yarn",
                name="Carding and spinning, Modbus TCP",
                gateway_id=f"gw-mb-{site[-6:]}",
                machines=(*machines("CARD", MachineType.CARDING, 4), *machines("SPIN", MachineType.SPINNING, 2)),
            ),
            Workshop(
                id="knit",
                name="Flat knitting, OPC UA",
                gateway_id=f"gw-ua-{site[-6:]}",
                machines=machines("KNIT", MachineType.KNITTING, 6),
            ),
        ),
    )
    # Half an hour: 3 stops and 27 units in the Modbus workshop, 5 stops and 10 units in the OPC UA one, every
    # counter wrapped (the suite's longest test: an hour took 4.5 minutes of its CI).
    rig = rig_factory(plant, 30)
    rig.start_worker()
    # Counters start just below their wrap, so every machine that makes a few units wraps its counter.
    modbus = rig.serve("yarn", "modbus", counter_start=65_536 - 3)
    opcua = rig.serve("knit", "opcua", counter_start=2**32 - 2)
    rig.start_gateway("yarn", modbus)
    rig.start_gateway("knit", opcua)
    rig.wait_gateways()
    for workshop in ("yarn", "knit"):
        ids = [m.id for m in plant.workshop(workshop).machines]
        expected, stored = rig.wait_stored(workshop, ids)
        assert sum(t["units"] for t in expected.values()) > 6, "too few units to have wrapped a counter"
        assert rig.state_time_errors(workshop, expected, stored) == []
        assert all(stored[m][MachineState.OFFLINE.value] == 0 for m in ids), "a machine went OFFLINE"
    # The knitting controllers' program (an OPC UA program-name variable) as styles: each change seen within a
    # poll interval, as a state change is (docs/orders.md).
    assert rig.style_errors("knit") == []


def quiet_stretch(model: MachineModel, start_ms: int, end_ms: int) -> int | None:
    """A moment in the middle of a stop of at least six poll intervals, after the machine made a unit: a
    controller restarted then loses nothing the ledger counts (nothing is made while it stops)."""
    driver = SimulatedDriver(model)
    for segment in model.segments():
        if segment.start_ms >= end_ms - 6 * POLL_MS:
            return None
        if segment.state is MachineState.RUNNING or segment.start_ms < start_ms + 2 * WINDOW_MS:
            continue
        if segment.end_ms - segment.start_ms >= 6 * POLL_MS and driver.read(segment.start_ms)[-1].units_total > 0:
            return (segment.start_ms + segment.end_ms) // 2
    return None


@pytest.mark.minutes
def test_a_silent_a_restarted_and_a_garbled_controller_leave_the_others_exact(rig_factory) -> None:  # type: ignore[no-untyped-def]
    site = unique("rf")
    plant = Plant(
        site=site,
        seed=11,
        workshops=(
            Workshop(
                id="cards",
                name="Carding, Modbus TCP, faulty controllers",
                gateway_id=f"gw-fl-{site[-6:]}",
                machines=(*machines("CARD", MachineType.CARDING, 3), *machines("SPIN", MachineType.SPINNING, 3)),
            ),
        ),
    )
    rig = rig_factory(plant, 20)
    models = rig.models("cards")
    restart_at = {m: t for m, model in models.items() if (t := quiet_stretch(model, rig.start_ms, rig.end_ms))}
    assert restart_at, "no machine stops long enough after a unit to restart its controller"
    restarted, restart_ms = sorted(restart_at.items())[0]
    garble_from, garble_until = rig.start_ms + 300_000, rig.end_ms - 120_000
    stops = {m: stopped_between(model, garble_from, garble_until) for m, model in models.items() if m != restarted}
    garbled = next(m for m in sorted(stops) if stops[m])  # a stop while garbled shows a fault code no table knows
    silent = next(m for m in sorted(models) if m not in (restarted, garbled))
    silence = (400_000, 180_000)  # plant ms after the start, and how long
    faults = Faults(
        silent=(Silence(machine=silent, at_s=silence[0] / 1000, duration_s=silence[1] / 1000),),
        restart=(Restart(machine=restarted, at_s=(restart_ms - rig.start_ms) / 1000),),
        garble=(
            Garble(
                machine=garbled,
                at_s=(garble_from - rig.start_ms) / 1000,
                duration_s=(garble_until - garble_from) / 1000,
                temperature_c=999.0,
                fault_code=77,
            ),
        ),
    )
    rig.start_worker()
    config = rig.serve("cards", "modbus", faults=faults)
    rig.start_gateway("cards", config)
    rig.wait_gateways()

    exact = [m for m in models if m not in (silent, garbled)]
    expected, stored = rig.wait_stored("cards", exact)
    assert restarted in exact
    assert rig.state_time_errors("cards", expected, stored) == []

    # The silent controller: OFFLINE within three polls of going quiet, back within three polls of answering.
    events = rig.query.rows(
        f"SELECT \"state\" FROM machine_state WHERE machine_id = '{silent}' AND time >= {rig.start_ms}ms "
        f"AND time < {rig.end_ms}ms"
    )
    quiet_from, quiet_until = rig.start_ms + silence[0], rig.start_ms + silence[0] + silence[1]
    offline = [int(e["time"]) for e in events if e["state"] == MachineState.OFFLINE.value]
    assert len(offline) == 1, events
    print(f"{silent}: OFFLINE {offline[0] - quiet_from} ms after it went quiet (poll {POLL_MS} ms)")
    # OFFLINE starts when the first unanswered poll was sent: after the last answered one, so at most a poll
    # before the controller went quiet (a poll sent just before, that arrived after).
    assert quiet_from - POLL_MS < offline[0] <= quiet_from + 3 * POLL_MS
    back = min(int(e["time"]) for e in events if int(e["time"]) > offline[0])
    print(f"{silent}: back {back - quiet_until} ms after it answered again")
    assert quiet_until <= back <= quiet_until + 3 * POLL_MS

    # The garbled controller: its refusals are counted, logged, and shown in the gateway's progress lines.
    log = rig.log("gateway-cards").read_text()
    assert f"machine {garbled}: refused out_of_range:temperature" in log
    assert f"machine {garbled}: refused unknown_fault_code" in log
    progress = [line for line in log.splitlines() if "published" in line]
    assert f"'{garbled}': {{'out_of_range:temperature'" in progress[-1], progress[-1]


def stopped_between(model: MachineModel, from_ms: int, until_ms: int) -> bool:
    """The machine has a stop (DOWN) that starts in [from_ms, until_ms)."""
    for segment in model.segments():
        if segment.start_ms >= until_ms:
            return False
        if segment.state is MachineState.DOWN and segment.start_ms >= from_ms:
            return True
    return False
