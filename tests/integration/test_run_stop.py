"""Ctrl-C on `ftel run` as a terminal delivers it: `ftel run` in a pseudo-terminal of its own (its session's
controlling terminal), ^C typed into it, which the terminal turns into SIGINT for the whole foreground process
group. Every process it started must be gone, every gateway spool empty, and InfluxDB must hold exactly what the
simulator's ledger says the gateways produced up to their stop."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ftel.app import runstate
from ftel.security.credentials import with_identity
from ftel.security.identities import ADMIN
from ftel.settings import InfluxSettings, MqttSettings, Settings, StackSettings
from ftel.stack import free_port, stack_from_settings
from ftel.storage.query import InfluxQuery
from loadtest.spools import held, spool_files
from simulators.ledger import plant_ledger
from simulators.session import plant_from_settings
from tests.ledger_check import differences, ledger_totals, stored_totals
from tests.support import wait_until

pytestmark = pytest.mark.integration
CTRL_C = b"\x03"
ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|[@-Z\\-_])")
# The default plant (28 machines) with 20 simulated minutes of history at 60x: a fill of about 20 s.
HISTORY, SPEEDUP = "20m", "60"


class Terminal:
    """A process in a pseudo-terminal of its own, as a shell in a terminal window runs it: session leader,
    the terminal its controlling terminal, its process group in the foreground."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        self._master = master
        # util-linux's setsid makes the process a session leader with the terminal (its stdin) as its
        # controlling terminal, then execs it: the same pid, and no Python between fork and exec.
        self.process = subprocess.Popen(["setsid", "--ctty", *argv], stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        self._output = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: the last process holding the terminal is gone
                return
            if not chunk:
                return
            with self._lock:
                self._output += chunk

    @property
    def output(self) -> str:
        with self._lock:
            return self._output.decode(errors="replace")

    def type(self, keys: bytes) -> None:
        os.write(self._master, keys)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._reader.join(timeout=10)
        os.close(self._master)


def run_settings(directory: Path) -> Settings:
    return Settings(
        mqtt=MqttSettings(port=free_port()),
        influx=InfluxSettings(url=f"http://127.0.0.1:{free_port()}"),
        stack=StackSettings(dir=directory),
    )


def run_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTEL_")}
    return env | {
        "FTEL_MQTT__PORT": str(settings.mqtt.port),
        "FTEL_INFLUX__URL": settings.influx.url,
        "FTEL_STACK__DIR": str(settings.stack.dir),
    }


@pytest.fixture
def ftel_run(tmp_path: Path) -> Iterator[tuple[Terminal, Settings]]:
    settings = run_settings(tmp_path / "stack")
    argv = [sys.executable, "-m", "ftel.app", "run", "--fresh", "--history", HISTORY, "--speedup", SPEEDUP]
    terminal = Terminal(argv, run_env(settings))
    try:
        yield terminal, settings
    finally:
        terminal.close()
        stack_from_settings(settings).down()  # whatever a failed test left running


def spools(settings: Settings) -> dict[str, Path]:
    return spool_files(settings.stack.dir / "gateways")


def read_up_to(spool: Path) -> int:
    """Plant time the gateway had read every machine up to when it stopped (its checkpoint, after its last
    partial windows were closed)."""
    with sqlite3.connect(f"file:{spool}?mode=ro", uri=True) as db:
        (text,) = db.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
    return int(json.loads(text)["core"]["last_ms"])


def in_flight(settings: Settings) -> dict[str, int] | None:
    """Each gateway's unconfirmed messages, once both gateways keep a spool and some message in it waits for
    its confirmation."""
    found = spools(settings)
    if len(found) < 2:
        return None
    counts = {gateway_id: held(path) for gateway_id, path in found.items()}
    return counts if sum(counts.values()) else None


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def wait_for_text(terminal: Terminal, text: str, *, timeout_s: float = 300) -> None:
    try:
        wait_until(lambda: text in terminal.output, timeout_s=timeout_s, what=f"{text!r} on the terminal")
    except AssertionError:
        print(plain(terminal.output)[-3000:])
        raise


def still_running(processes: list[psutil.Process]) -> list[str]:
    """Those of ``processes`` still running (a bounded wait, generous: a worker told to stop on a loaded machine
    may still be starting or saving its state)."""
    _, alive = psutil.wait_procs(processes, timeout=60)
    running = []
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.status() != psutil.STATUS_ZOMBIE:
                running.append(" ".join(process.cmdline()[:6]))
    return running


def plain(text: str) -> str:
    """What a person reads on the terminal: no escape sequences, lines wrapped by the terminal joined again."""
    return " ".join(ANSI.sub("", text).split())


def ledger_differences(settings: Settings, stopped_at: dict[str, int]) -> list[str]:
    """What InfluxDB holds vs the ledger, each workshop up to where its gateway stopped (the stack started
    again to read it: `ftel run` stopped it)."""
    plant = plant_from_settings(settings)
    saved = runstate.load(settings.stack.dir)
    assert saved is not None
    window_ms = settings.simulation.window_s * 1000
    stack = stack_from_settings(settings)
    stack.up()
    try:
        query = InfluxQuery(with_identity(settings, ADMIN).influx)
        found: list[str] = []
        for workshop in plant.workshops:
            end = stopped_at[workshop.gateway_id]
            rows = plant_ledger(plant, start_ms=saved.start_ms, end_ms=end, window_ms=window_ms, workshop=workshop.id)
            expected = ledger_totals(rows, "machine_id")
            stored = stored_totals(query, "machine_id", saved.start_ms, end)
            mine = {m: totals for m, totals in stored.items() if m in {machine.id for machine in workshop.machines}}
            found += differences(expected, mine)
        return found
    finally:
        stack.down()


def test_ctrl_c_in_a_terminal_stops_everything_in_order_with_every_message_stored(ftel_run) -> None:  # type: ignore[no-untyped-def]
    terminal, settings = ftel_run
    wait_for_text(terminal, "Ctrl-C stops everything cleanly")  # the live view is up: the fill is running
    waiting = wait_until(lambda: in_flight(settings), timeout_s=60, what="messages in flight", every_s=0.05)
    started = descendants(terminal.process.pid)
    names = {" ".join(p.cmdline()[1:4]) for p in started}
    assert {"-m ftel.app ingest", "-m ftel.app alerts", "-m ftel.app settle"} <= names, names
    pressed = time.monotonic()
    terminal.type(CTRL_C)
    assert terminal.process.wait(timeout=180) == 0, terminal.output[-3000:]
    print(f"\nCtrl-C with {waiting} unconfirmed in the spools: stopped in {time.monotonic() - pressed:.1f} s")

    said = plain(terminal.output)
    print(said[said.find("stopping, in the order") :])
    assert still_running(started) == []
    steps = [
        "gateways: stopped, all confirmed",
        "ingest worker: stopped",
        "alert worker: stopped",
        "settler: stopped",
        "services: Mosquitto and InfluxDB stopped",
    ]
    positions = [said.find(step) for step in steps]
    assert all(p >= 0 for p in positions), said[-2000:]
    assert positions == sorted(positions), said[-2000:]
    assert "settled " in (settings.stack.dir / "logs" / "settle.log").read_text()
    assert "everything the gateways sent is stored and confirmed" in said
    assert "not confirmed" not in said
    assert "spools (" not in said

    found = spools(settings)
    assert {gateway_id: held(path) for gateway_id, path in found.items()} == dict.fromkeys(found, 0)
    stopped_at = {gateway_id: read_up_to(path) for gateway_id, path in found.items()}
    assert ledger_differences(settings, stopped_at) == []


def test_a_second_ctrl_c_stops_at_once_and_says_what_waits_in_which_spool(ftel_run) -> None:  # type: ignore[no-untyped-def]
    terminal, settings = ftel_run
    wait_for_text(terminal, "Ctrl-C stops everything cleanly")
    started = descendants(terminal.process.pid)
    (ingest,) = [p for p in started if p.cmdline()[1:4] == ["-m", "ftel.app", "ingest"]]
    # Ingest frozen (alive, confirming nothing): the gateways' drain would wait for it until its stall limit.
    ingest.suspend()
    wait_until(lambda: in_flight(settings), timeout_s=60, what="messages in flight")
    terminal.type(CTRL_C)
    wait_for_text(terminal, "messages waiting for confirmation by ingest", timeout_s=60)
    pressed = time.monotonic()
    terminal.type(CTRL_C)
    assert terminal.process.wait(timeout=120) == 0, terminal.output[-3000:]
    print(f"\nsecond Ctrl-C: stopped in {time.monotonic() - pressed:.1f} s")

    said = plain(terminal.output)
    print(said[said.find("stopping, in the order") :])
    assert still_running(started) == []
    assert "ingest worker: stopped at once" in said
    left = {gateway_id: held(path) for gateway_id, path in spools(settings).items()}
    assert sum(left.values()) > 0
    # A long spool path is folded by the console at the terminal's width: compare without the whitespace.
    squeezed = "".join(said.split())
    for gateway_id, count in left.items():
        if count:
            assert f"{count:,}in{gateway_id}'s{spools(settings)[gateway_id]}" in squeezed, said[-2000:]
    assert f"{sum(left.values()):,} messages wait in the gateways' spools" in said
    assert "the next `make run` sends them" in said


def test_workers_stop_by_themselves_when_ftel_run_is_killed_outright(ftel_run) -> None:  # type: ignore[no-untyped-def]
    terminal, settings = ftel_run
    wait_for_text(terminal, "Ctrl-C stops everything cleanly")
    workers = [p for p in descendants(terminal.process.pid) if p.cmdline()[1:3] == ["-m", "ftel.app"]]
    assert len(workers) == 3, [p.cmdline() for p in workers]  # ingest, alerts, settle
    terminal.process.kill()  # no stop of its own: nothing tells the workers but the kernel
    terminal.process.wait()
    assert still_running(workers) == []
    # A clean stop (SIGTERM from the kernel), not a death: the worker wrote and confirmed what it held.
    assert "worker ingest-1 stopped" in (settings.stack.dir / "logs" / "ingest.log").read_text()
    # Mosquitto and InfluxDB outlive it, as after `ftel stack up`: the next run (or `ftel stack down`) finds them.
    assert stack_from_settings(settings).mosquitto.pid() is not None


def test_ctrl_c_to_a_load_test_stops_its_processes_in_the_data_s_order_with_nothing_left(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTEL_")}
    log = tmp_path / "loadtest.log"
    argv = ["loadtest", "--machines", "40", "--per-workshop", "20", "--duration", "15m", "--speedup", "10"]
    argv += ["--workers", "2", "--gateway-processes", "2", "--out", str(out)]
    with log.open("wb") as output:
        # As a shell starts a job: its own process group, which the terminal's Ctrl-C goes to whole.
        loadtest = subprocess.Popen(
            [sys.executable, "-m", "ftel.app", *argv],
            env=env | {"FTEL_STACK__DIR": str(tmp_path / "ftel")},
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0,
        )
    try:

        def gateways_publish() -> bool:
            logs = [out / "logs" / f"gateways-{n}.log" for n in (1, 2)]
            return all(path.exists() and "published" in path.read_text(errors="replace") for path in logs)

        try:  # generous: the load test starts its own stack and workers first, on a machine others share
            wait_until(gateways_publish, timeout_s=420, what="both gateway processes to publish")
        except AssertionError as error:
            raise AssertionError(f"{error}; the load test said:\n{log.read_text()[-3000:]}") from None
        started = descendants(loadtest.pid)
        pressed = time.monotonic()
        os.killpg(loadtest.pid, signal.SIGINT)
        assert loadtest.wait(timeout=180) == 130, log.read_text()[-3000:]
        print(f"\nload test: stopped in {time.monotonic() - pressed:.1f} s")
    finally:
        if loadtest.poll() is None:
            loadtest.kill()
            loadtest.wait()
    said = plain(log.read_text())
    print(said[said.find("stopping, in the order") :])
    assert still_running(started) == []
    steps = [
        "gateways: stopped, all confirmed",
        "ingest workers: stopped",
        "alert worker: stopped",
        "services: Mosquitto and InfluxDB stopped",
        "interrupted: no verdict. stopped in",
    ]
    positions = [said.find(step) for step in steps]
    assert all(p >= 0 for p in positions), said[-2000:]
    assert positions == sorted(positions), said[-2000:]
    assert "everything the gateways sent is stored and confirmed" in said
    found = spool_files(out / "gateways")
    assert len(found) == 2
    assert {gateway_id: held(path) for gateway_id, path in found.items()} == dict.fromkeys(found, 0)
