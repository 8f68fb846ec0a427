"""Secure by default, shown against the real stack that `ftel stack up`'s code starts: each test is a refusal
(anonymous, a gateway outside its workshop, a forged acknowledgement, confirmation or retained alert, a stolen
client id, a read-only identity writing, InfluxDB users beyond their access, TLS without trust) next to the
allowed case, so it cannot pass by everything being refused."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from ftel.contract import MachineKind, machine_topic
from ftel.contract.states import MachineType
from ftel.contract.topics import ALERT_PREFIX, CONFIRM_PREFIX, PREFIX
from ftel.plant.layout import MachineSpec, Plant, Workshop
from ftel.security.credentials import load_credentials, with_identity
from ftel.security.identities import ACK_TOPIC, Role
from ftel.settings import AuthSettings, InfluxSettings, MqttSettings, Settings, StackSettings
from ftel.stack import LocalStack, free_port, stack_from_settings
from ftel.storage.query import InfluxQuery, QueryError
from ftel.storage.writer import V1Writer, WriteError
from tests.integration.test_hostile_input import telemetry
from tests.support import MqttProbe, Services, ftel_env, start_ftel, unique, wait_ready, wait_until

pytestmark = pytest.mark.integration
REFUSED = "Not authorized"


@pytest.fixture
def probes() -> Iterator[list[MqttProbe]]:
    opened: list[MqttProbe] = []
    yield opened
    for probe in opened:
        probe.close()


@pytest.fixture
def open_probe(services: Services, database: str, probes: list[MqttProbe]):  # type: ignore[no-untyped-def]
    def open_as(identity: str | None, **options: object) -> MqttProbe:
        settings = services.settings(database) if identity is None else services.settings(database, identity=identity)
        probe = MqttProbe(settings.mqtt, **options)  # type: ignore[arg-type]
        probes.append(probe)
        return probe.connect()

    return open_as


def watcher(services: Services, open_probe, topic: str = "#") -> MqttProbe:  # type: ignore[no-untyped-def]
    """An admin subscribed to everything: what the broker routes, it sees."""
    probe: MqttProbe = open_probe(services.grant(unique("watch"), Role.ADMIN))
    probe.subscribe(topic)
    return probe


# -- MQTT ----------------------------------------------------------------------------------------------------


def test_an_anonymous_client_is_refused(open_probe) -> None:  # type: ignore[no-untyped-def]
    probe = open_probe(None)
    assert probe.connack == REFUSED
    assert not probe.connected


def test_a_wrong_password_is_refused(services: Services, database: str, probes: list[MqttProbe]) -> None:
    name = services.grant(unique("gw"), Role.GATEWAY, site=unique("s"), workshop="yarn")
    mqtt = services.settings(database, identity=name).mqtt
    probe = MqttProbe(mqtt.model_copy(update={"password": SecretStr("not the password")}))
    probes.append(probe)
    assert probe.connect().connack == REFUSED


def test_a_gateway_publishes_only_in_its_own_workshop(services: Services, open_probe) -> None:  # type: ignore[no-untyped-def]
    site = unique("s")
    name = services.grant(unique("gw"), Role.GATEWAY, site=site, workshop="yarn")
    services.grant(unique("gw"), Role.GATEWAY, site=site, workshop="knit")
    watch = watcher(services, open_probe)
    gw = open_probe(name)
    assert gw.connected
    forged = {
        f"{PREFIX}/{site}/knit/carding/CARD-001/event": b"another workshop",
        f"{PREFIX}/{unique('other')}/yarn/carding/CARD-001/event": b"another site",
        f"{PREFIX}/{site}/knit/gateway/gw-knit/status": b"another gateway's death",
        ACK_TOPIC: b'{"alert_id": "x", "by": "gateway"}',
        f"{CONFIRM_PREFIX}/{site}/yarn/{name}": b"its own confirmation",
        f"{PREFIX}/deadletter/{name}": b"a dead letter",
    }
    for topic, payload in forged.items():
        assert gw.publish(topic, payload) == REFUSED, topic
    own = f"{PREFIX}/{site}/yarn/carding/CARD-001/event"
    assert gw.publish(own, b"its own machine") == "Success"
    # The broker routes one client's messages in order: the allowed one arriving means the refused ones,
    # sent before it, would have arrived already.
    watch.wait_for(own, b"its own machine")
    for topic in forged:
        assert watch.received(topic) == [], topic


def test_what_a_gateway_forges_for_another_workshop_is_never_stored(  # type: ignore[no-untyped-def]
    services: Services, database: str, tmp_path: Path, open_probe
) -> None:
    site = unique("s")
    name = services.grant(unique("gw"), Role.GATEWAY, site=site, workshop="yarn")
    worker_id = services.grant(unique("ingest"), Role.INGEST)
    log = tmp_path / "worker.log"
    worker = start_ftel(
        ["ingest", "--worker-id", worker_id], ftel_env(services.settings(database), FTEL_INGEST__GROUP=database), log
    )
    try:
        wait_ready(log)
        gw = open_probe(name)
        ts = time.time_ns() // 1_000_000 - 60_000
        forged = machine_topic(site, "knit", "knitting", "FORGED-1", MachineKind.TELEMETRY)
        own = machine_topic(site, "yarn", "knitting", "OWN-1", MachineKind.TELEMETRY)
        where = {"site": site, "gateway_id": name}
        assert gw.publish(forged, telemetry(ts, "FORGED-1", workshop="knit", **where)) == REFUSED
        assert gw.publish(own, telemetry(ts, "OWN-1", workshop="yarn", **where)) == "Success"
        query = InfluxQuery(services.admin(database).influx)
        stored = wait_until(
            lambda: query.rows("SELECT speed, workshop FROM telemetry"), timeout_s=60, what="the gateway's own point"
        )
        assert [(row["machine_id"], row["workshop"]) for row in query.rows("SELECT * FROM telemetry")] == [
            ("OWN-1", "yarn")
        ], stored
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


def test_a_gateway_cannot_plant_a_retained_fake_alert(services: Services, open_probe) -> None:  # type: ignore[no-untyped-def]
    gw = open_probe(services.grant(unique("gw"), Role.GATEWAY, site=unique("s"), workshop="yarn"))
    topic = f"{ALERT_PREFIX}/{unique('fake')}"
    assert gw.publish(topic, b'{"status": "resolved"}', retain=True) == REFUSED
    late = watcher(services, open_probe, topic)  # a retained message would be delivered on subscribing…
    alerts = open_probe(services.grant(unique("alerts"), Role.ALERTS))
    assert alerts.publish(topic, b"sentinel") == "Success"  # …before anything published after it
    late.wait_for(topic, b"sentinel")
    assert late.received(topic) == [b"sentinel"]


def test_a_gateway_receives_its_own_confirmations_only(services: Services, open_probe) -> None:  # type: ignore[no-untyped-def]
    site = unique("s")
    mine = services.grant(unique("gw"), Role.GATEWAY, site=site, workshop="yarn")
    other = services.grant(unique("gw"), Role.GATEWAY, site=site, workshop="knit")
    gw = open_probe(mine)
    gw.subscribe(f"{CONFIRM_PREFIX}/#")
    ingest = open_probe(services.grant(unique("ingest"), Role.INGEST))
    assert ingest.publish(f"{CONFIRM_PREFIX}/{site}/knit/{other}", b"not for you") == "Success"
    assert ingest.publish(f"{CONFIRM_PREFIX}/{site}/yarn/{mine}", b"yours") == "Success"
    gw.wait_for(f"{CONFIRM_PREFIX}/{site}/yarn/{mine}", b"yours")
    assert gw.received(f"{CONFIRM_PREFIX}/{site}/knit/{other}") == []


def test_ingest_takes_the_data_through_a_shared_subscription_and_nothing_else(  # type: ignore[no-untyped-def]
    services: Services, open_probe
) -> None:
    site = unique("s")
    gw = open_probe(services.grant(unique("gw"), Role.GATEWAY, site=site, workshop="yarn"))
    ingest = open_probe(services.grant(unique("ingest"), Role.INGEST))
    ingest.subscribe(f"$share/{unique('g')}/{PREFIX}/#")  # wider than its grant: the broker filters on delivery
    alert = f"{ALERT_PREFIX}/{unique('a')}"
    alerts = open_probe(services.grant(unique("alerts"), Role.ALERTS))
    assert alerts.publish(alert, b"an alert") == "Success"
    data = f"{PREFIX}/{site}/yarn/carding/CARD-001/event"
    assert gw.publish(data, b"data") == "Success"
    ingest.wait_for(data, b"data")
    assert ingest.received(alert) == []
    # And ingest may not write data, acknowledge alerts or plant alerts.
    for topic in (f"{PREFIX}/{site}/yarn/carding/CARD-001/event", ACK_TOPIC, alert):
        assert ingest.publish(topic, b"forged") == REFUSED, topic
    assert ingest.publish(f"{PREFIX}/deadletter/{unique('w')}", b"{}") == "Success"


def test_the_supervisor_can_read_everything_and_publish_nothing(services: Services, open_probe) -> None:  # type: ignore[no-untyped-def]
    site = unique("s")
    supervisor = open_probe(services.grant(unique("sup"), Role.SUPERVISOR))
    supervisor.subscribe(f"{PREFIX}/#")
    topics = [
        f"{PREFIX}/{site}/yarn/carding/CARD-001/event",
        ACK_TOPIC,
        f"{ALERT_PREFIX}/{unique('a')}",
        f"{CONFIRM_PREFIX}/{site}/yarn/gw-yarn",
        f"{PREFIX}/deadletter/x",
    ]
    for topic in topics:
        assert supervisor.publish(topic, b"forged") == REFUSED, topic
    gw = open_probe(services.grant(unique("gw"), Role.GATEWAY, site=site, workshop="yarn"))
    assert gw.publish(topics[0], b"real") == "Success"
    supervisor.wait_for(topics[0], b"real")
    assert supervisor.received(topics[0]) == [b"real"]


def test_only_maintenance_and_admin_may_acknowledge_alerts(services: Services, open_probe) -> None:  # type: ignore[no-untyped-def]
    watch = watcher(services, open_probe, ACK_TOPIC)
    refused = {role: open_probe(services.grant(unique(role.value), role)) for role in (Role.SUPERVISOR, Role.ALERTS)}
    for role, probe in refused.items():
        assert probe.publish(ACK_TOPIC, role.value.encode()) == REFUSED, role
    maintenance = open_probe(services.grant(unique("mnt"), Role.MAINTENANCE))
    assert maintenance.publish(ACK_TOPIC, b"maintenance") == "Success"
    watch.wait_for(ACK_TOPIC, b"maintenance")
    assert watch.received(ACK_TOPIC) == [b"maintenance"]


def test_nobody_takes_over_another_clients_id_or_session(services: Services, open_probe) -> None:  # type: ignore[no-untyped-def]
    victim_name = services.grant(unique("ingest"), Role.INGEST)
    thief_name = services.grant(unique("ingest"), Role.INGEST)
    site = unique("s")
    topic = f"{PREFIX}/{site}/yarn/carding/CARD-001/event"
    gw = open_probe(services.grant(unique("gw"), Role.GATEWAY, site=site, workshop="yarn"))
    victim = open_probe(victim_name, client_id=victim_name, clean_start=False, expiry_s=600)
    victim.subscribe(topic)
    # Connected with its own credentials and the victim's client id, with a clean start that would wipe the
    # victim's session: the broker makes its client id its own username instead.
    thief = open_probe(thief_name, client_id=victim_name, clean_start=True)
    assert thief.connected
    assert gw.publish(topic, b"first") == "Success"
    victim.wait_for(topic, b"first")
    assert not victim.disconnected.is_set()
    # The victim's persistent session keeps collecting while it is away, thief or no thief…
    victim.close()
    thief2 = open_probe(thief_name, client_id=victim_name, clean_start=True)
    assert thief2.connected
    assert gw.publish(topic, b"while away") == "Success"
    back = open_probe(victim_name, client_id=victim_name, clean_start=False, expiry_s=600)
    back.wait_for(topic, b"while away")
    # …and neither thief ever received it.
    assert thief.received(topic) == thief2.received(topic) == []


# -- InfluxDB ------------------------------------------------------------------------------------------------


def _line(value: int) -> bytes:
    # Now-ish, inside any retention policy; the write precision is milliseconds.
    return f"probe value={value}i {time.time_ns() // 1_000_000 - value}".encode()


def test_influxdb_refuses_anonymous_readers_and_writers(services: Services, database: str) -> None:
    anonymous = services.settings(database).influx
    assert anonymous.username is None
    with pytest.raises(QueryError, match="401"):
        InfluxQuery(anonymous).query("SHOW MEASUREMENTS")
    with pytest.raises(WriteError) as refused:
        V1Writer(anonymous).write(_line(1))
    assert refused.value.status == 401


def test_the_ingest_user_writes_but_cannot_read_and_the_reader_reads_but_cannot_write(
    services: Services, database: str
) -> None:
    ingest = services.settings(database, identity="ingest-1").influx
    reader = services.settings(database, identity="supervisor").influx
    assert (ingest.username, reader.username) == ("ftel_ingest", "ftel_reader")
    V1Writer(ingest).write(_line(2))
    assert InfluxQuery(reader).rows("SELECT value FROM probe")[0]["value"] == 2
    with pytest.raises(QueryError, match="not authorized"):
        InfluxQuery(ingest).query("SELECT value FROM probe")
    with pytest.raises(WriteError) as refused:
        V1Writer(reader).write(_line(3))
    assert refused.value.status == 403
    assert [r["value"] for r in InfluxQuery(reader).rows("SELECT value FROM probe")] == [2]
    with pytest.raises(QueryError, match="admin"):
        InfluxQuery(reader).query(f'DROP DATABASE "{database}"')


# -- `ftel stack up` itself ----------------------------------------------------------------------------------


def _plant(site: str, workshops: int) -> Plant:
    return Plant(
        site=site,
        workshops=tuple(
            Workshop(
                id=f"w{n}",
                name=f"Workshop {n}",
                gateway_id=f"gw-{n}",
                machines=(MachineSpec(id=f"CARD-{n:03d}", type=MachineType.CARDING),),
            )
            for n in range(1, workshops + 1)
        ),
    )


def _ftel(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ftel.app", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_stack_up_gives_every_gateway_of_the_plant_an_identity_and_reloads_the_broker_for_a_new_one(
    tmp_path: Path, probes: list[MqttProbe]
) -> None:
    site = unique("plant")
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(yaml.safe_dump(_plant(site, 2).model_dump(mode="json")))
    settings = Settings(
        site=site,
        mqtt=MqttSettings(port=free_port()),
        influx=InfluxSettings(url=f"http://127.0.0.1:{free_port()}"),
        stack=StackSettings(dir=tmp_path / "stack"),
        auth=AuthSettings(ingest_workers=3),
    )
    env = {
        **ftel_env(settings),
        "FTEL_STACK__DIR": str(settings.stack.dir),
        "FTEL_SIMULATION__PLANT": str(plant_file),
        "FTEL_AUTH__INGEST_WORKERS": "3",
    }
    up = _ftel(env, "stack", "up")
    try:
        assert up.returncode == 0, up.stderr
        credentials_file = settings.credentials_file
        assert os.stat(credentials_file).st_mode & 0o777 == 0o600
        names = set(load_credentials(credentials_file).identities)
        assert names == {
            "gw-1",
            "gw-2",
            "ingest-1",
            "ingest-2",
            "ingest-3",
            "alerts",
            "supervisor",
            "maintenance",
            "admin",
        }
        broker_pid = stack_from_settings(settings).mosquitto.pid()

        def publishes(gateway_id: str, workshop: str) -> str:
            probe = MqttProbe(with_identity(settings, gateway_id).mqtt)
            probes.append(probe)
            probe.connect()
            return probe.publish(f"{PREFIX}/{site}/{workshop}/carding/CARD-001/event", b"{}")

        assert publishes("gw-1", "w1") == "Success"
        assert publishes("gw-1", "w2") == REFUSED
        plant_file.write_text(yaml.safe_dump(_plant(site, 3).model_dump(mode="json")))
        again = _ftel(env, "stack", "up")
        assert again.returncode == 0, again.stderr
        assert stack_from_settings(settings).mosquitto.pid() == broker_pid  # reloaded, not restarted
        assert publishes("gw-3", "w3") == "Success"
        shown = _ftel(env, "auth", "show", "gw-3")
        assert "FTEL_MQTT__USERNAME=gw-3" in shown.stdout
        assert f"ftel/v1/{site}/w3/+/+/+" in shown.stdout
    finally:
        _ftel(env, "stack", "down")


# -- TLS -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Settings]]:
    """A second stack, as `FTEL_STACK__TLS=true ftel stack up` runs it, with a throw-away CA."""
    directory = tmp_path_factory.mktemp("tls-stack")
    settings = Settings(
        mqtt=MqttSettings(port=free_port()),
        influx=InfluxSettings(url=f"https://127.0.0.1:{free_port()}"),
        stack=StackSettings(dir=directory, tls=True, mqtt_tls_port=free_port()),
    )
    stack = stack_from_settings(settings)
    stack.up()
    try:
        yield stack, settings
    finally:
        stack.down()


def _tls_client_settings(stack: LocalStack, settings: Settings, *, trusted: bool) -> Settings:
    ca = stack.tls_files.ca if trusted else None
    client = settings.model_copy(
        update={
            "mqtt": MqttSettings(port=stack.mqtt_tls_port, tls=True, ca_file=ca),
            "influx": InfluxSettings(url=stack.influx_url, database=stack.database, ca_file=ca),
        }
    )
    return with_identity(client, "admin")


def test_mqtt_over_tls_carries_messages_and_https_influxdb_writes_and_reads(
    tls_stack: tuple[LocalStack, Settings], probes: list[MqttProbe]
) -> None:
    stack, settings = tls_stack
    client = _tls_client_settings(stack, settings, trusted=True)
    probe = MqttProbe(client.mqtt)
    probes.append(probe)
    assert probe.connect().connected
    topic = f"{PREFIX}/{unique('s')}/yarn/carding/CARD-001/event"
    probe.subscribe(topic)
    assert probe.publish(topic, b"over tls") == "Success"
    probe.wait_for(topic, b"over tls")
    V1Writer(client.influx).write(_line(7))
    assert InfluxQuery(client.influx).rows("SELECT value FROM probe")[0]["value"] == 7


# paho leaves the socket of a failed TLS handshake for the garbage collector, which reports it unclosed.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_tls_listener_refuses_plaintext_and_untrusting_clients_are_refused(
    tls_stack: tuple[LocalStack, Settings], probes: list[MqttProbe]
) -> None:
    stack, settings = tls_stack
    trusted = _tls_client_settings(stack, settings, trusted=True)
    plaintext = MqttProbe(trusted.mqtt.model_copy(update={"tls": False}))
    probes.append(plaintext)
    plaintext.connect()
    assert plaintext.connack is None  # no CONNACK at all: the listener speaks only TLS
    assert plaintext.disconnected.is_set()
    untrusting = _tls_client_settings(stack, settings, trusted=False)
    with pytest.raises(ssl.SSLCertVerificationError):
        MqttProbe(untrusting.mqtt).connect()
    with pytest.raises(QueryError, match="CERTIFICATE_VERIFY_FAILED"):
        InfluxQuery(untrusting.influx).query("SHOW DATABASES")
    with pytest.raises(WriteError):
        V1Writer(untrusting.influx).write(_line(8))
    assert plaintext_http_refused(stack)


def plaintext_http_refused(stack: LocalStack) -> bool:
    """InfluxDB serves HTTPS only: a plain-HTTP query gets no InfluxDB answer."""
    url = stack.influx_url.replace("https://", "http://")
    try:
        InfluxQuery(InfluxSettings(url=url, database=stack.database)).query("SHOW DATABASES")
    except QueryError:
        return True
    return False
