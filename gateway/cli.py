"""The gateway's side of `ftel gateway --config FILE`: run a configured workshop, and probe its machines'
wiring. It knows no simulator: the composition root (ftel/app/gateway_command.py) hands it a clock and, for
``simulated`` entries, a factory."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.table import Table

from ftel.settings import Settings
from gateway.config import GatewayConfig, LampConfig, MachineConfig, ModbusDriver, ModelConfig, OpcUaDriver
from gateway.driver import MachineDriver, Reading
from gateway.drivers.build import SimulatedFactory, build_drivers, source_for, timing
from gateway.drivers.errors import SourceError
from gateway.drivers.lamp import LampInterpreter
from gateway.drivers.modbus_bus import ModbusBuses
from gateway.drivers.poll import Source, connect_limit_s
from gateway.runner import Gateway, Progress, build_gateway
from gateway.signals import Sample, SignalInterpreter
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


def configured_gateway(
    config: GatewayConfig,
    settings: Settings,
    drivers: Sequence[MachineDriver],
    *,
    now_ms: Callable[[], int],
    durable: bool = True,
) -> Gateway:
    """The configured workshop's gateway (not started): its file's identity and timing, the settings' delivery."""
    origin = Origin(config.site or settings.site, config.workshop, config.gateway_id)
    return build_gateway(
        settings, origin, drivers, now_ms=now_ms, timing=timing(config, settings.gateway), durable=durable
    )


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
    gateway = configured_gateway(config, settings, built.drivers, now_ms=now_ms)
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
    driver = machine.driver
    timeout = driver.timeout if isinstance(driver, ModbusDriver | OpcUaDriver) else 5.0
    poll_s = driver.poll_interval_s if isinstance(driver, ModbusDriver | OpcUaDriver) else 1.0
    try:
        await asyncio.wait_for(source.connect(), connect_limit_s(timeout))
        samples = await _watch(source, model, timeout_s=timeout, poll_s=poll_s)
    except (SourceError, OSError, TimeoutError) as error:
        console.print(f"[red]{machine.id}[/red] ({where}): no answer: {error or 'time limit passed'}")
        return False
    finally:
        await source.close()
    reading, refused, lamps = _interpret(model, samples)
    table = Table(title=f"{machine.id} — {machine.model} ({where})", show_lines=False)
    table.add_column("signal")
    table.add_column("raw", justify="right")
    for name, raw in samples[-1][1].items():
        read = " ".join(str(s[name]) for _, s in samples) if name in lamps else str(raw)
        table.add_row(name, read + (f"  → {lamps[name]}" if name in lamps else ""))
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


async def _watch(source: Source, model: ModelConfig, *, timeout_s: float, poll_s: float) -> list[tuple[int, Sample]]:
    """One sample; a stack-light tap's lamps over two blink phases and two polls, so blinking can be told."""
    window_s = 2 * (model.lamp or LampConfig()).blink_phase_max_s + 2 * poll_s if model.lamps else 0.0
    loop = asyncio.get_running_loop()
    started = loop.time()
    samples: list[tuple[int, Sample]] = []
    while True:
        at = loop.time() - started
        samples.append((round(at * 1000), await asyncio.wait_for(source.read(), timeout_s)))
        if at >= window_s:
            return samples
        await asyncio.sleep(max(0.0, started + at + poll_s - loop.time()))


def _interpret(
    model: ModelConfig, samples: list[tuple[int, Sample]]
) -> tuple[Reading | None, list[str], dict[str, str]]:
    """The last reading the samples give, what was refused, and each lamp's condition (a lamp tap)."""
    if not model.lamps:
        reading, refused = SignalInterpreter(model).interpret(samples[-1][0], samples[-1][1])
        return reading, refused, {}
    lamps = LampInterpreter(model)
    readings, refused = [], []
    for at_ms, sample in samples:
        told, why = lamps.readings(at_ms, sample)
        readings += told
        refused += why
    return (readings[-1] if readings else None), sorted(set(refused)), lamps.conditions()
