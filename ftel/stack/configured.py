"""The local stack the settings describe."""

from __future__ import annotations

from urllib.parse import urlparse

from ftel.security.gateways import plant_gateways
from ftel.settings import Settings
from ftel.stack.services import LocalStack, StackError, free_port


def stack_from_settings(settings: Settings) -> LocalStack:
    """The local stack these settings describe, with an identity for every gateway of the settings' plant."""
    url = urlparse(settings.influx.url)
    influx_port = url.port or 8086
    if settings.stack.tls and url.scheme != "https":
        raise StackError(
            f"with FTEL_STACK__TLS InfluxDB serves HTTPS only: set FTEL_INFLUX__URL=https://127.0.0.1:{influx_port} "
            f"and FTEL_INFLUX__CA_FILE={settings.stack.dir / 'tls' / 'ca.pem'}"
        )
    if settings.mqtt.tls:
        raise StackError(
            "ftel stack serves plain MQTT on loopback at FTEL_MQTT__PORT and TLS at FTEL_STACK__MQTT_TLS_PORT: "
            "run `ftel stack` without FTEL_MQTT__TLS (TLS clients set it, with FTEL_MQTT__PORT the TLS port)"
        )
    rpc_file = settings.stack.dir / "influxdb" / "rpc.port"
    # The RPC port is internal to InfluxDB (backup/restore); any free one will do, kept stable across runs.
    rpc_port = int(rpc_file.read_text()) if rpc_file.exists() else free_port()
    rpc_file.parent.mkdir(parents=True, exist_ok=True)
    rpc_file.write_text(str(rpc_port))
    return LocalStack(
        settings.stack.dir,
        settings.mqtt.port,
        influx_port,
        rpc_port,
        database=settings.influx.database,
        retention_policy=settings.influx.retention_policy,
        retention=settings.influx.retention,
        gateways=plant_gateways(settings),
        ingest_workers=settings.auth.ingest_workers,
        credentials_file=settings.credentials_file,
        tls=settings.stack.tls,
        mqtt_tls_port=settings.stack.mqtt_tls_port,
    )
