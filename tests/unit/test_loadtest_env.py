"""What every process of a load test is given: on the local stack its connection and credentials come from the
stack only, while the caller's tuning passes through; on the settings' services everything is inherited."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftel.settings import AuthSettings, InfluxSettings, MqttSettings, Settings, StackSettings
from loadtest.run import child_env


@pytest.fixture
def caller_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTEL_MQTT__USERNAME", "someone")
    monkeypatch.setenv("FTEL_INFLUX__TOKEN", "secret")
    monkeypatch.setenv("FTEL_CONFIG", "/etc/ftel.yaml")
    monkeypatch.setenv("FTEL_INGEST__BATCH_SIZE", "7000")


def stack_settings(tmp_path: Path) -> Settings:
    return Settings(
        site="lt",
        mqtt=MqttSettings(host="127.0.0.1", port=41883),
        influx=InfluxSettings(url="http://127.0.0.1:48086", database="ftel", retention_policy="ftel_rp"),
        auth=AuthSettings(credentials_file=tmp_path / "auth" / "credentials.yaml"),
        stack=StackSettings(dir=tmp_path),
    )


@pytest.mark.usefixtures("caller_env")
def test_on_the_local_stack_the_connection_is_the_stacks_and_tuning_passes_through(tmp_path: Path) -> None:
    env = child_env(stack_settings(tmp_path), inherit_connection=False, extra={"FTEL_GATEWAY__STATE_DIR": "/g"})
    assert "FTEL_MQTT__USERNAME" not in env  # each process finds its own identity in the stack's credentials
    assert "FTEL_INFLUX__TOKEN" not in env
    assert "FTEL_CONFIG" not in env
    assert env["FTEL_MQTT__PORT"] == "41883"
    assert env["FTEL_INFLUX__URL"] == "http://127.0.0.1:48086"
    assert env["FTEL_AUTH__CREDENTIALS_FILE"] == str((tmp_path / "auth" / "credentials.yaml").resolve())
    assert env["FTEL_INGEST__BATCH_SIZE"] == "7000"
    assert env["FTEL_SITE"] == "lt"
    assert env["FTEL_GATEWAY__STATE_DIR"] == "/g"


@pytest.mark.usefixtures("caller_env")
def test_on_the_settings_services_everything_is_inherited(tmp_path: Path) -> None:
    env = child_env(stack_settings(tmp_path), inherit_connection=True, extra={})
    assert env["FTEL_MQTT__USERNAME"] == "someone"
    assert env["FTEL_CONFIG"] == "/etc/ftel.yaml"
    assert "FTEL_MQTT__PORT" not in env
    assert env["FTEL_SITE"] == "lt"
