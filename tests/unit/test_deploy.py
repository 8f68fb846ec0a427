"""docker compose cannot run here, so its security is checked as text: ports on loopback unless told otherwise,
Mosquitto configured like the local stack, every service with only its own secrets, a non-root image, scripts
that parse."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from ftel.stack.configs import (
    COUNTY_START,
    MAX_QUEUED_BYTES,
    MAX_QUEUED_MESSAGES,
    PERSISTENT_CLIENT_EXPIRATION,
    size_bytes,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)")
# Which secret of .env each service may see (the InfluxDB container creates the others' users).
SECRETS = {
    "influxdb": {
        "INFLUXDB_ADMIN_PASSWORD",
        "INFLUXDB_TOKEN",
        "INFLUX_INGEST_PASSWORD",
        "INFLUX_ALERTS_PASSWORD",
        "INFLUX_GRAFANA_PASSWORD",
        "INFLUX_SETTLE_PASSWORD",
    },
    "grafana": {"GRAFANA_ADMIN_PASSWORD", "INFLUX_GRAFANA_PASSWORD"},
    "ingest": {"INFLUX_INGEST_PASSWORD"},
    "alerts": {"INFLUX_ALERTS_PASSWORD"},
    "settle": {"INFLUX_SETTLE_PASSWORD"},
    "mosquitto": set(),
    "gateway-yarn": set(),
    "gateway-knit": set(),
}
# Each ftel service's MQTT identity, from its own env file.
IDENTITIES = {"ingest": "ingest-1", "gateway-yarn": "gw-yarn", "gateway-knit": "gw-knit", "alerts": "alerts"}


def _variables(value: object) -> set[str]:
    return set(VARIABLE.findall(yaml.safe_dump(value)))


def test_every_service_is_accounted_for() -> None:
    assert set(SERVICES) == set(SECRETS)


@pytest.mark.parametrize("service", sorted(SECRETS))
def test_each_service_sees_only_its_own_secrets(service: str) -> None:
    seen = {v for v in _variables(SERVICES[service]) if v not in {"FTEL_BIND_ADDRESS", "FTEL_AUTH_DIR"}}
    assert seen == SECRETS[service]
    environment = SERVICES[service].get("environment") or {}
    assert "FTEL_INFLUX__TOKEN" not in environment


@pytest.mark.parametrize(("service", "identity"), sorted(IDENTITIES.items()))
def test_each_ftel_service_connects_as_its_own_identity(service: str, identity: str) -> None:
    assert SERVICES[service]["env_file"] == [f"${{FTEL_AUTH_DIR:-./.ftel/auth}}/{identity}.env"]


def test_published_ports_listen_on_loopback_unless_told_otherwise() -> None:
    published = [port for s in SERVICES.values() for port in s.get("ports", [])]
    assert published
    assert all(port.startswith("${FTEL_BIND_ADDRESS:-127.0.0.1}:") for port in published)


def test_every_variable_compose_needs_is_in_the_env_example() -> None:
    example = (ROOT / ".env.example").read_text()
    names = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line and not line.startswith("#")}
    assert _variables(COMPOSE) <= names
    assert all(line.endswith("=") for line in example.splitlines() if "PASSWORD" in line or "TOKEN" in line)


def test_compose_mosquitto_is_configured_like_the_local_stack() -> None:
    lines = (ROOT / "deploy" / "mosquitto.conf").read_text().splitlines()
    for expected in (
        "allow_anonymous false",
        "password_file /mosquitto/auth/mosquitto.passwd",
        "acl_file /mosquitto/auth/mosquitto.acl",
        "use_username_as_clientid true",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        f"persistent_client_expiration {PERSISTENT_CLIENT_EXPIRATION}",
    ):
        assert expected in lines
    assert "allow_anonymous true" not in lines


# The local stack's InfluxDB 1.x settings as InfluxDB 2.x's environment variables; None: 1.x only (2.x has no
# choice of index: it is always tsi1).
INFLUXD_ENV = {
    "cache_snapshot_memory_size": "INFLUXD_STORAGE_CACHE_SNAPSHOT_MEMORY_SIZE",
    "cache_max_memory_size": "INFLUXD_STORAGE_CACHE_MAX_MEMORY_SIZE",
    "write_timeout": "INFLUXD_STORAGE_WRITE_TIMEOUT",
    "index_version": None,
    # The Go runtime's, compared below as the environment the local stack gives its server.
    "go_gc_percent": None,
    "go_memory_limit": None,
}


def test_compose_influxdb_is_tuned_like_the_local_stack() -> None:
    environment = SERVICES["influxdb"]["environment"]
    for name in COUNTY_START.__slots__:
        value = getattr(COUNTY_START, name)
        if value is None:
            continue
        assert name in INFLUXD_ENV, f"{name} of the local stack's tuning is not mirrored in docker-compose.yml"
        variable = INFLUXD_ENV[name]
        if variable is not None:
            expected = str(size_bytes(value)) if name.startswith("cache_") else str(value)
            assert str(environment[variable]) == expected
    assert COUNTY_START.environment().items() <= {k: str(v) for k, v in environment.items()}.items()


def test_the_image_holds_every_package_the_ftel_command_imports() -> None:
    """`ftel` imports every command's module at its start: a package left out of the image stops every service."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    installed = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")}
    assert installed <= copied


def test_the_image_runs_as_an_unprivileged_user() -> None:
    users = [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("USER ")]
    assert users
    assert users[-1] not in {"root", "0"}


@pytest.mark.parametrize("script", sorted((ROOT / "deploy").glob("*.sh")), ids=lambda p: p.name)
def test_deploy_scripts_parse(script: Path) -> None:
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    assert "set -euo pipefail" in script.read_text()
