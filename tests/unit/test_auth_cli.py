"""`ftel auth` end to end through the CLI (files only; the broker's side is in tests/integration/test_security.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ftel.app.cli import main
from ftel.security.credentials import load_credentials
from ftel.security.mosquitto import verify_line


@pytest.fixture
def stack_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("FTEL_CONFIG", "FTEL_AUTH__CREDENTIALS_FILE", "FTEL_SIMULATION__PLANT", "FTEL_SITE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FTEL_STACK__DIR", str(tmp_path / "stack"))
    return tmp_path / "stack"


def _plant(path: Path, site: str) -> Path:
    workshops = [
        {"id": f"w{n}", "name": f"W{n}", "gateway_id": f"gw-{n}", "machines": [{"id": f"CARD-{n}", "type": "carding"}]}
        for n in (1, 2)
    ]
    path.write_text(yaml.safe_dump({"site": site, "workshops": workshops}))
    return path


def test_init_writes_private_files_for_the_plant_and_show_writes_an_env_file(
    stack_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant = _plant(tmp_path / "plant.yaml", "site-a")
    assert main(["auth", "init", "--plant", str(plant), "--ingest-workers", "2"]) == 0
    auth = stack_dir / "auth"
    for name in ("credentials.yaml", "mosquitto.passwd", "mosquitto.acl"):
        assert (auth / name).stat().st_mode & 0o777 == 0o600
    credentials = load_credentials(auth / "credentials.yaml")
    assert set(credentials.identities) == {
        "gw-1",
        "gw-2",
        "ingest-1",
        "ingest-2",
        "alerts",
        "supervisor",
        "maintenance",
        "admin",
    }
    assert "topic write ftel/v1/site-a/w2/+/+/+" in (auth / "mosquitto.acl").read_text()
    lines = {line.split(":")[0]: line for line in (auth / "mosquitto.passwd").read_text().splitlines()[1:]}
    assert verify_line(lines["gw-1"], "gw-1", credentials.mqtt_passwords()["gw-1"])
    assert "keep it secret" in capsys.readouterr().out

    env_file = tmp_path / "gw-1.env"
    assert main(["auth", "show", "gw-1", "--env-file", str(env_file)]) == 0
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert (
        env_file.read_text()
        == f"FTEL_MQTT__USERNAME=gw-1\nFTEL_MQTT__PASSWORD={credentials.mqtt_passwords()['gw-1']}\n"
    )
    alerts_env = tmp_path / "alerts.env"
    assert main(["auth", "show", "alerts", "--mqtt-only", "--env-file", str(alerts_env)]) == 0
    assert [line.split("=")[0] for line in alerts_env.read_text().splitlines()] == [
        "FTEL_MQTT__USERNAME",
        "FTEL_MQTT__PASSWORD",
    ]


def test_init_again_keeps_every_password_and_add_binds_a_new_identity(stack_dir: Path, tmp_path: Path) -> None:
    plant = _plant(tmp_path / "plant.yaml", "site-a")
    assert main(["auth", "init", "--plant", str(plant)]) == 0
    before = load_credentials(stack_dir / "auth" / "credentials.yaml")
    assert main(["auth", "init", "--plant", str(plant)]) == 0
    assert main(["auth", "add", "alerts-night", "--role", "alerts"]) == 0
    after = load_credentials(stack_dir / "auth" / "credentials.yaml")
    assert {k: v for k, v in after.identities.items() if k != "alerts-night"} == before.identities
    assert after.identity("alerts-night").role == "alerts"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["auth", "show", "nobody"], "no credentials file"),
        (["auth", "add", "gw-9", "--role", "gateway"], "needs its site and workshop"),
        (["auth", "add", "gw-9", "--role", "gateway", "--site", "confirm", "--workshop", "w"], "reserved"),
    ],
)
def test_mistakes_are_refused_with_what_to_do(
    stack_dir: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_tls_writes_a_ca_and_a_server_certificate_and_says_how_to_use_them(
    stack_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["auth", "tls"]) == 0
    assert {p.name for p in (stack_dir / "tls").iterdir()} == {"ca.pem", "server.pem", "server-key.pem"}
    out = capsys.readouterr().out
    assert "FTEL_STACK__TLS=true" in out
    assert f"FTEL_MQTT__CA_FILE={(stack_dir / 'tls' / 'ca.pem').resolve()}" in out
