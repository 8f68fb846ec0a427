"""The pure core of ftel.security: Mosquitto's password format, the ACL text, identities and roles, the
credentials file and with_identity, InfluxDB statements, throw-away TLS, the stack's broker configuration."""

from __future__ import annotations

import base64
import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from ftel.security.credentials import (
    Credentials,
    credential_env,
    load_credentials,
    merged,
    save_credentials,
    with_identity,
)
from ftel.security.errors import AuthError
from ftel.security.identities import ACK_TOPIC, Identity, InfluxUser, Role, gateway, grants, roster
from ftel.security.influx import grant_statements, quote_string, user_statements
from ftel.security.mosquitto import acl_file, password_file, password_line, verify_line
from ftel.security.provision import AuthFiles, provision
from ftel.security.tls import make_throwaway_pki
from ftel.settings import AuthSettings, InfluxSettings, MqttSettings, Settings
from ftel.stack.configs import MAX_QUEUED_MESSAGES, MosquittoAuth, MosquittoTls, mosquitto_conf

# Written by Mosquitto 2.0.11's own `mosquitto_passwd -b pw alice secret`.
MOSQUITTO_LINE = (
    "alice:$7$101$0IKfshQIj7ws16Ba$"
    "G96SgK8W9/xc6nMTWa7dY6RBiJPetthyuJft0QEuufKCc/cQeAPlQviqyQE2hnKiLCTOOeltIs8uq8Q+L3vZsA=="
)


# -- Mosquitto's password file -------------------------------------------------------------------------------


def test_a_password_line_is_exactly_what_mosquitto_passwd_writes_for_the_same_salt() -> None:
    salt = base64.b64decode(MOSQUITTO_LINE.split("$")[3])
    assert password_line("alice", "secret", salt=salt) == MOSQUITTO_LINE


def test_verify_accepts_the_password_and_nothing_else() -> None:
    assert verify_line(MOSQUITTO_LINE, "alice", "secret")
    assert not verify_line(MOSQUITTO_LINE, "alice", "Secret")
    assert not verify_line(MOSQUITTO_LINE, "bob", "secret")
    assert not verify_line("alice:$6$101$abc$def", "alice", "secret")
    assert not verify_line("alice:$7$x$!!$??", "alice", "secret")


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80))
def test_every_password_verifies_against_its_own_line(password: str) -> None:
    line = password_line("gw-1", password)
    assert line.startswith("gw-1:$7$101$")
    assert verify_line(line, "gw-1", password)
    assert not verify_line(line, "gw-1", password + "x")


def test_the_password_file_keeps_lines_that_still_verify_and_redoes_the_rest() -> None:
    first = password_file({"b": "pw-b", "a": "pw-a"})
    lines = first.splitlines()
    assert lines[0].startswith("#")
    assert [line.split(":")[0] for line in lines[1:]] == ["a", "b"]
    assert password_file({"a": "pw-a", "b": "pw-b"}, first) == first  # unchanged: no reload needed
    changed = password_file({"a": "pw-a", "b": "new"}, first)
    assert changed.splitlines()[1] == lines[1]
    assert changed.splitlines()[2] != lines[2]
    assert verify_line(changed.splitlines()[2], "b", "new")


# -- roles and the ACL ---------------------------------------------------------------------------------------


def test_the_acl_gives_each_role_exactly_its_topics() -> None:
    text = acl_file(
        [
            gateway("gw-yarn", "qinghe", "yarn"),
            Identity("ingest-1", Role.INGEST),
            Identity("alerts", Role.ALERTS),
            Identity("supervisor", Role.SUPERVISOR),
            Identity("maintenance", Role.MAINTENANCE),
            Identity("admin", Role.ADMIN),
        ]
    )
    blocks = [b for b in text.split("\n\n") if "\nuser " in f"\n{b}"]
    assert "topic" not in text[: text.index("user ")]  # nothing for clients without a username
    assert [b.splitlines()[1:] for b in blocks] == [
        ["user admin", "topic readwrite #", "topic readwrite $SYS/#"],
        [
            "user alerts",
            "topic readwrite ftel/v1/alerts/#",
            "topic write ftel/v1/deadletter/alerts",
            "topic read ftel/v1/+/+/+/+/+",
            "topic read ftel/v1/alerts-cmd/ack",
        ],
        ["user gw-yarn", "topic write ftel/v1/qinghe/yarn/+/+/+", "topic read ftel/v1/confirm/qinghe/yarn/gw-yarn"],
        [
            "user ingest-1",
            "topic write ftel/v1/deadletter/#",
            "topic write ftel/v1/confirm/#",
            "topic write ftel/v1/health/#",
            "topic read ftel/v1/+/+/+/+/+",
        ],
        ["user maintenance", "topic write ftel/v1/alerts-cmd/ack", "topic read ftel/v1/#"],
        ["user supervisor", "topic read ftel/v1/#"],
    ]


def test_maintenance_may_publish_on_the_alert_workers_ack_topic() -> None:
    assert ACK_TOPIC in grants(Identity("m", Role.MAINTENANCE)).publish


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Identity("gw 1", Role.GATEWAY, "s", "w"), "not a valid name"),
        (lambda: Identity("gw-1", Role.GATEWAY), "needs its site and workshop"),
        (lambda: Identity("gw-1", Role.GATEWAY, "s", "w/x"), "workshop"),
        (lambda: Identity("gw-1", Role.GATEWAY, "confirm", "w"), "reserved"),
        (lambda: Identity("gw-1", Role.GATEWAY, "alerts", "w"), "reserved"),
        (lambda: Identity("ingest-1", Role.INGEST, "s", "w"), "not bound"),
        (lambda: roster([gateway("alerts", "s", "w")], 2), "two identities are called alerts"),
        (lambda: roster([gateway("gw", "s", "a"), gateway("gw", "s", "b")], 2), "two identities are called gw"),
        (lambda: roster([], 0), "at least 1"),
    ],
)
def test_identities_that_would_blur_who_is_who_are_refused(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthError, match=message):
        make()


def test_the_roster_has_the_plants_gateways_n_ingest_workers_and_the_services() -> None:
    names = [i.name for i in roster([gateway("gw-yarn", "qinghe", "yarn")], 3)]
    assert names == ["gw-yarn", "ingest-1", "ingest-2", "ingest-3", "alerts", "supervisor", "maintenance", "admin"]


# -- the credentials file and with_identity ------------------------------------------------------------------


def _counter() -> object:
    count = iter(range(1000))
    return lambda: f"pw{next(count)}"


def test_merging_keeps_passwords_adds_identities_and_rebinds_gateways() -> None:
    first = merged(None, roster([gateway("gw-1", "s", "w")], 1), password=_counter())  # type: ignore[arg-type]
    assert first.identities["gw-1"].password.get_secret_value() == "pw0"
    assert set(first.influx) == set(InfluxUser)
    second = merged(first, [gateway("gw-1", "s2", "w2"), gateway("gw-2", "s", "x")], password=lambda: "new")
    assert second.identities["gw-1"].password.get_secret_value() == "pw0"
    assert (second.identities["gw-1"].site, second.identities["gw-1"].workshop) == ("s2", "w2")
    assert second.identities["gw-2"].password.get_secret_value() == "new"
    assert set(second.identities) == set(first.identities) | {"gw-2"}
    assert second.influx == first.influx


def _settings(path: Path, **parts: object) -> Settings:
    return Settings(auth=AuthSettings(credentials_file=path), **parts)  # type: ignore[arg-type]


def _written(tmp_path: Path) -> Path:
    path = tmp_path / "auth" / "credentials.yaml"
    save_credentials(path, merged(None, roster([gateway("gw-1", "s", "w")], 2), password=_counter()))  # type: ignore[arg-type]
    return path


def test_the_credentials_file_is_private_and_round_trips(tmp_path: Path) -> None:
    path = _written(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    loaded = load_credentials(path)
    assert loaded.identity("gw-1") == gateway("gw-1", "s", "w")
    assert loaded.to_yaml() == path.read_text()


def test_with_identity_fills_the_roles_credentials(tmp_path: Path) -> None:
    path = _written(tmp_path)
    credentials = load_credentials(path)
    ingest = with_identity(_settings(path), "ingest-2")
    assert ingest.mqtt.username == "ingest-2"
    assert ingest.mqtt.password == credentials.identities["ingest-2"].password
    assert ingest.influx.username == "ftel_ingest"
    assert ingest.influx.password == credentials.influx[InfluxUser.INGEST].password
    assert with_identity(_settings(path), "supervisor").influx.username == "ftel_reader"
    gw = with_identity(_settings(path), "gw-1")
    assert (gw.mqtt.username, gw.influx.username) == ("gw-1", None)  # gateways never get InfluxDB access
    assert credential_env(ingest)["FTEL_MQTT__USERNAME"] == "ingest-2"


def test_explicit_credentials_win_service_by_service(tmp_path: Path) -> None:
    path = _written(tmp_path)
    own_mqtt = _settings(path, mqtt=MqttSettings(username="me", password=SecretStr("mine")))
    filled = with_identity(own_mqtt, "alerts")
    assert filled.mqtt.username == "me"
    assert filled.influx.username == "ftel_alerts"
    token = _settings(path, influx=InfluxSettings(token=SecretStr("t")))
    assert with_identity(token, "alerts").influx.username is None
    both = _settings(
        path, mqtt=MqttSettings(username="me"), influx=InfluxSettings(username="u", password=SecretStr("p"))
    )
    assert with_identity(both, "nobody") is both  # not even looked up


def test_without_a_credentials_file_nothing_changes_and_an_unknown_identity_says_what_to_do(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "none.yaml")
    assert with_identity(settings, "alerts") is settings
    with pytest.raises(AuthError, match="ftel auth init"):
        with_identity(_settings(_written(tmp_path)), "gw-9")


def test_provisioning_twice_changes_nothing_and_a_new_identity_changes_the_broker_files(tmp_path: Path) -> None:
    files = AuthFiles(tmp_path / "auth" / "credentials.yaml")
    first = provision(files, roster([], 1))
    assert first.broker_changed
    texts = [p.read_text() for p in (files.credentials, files.mosquitto_passwords, files.mosquitto_acl)]
    assert not provision(files, roster([], 1)).broker_changed
    assert [p.read_text() for p in (files.credentials, files.mosquitto_passwords, files.mosquitto_acl)] == texts
    assert provision(files, [gateway("gw-1", "s", "w")]).broker_changed
    assert "user gw-1" in files.mosquitto_acl.read_text()
    for path in (files.credentials, files.mosquitto_passwords, files.mosquitto_acl):
        assert path.stat().st_mode & 0o777 == 0o600


# -- InfluxDB ------------------------------------------------------------------------------------------------


def test_influx_statements_create_missing_users_reset_the_others_and_grant_by_access() -> None:
    credentials = Credentials.model_validate({"influx": {u.value: {"password": f"p'{u.value}"} for u in InfluxUser}})
    statements = user_statements(credentials, {"ftel_admin", "ftel_reader"})
    assert statements == [
        "SET PASSWORD FOR \"ftel_admin\" = 'p\\'ftel_admin'",
        "CREATE USER \"ftel_ingest\" WITH PASSWORD 'p\\'ftel_ingest'",
        "CREATE USER \"ftel_alerts\" WITH PASSWORD 'p\\'ftel_alerts'",
        "SET PASSWORD FOR \"ftel_reader\" = 'p\\'ftel_reader'",
        "CREATE USER \"ftel_operator\" WITH PASSWORD 'p\\'ftel_operator'",
    ]
    assert grant_statements('my"db') == [
        'GRANT WRITE ON "my\\"db" TO "ftel_ingest"',
        'GRANT WRITE ON "my\\"db" TO "ftel_alerts"',
        'GRANT READ ON "my\\"db" TO "ftel_reader"',
        'GRANT WRITE ON "my\\"db" TO "ftel_operator"',
    ]
    assert quote_string("a\\b") == "'a\\\\b'"


# -- TLS and the broker's configuration ----------------------------------------------------------------------


def test_the_throwaway_ca_signs_a_server_certificate_for_loopback(tmp_path: Path) -> None:
    now = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
    files = make_throwaway_pki(tmp_path / "tls", days=30, now=now)
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    server = x509.load_pem_x509_certificate(files.cert.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert server.not_valid_after_utc == now + datetime.timedelta(days=30)
    assert files.key.stat().st_mode & 0o777 == 0o600
    assert not list((tmp_path / "tls").glob("*ca*key*"))  # the CA's key is never written


def test_the_broker_refuses_anonymous_clients_binds_client_ids_and_caps_queues(tmp_path: Path) -> None:
    conf = mosquitto_conf(
        data_dir=tmp_path,
        port=1883,
        user="ftel",
        auth=MosquittoAuth(tmp_path / "p", tmp_path / "a"),
        tls=MosquittoTls(8883, tmp_path / "ca", tmp_path / "c", tmp_path / "k"),
    )
    lines = conf.splitlines()
    assert "allow_anonymous false" in lines
    assert f"password_file {tmp_path / 'p'}" in lines
    assert f"acl_file {tmp_path / 'a'}" in lines
    assert lines.count("use_username_as_clientid true") == lines.count("listener 1883 127.0.0.1") + 1 == 2
    assert "listener 8883 127.0.0.1" in lines
    assert MAX_QUEUED_MESSAGES >= 500_000
    assert f"max_queued_messages {MAX_QUEUED_MESSAGES}" in lines
    assert "persistent_client_expiration 14d" in lines
