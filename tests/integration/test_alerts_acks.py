"""The alert worker's acknowledgements on the real broker (its real transport and store): a message whose commit
failed is not acknowledged, so the broker hands it out again to the worker's next start, and once committed and
acknowledged it is not handed out again. tests/unit/test_alerts_worker.py shows the same with fakes, step by step."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from alerts.rules import AlertConfig, load_config
from alerts.store import Store
from alerts.worker import STORE_FILE, AlertWorker
from ftel.contract.codec import encode
from ftel.contract.models import Heartbeat
from ftel.contract.topics import GatewayKind, gateway_topic
from ftel.mqtt import paho_client
from ftel.security.identities import Role
from ftel.settings import Settings
from tests.support import Services, unique, wait_until

pytestmark = pytest.mark.integration


class FailingStore(Store):
    """The real store, whose commits fail from when ``fail`` is set (a full disk, say)."""

    fail = False

    def commit(self, *args: object, **kwargs: object) -> int:  # type: ignore[override]
        if self.fail:
            raise sqlite3.OperationalError("database or disk is full")
        return super().commit(*args, **kwargs)  # type: ignore[arg-type]


@dataclass
class Running:
    worker: AlertWorker
    stop: threading.Event
    thread: threading.Thread
    errors: list[BaseException]

    def end(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def start(settings: Settings, config: AlertConfig, store: Store) -> Running:
    worker = AlertWorker(settings, config, store=store)
    stop, errors = threading.Event(), []

    def main() -> None:
        try:
            worker.run(stop)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=main, name="alert-worker", daemon=True)
    thread.start()
    wait_until(worker.subscribed.is_set, timeout_s=30, what="the worker's subscriptions", every_s=0.02)
    return Running(worker, stop, thread, errors)


def send_heartbeat(settings: Settings, site: str, ts: int) -> None:
    beat = Heartbeat(
        site=site, workshop="w", gateway_id="gw-1", seq=1, ts=ts, boot_id=ts, uptime_ms=0, machines=0, spool_depth=0,
        spool_dropped=0,
    )  # fmt: skip
    client = paho_client(settings.mqtt, client_id="")
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    try:
        topic = gateway_topic(site, "w", "gw-1", GatewayKind.HEARTBEAT)
        client.publish(topic, encode(beat), qos=1).wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def site_and_settings(services: Services, database: str) -> tuple[str, Settings, Settings]:
    site = unique("acks")
    identity = services.grant(unique("alerts"), Role.ALERTS)
    return site, services.settings(database, site=site, identity=identity), services.admin(database)


@pytest.mark.logs_exceptions
def test_a_message_whose_commit_failed_is_handed_out_again_and_once_acknowledged_never(
    site_and_settings: tuple[str, Settings, Settings], tmp_path: Path
) -> None:
    site, settings, admin = site_and_settings
    config = load_config()
    config = config.model_copy(update={"worker": config.worker.model_copy(update={"state_dir": tmp_path})})
    first_ts = time.time_ns() // 1_000_000

    failing = FailingStore(tmp_path / "first" / STORE_FILE)
    first = start(settings, config, failing)
    failing.fail = True  # (after the rebuild's own commit)
    send_heartbeat(admin, site, first_ts)
    first.thread.join(30)
    assert not first.thread.is_alive(), "the worker goes on after a failed commit"
    assert [type(e) for e in first.errors] == [sqlite3.OperationalError]
    assert first.worker.messages_seen == 1

    # The next start (the same identity, so the same session) gets the message again: it was not acknowledged.
    second = start(settings, config, Store(tmp_path / "second" / STORE_FILE))
    try:
        wait_until(lambda: second.worker.messages_seen == 1, timeout_s=30, what="the redelivery", every_s=0.02)
        assert second.worker.engine.state.clock_ms == first_ts
    finally:
        second.end()
    assert second.errors == []

    # Committed and acknowledged by the second: the third gets only what came after.
    send_heartbeat(admin, site, first_ts + 1000)
    third = start(settings, config, Store(tmp_path / "third" / STORE_FILE))
    try:
        wait_until(lambda: third.worker.messages_seen >= 1, timeout_s=30, what="the next message", every_s=0.02)
        assert third.worker.engine.state.clock_ms == first_ts + 1000
    finally:
        third.end()
    assert third.worker.messages_seen == 1
    assert third.errors == []
