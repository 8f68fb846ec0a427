"""`ftel gateway discover --modbus` against pymodbus's own servers (tests/modbus_equipment.py): over Modbus TCP and
over RTU on a socat serial pair, a unit whose run flag, fault code and counter change while it is read. The
draft names them, `ftel gateway probe` accepts it, and the equipment heard only read requests. No broker or
database is needed: discovery talks to the equipment only."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftel.stack import free_port
from gateway.config import ModbusDriver, Signal, load_gateway_config
from tests.modbus_equipment import REG_FAULT, REG_RUN, REG_UNITS, Equipment, serial_pair

pytestmark = pytest.mark.integration

UNIT = 7


@pytest.fixture
def equipment() -> Iterator[Equipment]:
    eq = Equipment()
    yield eq
    eq.close()


async def working(eq: Equipment, server: str) -> None:
    """Over and over, until stopped: running 1.4 s (a unit every 0.2 s), stopped with fault 12 for 1.0 s. Each
    stretch is longer than the reads' spacing (with unit 9's time-outs, at most 0.9 s), so the reads see both."""
    made, step = 0, 0
    while True:
        running = step % 12 < 7
        made += running
        await eq.write(server, UNIT, "holding", REG_RUN, [int(running), 0, 0 if running else 12, made])
        await asyncio.sleep(0.2)
        step += 1


def ftel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftel.app", "gateway", *args], capture_output=True, text=True, timeout=120, check=False
    )


def discover_and_probe(eq: Equipment, server: str, target: list[str], tmp_path: Path) -> None:
    eq.silent.add((server, 9))  # no unit 9 on the line: nothing answers
    eq.run(working(eq, server))
    draft = tmp_path / "draft.yaml"
    found = ftel(
        "discover", *target, "--unit", str(UNIT), "--unit", "9", "--count", "10", "--reads", "6", "--every-s", "0.4",
        "--timeout-s", "0.5", "--out", str(draft),
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert "read 1 of 6" in found.stderr  # progress shown
    assert "counting up" in found.stderr
    assert "no answer" in found.stderr  # unit 9 is not there: said so, and left out of the draft
    config = load_gateway_config(draft)
    model = config.models[f"unit {UNIT} (draft)"]
    assert model.modbus is not None
    assert {s: r.address for s, r in model.modbus.items()} == {
        Signal.RUN: REG_RUN,
        Signal.FAULT_CODE: REG_FAULT,
        Signal.UNITS: REG_UNITS,
    }
    assert [m.id for m in config.machines] == [f"UNIT-{UNIT:03d}"]
    eq.stop_scripts()
    eq.call(eq.write(server, UNIT, "holding", REG_FAULT, [0]))
    probed = ftel("probe", "--config", str(draft))
    assert probed.returncode == 0, probed.stderr
    assert eq.record.functions <= {1, 2, 3, 4}, "discovery or probe wrote to the device"


def test_discover_over_modbus_tcp_drafts_a_file_probe_accepts(equipment: Equipment, tmp_path: Path) -> None:
    port = free_port()
    equipment.serve_tcp("tcp", port, [UNIT])
    discover_and_probe(equipment, "tcp", ["--modbus", f"127.0.0.1:{port}"], tmp_path)


def test_discover_over_an_rtu_line_drafts_a_file_probe_accepts(equipment: Equipment, tmp_path: Path) -> None:
    with serial_pair(tmp_path) as (equipment_end, gateway_end):
        equipment.serve_serial("line", equipment_end, [UNIT], baudrate=9600, stop_bits=2)
        target = ["--modbus", str(gateway_end), "--baudrate", "9600", "--parity", "none", "--stop-bits", "2"]
        discover_and_probe(equipment, "line", target, tmp_path)
        draft = load_gateway_config(tmp_path / "draft.yaml")
        assert draft.serial_lines["line-1"].device == str(gateway_end)


async def flashing(eq: Equipment, server: str) -> None:
    """A red lamp blinking: 0.4 s lit, 0.4 s dark (the tap's third input; the others dark)."""
    lit = True
    while True:
        await eq.write(server, 1, "discrete", 0, [0, 0, int(lit)])
        await asyncio.sleep(0.4)
        lit = not lit


def test_discover_drafts_a_lamp_tap_and_probe_tells_a_blinking_red(equipment: Equipment, tmp_path: Path) -> None:
    port = free_port()
    equipment.serve_tcp("lamp", port, [1])
    equipment.run(flashing(equipment, "lamp"))
    draft = tmp_path / "lamp.yaml"
    found = ftel(
        "discover", "--modbus", f"127.0.0.1:{port}", "--table", "discrete", "--count", "8", "--reads", "4",
        "--every-s", "0.3", "--timeout-s", "0.5", "--out", str(draft),
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    model = load_gateway_config(draft).models["unit 1 (draft)"]
    assert model.lamps == [Signal.GREEN, Signal.YELLOW, Signal.RED]
    driver = load_gateway_config(draft).machines[0].driver
    assert isinstance(driver, ModbusDriver)
    assert driver.poll_interval_s == 0.2  # faster than the blink's phases
    probed = ftel("probe", "--config", str(draft))
    assert probed.returncode == 0, probed.stderr
    assert "→ blinking" in probed.stderr
    assert "DOWN (unknown_fault)" in probed.stderr
    assert equipment.record.functions <= {1, 2, 3, 4}
