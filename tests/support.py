"""Shared test plumbing: real services on free loopback ports, unique databases and topics per test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ftel.mqtt import paho_client
from ftel.ready import ready_env
from ftel.security.credentials import credential_env, with_identity
from ftel.security.identities import ADMIN, Identity, Role
from ftel.settings import AuthSettings, InfluxSettings, IngestSettings, MqttSettings, Settings, StackSettings
from ftel.stack import LocalStack

# Ten years: the pinned day of tests/sim_start.py stays inside the workers' time limits for as long as it matters.
PINNED_DAY_MAX_AGE_S = 10 * 365 * 24 * 3600

if TYPE_CHECKING:
    from ftel.plant.layout import Plant


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Services:
    """The session's stack, secured as `ftel stack up` secures it: every client needs an identity."""

    stack: LocalStack

    def settings(self, database: str, *, identity: str | None = None, **overrides: object) -> Settings:
        """Settings pointing at this test's own database (created here, with the role users' grants) on the
        shared test stack, with the stack's credentials file.

        Without ``identity`` they carry no credentials: code that knows who it is (an ingest worker by its
        worker id, a gateway by its gateway id, `ftel alerts`) finds its own in the file. With ``identity``
        they carry that identity's MQTT and InfluxDB credentials (``admin`` can do anything). The broker
        takes the username as the client id: two clients connected as one identity push each other off.
        """
        self.stack.prepare_database(database)
        settings = Settings(
            mqtt=MqttSettings(host="127.0.0.1", port=self.stack.mqtt_port),
            influx=InfluxSettings(url=self.stack.influx_url, database=database, retention_policy="autogen"),
            auth=AuthSettings(credentials_file=self.stack.auth_files.credentials),
            # Each test's own directory for what its processes keep (gateways' spools and checkpoints, alert
            # state): nothing carries over from one test, or one run, to the next.
            stack=StackSettings(dir=self.stack.directory / "runs" / database),
            # Simulated plants start on a pinned day (tests/sim_start.py): without this, the workers' refusal of
            # messages older than 90 days would fail the suite from that day's 90th day on.
            **({"ingest": IngestSettings(max_age_s=PINNED_DAY_MAX_AGE_S)} | overrides),  # type: ignore[arg-type]
        )
        return settings if identity is None else with_identity(settings, identity)

    def admin(self, database: str, **overrides: object) -> Settings:
        """The test's own view of everything (queries, setup): the ``admin`` identity."""
        return self.settings(database, identity=ADMIN, **overrides)

    def grant(self, identity: str, role: Role | str, *, site: str | None = None, workshop: str | None = None) -> str:
        """Add ``identity`` (or re-bind it, e.g. a gateway id to this test's site) to the credentials, password
        and ACL files and reload the broker; returns the name. Tests run one at a time, so re-binding a
        shared gateway id such as gw-yarn to a test's unique site is safe."""
        self.stack.grant(Identity(identity, Role(role), site, workshop))
        return identity

    def grant_plant(self, plant: Plant) -> None:
        """Every gateway of ``plant``, bound to its site and workshop."""
        for workshop in plant.workshops:
            self.grant(workshop.gateway_id, Role.GATEWAY, site=plant.site, workshop=workshop.id)


T = TypeVar("T")


def ftel_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for an `ftel` subprocess that uses these settings (and their credentials, if any)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTEL_")}
    env |= {
        "FTEL_MQTT__PORT": str(settings.mqtt.port),
        "FTEL_INFLUX__URL": settings.influx.url,
        "FTEL_INFLUX__DATABASE": settings.influx.database,
        "FTEL_INFLUX__RETENTION_POLICY": settings.influx.retention_policy,
        "FTEL_SITE": settings.site,
        "FTEL_INGEST__MAX_AGE_S": str(settings.ingest.max_age_s),
        "FTEL_STACK__DIR": str(settings.stack.dir),
        # The process finds its own identity in the credentials file, unless the settings carry one.
        "FTEL_AUTH__CREDENTIALS_FILE": str(settings.credentials_file),
        **credential_env(settings),
        **extra,
    }
    return env


def start_ftel(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`ftel ARGS` logging to ``log``; a worker among them says it is ready beside it (``wait_ready(log)``)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ftel.app", *args],
            env=env | ready_env(ready_file(log)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def wait_until(check: Callable[[], T | None], *, timeout_s: float, what: str, every_s: float = 0.2) -> T:
    """Poll until ``check`` returns something truthy; fail with ``what`` after the (generous) timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout_s:.0f} s")
        time.sleep(every_s)


def ready_file(log: Path) -> Path:
    return log.with_suffix(".ready")


def wait_ready(log: Path, *, timeout_s: float = 60) -> None:
    """The worker started by ``start_ftel`` with this log is subscribed (ftel/ready.py), not read from its log."""
    wait_until(ready_file(log).exists, timeout_s=timeout_s, what=f"the worker logging to {log} to be ready")


def wait_for_log(log: Path, text: str, *, timeout_s: float = 60) -> None:
    wait_until(
        lambda: log.exists() and text in log.read_text(errors="replace"),
        timeout_s=timeout_s,
        what=f"{text!r} in {log}",
    )


class MqttProbe:
    """A real paho client (built by ftel.mqtt, like every component's) that records what happens to it: the
    broker's answer to CONNECT, the reason code of each PUBACK, what it receives, whether it was cut off."""

    def __init__(self, mqtt: MqttSettings, *, client_id: str = "", clean_start: bool = True, expiry_s: int = 0):
        self.client = paho_client(mqtt, client_id=client_id)
        self._settings = mqtt
        self._clean_start = clean_start
        self._expiry_s = expiry_s
        self.answered = threading.Event()
        self.connack: str | None = None
        self.disconnected = threading.Event()
        self.messages: list[tuple[str, bytes, bool]] = []
        self._subscribed = threading.Event()
        self._acks: dict[int, str] = {}
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        # Refused or cut off: stay so (a probe never retries, so what it saw is what the broker said).
        self.client.reconnect_delay_set(3600, 3600)

    def _on_connect(self, client: object, userdata: object, flags: object, reason: ReasonCode, props: object) -> None:
        self.connack = str(reason)
        self.answered.set()

    def _on_disconnect(
        self, client: object, userdata: object, flags: object, reason: ReasonCode, props: object
    ) -> None:
        self.disconnected.set()
        self.answered.set()

    def _on_message(self, client: object, userdata: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def _on_publish(self, client: object, userdata: object, mid: int, reason: ReasonCode, props: object) -> None:
        with self._lock:
            # 'No matching subscribers' is an acceptance too.
            self._acks[mid] = str(reason) if reason.is_failure else "Success"

    def _on_subscribe(
        self, client: object, userdata: object, mid: int, reasons: list[ReasonCode], props: object
    ) -> None:
        self._subscribed.set()

    def connect(self, *, timeout_s: float = 10) -> MqttProbe:
        """Connect and wait for the broker's answer (see ``connack``; a refused probe is not ``connected``)."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._expiry_s
        self.client.connect(
            self._settings.host, self._settings.port, clean_start=self._clean_start, properties=properties
        )
        self.client.loop_start()
        if not self.answered.wait(timeout_s):
            raise AssertionError(f"no answer to CONNECT from {self._settings.host}:{self._settings.port}")
        return self

    @property
    def connected(self) -> bool:
        return self.connack == "Success" and not self.disconnected.is_set()

    def subscribe(self, topic: str, *, timeout_s: float = 10) -> None:
        self._subscribed.clear()
        self.client.subscribe(topic, qos=1)
        if not self._subscribed.wait(timeout_s):
            raise AssertionError(f"no SUBACK for {topic}")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, timeout_s: float = 10) -> str:
        """Publish with QoS 1; return 'Success' if the broker accepted it, else its PUBACK's reason."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout_s)
        with self._lock:
            return self._acks.pop(info.mid)

    def received(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def wait_for(self, topic: str, payload: bytes, *, timeout_s: float = 30) -> None:
        wait_until(lambda: payload in self.received(topic), timeout_s=timeout_s, what=f"{payload!r} on {topic}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stop_processes(processes: Iterable[subprocess.Popen[bytes]], *, timeout_s: float) -> None:
    """SIGTERM each process still running, in the given order; SIGKILL one that outlasts ``timeout_s``."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout_s)
