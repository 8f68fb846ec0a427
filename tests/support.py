"""Shared test plumbing: real services on free loopback ports, unique databases and topics per test."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ftel.influx import InfluxQuery
from ftel.settings import InfluxSettings, MqttSettings, Settings
from ftel.stack import LocalStack


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
