"""A gateway configuration → its drivers: a polled machine per Modbus or OPC UA entry (all on one poll loop),
and whatever the composition root builds for ``simulated`` entries (the gateway does not know simulators)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ftel.settings import GatewaySettings
from gateway.config import GatewayConfig, MachineConfig, ModbusDriver, ModelConfig, OpcUaDriver
from gateway.core import GatewayTiming, close_phase_ms
from gateway.driver import MachineDriver, MachineInfo
from gateway.drivers.errors import DriverError
from gateway.drivers.lamp import LampInterpreter
from gateway.drivers.modbus import ModbusSource
from gateway.drivers.modbus_bus import ModbusBuses
from gateway.drivers.opcua import OpcUaSource
from gateway.drivers.poll import Interpreter, LoopClock, PolledMachine, PollLoop, PollTiming, Source
from gateway.signals import SignalInterpreter

# Builds the driver of a ``simulated`` entry (given by the composition root).
SimulatedFactory = Callable[[MachineConfig, GatewayConfig], MachineDriver]


@dataclass(frozen=True, slots=True)
class Drivers:
    drivers: list[MachineDriver]
    poll_loop: PollLoop


def machine_info(machine: MachineConfig, nameplate: ModelConfig | MachineInfo) -> MachineInfo:
    """What the gateway tells of the machine: the configuration's id, model and line, and its own rated speed
    and service interval where it gives them, else the nameplate's (its model's, or a simulated spec's)."""
    machine_type = nameplate.type if isinstance(nameplate, ModelConfig) else nameplate.machine_type
    return MachineInfo(
        machine.id,
        machine_type,
        machine.model,
        machine.line,
        machine.rated_speed or nameplate.rated_speed,
        nameplate.speed_unit,
        machine.service_interval_h or nameplate.service_interval_h,
    )


def timing(config: GatewayConfig, gateway: GatewaySettings) -> GatewayTiming:
    """The file's windows and sampling; whether telemetry is spread and when windows are sent are the
    settings' (as for simulated gateways)."""
    t = config.timing
    return GatewayTiming(
        t.window_s * 1000,
        t.telemetry_interval_s * 1000,
        t.heartbeat_interval_s * 1000,
        t.tick_s,
        telemetry_spread=gateway.telemetry_spread,
        close_phase_ms=close_phase_ms(config.gateway_id, t.window_s * 1000, gateway.close_phase_s),
    )


def interpreter_for(model: ModelConfig) -> Interpreter:
    """A stack-light tap's lamps are judged over polls; every other model's samples one by one."""
    return LampInterpreter(model) if model.lamps else SignalInterpreter(model)


def source_for(
    machine: MachineConfig, model: ModelConfig, *, time_scale: float, buses: ModbusBuses | None = None
) -> tuple[Source, str]:
    """The machine's source (time limits in wall seconds) and its resume key (what identifies the machine).
    Modbus units on one serial line or TCP address share its bus in ``buses`` (one for the whole gateway)."""
    driver = machine.driver
    if isinstance(driver, ModbusDriver):
        assert model.modbus is not None  # the configuration checked it
        timeout_s = driver.timeout / time_scale
        bus = (buses or ModbusBuses({})).for_driver(driver, timeout_s=timeout_s)
        source: Source = ModbusSource(machine.id, driver, model.modbus, bus=bus, timeout_s=timeout_s)
        address = f"{driver.host}:{driver.port}" if driver.host is not None else f"rtu:{driver.line}"
        return source, f"modbus:{address}:{driver.unit_id}"
    if isinstance(driver, OpcUaDriver):
        assert model.opcua is not None
        source = OpcUaSource(
            machine.id,
            driver,
            model.opcua,
            timeout_s=driver.timeout / time_scale,
            publish_s=driver.poll_interval_s / time_scale / 2,
        )
        return source, f"opcua:{driver.endpoint}:{driver.browse_name or machine.id}"
    raise DriverError(f"{machine.id}: {driver.kind} machines are not polled")


def build_drivers(
    config: GatewayConfig,
    *,
    now_ms: Callable[[], int],
    time_scale: float = 1.0,
    simulated: SimulatedFactory | None = None,
) -> Drivers:
    """Every machine's driver, in the order of the file; the polled ones share one (not yet started) loop."""
    drivers: list[MachineDriver] = []
    polled: list[PolledMachine] = []
    buses = ModbusBuses(config.serial_lines)
    for machine in config.machines:
        driver = machine.driver
        if driver.kind == "simulated":
            if simulated is None:
                raise DriverError(f"{machine.id}: simulated machines can only be run by `ftel gateway`")
            drivers.append(simulated(machine, config))
            continue
        assert isinstance(driver, ModbusDriver | OpcUaDriver)
        model = config.models[machine.model]
        source, key = source_for(machine, model, time_scale=time_scale, buses=buses)
        poll = PollTiming(
            interval_s=driver.poll_interval_s,
            timeout_s=driver.timeout,
            offline_after=driver.offline_after,
            reconnect_min_s=driver.reconnect_min_s,
            reconnect_max_s=driver.reconnect_max_s,
            subscribe=isinstance(driver, OpcUaDriver) and driver.subscribe,
        )
        machine_driver = PolledMachine(
            machine_info(machine, model), source, poll, interpreter_for(model), resume_key=key
        )
        polled.append(machine_driver)
        drivers.append(machine_driver)
    loop = PollLoop(polled, LoopClock(now_ms, time_scale), name=f"poll-{config.gateway_id}")
    return Drivers(drivers, loop)
