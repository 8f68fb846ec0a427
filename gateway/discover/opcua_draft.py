"""What an OPC UA browse found → candidate signals and a draft gateway file (pure: no client).

Candidates are guessed from the variables' browse names and data types (a counter is an unsigned integer named
like pieces or count; a fault code an integer named like alarm or fault; speed and temperature numbers named so);
every guess is marked ``# check`` in the draft. Machines of one type whose drafted models are equal share one, with
signals as browse paths from the machine, so the NodeIds the server gave each machine do not matter. The type alone
does not decide: machines of one type may carry different variables (a server built on the OPC Foundation's
Machinery example keeps its ``ExampleMachine01``, which has none of the vendor's, beside the vendor's machines of
that type), so such a type gets a model per variant, named after the type and the variant's first machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from gateway.config import Signal
from gateway.discover import machine_id

INTEGERS = frozenset({"SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64"})
NUMBERS = INTEGERS | {"Float", "Double"}
# Signal → (data types it may have, words its browse name may contain), in the order candidates are picked.
HINTS: dict[Signal, tuple[frozenset[str], tuple[str, ...]]] = {
    Signal.FAULT_CODE: (INTEGERS, ("alarm", "fault", "error", "errorcode", "stopcode", "failure")),
    Signal.UNITS: (INTEGERS, ("piece", "pieces", "count", "counter", "units", "parts", "produced", "good", "output")),
    Signal.DEFECTS: (INTEGERS, ("reject", "rejects", "scrap", "defect", "defects", "bad")),
    Signal.SPEED: (NUMBERS, ("speed", "rpm", "velocity", "rate")),
    Signal.TEMPERATURE: (NUMBERS, ("temp", "temperature")),
    Signal.SERVICE_HOURS: (NUMBERS, ("hours", "operatinghours", "runtime", "runhours")),
    Signal.RUN: (frozenset({"Boolean"}), ("run", "running", "active", "production", "busy")),
}


@dataclass(frozen=True, slots=True)
class Variable:
    """A variable under a machine: its browse path from the machine (steps as ``<ns URI>``/name pairs), its data
    type's name and the value read once."""

    path: tuple[tuple[str, str], ...]
    data_type: str
    value: object

    @property
    def name(self) -> str:
        return self.path[-1][1]

    @property
    def names(self) -> list[str]:
        return [name for _, name in self.path]


@dataclass
class MachineFound:
    browse_name: str
    namespace: str  # the URI of its browse name's namespace
    type_name: str
    identification: dict[str, str] = field(default_factory=dict)
    blocks: str | None = None  # None: both building blocks found; else why not
    variables: list[Variable] = field(default_factory=list)


def _words(name: str) -> set[str]:
    """``CarriageSpeed`` → {carriage, speed, carriagespeed}: camel case and separators split."""
    parts = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)
    words = {p.lower() for p in parts}
    return words | {name.lower().replace("_", "").replace(" ", "")}


def candidates(variables: list[Variable]) -> dict[Signal, list[Variable]]:
    """Per signal, the variables that may be it (best first: a name that is exactly a hint word first)."""
    out: dict[Signal, list[Variable]] = {}
    for signal, (types, hints) in HINTS.items():
        # A name says what it is with its parents' help (Alarm/Code, Counters/Good).
        found = [v for v in variables if v.data_type in types and set().union(*map(_words, v.names)) & set(hints)]
        found.sort(key=lambda v: (v.name.lower() not in hints, len(v.path)))
        if found:
            out[signal] = found
    return out


def _aliases(machines: list[MachineFound]) -> dict[str, str]:
    """A short alias per namespace URI the paths use (``v``, ``v2``…)."""
    uris: list[str] = []
    for machine in machines:
        for variable in machine.variables:
            for uri, _ in variable.path:
                if uri not in uris and uri != "http://opcfoundation.org/UA/":
                    uris.append(uri)
    return {uri: ("v" if i == 0 else f"v{i + 1}") for i, uri in enumerate(uris)}


def path_text(variable: Variable, aliases: dict[str, str]) -> str:
    def step(uri: str, name: str) -> str:
        escaped = name.replace("&", "&&").replace("/", "&/").replace(":", "&:")
        return f"{aliases[uri]}:{escaped}" if uri in aliases else escaped

    return "/".join(step(uri, name) for uri, name in variable.path)


@dataclass(frozen=True, slots=True)
class DraftOptions:
    endpoint: str
    workshop: str = "workshop-1"
    gateway_id: str = "gw-1"
    security: dict[str, object] | None = None  # the driver's security, as the file writes it


def _model(first: MachineFound, aliases: dict[str, str]) -> tuple[dict[str, object], list[str]]:
    """A model for a machine (and those like it), from its variables, and the notes for its comments."""
    found = candidates(first.variables)
    machinery = first.blocks is None
    signals: dict[str, object] = {}
    notes: list[str] = []
    for signal, options in found.items():
        if signal is Signal.RUN and machinery:
            continue  # the building blocks tell running
        chosen = options[0]
        signals[signal.value] = {"path": path_text(chosen, aliases)}
        others = ", ".join(path_text(v, aliases) for v in options[1:4])
        notes.append(
            f"{signal.value}: {path_text(chosen, aliases)} ({chosen.data_type}, read {chosen.value!r})"
            + (f"; also possible: {others}" if others else "")
        )
    opcua: dict[str, object] = {"machinery": machinery}
    used = {uri for v in first.variables for uri, _ in v.path}
    namespaces = {alias: uri for uri, alias in aliases.items() if uri in used}
    if namespaces:
        opcua["namespaces"] = namespaces
    opcua["signals"] = signals
    model: dict[str, object] = {
        "type": "knitting",
        "rated_speed": 1.0,
        "speed_unit": "m/s",
        "service_interval_h": 200,
        "opcua": opcua,
        "faults": {"codes": {}},
    }
    if not machinery:
        notes.append(f"no Machinery building blocks ({first.blocks}): the state comes from run and fault_code")
        if "run" not in signals and "fault_code" in signals:
            model["rule"] = [{"state": "DOWN", "when": {"fault_code": True}}, {"state": "IDLE"}]
    return model, notes


def _models(machines: list[MachineFound], aliases: dict[str, str]) -> dict[str, list[MachineFound]]:
    """Model name -> its machines: those of one type whose drafted models are equal share one."""
    variants: dict[str, dict[str, list[MachineFound]]] = {}
    for machine in machines:
        model, _ = _model(machine, aliases)
        shape = yaml.safe_dump(model, sort_keys=True)
        variants.setdefault(machine.type_name, {}).setdefault(shape, []).append(machine)
    named: dict[str, list[MachineFound]] = {}
    for type_name, shapes in variants.items():
        for members in shapes.values():
            name = type_name if len(shapes) == 1 else f"{type_name} ({members[0].browse_name})"
            named[name] = members
    return named


def draft(machines: list[MachineFound], options: DraftOptions) -> str:
    """The draft gateway file (YAML with comments): a model per type and variant, every machine found."""
    aliases = _aliases(machines)
    lines = [
        f"# Drafted by `ftel gateway discover --opcua {options.endpoint}`: check every line marked `check`,",
        "# then `ftel gateway probe --config THIS_FILE` with each machine in each state (docs/gateway.md).",
        f"workshop: {options.workshop}",
        f"gateway_id: {options.gateway_id}",
        "models:",
    ]
    entries = []
    for name, members in _models(machines, aliases).items():
        model, notes = _model(members[0], aliases)
        lines.append(f"  # {name}: {len(members)} machine(s) of type {members[0].type_name}. Candidates (check):")
        lines += [f"  #   {note}" for note in notes]
        lines.append("  # check: type (carding | spinning | knitting), rated_speed, speed_unit, service_interval_h,")
        lines.append("  # and faults.codes (the vendor's fault codes -> reason codes, ftel/contract/states.py)")
        body = yaml.safe_dump({name: model}, sort_keys=False, allow_unicode=True, width=200)
        lines += ["  " + line for line in body.splitlines()]
        entries += [(name, m) for m in members]
    lines.append("machines:")
    used_ids: set[str] = set()
    for model_name, machine in entries:
        ident = machine_id(machine.browse_name)
        while ident in used_ids:
            ident = f"{ident}-2"
        used_ids.add(ident)
        driver: dict[str, object] = {"kind": "opcua", "endpoint": options.endpoint, "browse_name": machine.browse_name}
        if options.security:
            driver["security"] = options.security
        entry = {"id": ident, "model": model_name, "driver": driver}
        shown = ", ".join(f"{k} {v}" for k, v in machine.identification.items() if v and k in ("SerialNumber", "Model"))
        if shown:
            lines.append(f"  # {machine.browse_name}: {shown}")
        body = yaml.safe_dump([entry], sort_keys=False, allow_unicode=True, width=200, default_flow_style=None)
        lines += ["  " + line for line in body.splitlines()]
    return "\n".join(lines) + "\n"
