"""The gateway's side of `ftel gateway --config FILE`: run a configured workshop, and probe its machines'
wiring. It knows no simulator: the composition root (ftel/gateway_command.py) hands it a clock and, for
``simulated`` entries, a factory."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from ftel.settings import Settings
from gateway.config import GatewayConfig, MachineConfig, ModbusDriver, OpcUaDriver
from gateway.drivers.build import SimulatedFactory, build_drivers, source_for, timing
from gateway.drivers.errors import SourceError
from gateway.drivers.modbus_bus import ModbusBuses
from gateway.runner import Progress, build_gateway
from gateway.signals import SignalInterpreter
from gateway.tracker import Origin

console = Console(stderr=True, soft_wrap=True)

# The drivers' libraries say every connect and reconnect at INFO; the gateway says what matters itself.
QUIET_LOGGERS = ("asyncua", "pymodbus")


def quiet_libraries() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # pymodbus logs each unanswered request at ERROR with a dump of the line's last frames; the gateway counts
    # failed polls and says when a machine goes OFFLINE and comes back itself.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def run_configured(
    config: GatewayConfig,
    settings: Settings,
    stop: threading.Event,
    *,
    now_ms: Callable[[], int],
    time_scale: float = 1.0,
    end_ms: int | None = None,
    simulated: SimulatedFactory | None = None,
) -> Progress:
    """Run the configured workshop's gateway until ``stop`` (or ``end_ms``, plant time)."""
    quiet_libraries()
    built = build_drivers(config, now_ms=now_ms, time_scale=time_scale, simulated=simulated)
    origin = Origin(config.site or settings.site, config.workshop, config.gateway_id)
    gateway = build_gateway(settings, origin, built.drivers, now_ms=now_ms, timing=timing(config))
    loop = built.poll_loop

    def report(p: Progress) -> None:
        offline = [m.info.machine_id for m in loop.machines if m.offline]
        refused = loop.refusals()
        console.print(
            f"[dim]{time.strftime('%H:%M:%S')}[/dim] gateway [bold]{config.gateway_id}[/bold] plant "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(p.sim_ms / 1000))}Z  published {p.published}  "
            f"confirmed {p.confirmed}  spool {p.spool_depth}  dropped {p.dropped}  "
            f"{'connected' if p.connected else '[red]broker away, spooling[/red]'}  "
            f"offline {len(offline)}{' ' + ','.join(offline) if offline else ''}"
            + (f"  refused {refused}" if refused else "")
        )

    with loop:
        final = gateway.run(stop, end_ms=end_ms, on_progress=report)
    report(final)
    return final


def probe(config: GatewayConfig, machine_ids: list[str] | None = None) -> int:
    """Read each chosen machine's signals once and print what they are and the state they give; 0 when every
    machine answered with a state."""
    quiet_libraries()
    chosen = [m for m in config.machines if not machine_ids or m.id in machine_ids]
    unknown = sorted(set(machine_ids or ()) - {m.id for m in config.machines})
    if unknown:
        console.print(f"[red]no machine {', '.join(unknown)} in the configuration[/red]")
        return 2
    return asyncio.run(_probe_all(config, chosen))


async def _probe_all(config: GatewayConfig, machines: list[MachineConfig]) -> int:
    failures = 0
    for machine in machines:
        if not isinstance(machine.driver, ModbusDriver | OpcUaDriver):
            console.print(f"{machine.id}: {machine.driver.kind} (nothing to probe)")
            continue
        failures += not await _probe_one(config, machine)
    return 1 if failures else 0


async def _probe_one(config: GatewayConfig, machine: MachineConfig) -> bool:
    model = config.models[machine.model]
    source, where = source_for(machine, model, time_scale=1.0, buses=ModbusBuses(config.serial_lines))
    timeout = machine.driver.timeout if isinstance(machine.driver, ModbusDriver | OpcUaDriver) else 5.0
    try:
        await asyncio.wait_for(source.connect(), timeout)
        sample = await asyncio.wait_for(source.read(), timeout)
    except (SourceError, OSError, TimeoutError) as error:
        console.print(f"[red]{machine.id}[/red] ({where}): no answer: {error or 'time limit passed'}")
        return False
    finally:
        await source.close()
    reading, refused = SignalInterpreter(model).interpret(0, sample)
    table = Table(title=f"{machine.id} — {machine.model} ({where})", show_lines=False)
    table.add_column("signal")
    table.add_column("raw", justify="right")
    for name, raw in sample.items():
        table.add_row(name, str(raw))
    console.print(table)
    if reading is None:
        console.print(f"[red]{machine.id}: the signals give no state[/red]  refused: {refused}")
        return False
    reason = f" ({reading.reason})" if reading.reason else ""
    console.print(
        f"{machine.id}: [bold]{reading.state.value}{reason}[/bold]  speed {reading.speed:g} "
        f"{model.speed_unit}  temperature {reading.temperature:g} °C  run hours since service "
        f"{reading.run_ms_since_service / 3_600_000:.1f}"
        + (f"  [yellow]refused: {refused}[/yellow]" if refused else "")
    )
    return not refused
