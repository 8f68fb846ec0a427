from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftel.contract import ContractError, MachineKind, decode, machine_topic, parse_topic
from ftel.contract.codec import MAX_PAYLOAD_BYTES

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
