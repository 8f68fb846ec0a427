"""Shared test plumbing: real services on free loopback ports, unique databases and topics per test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ftel.settings import InfluxSettings, MqttSettings, Settings
from ftel.stack import LocalStack
from ftel.storage.query import InfluxQuery


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Services:
    stack: LocalStack

    def settings(self, database: str, **overrides: object) -> Settings:
        """Settings pointing at this test's own database (created here) on the shared test stack."""
        influx = InfluxSettings(url=self.stack.influx_url, database=database, retention_policy="autogen")
        InfluxQuery(influx).query(f'CREATE DATABASE "{database}"')
        return Settings(
            mqtt=MqttSettings(host="127.0.0.1", port=self.stack.mqtt_port),
            influx=influx,
            **overrides,  # type: ignore[arg-type]
        )


T = TypeVar("T")


def ftel_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for an `ftel` subprocess that uses these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTEL_")}
    env |= {
        "FTEL_MQTT__PORT": str(settings.mqtt.port),
        "FTEL_INFLUX__URL": settings.influx.url,
        "FTEL_INFLUX__DATABASE": settings.influx.database,
        "FTEL_INFLUX__RETENTION_POLICY": settings.influx.retention_policy,
        "FTEL_SITE": settings.site,
        **extra,
    }
    return env


def start_ftel(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ftel.cli", *args],
            env=env,
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


def wait_for_log(log: Path, text: str, *, timeout_s: float = 60) -> None:
    wait_until(
        lambda: log.exists() and text in log.read_text(errors="replace"),
        timeout_s=timeout_s,
        what=f"{text!r} in {log}",
    )
