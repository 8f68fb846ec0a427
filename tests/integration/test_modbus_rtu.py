"""Modbus as workshops have it, served by pymodbus's own servers (tests/modbus_equipment.py), read by
`ftel gateway --config` through Mosquitto and an ingest worker into InfluxDB, and compared with the equipment's
own record:

- three RTU units on one serial line (a socat pair), one of them silent for a while: it goes OFFLINE alone,
  the others' changes are still seen within their bound;
- two units behind a Modbus TCP→RTU gateway (one TCP connection for both), one silent for a while;
- a stack-light tap on a digital-input module: green, yellow (steady and blinking), red blinking, a pulse input.

The bound (docs/gateway.md): a change is seen at the first poll after it; a poll may wait for its turn behind
the other units on its bus, at most their time limits; a host that is itself loaded (two cores shared by the
suite) adds HOST_SLACK_MS. Units are exact.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from ftel.contract.states import MachineState
from ftel.security.identities import Role
from ftel.stack import free_port
from ftel.storage.query import InfluxQuery
from gateway.drivers.rtu_timing import LineTiming
from tests.modbus_equipment import (
    DI_UNITS,
    FAULT_CODES,
    LAMPS,
    REG_FAULT,
    REG_FLAGS,
    REG_RUN,
    REG_UNITS,
    Equipment,
    serial_pair,
    wall_ms,
)
from tests.support import Services, ftel_env, start_ftel, stop_processes, unique, wait_ready, wait_until

pytestmark = pytest.mark.integration

POLL_S = 0.5
TIMEOUT_S = 0.25
LAMP_TIMEOUT_S = 0.2
LAMP_POLL_S = 0.1
BLINK_PHASE_S = 0.4  # the tap's red and yellow blink: 0.4 s on, 0.4 s off
HOST_SLACK_MS = 300
LINE = LineTiming(19_200, parity=False, stop_bits=2)
SCRIPT_S = 30

RTU = {"CARD-R1": 1, "CARD-R2": 2, "CARD-R3": 3}
BEHIND_GATEWAY = {"CARD-G4": 4, "CARD-G5": 5}
LAMP_MACHINE = "CARD-L1"

MODEL = """
  retrofit card:
    type: carding
    rated_speed: 30
    speed_unit: m/min
    service_interval_h: 160
    modbus:
      run: {address: 0}
      setup: {address: 1, bit: 0}
      maintenance: {address: 1, bit: 1}
      fault_code: {address: 2}
      units: {address: 3}
    faults:
      codes: {11: fibre_choke, 12: feed_empty, 13: clothing_wear, 14: motor_overload}
  old card with a tower lamp:
    type: carding
    rated_speed: 30
    speed_unit: m/min
    service_interval_h: 160
    modbus:
      green: {table: discrete, address: 0, type: bool}
      yellow: {table: discrete, address: 1, type: bool}
      red: {table: discrete, address: 2, type: bool}
      units: {table: discrete, address: 4, type: bool}
    lamp: {blink_phase_max_s: 0.6}
"""


def gateway_file(site: str, gateway_id: str, line: Path, gateway_port: int, lamp_port: int) -> str:
    poll = f"poll_interval_s: {POLL_S}, timeout_s: {TIMEOUT_S}, offline_after: 1"
    machines = [
        f"  - {{id: {m}, model: retrofit card, driver: {{kind: modbus, line: rs485-1, unit_id: {u}, {poll}}}}}"
        for m, u in RTU.items()
    ] + [
        f"  - {{id: {m}, model: retrofit card, driver: {{kind: modbus, host: 127.0.0.1, port: {gateway_port}, "
        f"unit_id: {u}, {poll}}}}}"
        for m, u in BEHIND_GATEWAY.items()
    ]
    machines.append(
        f"  - {{id: {LAMP_MACHINE}, model: old card with a tower lamp, driver: {{kind: modbus, host: 127.0.0.1, "
        f"port: {lamp_port}, unit_id: 1, poll_interval_s: {LAMP_POLL_S}, timeout_s: {LAMP_TIMEOUT_S}, "
        "offline_after: 2}}"
    )
    return (
        f"site: {site}\nworkshop: yarn\ngateway_id: {gateway_id}\n"
        "timing: {window_s: 5, telemetry_interval_s: 5, heartbeat_interval_s: 5, tick_s: 0.05}\n"
        # A pseudo-terminal refuses parity (termios EINVAL), so the pair runs 8N2, the specification's no-parity form.
        "serial_lines:\n"
        f"  rs485-1: {{device: {line}, baudrate: 19200, parity: none, stop_bits: 2}}\n"
        f"models:{MODEL}machines:\n" + "\n".join(machines) + "\n"
    )


class Cards:
    """The script's side of the retrofit boxes: each change written to the datastore and recorded."""

    def __init__(self, equipment: Equipment) -> None:
        self.eq = equipment
        self.where = {**{m: ("line", u) for m, u in RTU.items()}, **{m: ("gw", u) for m, u in BEHIND_GATEWAY.items()}}
        self.running: set[str] = set()

    async def show(self, machine: str, state: MachineState, reason: str | None = None, *, record: bool = True) -> None:
        server, unit = self.where[machine]
        words = [
            int(state is MachineState.RUNNING),
            int(state is MachineState.SETUP) | int(state is MachineState.MAINTENANCE) << 1,
            FAULT_CODES[reason] if reason else 0,
        ]
        at_ms = wall_ms()
        await self.eq.write(server, unit, "holding", REG_RUN, words)
        assert (REG_RUN, REG_FLAGS, REG_FAULT) == (0, 1, 2)
        (self.running.add if state is MachineState.RUNNING else self.running.discard)(machine)
        if record:
            self.eq.record.change(machine, state, reason, at_ms=at_ms)

    async def make_units(self, every_s: float) -> None:
        """A unit every ``every_s`` on each running machine, counted in its register and the record."""
        while True:
            await asyncio.sleep(every_s)
            for machine in sorted(self.running):
                server, unit = self.where[machine]
                made = self.eq.record.units.get(machine, 0) + 1
                await self.eq.write(server, unit, "holding", REG_UNITS, [made])
                self.eq.record.units[machine] = made

    async def quiet(self, machine: str) -> None:
        self.eq.record.change(machine, MachineState.OFFLINE)
        self.eq.silent.add(self.where[machine])

    async def answer(self, machine: str) -> None:
        """Answers again, showing what it showed before."""
        _, state, reason = [c for c in self.eq.record.changes[machine] if c[1] is not MachineState.OFFLINE][-1]
        self.eq.record.change(machine, state, reason)
        self.eq.silent.discard(self.where[machine])


class TowerLamp:
    """The stack-light tap's digital inputs: lamps steady or blinking (a flasher starts lit, as a flasher
    relay does when it gets power), a pulse per unit while green."""

    def __init__(self, equipment: Equipment) -> None:
        self.eq = equipment
        self.showing: dict[str, str] = {}  # lamp → steady | blinking
        self.units = 0
        self._flasher: asyncio.Task[None] | None = None

    async def show(self, state: MachineState, reason: str | None, lamps: dict[str, str]) -> None:
        await self.still()
        self.showing = lamps
        at_ms = wall_ms()
        await self._levels(on=True)
        self.eq.record.change(LAMP_MACHINE, state, reason, at_ms=at_ms)
        if "blinking" in lamps.values():
            self._flasher = asyncio.create_task(self._blink())

    async def still(self) -> None:
        if self._flasher is not None:
            self._flasher.cancel()
            self._flasher = None

    async def _levels(self, *, on: bool) -> None:
        """Every lamp's input in one write, as a module scans its inputs at once."""
        levels = [0] * (max(LAMPS.values()) + 1)
        for lamp, address in LAMPS.items():
            mode = self.showing.get(lamp)
            levels[address] = int(mode == "steady" or (mode == "blinking" and on))
        await self.eq.write("lamp", 1, "discrete", 0, levels)

    async def _blink(self) -> None:
        on = True
        while True:
            await asyncio.sleep(BLINK_PHASE_S)
            on = not on
            await self._levels(on=on)

    async def pulses(self, width_s: float) -> None:
        while True:
            await asyncio.sleep(width_s)
            if self.showing.get("green") != "steady":
                continue
            await self.eq.write("lamp", 1, "discrete", DI_UNITS, [1])
            self.units += 1
            self.eq.record.units[LAMP_MACHINE] = self.units
            await asyncio.sleep(width_s)
            await self.eq.write("lamp", 1, "discrete", DI_UNITS, [0])


async def script(cards: Cards, lamp: TowerLamp) -> None:
    """SCRIPT_S seconds of a workshop, from the moment every unit answers."""
    run, down, setup, idle = MachineState.RUNNING, MachineState.DOWN, MachineState.SETUP, MachineState.IDLE
    steps: list[tuple[float, Callable[[], Awaitable[None]]]] = [
        (5, lambda: cards.show("CARD-R3", setup)),
        (6, lambda: cards.show("CARD-R1", down, "feed_empty")),
        (7, lambda: cards.show("CARD-G4", down, "fibre_choke")),
        (9, lambda: cards.show("CARD-G5", run)),
        (12, lambda: cards.show("CARD-R1", run)),
        (14, lambda: cards.show("CARD-R3", run)),
        (15, lambda: cards.show("CARD-G4", run)),
        (20, lambda: cards.show("CARD-R1", idle)),
        (24, lambda: cards.show("CARD-R3", down, "motor_overload")),
        (6, lambda: lamp.show(down, "unknown_fault", {"red": "blinking"})),
        (12.3, lambda: lamp.show(run, None, {"green": "steady"})),
        (18, lambda: lamp.show(idle, None, {"yellow": "steady"})),
        (22, lambda: lamp.show(setup, None, {"yellow": "blinking"})),
        (26.1, lambda: lamp.show(run, None, {"green": "steady"})),
    ]
    for machine, quiet_s, back_s in (("CARD-R2", 8, 18), ("CARD-G5", 16, 22)):
        steps += [(quiet_s, partial(cards.quiet, machine)), (back_s, partial(cards.answer, machine))]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for at, step in sorted(steps, key=lambda s: s[0]):
        await asyncio.sleep(max(0.0, t0 + at - loop.time()))
        await step()
    await asyncio.sleep(max(0.0, t0 + SCRIPT_S - loop.time()))


@pytest.fixture
def equipment() -> Iterator[Equipment]:
    eq = Equipment()
    yield eq
    eq.close()


def test_rtu_units_a_tcp_to_rtu_gateway_and_a_lamp_tap_equal_the_equipments_record(
    services: Services, equipment: Equipment, tmp_path: Path
) -> None:
    database = unique("rtu")
    site = unique("mb").replace("_", "-")
    gateway_id = f"gw-rtu-{site[-6:]}"
    services.grant(gateway_id, Role.GATEWAY, site=site, workshop="yarn")
    settings = services.settings(database)
    env = ftel_env(settings, FTEL_INGEST__GROUP=database, FTEL_GATEWAY__STATE_DIR=str(tmp_path / "gw"), FTEL_SITE=site)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    query = InfluxQuery(services.admin(database).influx)
    cards, lamp = Cards(equipment), TowerLamp(equipment)
    with serial_pair(tmp_path) as (equipment_end, gateway_end):
        try:
            gateway_port, lamp_port = free_port(), free_port()
            equipment.serve_serial(
                "line", equipment_end, list(RTU.values()), baudrate=LINE.baudrate, stop_bits=LINE.stop_bits
            )
            equipment.serve_tcp("gw", gateway_port, list(BEHIND_GATEWAY.values()))
            equipment.serve_tcp("lamp", lamp_port, [1])
            # Before the script: R1, R2, G4 running, R3 and G5 idle, the lamp green.
            for machine in ("CARD-R1", "CARD-R2", "CARD-G4"):
                equipment.call(cards.show(machine, MachineState.RUNNING))
            for machine in ("CARD-R3", "CARD-G5"):
                equipment.call(cards.show(machine, MachineState.IDLE))
            equipment.call(lamp.show(MachineState.RUNNING, None, {"green": "steady"}))

            worker = services.grant(f"{database}-w", Role.INGEST)
            processes["worker"] = start_ftel(["ingest", "--worker-id", worker], env, tmp_path / "worker.log")
            wait_ready(tmp_path / "worker.log")
            config = tmp_path / "gateway.yaml"
            config.write_text(gateway_file(site, gateway_id, gateway_end, gateway_port, lamp_port))
            processes["gateway"] = start_ftel(["gateway", "--config", str(config)], env, tmp_path / "gateway.log")

            # The script starts once the gateway reads every unit (the equipment counts its own answers).
            units = [("line", u) for u in RTU.values()] + [("gw", u) for u in BEHIND_GATEWAY.values()] + [("lamp", 1)]
            wait_until(
                lambda: all(equipment.record.answers.get(u, 0) >= 3 for u in units),
                timeout_s=60,
                what=f"the gateway reading every unit (answers so far {equipment.record.answers})",
            )
            start_ms = wall_ms()
            equipment.run(cards.make_units(0.7))
            equipment.run(lamp.pulses(0.3))
            equipment.call(script(cards, lamp), timeout_s=SCRIPT_S + 30)
            equipment.stop_scripts()
            equipment.call(lamp.still())
            end_ms = wall_ms()  # the verdict's end: before the gateway's own stop (which is OFFLINE for all)
            # Then everything holds still while the gateway reads each unit a few more times (the lamp tap: past
            # its blink phase), so all that happened is read; the record is final.
            answered = dict(equipment.record.answers)
            wait_until(
                lambda: all(equipment.record.answers[u] >= answered[u] + (12 if u[0] == "lamp" else 3) for u in units),
                timeout_s=30,
                what="the last polls",
            )
            stop_processes([processes.pop("gateway")], timeout_s=30)
            verdict(query, equipment, start_ms, end_ms, tmp_path / "gateway.log")
        finally:
            stop_processes(processes.values(), timeout_s=15)
            query.close()


def verdict(query: InfluxQuery, equipment: Equipment, start_ms: int, end_ms: int, log: Path) -> None:
    record = equipment.record
    machines = [*RTU, *BEHIND_GATEWAY, LAMP_MACHINE]

    def stored_changes() -> dict[str, list[tuple[int, str, str | None]]]:
        rows = query.rows(
            f'SELECT "state", "reason" FROM machine_state WHERE time >= {start_ms}ms AND time < {end_ms}ms '
            "GROUP BY machine_id"
        )
        out: dict[str, list[tuple[int, str, str | None]]] = {m: [] for m in machines}
        for row in rows:
            out.setdefault(row["machine_id"], []).append((int(row["time"]), row["state"], row["reason"] or None))
        return out

    def expected(machine: str) -> list[tuple[int, MachineState, str | None]]:
        return [c for c in record.changes[machine] if c[0] >= start_ms]

    def same_states() -> bool:
        stored = stored_changes()
        return all([(s, r) for _, s, r in stored[m]] == [(s.value, r) for _, s, r in expected(m)] for m in machines)

    try:
        wait_until(same_states, timeout_s=60, what="every machine's state changes stored", every_s=1)
    except AssertionError:
        stored = stored_changes()
        since = start_ms
        detail = {
            m: ([(t - since, s, r) for t, s, r in stored[m]], [(t - since, s.value, r) for t, s, r in expected(m)])
            for m in machines
        }
        raise AssertionError(f"stored vs the equipment's record: {detail}\n{log.read_text()[-3000:]}") from None

    stored = stored_changes()
    worst: dict[str, int] = {}
    for machine in machines:
        bound = bound_ms(machine)
        for (at, state, _), (truth, _, _) in zip(stored[machine], expected(machine), strict=True):
            late = at - truth
            worst[machine] = max(worst.get(machine, 0), abs(late))
            # A reading is stamped when its poll was sent (docs/gateway.md): a change made while the request was
            # on its way is stamped up to one request's time limit before it. OFFLINE starts when the first
            # unanswered poll was sent: a poll sent just before the unit went quiet.
            early = POLL_S * 1000 if state == MachineState.OFFLINE.value else request_limit_ms(machine)
            assert -early <= late <= bound + HOST_SLACK_MS, f"{machine} {state}: {late} ms after the truth"
    print(f"largest |stored − truth| per machine (ms): {worst}")

    units = {
        row["machine_id"]: int(row["units"])
        for row in query.rows(
            f"SELECT sum(units) AS units FROM state_time WHERE time >= {start_ms - 60_000}ms GROUP BY machine_id"
        )
    }
    assert {m: units.get(m, 0) for m in record.units} == record.units
    # On the serial line the gateway kept t3.5 of silence after each response before its next request.
    silences = record.silences_s("line")
    print(f"line silences: {len(silences)}, shortest {min(silences) * 1000:.2f} ms (t3.5 {LINE.gap_s * 1000:.2f} ms)")
    assert len(silences) > 50
    assert min(silences) >= LINE.gap_s
    # The units behind the TCP→RTU gateway shared one connection; the gateway only read.
    assert record.connections["gw"] == 1
    assert record.functions <= {1, 2, 3, 4}
    assert record.units[LAMP_MACHINE] > 5


def request_limit_ms(machine: str) -> int:
    """One request's time limit on the machine's bus (the lamp tap's is 0.2 s)."""
    return round((LAMP_TIMEOUT_S if machine == LAMP_MACHINE else TIMEOUT_S) * 1000)


def bound_ms(machine: str) -> int:
    """A change is seen at the next poll, which may wait behind the other units of its bus (their time limits);
    a lamp that goes from steady to blinking (or back) at the same level, at its first (last) change: within one
    blink phase."""
    if machine == LAMP_MACHINE:
        return round((LAMP_POLL_S + BLINK_PHASE_S) * 1000)
    others = len(RTU) - 1 if machine in RTU else len(BEHIND_GATEWAY) - 1
    return round((POLL_S + others * TIMEOUT_S) * 1000)
