from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftel.contract import (
    ContractError,
    Decoded,
    MachineKind,
    decode,
    encode,
    machine_topic,
    parse_topic,
    read_message,
    topic_of,
)
from ftel.contract.codec import MAX_PAYLOAD_BYTES
from gateway.core import GatewayTiming
from simulators.plant import generate_plant
from tests.plant_replay import run_gateway

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,20}\Z")
TOPIC = machine_topic("qinghe", "knit", "knitting", "KNIT-001", MachineKind.EVENT)
GOOD = {
    "site": "qinghe",
    "workshop": "knit",
    "gateway_id": "gw-knit",
    "seq": 7,
    "ts": 1_795_000_000_000,
    "machine_type": "knitting",
    "machine_id": "KNIT-001",
    "state": "DOWN",
    "reason": "yarn_break",
    "prev_state": "RUNNING",
    "prev_duration_ms": 61_000,
}


def payload(**changes: object) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


@given(site=ids, workshop=ids, machine=ids)
def test_topics_round_trip_through_the_parser(site: str, workshop: str, machine: str) -> None:
    topic = machine_topic(site, workshop, "carding", machine, MachineKind.WINDOW)
    address = parse_topic(topic)
    assert (address.site, address.workshop, address.machine_id, address.kind) == (
        site,
        workshop,
        machine,
        "window",
    )
    assert str(address) == topic


def test_a_good_event_decodes() -> None:
    _, message = decode(TOPIC, payload())
    assert message.reason == "yarn_break"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"{not json", "Invalid JSON"),
        (payload(prev_duration_ms="61000"), "prev_duration_ms"),
        (payload(prev_duration_ms=-1), "prev_duration_ms"),
        (payload(reason="ends_down"), "not a knitting reason code"),
        (payload(state="IDLE"), "only DOWN carries a reason"),
        (payload(machine_id="KNIT-002"), "differs from payload"),
        (payload(extra_field=1), "extra_field"),
        (payload(v=2), "v:"),
        (b"[" + b"1," * MAX_PAYLOAD_BYTES + b"1]", "exceeds"),
    ],
)
def test_bad_payloads_are_rejected_with_a_reason(bad: bytes, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        decode(TOPIC, bad)


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("ftel/v1/qinghe/knit/loom/X-1/event", "unknown machine type"),
        ("ftel/v1/qinghe/knit/knitting/X-1/gossip", "unknown machine message kind"),
        ("ftel/v1/qinghe/kn it/knitting/X-1/event", "not a valid id"),
        ("ftel/v2/qinghe/knit/knitting/X-1/event", "not of the form"),
        ("ftel/v1/health/knit/knitting/X-1/event", "reserved"),
        ("ftel/v1/confirm/knit/knitting/X-1/event", "reserved"),
    ],
)
def test_bad_topics_are_rejected_with_a_reason(topic: str, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        decode(topic, payload())


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_never_raise_anything_but_a_contract_error(junk: bytes) -> None:
    with pytest.raises(ContractError):
        decode(TOPIC, junk)


@given(value=st.sampled_from([float("nan"), float("inf"), -float("inf")]))
def test_non_finite_numbers_are_rejected(value: float) -> None:
    topic = machine_topic("qinghe", "knit", "knitting", "KNIT-001", MachineKind.TELEMETRY)
    body = {
        **{k: GOOD[k] for k in ("site", "workshop", "gateway_id", "seq", "ts", "machine_type", "machine_id")},
        "state": "RUNNING",
        "speed": 0.9,
        "temperature": value,
        "units_total": 1,
        "defects_total": 0,
        "run_ms_since_service": 5,
    }
    with pytest.raises(ContractError, match="temperature"):
        decode(topic, json.dumps(body).encode())


WINDOW_TOPIC = machine_topic("qinghe", "knit", "knitting", "KNIT-001", MachineKind.WINDOW)
GOOD_WINDOW = {
    **{k: GOOD[k] for k in ("site", "workshop", "gateway_id", "seq", "machine_type", "machine_id")},
    "ts": 1_795_000_020_000,
    "window_start": 1_794_999_960_000,
    "window_ms": 60_000,
    "state_ms": {"RUNNING": 50_000, "IDLE": 0, "SETUP": 0, "DOWN": 10_000, "MAINTENANCE": 0, "OFFLINE": 0},
    "down_ms_by_reason": {"yarn_break": 10_000},
    "stops_by_reason": {"yarn_break": 1},
    "units": 3,
    "defects": 0,
}
TELEMETRY_TOPIC = machine_topic("qinghe", "knit", "knitting", "KNIT-001", MachineKind.TELEMETRY)
GOOD_TELEMETRY = {
    **{k: GOOD[k] for k in ("site", "workshop", "gateway_id", "seq", "ts", "machine_type", "machine_id")},
    "state": "RUNNING",
    "speed": 0.9,
    "temperature": 37.5,
    "units_total": 1,
    "defects_total": 0,
    "run_ms_since_service": 5,
}


def test_a_good_window_and_good_telemetry_decode() -> None:
    decode(WINDOW_TOPIC, json.dumps(GOOD_WINDOW).encode())
    decode(TELEMETRY_TOPIC, json.dumps(GOOD_TELEMETRY).encode())


@pytest.mark.parametrize(
    ("topic", "base", "changes", "reason"),
    [
        # What InfluxDB would refuse: integers beyond its 64 bits, a point at epoch 0.
        (TOPIC, GOOD, {"seq": 2**63}, "seq"),
        (TELEMETRY_TOPIC, GOOD_TELEMETRY, {"units_total": 2**64}, "units_total"),
        (WINDOW_TOPIC, GOOD_WINDOW, {"window_start": 0, "ts": 60_000}, "(ts|window_start): Input should be greater"),
        # What cannot be true.
        (WINDOW_TOPIC, GOOD_WINDOW, {"window_ms": 10**12}, "window_ms"),
        (WINDOW_TOPIC, GOOD_WINDOW, {"stops_by_reason": {"yarn_break": 10**6}}, "stops cannot happen"),
        (WINDOW_TOPIC, GOOD_WINDOW, {"units": 10**9, "defects": 0}, "units cannot be made"),
        (
            WINDOW_TOPIC,
            GOOD_WINDOW,
            {"window_start": 4_102_444_800_000, "ts": 4_102_444_860_000},
            "(ts|window_start): Input should be less",
        ),
        (WINDOW_TOPIC, GOOD_WINDOW, {"ts": 1_795_000_090_000}, "outside the window and the phase"),
        (TELEMETRY_TOPIC, GOOD_TELEMETRY, {"temperature": -300.0}, "temperature"),
        (TELEMETRY_TOPIC, GOOD_TELEMETRY, {"speed": 1e300}, "speed"),
        (TOPIC, GOOD, {"prev_duration_ms": 10**15}, "prev_duration_ms"),
        # A strict version: true is not 1, 2 is not spoken.
        (TOPIC, GOOD, {"v": True}, "v"),
        (TOPIC, GOOD, {"v": 2}, "version 2 is not spoken"),
    ],
)
def test_values_influxdb_would_refuse_or_that_cannot_be_true_are_rejected(
    topic: str, base: dict[str, object], changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(ContractError, match=reason):
        decode(topic, json.dumps({**base, **changes}).encode())


def test_a_birth_re_states_machines_it_lists_with_reasons_that_fit() -> None:
    topic = "ftel/v1/qinghe/knit/gateway/gw-knit/status"
    birth = {
        **{k: GOOD[k] for k in ("site", "workshop", "gateway_id", "seq", "ts")},
        "online": True,
        "boot_id": 1_795_000_000_000,
        "machines": {"KNIT-001": "knitting"},
        "states": {"KNIT-001": {"state": "DOWN", "reason": "yarn_break", "since_ms": 1_794_999_000_000}},
    }
    decode(topic, json.dumps(birth).encode())
    wrong_reason = {**birth, "states": {"KNIT-001": {"state": "DOWN", "reason": "fibre_choke", "since_ms": 1}}}
    with pytest.raises(ContractError, match="since_ms"):
        decode(topic, json.dumps(wrong_reason).encode())
    wrong_reason["states"]["KNIT-001"]["since_ms"] = 1_794_999_000_000  # type: ignore[index]
    with pytest.raises(ContractError, match="not a knitting reason code"):
        decode(topic, json.dumps(wrong_reason).encode())
    unknown = {**birth, "states": {"KNIT-009": {"state": "IDLE", "since_ms": 1_794_999_000_000}}}
    with pytest.raises(ContractError, match="does not list"):
        decode(topic, json.dumps(unknown).encode())
    with pytest.raises(ContractError, match="announces a death"):
        decode(topic, json.dumps({**birth, "will": True}).encode())


def test_a_confirmation_must_arrive_on_its_gateway_topic() -> None:
    from ftel.contract import Confirmation, confirm_topic, decode_confirmation, encode

    confirmation = Confirmation(
        site="qinghe", workshop="knit", gateway_id="gw-knit", worker="ingest-1", ranges=[(3, 5)]
    )
    topic = confirm_topic("qinghe", "knit", "gw-knit")
    assert decode_confirmation(topic, encode(confirmation)).seqs() == [3, 4, 5]
    with pytest.raises(ContractError, match="arrived on"):
        decode_confirmation(confirm_topic("qinghe", "yarn", "gw-knit"), encode(confirmation))
    with pytest.raises(ContractError, match="backwards"):
        decode_confirmation(topic, encode(confirmation).replace(b"[3,5]", b"[5,3]"))


@pytest.mark.parametrize(
    ("payload_bytes", "expected"),
    [
        (payload(), ("qinghe", "knit", "gw-knit", 7)),
        (payload(reason="ends_down"), ("qinghe", "knit", "gw-knit", 7)),  # invalid, still confirmable
        (payload(seq="7"), None),
        (payload(gateway_id="a b"), None),
        (b"{not json", None),
    ],
)
def test_the_sender_of_a_message_is_read_leniently(payload_bytes: bytes, expected: tuple[object, ...] | None) -> None:
    from ftel.contract import read_message

    sender = read_message(TOPIC, payload_bytes).sender
    assert (None if sender is None else (sender.site, sender.workshop, sender.gateway_id, sender.seq)) == expected


def test_every_message_a_gateway_sends_reads_back_from_the_topic_it_is_published_on() -> None:
    plant = generate_plant(60, per_workshop=30, site="s")
    start = 1_795_402_800_000
    run = run_gateway(
        plant,
        plant.workshops[0].id,
        start_ms=start,
        first_read_ms=start,
        end_ms=start + 3_600_000,
        steps_ms=[5_000],
        timing=GatewayTiming(60_000, 30_000, 10_000, 0, telemetry_spread=True),
        boot_id=start,
    )
    kinds = set()
    for message in run.messages:
        judged = read_message(topic_of(message), encode(message))
        assert isinstance(judged, Decoded), judged
        assert judged.message == message
        kinds.add(judged.address.kind)
    assert kinds >= {"meta", "event", "window", "telemetry", "status", "heartbeat", "rollup"}
