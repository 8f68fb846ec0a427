"""MQTT clients built one way for every component: protocol 5, credentials and TLS from the settings.

Gateways and the consuming workers (ingest, alerts: ftel/mqtt_transport.py) use paho-mqtt directly (they drive
its network loop themselves, and acknowledge manually); the command-line tools use aiomqtt. Both get their
connection options here.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from ftel.mqtt_properties import install as share_property_tables
from ftel.settings import MqttSettings


def tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if settings.cert_file is not None:
        context.load_cert_chain(str(settings.cert_file), str(settings.key_file) if settings.key_file else None)
    return context


def _password(settings: MqttSettings) -> str | None:
    return settings.password.get_secret_value() if settings.password else None


def paho_client(settings: MqttSettings, *, client_id: str) -> paho.Client:
    """A paho client (MQTT 5) with this broker's credentials and TLS; callbacks and connect are the caller's."""
    share_property_tables()
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    if settings.username:
        client.username_pw_set(settings.username, _password(settings))
    context = tls_context(settings)
    if context is not None:
        client.tls_set_context(context)
    return client


def aiomqtt_options(settings: MqttSettings) -> dict[str, Any]:
    """Keyword arguments for ``aiomqtt.Client``: host, port, credentials, TLS, MQTT 5, keepalive."""
    share_property_tables()
    return {
        "hostname": settings.host,
        "port": settings.port,
        "username": settings.username,
        "password": _password(settings),
        "tls_context": tls_context(settings),
        "keepalive": settings.keepalive_s,
        "protocol": aiomqtt.ProtocolVersion.V5,
    }
