"""The simulated controllers' "vendor manual": their fault codes, their Modbus register map and their OPC UA
nodes, and the gateway configuration that reads them (what a plant engineer would write from the manual).

The servers (simulators/serve/modbus.py, opcua.py) encode values their own way, with ``struct`` and asyncua;
the gateway decodes them with its own code from this map. Two separate implementations meet on the wire, so a
mistake on either side shows.
"""

from __future__ import annotations

from typing import Any

from ftel.contract.states import DOWN_REASONS, MachineType
from ftel.plant.layout import MachineSpec
from gateway.config import (
    DataType,
    FaultTable,
    GatewayConfig,
    ModelConfig,
    Node,
    OpcUaMap,
    Order,
    Register,
    Signal,
)

# Each machine type's fault codes, as its controller numbers them (0: no fault).
FAULT_BASE: dict[MachineType, int] = {MachineType.CARDING: 11, MachineType.SPINNING: 21, MachineType.KNITTING: 101}


def fault_codes(machine_type: MachineType) -> dict[int, str]:
    base = FAULT_BASE[machine_type]
    return {base + i: reason for i, reason in enumerate(DOWN_REASONS[machine_type])}


def fault_code(machine_type: MachineType, reason: str | None) -> int:
    return next((code for code, r in fault_codes(machine_type).items() if r == reason), 0)


# -- Modbus: holding registers of unit 1 ---------------------------------------------------------------------
REG_RUN = 0  # uint16: 1 while producing
REG_FLAGS = 1  # uint16: bit 0 changeover (setup), bit 1 maintenance
REG_FAULT = 2  # uint16: fault code, 0 none
REG_UNITS = 3  # uint16: unit counter (wraps at 65536)
REG_DEFECTS = 4  # uint16: defect counter (wraps at 65536)
REG_SPEED = 5  # float32, 2 registers, most significant word first ("ABCD")
REG_TEMPERATURE = 7  # int16, tenths of °C
REG_SERVICE_MIN = 8  # uint32, 2 registers, least significant word first ("CDAB"): run minutes since service
REG_PROGRAM = 10  # uint16: the program (pattern) number a knitting machine runs, 0 none (docs/orders.md)
MODBUS_REGISTERS = 11
MODBUS_UNIT = 1
COUNTER_BITS_MODBUS = 16

MODBUS_MAP: dict[Signal, Register] = {
    Signal.RUN: Register(address=REG_RUN),
    Signal.SETUP: Register(address=REG_FLAGS, bit=0),
    Signal.MAINTENANCE: Register(address=REG_FLAGS, bit=1),
    Signal.FAULT_CODE: Register(address=REG_FAULT),
    Signal.UNITS: Register(address=REG_UNITS),
    Signal.DEFECTS: Register(address=REG_DEFECTS),
    Signal.SPEED: Register(address=REG_SPEED, type=DataType.FLOAT32, min=0),
    Signal.TEMPERATURE: Register(address=REG_TEMPERATURE, type=DataType.INT16, scale=0.1, min=-40, max=250),
    Signal.SERVICE_HOURS: Register(
        address=REG_SERVICE_MIN, type=DataType.UINT32, word_order=Order.LITTLE, scale=1 / 60, min=0
    ),
    Signal.PROGRAM: Register(address=REG_PROGRAM, min=1),
}
# Machine types whose controllers show a program (simulators/jobs.py JOB_TYPES).
PROGRAM_TYPES = (MachineType.KNITTING,)

# -- OPC UA: the Machinery building blocks, and these variables of each machine -----------------------------
VENDOR_URI = "urn:ftel:simulated-controller"
NODE_NAMES: dict[Signal, str] = {
    Signal.FAULT_CODE: "FaultCode",  # UInt16
    Signal.UNITS: "Units",  # UInt32 counter
    Signal.DEFECTS: "Defects",  # UInt32 counter
    Signal.SPEED: "Speed",  # Double
    Signal.TEMPERATURE: "Temperature",  # Double, °C
    Signal.SERVICE_HOURS: "ServiceHours",  # Double
    Signal.PROGRAM: "Program",  # String: the program name a knitting machine runs, "" none
}
COUNTER_BITS_OPCUA = 32


def node_id(machine_id: str, signal: Signal) -> str:
    return f"{machine_id}.{NODE_NAMES[signal]}"


OPCUA_MAP = OpcUaMap(
    machinery=True,
    signals={
        signal: Node(
            node=f"nsu={VENDOR_URI};s={{machine}}.{name}",
            min=0 if signal is not Signal.TEMPERATURE else -40,
            max=250 if signal is Signal.TEMPERATURE else None,
        )
        for signal, name in NODE_NAMES.items()
    },
)


def _without_program(signals: dict[Signal, Any]) -> dict[Signal, Any]:
    return {signal: spec for signal, spec in signals.items() if signal is not Signal.PROGRAM}


def model_config(spec: MachineSpec, protocol: str) -> ModelConfig:
    """Knitting machines' models read the program too (their styles: docs/orders.md); the others' do not."""
    knits = spec.type in PROGRAM_TYPES
    modbus = MODBUS_MAP if knits else _without_program(MODBUS_MAP)
    opcua = OPCUA_MAP if knits else OpcUaMap(machinery=True, signals=_without_program(dict(OPCUA_MAP.signals)))
    return ModelConfig(
        type=spec.type,
        rated_speed=spec.rated_speed,
        speed_unit=spec.speed_unit,
        service_interval_h=spec.service_interval_h,
        modbus=modbus if protocol == "modbus" else None,
        opcua=opcua if protocol == "opcua" else None,
        faults=FaultTable(codes=fault_codes(spec.type)),
    )


def gateway_config(
    *,
    protocol: str,
    site: str,
    workshop: str,
    gateway_id: str,
    machines: list[tuple[MachineSpec, dict[str, Any]]],
    clock: dict[str, Any],
    poll: dict[str, Any],
) -> GatewayConfig:
    """The gateway configuration for served machines: ``machines`` pairs each spec with its driver's address
    fields (host/port/unit_id, or endpoint); ``poll`` holds the poll settings every driver shares."""
    models = {spec.model: model_config(spec, protocol).model_dump(mode="json") for spec, _ in machines}
    return GatewayConfig.model_validate(
        {
            "site": site,
            "workshop": workshop,
            "gateway_id": gateway_id,
            "clock": clock,
            "models": models,
            "machines": [
                {
                    "id": spec.id,
                    "model": spec.model,
                    "type": spec.type.value,
                    "line": spec.line,
                    "driver": {"kind": protocol, **address, **poll},
                }
                for spec, address in machines
            ],
        }
    )
