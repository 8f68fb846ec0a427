"""Every case generated from the contract (tests/contract_cases.py) through the consumers' own logic, without
services: the ingest worker (its fake transport and writer) stores exactly what the oracle says is good and
dead-letters the rest with a stage and a reason, confirms only what the contract bounds, and never stops; the
alert worker judges the same. tests/integration/test_generated_input.py publishes the same cases through a real
Mosquitto to real workers while a simulated plant runs. A Hypothesis search over random values in every field
adds what the walk does not reach; every case a search has found is kept as an explicit example."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from alerts.engine import read_filters
from alerts.rules import load_config
from alerts.worker import AlertWorker
from ftel.contract import Confirmation
from ftel.contract.codec import MODEL_BY_KIND
from ftel.contract.topics import parse_topic
from ftel.settings import IngestSettings, Settings
from ftel.storage.lineproto import encode_point
from ftel.storage.points import to_points
from ingest.worker import IngestWorker
from tests.contract_cases import Case, base_messages, generate, model_accepts, oracle, render, topic_for
from tests.support import wait_until
from tests.unit.test_ingest_worker import FakeTransport, FakeWriter

INGEST = IngestSettings(worker_id="w-1", flush_interval_s=0.01, health_interval_s=3600, batch_size=500)
NOW = int(time.time() * 1000)
CASES = generate(NOW - 600_000)


def must_store(case: Case) -> bool:
    limits = INGEST.time_limits()
    return oracle(
        case,
        received_ms=int(time.time() * 1000),
        max_future_skew_ms=limits.max_future_skew_ms,
        max_age_ms=limits.max_age_ms,
    )


def lines_of(case: Case) -> list[str]:
    model = MODEL_BY_KIND[parse_topic(case.topic).kind]
    return [encode_point(point) for point in to_points(model.model_validate_json(case.payload))]  # type: ignore[arg-type]


def test_the_generator_covers_every_kind_and_field_and_knows_its_bounds() -> None:
    names = {case.name for case in CASES}
    for kind, model in MODEL_BY_KIND.items():
        for field_name in model.model_fields:
            assert any(n.startswith(f"{kind}:{field_name}=") for n in names), f"{kind}.{field_name} has no case"
    disagreeing = [
        c.name for c in CASES if c.expect is not None and (model_accepts(c) is True) != (c.expect == "valid")
    ]
    assert disagreeing == []
    assert sum(1 for c in CASES if model_accepts(c)) > 100  # good cases too, not only refusals


@pytest.fixture
def ingest_rig() -> Iterator[tuple[IngestWorker, FakeTransport, FakeWriter, threading.Thread]]:
    transport, writer = FakeTransport(), FakeWriter()
    worker = IngestWorker(Settings(ingest=INGEST), transport=transport, writer=writer)
    transport.on_message = worker._on_message
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    yield worker, transport, writer, thread
    stop.set()
    thread.join(10)


def test_the_ingest_worker_stores_every_good_case_and_dead_letters_every_bad_one(ingest_rig) -> None:  # type: ignore[no-untyped-def]
    worker, transport, writer, thread = ingest_rig
    transport.send(*((case.topic, case.payload, n) for n, case in enumerate(CASES, start=1)))
    wait_until(lambda: len(transport.entries("ack")) == len(CASES), timeout_s=60, what="every case acked", every_s=0.05)
    assert thread.is_alive()
    letters = [json.loads(p) for _, p, _ in transport.published("ftel/v1/deadletter/w-1")]
    bad = [case for case in CASES if not must_store(case)]
    assert [(d["topic"], d["size"]) for d in letters] == [(c.topic, len(c.payload)) for c in bad]
    assert all(d["reason"] and d["stage"] and d["error_type"] for d in letters)
    assert {d["error_type"] for d in letters} == {"ContractError"}  # each refused by a check, none by a fault
    # What each good case must become, from the oracle's own reading of it (pydantic parsing the bytes).
    expected = Counter(line for case in CASES if must_store(case) for line in lines_of(case))
    own = ("dead_letter,", "ingest_health,", "gateway_seen,")  # the worker's own points
    stored = Counter(line for line in writer.lines() if not line.startswith(own))
    assert stored == expected
    for _, payload, _ in transport.published("ftel/v1/confirm/"):
        Confirmation.model_validate_json(payload)  # every confirmation follows the contract
    assert worker.stats.messages_in == len(CASES)


def test_the_alert_worker_judges_every_case_as_ingest_does(tmp_path: Path) -> None:
    config = load_config()
    options = config.worker.model_copy(update={"state_dir": tmp_path})
    alerts = AlertWorker(Settings(ingest=INGEST), config.model_copy(update={"worker": options}))
    received = [case for case in CASES if any(topic_matches_sub(f, case.topic) for f in read_filters(alerts.site))]
    for case in received:
        letter = alerts._handle(case.topic, case.payload)
        assert (letter is None) == must_store(case), case.name
        if letter is not None:
            assert letter.reason
            assert letter.error_type == "ContractError"
    assert alerts.messages_seen == len(received) > 2000


# -- a search over random values, for what the walk does not reach ---------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
KINDS = sorted(MODEL_BY_KIND)
BASES = base_messages(NOW - 600_000)


def searched_case(kind: str, key: str, value: object) -> Case:
    body = {**BASES[kind], key: value}
    text = render({k: v for k, v in body.items() if not (isinstance(v, float) and not math.isfinite(v))})
    if isinstance(value, float) and not math.isfinite(value):
        text = text[:-1] + f', "{key}": {json.dumps(value)}}}'.encode()
    return Case(f"{kind}:{key}", topic_for(kind, body, str(body.get("machine_id") or body["gateway_id"])), text)


@settings(max_examples=300, deadline=None)
@example(kind="event", key="seq", value=2**63)  # killed a worker after it was judged (its confirmation)
@example(kind="event", key="extra", value=[[[[]]]])
@example(kind="telemetry", key="seq", value=-(2**63) - 1)
@example(kind="window", key="state_ms", value={"RUNNING": 2**63})
@example(kind="status", key="states", value={"FUZZ-0": {"state": "DOWN", "reason": None, "since_ms": 0}})
@given(
    kind=st.sampled_from(KINDS),
    key=st.sampled_from(sorted({k for b in BASES.values() for k in b} | {"x"})),
    value=json_values,
)
def test_random_values_in_any_field_are_stored_or_dead_lettered_never_raised(
    kind: str, key: str, value: object
) -> None:
    from ftel.boundary import Fault, contain
    from ingest.batch import Batch, confirmations
    from ingest.route import Accepted, route

    case = searched_case(kind, key, value)
    outcome = contain(
        lambda stage: route(case.topic, case.payload, received_ms=int(time.time() * 1000), limits=INGEST.time_limits()),
        first_stage="route",
        what=case.topic,
    )
    assert not isinstance(outcome, Fault), outcome
    assert isinstance(outcome, Accepted) == must_store(case)
    batch = Batch(1)
    if outcome.sender is not None:
        batch.senders.append(outcome.sender)
    confirmations(batch.senders, worker="w-1")  # a sender that passed its bounds always makes a valid confirmation
