"""The alert worker's boundary per message (no services): what it cannot use, or what its engine fails on, comes
back as a dead letter with the stage and the reason, and the next message is judged as usual. The integration
test tests/integration/test_generated_input.py proves the same through a real broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alerts.rules import load_config
from alerts.worker import AlertWorker
from ftel.contract import MAX_PAYLOAD_BYTES
from ftel.contract.topics import ACK_TOPIC
from ftel.settings import Settings
from tests.unit.test_contract import GOOD, TOPIC


def worker(tmp_path: Path) -> AlertWorker:
    config = load_config()
    return AlertWorker(
        Settings(), config.model_copy(update={"worker": config.worker.model_copy(update={"state_dir": tmp_path})})
    )


def good(seq: int) -> bytes:
    return json.dumps({**GOOD, "seq": seq, "ts": GOOD["ts"] + seq}).encode()


@pytest.mark.parametrize(
    ("payload", "stage", "reason"),
    [
        (json.dumps({**GOOD, "seq": 2**63}).encode(), "validate", "seq"),
        (good(2)[:-1] + b', "x": ' + b"[" * 1000 + b"]" * 1000 + b"}", "parse", "recursion limit"),
        (b"\xff\xfe not utf-8", "parse", "JSON"),
        (b"[" * (MAX_PAYLOAD_BYTES + 1), "parse", "exceeds"),
    ],
)
def test_what_the_worker_cannot_use_is_a_dead_letter_with_its_stage(
    tmp_path: Path, payload: bytes, stage: str, reason: str
) -> None:
    alerts = worker(tmp_path)
    letter = alerts._handle(TOPIC, payload)
    assert letter is not None
    assert letter.stage == stage
    assert letter.error_type == "ContractError"
    assert reason in letter.reason
    assert alerts._handle(TOPIC, good(3)) is None  # the next one is judged as usual


@pytest.mark.parametrize("payload", [b"[1]", b'{"alert_id": 5}', b"[" * 5000, b'{"by": "x"}'])
def test_an_unreadable_ack_command_is_a_dead_letter(tmp_path: Path, payload: bytes) -> None:
    letter = worker(tmp_path)._handle(ACK_TOPIC, payload)
    assert letter is not None
    assert letter.stage == "parse"


@pytest.mark.logs_exceptions
def test_a_message_the_engine_fails_on_is_a_dead_letter_and_the_engine_goes_on(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    alerts = worker(tmp_path)
    real = alerts.engine.observe

    def failing(message):  # type: ignore[no-untyped-def]
        if message.seq == 2:
            raise ZeroDivisionError("a rule divided by a zero this message holds")
        return real(message)

    monkeypatch.setattr(alerts.engine, "observe", failing)
    letter = alerts._handle(TOPIC, good(2))
    assert letter is not None
    assert (letter.stage, letter.error_type) == ("engine", "ZeroDivisionError")
    assert "divided by a zero" in letter.reason
    assert alerts._handle(TOPIC, good(3)) is None
    assert alerts.messages_seen == 2
