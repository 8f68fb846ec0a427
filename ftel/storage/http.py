"""One pooled HTTP client per InfluxDB (keep-alive, TLS settings, credentials) for writes and queries."""

from __future__ import annotations

import base64
import ssl

import httpx

from ftel.settings import InfluxSettings

# Enough for the writer's thread and a few concurrent queries (boards' tests, the live view).
MAX_CONNECTIONS = 8


def auth_headers(settings: InfluxSettings) -> dict[str, str]:
    """The Authorization header for InfluxDB's HTTP API: a token (2.x, 3.x) wins over user and password (1.x)."""
    if settings.token is not None:
        return {"Authorization": f"Token {settings.token.get_secret_value()}"}
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else ""
        return {"Authorization": "Basic " + base64.b64encode(f"{settings.username}:{password}".encode()).decode()}
    return {}


def tls_verify(settings: InfluxSettings) -> bool | ssl.SSLContext:
    """httpx's ``verify``: a CA file for a private CA, the system store, or (explicitly) nothing."""
    if settings.ca_file is not None:
        return ssl.create_default_context(cafile=str(settings.ca_file))
    return settings.verify_tls


def http_client(settings: InfluxSettings) -> httpx.Client:
    return httpx.Client(
        base_url=settings.url.rstrip("/"),
        headers=auth_headers(settings),
        timeout=settings.timeout_s,
        verify=tls_verify(settings),
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS),
    )
