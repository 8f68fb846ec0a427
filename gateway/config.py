"""The gateway configuration file (YAML): the workshop, its machine models with their signal maps, and its
machines with their drivers. Validated once, here; an error names the file, the line and the field.

A *model* is defined once and reused by every machine of that model: its nameplate (type, rated speed, unit,
service interval), where each signal lives on its controller (Modbus registers or OPC UA nodes), the table from
the controller's fault codes to our reason codes, and the rule that turns the signals into a machine state.
Every duration in the file is in plant seconds: wall seconds, or simulated seconds when ``clock`` runs a
simulated plant faster than real time (docs/gateway.md).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ftel.contract import limits
from ftel.contract.states import DOWN_REASONS, UNKNOWN_FAULT, MachineState, MachineType
from ftel.contract.topics import ID_PATTERN
from ftel.errors import ConfigError
from ftel.settings import PollSettings, TimingSettings
from gateway.opcua_paths import BrowsePathError, parse_path

Id = Annotated[str, Field(pattern=ID_PATTERN)]
PlantSeconds = Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Signal(StrEnum):
    """What a controller can tell; each model maps the ones its controller has."""

    RUN = "run"  # producing (non-zero) or not
    SETUP = "setup"  # changeover flag
    MAINTENANCE = "maintenance"  # planned maintenance flag
    FAULT_CODE = "fault_code"  # the controller's fault code; 0 (or ``faults.none``) is no fault
    STATE_CODE = "state_code"  # a controller's own state number, for rules that read it
    UNITS = "units"  # unit counter (may wrap or reset)
    DEFECTS = "defects"  # defect counter (may wrap or reset)
    SPEED = "speed"  # in the model's speed unit
    TEMPERATURE = "temperature"  # °C
    SERVICE_HOURS = "service_hours"  # run hours since the last maintenance
    PROGRAM = "program"  # the program (pattern) it runs: a number (register) or a name (OPC UA); docs/orders.md
    # A stack-light (tower lamp) tap: each lamp read as off, steady or blinking (gateway/lamp.py).
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    BLUE = "blue"


COUNTERS = frozenset({Signal.UNITS, Signal.DEFECTS})
LAMPS = (Signal.GREEN, Signal.YELLOW, Signal.RED, Signal.BLUE)
LAMP_CONDITIONS = ("off", "steady", "blinking")  # a lamp as a rule reads it (gateway/lamp.py Lamp)
FLAGS = frozenset({Signal.RUN, Signal.SETUP, Signal.MAINTENANCE})

# Values beyond these are refused (with a counted reason) whatever the model declares: the contract's bounds.
CONTRACT_RANGES: dict[Signal, tuple[float, float]] = {
    Signal.SPEED: (0.0, limits.MAX_SPEED),
    Signal.TEMPERATURE: (limits.TEMPERATURE_MIN_C, limits.TEMPERATURE_MAX_C),
    Signal.SERVICE_HOURS: (0.0, limits.MAX_DURATION_MS / 3_600_000),
    Signal.UNITS: (0.0, float(limits.INT64_MAX)),
    Signal.DEFECTS: (0.0, float(limits.INT64_MAX)),
}

# OPC 40001-1 (OPC UA for Machinery) building blocks, read under these names.
ITEM_STATE = "item_state"  # MachineryItemState: NotAvailable, OutOfService, NotExecuting, Executing
OPERATION_MODE = "operation_mode"  # MachineryOperationMode: None, Maintenance, Setup, Processing
ITEM_STATES = ("NotAvailable", "OutOfService", "NotExecuting", "Executing")
OPERATION_MODES = ("None", "Maintenance", "Setup", "Processing")


# -- where a signal lives -------------------------------------------------------------------------------------


class Table(StrEnum):
    HOLDING = "holding"  # function 3
    INPUT = "input"  # function 4
    COIL = "coil"  # function 1
    DISCRETE = "discrete"  # function 2


class DataType(StrEnum):
    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"


class Order(StrEnum):
    BIG = "big"  # most significant first (Modbus's own order for bytes; "ABCD" for words)
    LITTLE = "little"  # least significant first ("CDAB" for the words of a 32-bit value)


class _Scaled(_Strict):
    scale: float = Field(1.0, allow_inf_nan=False, description="value = raw × scale + offset")
    offset: float = Field(0.0, allow_inf_nan=False)
    min: float | None = Field(None, allow_inf_nan=False, description="smaller values are refused")
    max: float | None = Field(None, allow_inf_nan=False, description="larger values are refused")
    # Counters only: how far a counter may advance between two polls. A counter that goes down by less than
    # its range allows (new + 2^bits - old ≤ max_step) wrapped; one that goes down otherwise was reset.
    max_step: int = Field(10_000, gt=0)
    wrap_bits: int | None = Field(None, ge=8, le=64, description="counter width; default from the data type")

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class Register(_Scaled):
    """A value in a Modbus table: the address of its first register (0-based, as on the wire)."""

    table: Table = Table.HOLDING
    address: int = Field(ge=0, le=65_535)
    type: DataType = DataType.UINT16
    word_order: Order = Order.BIG
    byte_order: Order = Order.BIG
    bit: int | None = Field(None, ge=0, le=15, description="a flag in one bit of a 16-bit register")

    @model_validator(mode="after")
    def _fits(self) -> Self:
        bits = self.table in (Table.COIL, Table.DISCRETE)
        if bits and self.type is not DataType.BOOL:
            raise ValueError(f"a {self.table.value} holds one bit: type must be bool, not {self.type.value}")
        if self.bit is not None and self.type not in (DataType.UINT16, DataType.INT16, DataType.BOOL):
            raise ValueError("bit picks a flag out of one 16-bit register (type uint16)")
        if self.address + register_count(self) > 65_536:
            raise ValueError("the value runs past register 65535")
        return self


REGISTERS_OF: dict[DataType, int] = {
    DataType.BOOL: 1,
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.FLOAT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT64: 4,
}


def register_count(register: Register) -> int:
    """How many 16-bit registers (or bits, for coils and discrete inputs) the value takes."""
    return REGISTERS_OF[register.type]


class Node(_Scaled):
    """A variable on an OPC UA server: ``path``, a browse path from the machine's object (gateway/opcua_paths.py:
    ``3:Counters/3:Pieces``, ``v:Counters/v:Pieces`` with an alias of ``opcua.namespaces``, or a list of
    ``nsu=<URI>;<Name>`` steps), resolved once per connection, so one model serves every machine whatever NodeIds
    the server gave; or ``node``, a NodeId string (prefer ``nsu=<namespace URI>;…``; ``{machine}`` stands for the
    machine's browse name)."""

    node: str | None = Field(None, min_length=3)
    path: str | list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_address(self) -> Self:
        if (self.node is None) == (self.path is None):
            raise ValueError("give either node (a NodeId string) or path (a browse path from the machine)")
        return self


# -- the rule: signals → state ----------------------------------------------------------------------------------

Match = bool | int | str | list[int] | list[str]


class RuleEntry(_Strict):
    """``state`` when every condition of ``when`` holds. A condition compares a signal (or ``item_state`` /
    ``operation_mode``) with: true / false (non-zero / zero), a number, a name, or a list of them (any of)."""

    state: MachineState
    when: dict[str, Match] = {}
    reason: str | None = Field(None, description="a DOWN with a fixed reason; default: from the fault code")

    @model_validator(mode="after")
    def _known(self) -> Self:
        names = {s.value for s in Signal} | {ITEM_STATE, OPERATION_MODE}
        unknown = sorted(set(self.when) - names)
        if unknown:
            raise ValueError(f"unknown signal {', '.join(unknown)} in when (known: {', '.join(sorted(names))})")
        if self.reason is not None and self.state is not MachineState.DOWN:
            raise ValueError("only a DOWN entry has a reason")
        return self


class FaultTable(_Strict):
    """The controller's fault codes → our reason codes."""

    codes: dict[int, str] = {}
    none: list[int] = Field([0], description="codes that mean no fault")
    unknown: str | None = Field(
        UNKNOWN_FAULT,
        description="reason for a code not in the table (default unknown_fault); null keeps the machine's last "
        "state instead (either way it is counted as unknown_fault_code)",
    )


class OpcUaMap(_Strict):
    machinery: bool = Field(True, description="read the OPC 40001-1 MachineryItemState and MachineryOperationMode")
    namespaces: dict[str, str] = Field({}, description="alias -> namespace URI, for the steps of browse paths")
    signals: dict[Signal, Node] = {}

    @model_validator(mode="after")
    def _paths(self) -> Self:
        for alias in self.namespaces:
            if not alias or alias.isdigit() or any(c in alias for c in ":/&;="):
                raise ValueError(f"namespace alias {alias!r}: a name without digits only, ':', '/', '&', ';', '='")
        for signal, spec in self.signals.items():
            if spec.path is not None:
                try:
                    parse_path(spec.path, self.namespaces)
                except BrowsePathError as error:
                    raise ValueError(f"signals.{signal.value}.path: {error}") from None
        return self


class LampConfig(_Strict):
    """How a stack-light tap's lamps are read over polls (gateway/lamp.py, docs/gateway.md 'A stack-light tap')."""

    blink_phase_max_s: PlantSeconds = Field(
        1.5, description="the longest on or off phase of a blinking lamp: a level held longer is steady"
    )
    debounce_s: float = Field(
        0.0, ge=0, le=60, allow_inf_nan=False, description="a lamp's new level counts once read this long"
    )


class ModelConfig(_Strict):
    """A machine model: its nameplate and, for real controllers, its signal map (one of modbus / opcua)."""

    type: MachineType
    rated_speed: float = Field(gt=0, le=limits.MAX_SPEED, allow_inf_nan=False)
    speed_unit: str = Field(min_length=1, max_length=50)
    service_interval_h: float = Field(gt=0, le=limits.MAX_SERVICE_INTERVAL_H, allow_inf_nan=False)
    modbus: dict[Signal, Register] | None = None
    opcua: OpcUaMap | None = None
    faults: FaultTable = FaultTable()
    rule: list[RuleEntry] | None = Field(None, description="default: docs/gateway.md, 'The state rule'")
    lamp: LampConfig | None = Field(None, description="a stack-light tap's timing; default LampConfig()")

    @property
    def lamps(self) -> list[Signal]:
        """The stack-light lamps the Modbus map places (none: not a lamp tap)."""
        return [lamp for lamp in LAMPS if lamp in (self.modbus or {})]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        allowed = DOWN_REASONS[self.type]
        reasons = [*self.faults.codes.values(), *([self.faults.unknown] if self.faults.unknown else [])]
        reasons += [e.reason for e in self.rule or () if e.reason]
        wrong = sorted({r for r in reasons if r not in allowed})
        if wrong:
            raise ValueError(f"{', '.join(wrong)} is not a {self.type.value} reason code (one of {', '.join(allowed)})")
        for name, register in (self.modbus or {}).items():
            pulses = name is Signal.UNITS and register.type is DataType.BOOL and bool(self.lamps)
            if name in COUNTERS and not pulses and register.type in (DataType.FLOAT32, DataType.FLOAT64, DataType.BOOL):
                raise ValueError(f"counter {name.value} must be an integer type, not {register.type.value}")
            if name in LAMPS and register.type is not DataType.BOOL and register.bit is None:
                raise ValueError(f"lamp {name.value} is one bit: a coil, a discrete input or a bit of a register")
        if self.lamp is not None and not self.lamps:
            raise ValueError("lamp settings, but the Modbus map places no lamp (green, yellow, red, blue)")
        signals = set(self.modbus or {}) | set(self.opcua.signals if self.opcua else {})
        machinery = self.opcua is not None and self.opcua.machinery
        for entry in self.rule or ():
            for read in entry.when:
                if read in (ITEM_STATE, OPERATION_MODE) and not machinery:
                    raise ValueError(f"the rule reads {read}, which only OPC UA for Machinery offers")
                if read not in (ITEM_STATE, OPERATION_MODE) and Signal(read) not in signals:
                    raise ValueError(f"the rule reads {read}, which the signal map does not place")
                expected = entry.when[read]
                named = expected if isinstance(expected, list) else [expected]
                if read in LAMPS and any(not isinstance(e, bool) and e not in LAMP_CONDITIONS for e in named):
                    raise ValueError(f"the rule reads lamp {read} as {expected!r}: off, steady, blinking, true, false")
        if self.rule is None and not machinery and not ({Signal.RUN, Signal.STATE_CODE, *LAMPS} & signals):
            raise ValueError("without a rule the signal map needs at least run (or lamps, or the Machinery blocks)")
        return self


# -- drivers --------------------------------------------------------------------------------------------------


class _Polled(_Strict, PollSettings):  # poll interval, offline_after, reconnect waits: the settings' defaults
    timeout_s: PlantSeconds | None = Field(None, description="one request's time limit; default the poll interval")

    @property
    def timeout(self) -> float:
        return self.timeout_s if self.timeout_s is not None else self.poll_interval_s


class Parity(StrEnum):
    NONE = "none"
    EVEN = "even"  # the Modbus serial line's default
    ODD = "odd"


class SerialLine(_Strict):
    """One serial line (RS-485, or RS-232 to one unit) of Modbus RTU units, polled one request at a time."""

    device: str = Field(min_length=1, description="/dev/ttyUSB0, /dev/serial/by-id/…, COM3, or a pyserial URL")
    baudrate: int = Field(19_200, ge=300, le=1_000_000)
    parity: Parity = Parity.EVEN
    stop_bits: Literal[1, 2] = 1
    local_echo: bool = Field(False, description="the adapter hears what it sends (2-wire without echo cancel)")


class ModbusDriver(_Polled):
    """A unit on Modbus TCP (``host``: its own address, or a Modbus TCP→RTU gateway's, shared by the units
    behind it) or on a serial line of the file's ``serial_lines`` (``line``, Modbus RTU)."""

    kind: Literal["modbus"]
    host: str | None = Field(None, min_length=1)
    port: int = Field(502, ge=1, le=65_535)
    line: str | None = Field(None, min_length=1, description="a serial line under serial_lines (Modbus RTU)")
    unit_id: int = Field(1, ge=0, le=255)

    @model_validator(mode="after")
    def _one_address(self) -> Self:
        if (self.host is None) == (self.line is None):
            raise ValueError("give either host (Modbus TCP) or line (a serial line under serial_lines, Modbus RTU)")
        if self.line is not None and not 1 <= self.unit_id <= 247:
            raise ValueError(f"unit_id {self.unit_id}: a unit on a serial line is 1…247 (0 is broadcast)")
        return self

    @property
    def bus(self) -> str:
        """What the unit shares with the other units on it: its serial line, or its TCP address."""
        return f"line:{self.line}" if self.line is not None else f"tcp:{self.host}:{self.port}"


class SecurityPolicy(StrEnum):
    """The OPC UA security policies the gateway speaks (OPC 10000-7); None only where the network is private."""

    NONE = "None"
    BASIC256SHA256 = "Basic256Sha256"
    AES128_SHA256_RSAOAEP = "Aes128_Sha256_RsaOaep"
    AES256_SHA256_RSAPSS = "Aes256_Sha256_RsaPss"


class SecurityMode(StrEnum):
    NONE = "None"
    SIGN = "Sign"
    SIGN_AND_ENCRYPT = "SignAndEncrypt"


class Secret(_Strict):
    """A secret kept out of the file: the name of an environment variable, or a file that holds it (one line)."""

    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.env is None) == (self.file is None):
            raise ValueError("give either env (an environment variable) or file (a file that holds the secret)")
        return self


class OpcUaUser(_Strict):
    """Who the gateway is on the server: a user name and password, or an X.509 user certificate and its key."""

    username: str | None = Field(None, min_length=1)
    password: Secret | None = None
    certificate: Path | None = Field(None, description="X.509 user certificate (DER or PEM)")
    private_key: Path | None = Field(None, description="its private key (PEM)")
    private_key_password: Secret | None = None

    @field_validator("password", "private_key_password", mode="before")
    @classmethod
    def _never_inline(cls, value: object) -> object:
        if isinstance(value, str | int):
            raise ValueError(  # noqa: TRY004 (pydantic reports ValueError as a validation error, not TypeError)
                "never the secret itself in the file: write {env: VARIABLE} or {file: PATH}"
            )
        return value

    @model_validator(mode="after")
    def _one_token(self) -> Self:
        named = self.username is not None
        if named == (self.certificate is not None):
            raise ValueError("give either username (with password) or certificate (with private_key)")
        if named and self.password is None:
            raise ValueError("a username needs its password: {env: VARIABLE} or {file: PATH}, never the secret itself")
        if not named and self.private_key is None:
            raise ValueError("a user certificate needs its private_key")
        return self


class OpcUaSecurity(_Strict):
    """How the gateway talks to the server: policy and mode of the secure channel, the gateway's application
    instance certificate and the server certificates it trusts (a ``pki`` directory made by `ftel auth opcua`:
    ``own/cert.der``, ``own/key.pem``, ``trusted/``, ``rejected/``), and the user."""

    policy: SecurityPolicy = SecurityPolicy.NONE
    mode: SecurityMode = SecurityMode.NONE
    pki: Path | None = Field(None, description="made by `ftel auth opcua`; needed by every policy but None")
    user: OpcUaUser | None = Field(None, description="default: anonymous")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        plain = self.policy is SecurityPolicy.NONE
        if plain != (self.mode is SecurityMode.NONE):
            raise ValueError("policy None goes with mode None, and every other policy with Sign or SignAndEncrypt")
        if not plain and self.pki is None:
            raise ValueError(f"policy {self.policy.value} needs pki: the directory `ftel auth opcua` made")
        return self


class OpcUaDriver(_Polled):
    kind: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://")
    browse_name: str | None = Field(None, description="the machine under Objects/Machines; default its id")
    identification: dict[str, str] = Field(
        {},
        description="find the machine by its Identification instead (OPC 10000-100 / 40001-1 properties, e.g. "
        "SerialNumber, ProductInstanceUri), where its browse name is not known",
    )
    subscribe: bool = Field(True, description="learn of state changes by subscription where the server offers it")
    security: OpcUaSecurity = OpcUaSecurity()


class SimulatedDriver(_Strict):
    """A simulated machine (simulators/), built by the composition root: the plant file's machine of this id,
    started at the clock's start."""

    kind: Literal["simulated"]
    plant: Path | None = Field(None, description="plant YAML; default the built-in plant")
    machine: Id | None = Field(None, description="the machine in the plant; default this machine's id")


Driver = Annotated[ModbusDriver | OpcUaDriver | SimulatedDriver, Field(discriminator="kind")]


class MachineConfig(_Strict):
    id: Id
    model: str = Field(min_length=1, max_length=200)
    type: MachineType | None = Field(None, description="checked against the model's")
    line: str = Field("line-1", min_length=1, max_length=200)
    rated_speed: float | None = Field(None, gt=0, le=limits.MAX_SPEED, allow_inf_nan=False)
    service_interval_h: float | None = Field(None, gt=0, le=limits.MAX_SERVICE_INTERVAL_H, allow_inf_nan=False)
    driver: Driver


class ClockConfig(_Strict):
    """A simulated plant's clock (lab and tests): plant time runs ``speedup`` times faster than the wall clock
    from ``start_ms`` at wall time ``anchor_ms``. Without it the gateway reads on the wall clock."""

    start_ms: int = Field(ge=limits.EPOCH_MIN_MS, lt=limits.EPOCH_MAX_MS)
    speedup: float = Field(1.0, gt=0, le=10_000)
    anchor_ms: int = Field(ge=limits.EPOCH_MIN_MS, lt=limits.EPOCH_MAX_MS)
    end_ms: int | None = Field(None, description="the gateway stops here (plant time)")


class TimingConfig(_Strict, TimingSettings):
    """Windows, telemetry, heartbeat and tick: the settings' defaults (ftel/settings.py)."""


class GatewayConfig(_Strict):
    site: Id | None = Field(None, description="default: FTEL_SITE")
    workshop: Id
    gateway_id: Id
    clock: ClockConfig | None = None
    timing: TimingConfig = TimingConfig()
    models: dict[str, ModelConfig] = {}
    serial_lines: dict[str, SerialLine] = Field({}, description="Modbus RTU lines by name, for drivers' line")
    machines: list[MachineConfig] = Field(min_length=1, max_length=limits.MAX_MACHINES_PER_GATEWAY)

    @model_validator(mode="after")
    def _machines_fit_models(self) -> Self:
        ids = [m.id for m in self.machines]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"machine ids must be unique; repeated: {', '.join(repeated)}")
        for index, machine in enumerate(self.machines):
            where = f"machines[{index}] ({machine.id})"
            kind = machine.driver.kind
            model = self.models.get(machine.model)
            if model is None:
                if kind != "simulated":
                    known = ", ".join(sorted(self.models)) or "none defined"
                    raise ValueError(f"{where}: model {machine.model!r} is not under models (known: {known})")
                continue
            if machine.type is not None and machine.type is not model.type:
                raise ValueError(f"{where}: type {machine.type.value} but model {machine.model} is {model.type.value}")
            if kind == "modbus" and model.modbus is None:
                raise ValueError(f"{where}: a modbus driver, but model {machine.model} has no modbus signal map")
            if kind == "opcua" and model.opcua is None:
                raise ValueError(f"{where}: an opcua driver, but model {machine.model} has no opcua signal map")
        self._units_apart()
        if any(m.driver.kind == "simulated" for m in self.machines) and self.clock is None:
            raise ValueError("simulated machines need clock (their simulation starts at clock.start_ms)")
        return self

    def _units_apart(self) -> None:
        """Each Modbus unit is one machine: its line (or TCP address) and unit id; lines named exist."""
        seen: dict[tuple[str, int], str] = {}
        for machine in self.machines:
            driver = machine.driver
            if not isinstance(driver, ModbusDriver):
                continue
            if driver.line is not None and driver.line not in self.serial_lines:
                known = ", ".join(sorted(self.serial_lines)) or "none defined"
                raise ValueError(f"{machine.id}: line {driver.line!r} is not under serial_lines (known: {known})")
            other = seen.setdefault((driver.bus, driver.unit_id), machine.id)
            if other != machine.id:
                raise ValueError(f"{machine.id} and {other} are both unit {driver.unit_id} on {driver.bus}")


# -- loading, with the line of each error ---------------------------------------------------------------------


def load_gateway_config(path: Path) -> GatewayConfig:
    """Read and validate a gateway configuration file; a ConfigError names the file, the line and the field."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read the gateway configuration {path}: {error.strerror}") from error
    return parse_gateway_config(text, source=str(path))


def parse_gateway_config(text: str, *, source: str = "<config>") -> GatewayConfig:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{line}: not valid YAML: {getattr(error, 'problem', error)}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a gateway configuration is a mapping (workshop, gateway_id, models, machines)")
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as error:
        problems = [
            f"{source} line {_line_of(root, e['loc'])}, {_field(e['loc'])}: {e['msg']}" for e in error.errors()[:10]
        ]
        raise ConfigError("\n".join(problems)) from None


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("modbus", "opcua", "simulated") and out.endswith("driver"):
            continue  # pydantic names the union member it tried; the file does not have that level
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """The line (1-based) of the deepest part of ``loc`` that the YAML has."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child, line = value, key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            if part in ("modbus", "opcua", "simulated"):
                continue
            break
        node = child
    return line
