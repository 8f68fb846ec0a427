"""Hostile cases generated from the wire contract itself, not picked by hand.

For every message kind and every field of its model (and every entry of its dict fields, and the fields of the
models nested in it), a walk over the field's own constraints (pydantic's metadata: ge/gt/le/lt, lengths,
patterns, enums, dict and list shapes) gives the values at and one past each bound, and the values every field
meets on a hostile wire: int64's edges, negatives and zero, NaN and the infinities, empty and very long strings,
wrong types, objects and arrays nested up to the payload limit, duplicated keys, timestamps far off. Whole
payloads are then mutated as a wire mangles them (cut, bytes flipped, other encodings, extra and missing keys),
and topics as a confused gateway writes them.

Each case says what the generator knows of it (``expect``): ``valid`` or ``invalid`` by construction where the
bound alone decides, None where other fields decide too. Which cases a consumer must store is then told by an
oracle apart from the consumer's own path (``oracle``: the model's JSON-mode validation, the topic, the time
limits), and the unit tests check the two agree.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ftel.contract import limits
from ftel.contract.codec import MAX_PAYLOAD_BYTES, MODEL_BY_KIND
from ftel.contract.errors import ContractError
from ftel.contract.topics import (
    PREFIX,
    RESERVED_SITES,
    GatewayKind,
    MachineKind,
    gateway_topic,
    machine_topic,
    parse_topic,
)

SITE = "qinghe"
WORKSHOP = "fuzz"
GATEWAY = "gw-fuzz"
WINDOW_MS = 60_000
# Fields whose valid values other fields decide too (window sums, a birth's states, times inside a window):
# at a bound they may still be refused, so the generator does not say.
ENTANGLED = frozenset(
    {
        "v",
        "ts",
        "window_start",
        "window_ms",
        "state_ms",
        "down_ms_by_reason",
        "stops_by_reason",
        "units",
        "defects",
        "defects_before",
        "machines",
        "states",
        "online",
        "will",
        "state",
        "reason",
        "prev_state",
        "prev_reason",
        "since_ms",
        "machine_type",
        "site",
        "workshop",
        "gateway_id",
        "machine_id",
        "seq",
    }
)
LONG_TEXT = "羊" * 5000
NESTING_DEPTHS = (10, 100, 199, 200, 201, 202, 999, 1000)


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    topic: str
    payload: bytes
    expect: str | None = None  # "valid" / "invalid" by construction, or None: other fields decide


def base_messages(ts: int) -> dict[str, dict[str, Any]]:
    """One valid payload of each kind, stamped ``ts`` (its window ends there)."""
    header = {"v": 1, "site": SITE, "workshop": WORKSHOP, "gateway_id": GATEWAY, "seq": 1, "ts": ts}
    machine = {**header, "machine_type": "knitting", "machine_id": "FUZZ-0"}
    state_ms = {"RUNNING": 40_000, "IDLE": 5_000, "SETUP": 0, "DOWN": 15_000, "MAINTENANCE": 0, "OFFLINE": 0}
    window = {
        "window_start": ts - WINDOW_MS,
        "window_ms": WINDOW_MS,
        "state_ms": state_ms,
        "down_ms_by_reason": {"yarn_break": 15_000},
        "stops_by_reason": {"yarn_break": 2},
        "units": 3,
        "defects": 1,
        "partial": False,
    }
    return {
        MachineKind.META: {
            **machine,
            "model": "SCG 2-52",
            "line": "line 1",
            "rated_speed": 1.2,
            "speed_unit": "m/s",
            "service_interval_h": 500.0,
        },
        MachineKind.EVENT: {
            **machine,
            "state": "DOWN",
            "reason": "yarn_break",
            "prev_state": "RUNNING",
            "prev_reason": None,
            "prev_duration_ms": 61_000,
        },
        MachineKind.WINDOW: {**machine, **window},
        MachineKind.TELEMETRY: {
            **machine,
            "state": "RUNNING",
            "speed": 0.95,
            "temperature": 36.5,
            "units_total": 120,
            "defects_total": 2,
            "run_ms_since_service": 3_600_000,
        },
        MachineKind.JOB: {
            **machine,
            "program": "17",
            "units_before": 2,
            "defects_before": 0,
            "run_ms_before": 30_000,
        },
        GatewayKind.STATUS: {
            **header,
            "online": True,
            "boot_id": ts - 1000,
            "machines": {"FUZZ-0": "knitting"},
            "states": {"FUZZ-0": {"state": "RUNNING", "reason": None, "since_ms": ts - 500}},
            "will": False,
        },
        GatewayKind.HEARTBEAT: {
            **header,
            "boot_id": ts - 1000,
            "uptime_ms": 1000,
            "machines": 1,
            "spool_depth": 0,
            "spool_dropped": 0,
            "refused": {"FUZZ-0/unknown_fault_code": 1},
        },
        GatewayKind.ROLLUP: {**header, "machine_type": "knitting", "machine_id": "FUZZ-0", "machines": 1, **window},
    }


def topic_for(kind: str, body: dict[str, Any], unique: str) -> str:
    """The topic of a case: its own machine (or gateway) id, so what is stored can be found again."""
    if kind in GatewayKind.__members__.values():
        return gateway_topic(SITE, WORKSHOP, unique, GatewayKind(kind))
    return machine_topic(SITE, WORKSHOP, "knitting", unique, MachineKind(kind))


def identity_key(kind: str) -> str:
    return "gateway_id" if kind in GatewayKind.__members__.values() else "machine_id"


def with_identity(kind: str, body: dict[str, Any], unique: str) -> dict[str, Any]:
    """The case's own id where its points are keyed: its machine, or its gateway (and then the machine a
    birth names, or a roll-up is of), so no two cases write the same point."""
    named = {**body, identity_key(kind): unique}
    if kind == GatewayKind.ROLLUP and isinstance(body.get("machine_id"), str):
        named["machine_id"] = unique
    for key in ("machines", "states"):
        entries = body.get(key)
        if kind == GatewayKind.STATUS and isinstance(entries, dict) and "FUZZ-0" in entries:
            named[key] = {unique if k == "FUZZ-0" else k: v for k, v in entries.items()}
    return named


# -- values from a field's constraints ------------------------------------------------------------------------


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern", "allow_inf_nan"):
            value = getattr(item, name, None)
            if value is not None:
                found[name] = value
    return found


def _unwrap(annotation: Any) -> tuple[Any, dict[str, Any]]:
    """The bare type and the constraints an Annotated (or a FieldInfo inside one) carries."""
    found: dict[str, Any] = {}
    while get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        for item in extra:
            found.update(_constraints(getattr(item, "metadata", [item])))
    return annotation, found


def _is_optional(annotation: Any) -> tuple[bool, Any]:
    args = get_args(annotation)
    if type(None) in args and len(args) == 2:
        return True, next(a for a in args if a is not type(None))
    return False, annotation


def bound_values(annotation: Any, found: dict[str, Any]) -> Iterator[tuple[str, Any, str | None]]:
    """(label, value, expect) at and one past each bound of one field."""
    optional, annotation = _is_optional(annotation)
    annotation, more = _unwrap(annotation)
    found = {**more, **found}
    if optional:
        yield "null", None, "valid"
    else:
        yield "null", None, "invalid"
    if annotation is bool:
        yield from (
            ("true", True, "valid"),
            ("false", False, "valid"),
            ("int-1", 1, "invalid"),
            ("str", "true", "invalid"),
        )
    elif annotation is int:
        yield from _int_bounds(found)
    elif annotation is float:
        yield from _float_bounds(found)
    elif annotation is str:
        yield from _str_bounds(found)
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        for member in annotation:
            yield f"member-{member.value}", member.value, "valid"
        first = next(iter(annotation)).value
        yield "lower-case", str(first).lower() if str(first).lower() != first else str(first).upper(), "invalid"
        yield "unknown-member", "NOT_A_MEMBER", "invalid"
        yield "int", 1, "invalid"
    if annotation is not str:
        yield "a-string", "1", "invalid"
    if annotation is not bool:
        yield "a-bool", True, "invalid"
    yield "an-array", [], "invalid"
    yield "an-object", {}, None if get_origin(annotation) is dict or _is_model(annotation) else "invalid"


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _int_bounds(found: dict[str, Any]) -> Iterator[tuple[str, Any, str | None]]:
    low = found.get("ge", found["gt"] + 1 if "gt" in found else None)
    high = found.get("le", found["lt"] - 1 if "lt" in found else None)
    if low is not None:
        yield "at-low", low, "valid"
        yield "below-low", low - 1, "invalid"
    if high is not None:
        yield "at-high", high, "valid"
        yield "above-high", high + 1, "invalid"
    for label, value in (
        ("int64-max", limits.INT64_MAX),
        ("int64-max+1", limits.INT64_MAX + 1),
        ("uint64-max+1", 2**64),
        ("int64-min", -(2**63)),
        ("int64-min-1", -(2**63) - 1),
        ("huge", 10**40),
        ("zero", 0),
        ("minus-one", -1),
    ):
        inside = (low is None or value >= low) and (high is None or value <= high)
        yield label, value, "valid" if inside else "invalid"
    yield "float-integral", 1.0, "invalid"
    yield "float", 1.5, "invalid"
    yield from _non_finite()


def _float_bounds(found: dict[str, Any]) -> Iterator[tuple[str, Any, str | None]]:
    def inside(value: float) -> bool:
        return (
            ("ge" not in found or value >= found["ge"])
            and ("gt" not in found or value > found["gt"])
            and ("le" not in found or value <= found["le"])
            and ("lt" not in found or value < found["lt"])
        )

    for name, outward in (("ge", -math.inf), ("gt", -math.inf), ("le", math.inf), ("lt", math.inf)):
        if name in found:
            bound = float(found[name])
            for label, value in (
                (f"{name}-bound", bound),
                (f"{name}-next-out", math.nextafter(bound, outward)),
                (f"{name}-next-in", math.nextafter(bound, -outward)),
            ):
                yield label, value, "valid" if inside(value) else "invalid"
    for label, value in (("zero", 0.0), ("int", 1), ("tiny", 5e-324), ("huge", 1e308), ("overflow", 1e400)):
        if math.isinf(value):
            yield label, _Raw("1e400"), "invalid"  # parses as infinity
        else:
            yield label, value, "valid" if inside(value) else "invalid"
    yield from _non_finite()


def _non_finite() -> Iterator[tuple[str, Any, str | None]]:
    # JSON cannot say these; a hostile writer does (json.dumps writes NaN and Infinity as bare words).
    yield "nan", math.nan, "invalid"
    yield "infinity", math.inf, "invalid"
    yield "minus-infinity", -math.inf, "invalid"


def _str_bounds(found: dict[str, Any]) -> Iterator[tuple[str, Any, str | None]]:
    if "pattern" in found:  # an id: the pattern is its bound
        yield "id-64", "A" * 64, "valid"
        yield "id-65", "A" * 65, "invalid"
        for label, value in (
            ("empty", ""),
            ("space", "a b"),
            ("comma-equals", "a,b=c"),
            ("newline", "a\nb"),
            ("slash", "a/b"),
            ("wildcard", "+"),
            ("hash", "#"),
            ("dollar", "$share"),
            ("cjk", "羊绒"),
            ("nul", "a\u0000"),
            ("leading-dash", "-a"),
        ):
            yield label, value, "invalid"
        return
    low, high = found.get("min_length", 0), found.get("max_length")
    if low:
        yield "at-min-length", "x" * low, "valid"
        yield "below-min-length", "x" * (low - 1), "invalid"
    if high:
        yield "at-max-length", "羊" * high, "valid"
        yield "above-max-length", "x" * (high + 1), "invalid"
    for label, value in (
        ("quotes", 'a "b", c=d'),
        ("newline", "line 1\nline 2\\"),
        ("backslash-end", "x\\"),
        ("nul", "a\u0000b"),
        ("emoji", "😀"),
    ):
        yield label, value, "valid"
    yield "long", LONG_TEXT, "invalid" if high and high < len(LONG_TEXT) else "valid"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def deepest_that_fits(room: int) -> int:
    return max(1, room // 2)


# -- the cases -----------------------------------------------------------------------------------------------


class _Raw(str):
    """Text put into a payload as it is (bare NaN, nesting, a duplicated key)."""


def render(body: dict[str, Any], raw: dict[str, str] | None = None) -> bytes:
    """JSON of ``body``; a value that is a _Raw (or in ``raw``) is written as it is."""
    parts = []
    for key, value in body.items():
        text = value if isinstance(value, _Raw) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{json.dumps(key)}: {text}")
    for key, text in (raw or {}).items():
        parts.append(f"{json.dumps(key)}: {text}")
    return ("{" + ", ".join(parts) + "}").encode()


def generate(ts: int) -> list[Case]:
    """Every case, in a fixed order (the same list every run)."""
    cases: list[Case] = []
    counter = iter(range(1, 10**9))

    def add(kind: str, name: str, body: dict[str, Any], expect: str | None, *, raw_text: bytes | None = None) -> None:
        unique = f"F{next(counter):06d}"  # as long as FUZZ-ID, so a payload keeps its length
        mutated_identity = name.startswith(f"{identity_key(kind)}=")
        topic = topic_for(kind, body, unique)
        named = with_identity(kind, body, unique)
        if name.startswith("machine_id=") and "machine_id" in body:
            named["machine_id"] = body["machine_id"]  # a roll-up's machine id is the value under test
        body = body if mutated_identity else named
        payload = raw_text.replace(b"FUZZ-ID", unique.encode()) if raw_text is not None else render(body)
        cases.append(Case(f"{kind}:{name}", topic, payload, expect))

    for kind, base in base_messages(ts).items():
        model = MODEL_BY_KIND[kind]
        add(kind, "base", base, "valid")
        for field_name, info in model.model_fields.items():
            entangled = field_name in ENTANGLED
            annotation, found = _unwrap(info.annotation)
            found = {**found, **_constraints(info.metadata)}
            for label, value, expect in bound_values(annotation, found):
                body = {**base, field_name: value}
                if isinstance(value, float) and not math.isfinite(value):
                    body[field_name] = _Raw(json.dumps(value))
                add(kind, f"{field_name}={label}", body, None if entangled and expect == "valid" else expect)
            for depth in (*NESTING_DEPTHS, deepest_that_fits(MAX_PAYLOAD_BYTES - len(render(base)) - 16)):
                add(kind, f"{field_name}=nested-{depth}", {**base, field_name: _Raw(nested(depth))}, "invalid")
            if field_name in base:
                rest = {k: v for k, v in base.items() if k != field_name}
                required = info.is_required()
                add(kind, f"{field_name}=missing", rest, "invalid" if required else None)
                valid_text = json.dumps(base[field_name], ensure_ascii=False)
                for label, first, last, expect in (
                    ("duplicated-bad-last", valid_text, '[["NOT VALID"]]', "invalid"),
                    ("duplicated-good-last", '[["NOT VALID"]]', valid_text, None),
                ):
                    text = _with_duplicate(kind, rest, field_name, first, last)
                    add(kind, f"{field_name}={label}", base, expect, raw_text=text)
            yield_dicts = _dict_entries(annotation)
            if yield_dicts is not None and isinstance(base.get(field_name), dict):
                key_type, value_type = yield_dicts
                for label, value, expect in _entry_values(key_type, value_type, base[field_name]):
                    add(kind, f"{field_name}.{label}", {**base, field_name: value}, None if entangled else expect)
        for label, text in _whole_payloads(render(with_identity(kind, base, "FUZZ-ID"))):
            add(kind, label, base, "invalid", raw_text=text)
        add(kind, "extra-key", {**base, "extra": 1}, "invalid")
        add(kind, "ts-far-future", {**base, "ts": ts + 400 * 86_400_000}, None)
        add(kind, "ts-far-past", {**base, "ts": limits.EPOCH_MIN_MS}, None)
        cases.extend(_mutations(kind, base, counter))
    cases.extend(_topics(base_messages(ts)))
    return cases


def _with_duplicate(kind: str, rest: dict[str, Any], field_name: str, first: str, last: str) -> bytes:
    """The payload with ``field_name`` twice (``first``, then ``last``): JSON leaves the winner to the reader."""
    body = render({k: v for k, v in with_identity(kind, rest, "FUZZ-ID").items() if k != field_name})
    return body[:-1] + f', "{field_name}": {first}, "{field_name}": {last}}}'.encode()


def _dict_entries(annotation: Any) -> tuple[Any, Any] | None:
    bare, _ = _unwrap(annotation)
    if get_origin(bare) is dict:
        key_type, value_type = get_args(bare)
        return key_type, value_type
    return None


def _entry_values(key_type: Any, value_type: Any, base: dict[str, Any]) -> Iterator[tuple[str, Any, str | None]]:
    """A dict field's entries: each key's value at and past its bounds, unknown and hostile keys, sizes."""
    first = next(iter(base), "k")
    bare_value, found = _unwrap(value_type)
    if _is_model(bare_value):
        for field_name, info in bare_value.model_fields.items():
            inner_annotation, inner_found = _unwrap(info.annotation)
            for label, value, _ in bound_values(inner_annotation, {**inner_found, **_constraints(info.metadata)}):
                entry = {**base[first], field_name: value} if isinstance(base[first], dict) else {field_name: value}
                yield f"{first}.{field_name}={label}", {**base, first: entry}, None
    else:
        for label, value, expect in bound_values(bare_value, found):
            if isinstance(value, float) and not math.isfinite(value):
                continue  # a bare NaN inside a dict is covered by the field-level cases
            yield f"{first}={label}", {**base, first: value}, expect
    for label, key in (("unknown-key", "NOT_A_KEY"), ("empty-key", ""), ("hostile-key", 'a "b",c=d\n' * 10)):
        yield label, {**base, key: next(iter(base.values()), 1)}, None
    yield "empty", {}, None
    yield "many-keys", {f"K{n}": next(iter(base.values()), 1) for n in range(limits.MAX_MACHINES_PER_GATEWAY + 1)}, None


def _whole_payloads(text: bytes) -> Iterator[tuple[str, bytes]]:
    """What a wire does to a whole payload."""
    yield "empty-payload", b""
    yield "json-array", b"[" + text + b"]"
    yield "json-string", json.dumps(text.decode()).encode()
    yield "json-number", b"42"
    yield "json-null", b"null"
    yield "utf-16", text.decode().encode("utf-16")
    yield "bom", b"\xef\xbb\xbf" + text
    yield "latin-1-bytes", text + b"\xff"
    yield "trailing-garbage", text + b"}"
    for cut in (1, len(text) // 2, len(text) - 1):
        yield f"cut-at-{cut}", text[:cut]
    yield "over-the-limit", text[:-1] + b" " * (MAX_PAYLOAD_BYTES + 1 - len(text)) + b"}"
    yield "nested-to-the-limit", b"[" * (MAX_PAYLOAD_BYTES // 2) + b"]" * (MAX_PAYLOAD_BYTES // 2)
    yield "objects-nested-to-the-limit", b'{"a":' * (MAX_PAYLOAD_BYTES // 6) + b"1" + b"}" * (MAX_PAYLOAD_BYTES // 6)


def _mutations(kind: str, base: dict[str, Any], counter: Iterator[int]) -> list[Case]:
    """Random mutations of a valid payload, from a fixed seed: a value replaced, a key dropped, added or
    duplicated, bytes cut or flipped (the same every run)."""
    rng = random.Random(f"ftel-{kind}")
    out: list[Case] = []
    junk: list[Any] = [None, True, -1, 0, 2**63, -(2**63) - 1, 1.5, "", "x" * 300, [], {}, [[[]]], {"a": {}}]
    for n in range(40):
        unique = f"F{next(counter):06d}"
        body = with_identity(kind, dict(base), unique)
        topic = topic_for(kind, body, unique)
        how = rng.choice(("replace", "drop", "add", "flip", "cut"))
        if how == "replace":
            body[rng.choice(sorted(body))] = rng.choice(junk)
        elif how == "drop":
            body.pop(rng.choice(sorted(body)))
        elif how == "add":
            body[f"k{rng.randrange(100)}"] = rng.choice(junk)
        payload = render(body)
        if how == "flip":
            at_byte = rng.randrange(len(payload))
            payload = payload[:at_byte] + bytes([payload[at_byte] ^ (1 << rng.randrange(8))]) + payload[at_byte + 1 :]
        elif how == "cut":
            payload = payload[: rng.randrange(len(payload))]
        out.append(Case(f"{kind}:mutation-{n}-{how}", topic, payload, None))
    return out


def _topics(bases: dict[str, dict[str, Any]]) -> list[Case]:
    """Topics as a confused or hostile gateway writes them (payloads valid)."""
    body = render(bases[MachineKind.TELEMETRY])
    machine = f"{SITE}/{WORKSHOP}/knitting/FUZZ-0"
    topics = [
        f"{PREFIX}/{machine}",  # too short
        f"{PREFIX}/{machine}/telemetry/extra",  # too deep
        f"{PREFIX}/{SITE}/{WORKSHOP}/weaving/FUZZ-0/telemetry",  # unknown machine type
        f"{PREFIX}/{machine}/video",  # unknown kind
        f"{PREFIX}/{SITE}/other/knitting/FUZZ-0/telemetry",  # workshop differs from the payload's
        f"{PREFIX}/{SITE}/{WORKSHOP}/knitting/FUZZ-9/telemetry",  # machine differs
        f"ftel/v2/{machine}/telemetry",  # another version
        *(f"{PREFIX}/{site}/{WORKSHOP}/knitting/FUZZ-0/telemetry" for site in sorted(RESERVED_SITES)),
        f"{PREFIX}/{SITE}/{WORKSHOP}/gateway/{GATEWAY}/telemetry",  # a machine kind at the gateway level
        f"{PREFIX}/{SITE}/{WORKSHOP}/knitting/{'A' * 65}/telemetry",
    ]
    return [Case(f"topic:{n}", topic, body, "invalid") for n, topic in enumerate(topics)]


# -- the oracle ---------------------------------------------------------------------------------------------


def model_accepts(case: Case) -> bool | None:
    """The contract's verdict on a case, time apart (None when the topic is not a data topic at all): the
    payload limit, the model's JSON-mode validation (pydantic parsing the bytes itself, a path apart from the
    consumers' one parse) and the topic agreeing with the payload."""
    try:
        address = parse_topic(case.topic)
    except ContractError:
        return None
    if len(case.payload) > MAX_PAYLOAD_BYTES:
        return False
    try:
        message = MODEL_BY_KIND[address.kind].model_validate_json(case.payload)
    except ValidationError:
        return False
    pairs = [("site", address.site), ("workshop", address.workshop)]
    if address.is_gateway:
        pairs.append(("gateway_id", address.machine_id))
    else:
        pairs += [("machine_type", address.machine_type), ("machine_id", address.machine_id)]
    return all(str(getattr(message, name)) == value for name, value in pairs)


def oracle(case: Case, *, received_ms: int, max_future_skew_ms: int, max_age_ms: int) -> bool:
    """Whether a consumer must store this case: the contract accepts it and its time is within the limits."""
    if not model_accepts(case):
        return False
    ts = int(json.loads(case.payload)["ts"])
    return received_ms - max_age_ms <= ts <= received_ms + max_future_skew_ms


__all__ = ["Case", "generate", "model_accepts", "oracle"]
