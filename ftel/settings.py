"""One settings object for every command: environment variables (FTEL_…, nested with __), an optional YAML
file (FTEL_CONFIG or --config), loopback defaults. The README documents each variable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

if TYPE_CHECKING:
    from ftel.contract.codec import TimeLimits


class MqttSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: SecretStr | None = None
    keepalive_s: int = 30
    tls: bool = Field(False, description="connect with TLS (the broker's TLS listener, usually port 8883)")
    ca_file: Path | None = Field(None, description="CA certificate that signed the broker's certificate")
    cert_file: Path | None = Field(None, description="client certificate, for brokers that require one")
    key_file: Path | None = Field(None, description="the client certificate's private key")
    # Every client (gateways, ingest) that lost the broker tries again after reconnect_min_s, doubling (with
    # jitter) up to reconnect_max_s, for as long as it runs: a broker comes back. The gateways' links wait in their
    # network thread (gateway/link_hub.py), back to reconnect_min_s at every CONNACK.
    reconnect_min_s: int = Field(1, ge=1, description="first wait before connecting to the broker again")
    reconnect_max_s: int = Field(10, ge=1, description="the wait doubles up to this")


class InfluxSettings(BaseModel):
    url: str = "http://127.0.0.1:8086"
    api: Literal["v1", "v2"] = Field("v1", description="v1: /write + /query (1.x, 2.x DBRP, 3.x); v2: influxdb-client")
    database: str = "ftel"
    retention_policy: str = "ftel_rp"
    retention: str = Field("90d", description="duration of the retention policy the stack creates")
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    org: str = "ftel"
    bucket: str = "ftel"
    timeout_s: float = 30.0
    ca_file: Path | None = Field(None, description="CA certificate that signed InfluxDB's HTTPS certificate")
    verify_tls: bool = Field(True, description="verify InfluxDB's certificate (only ever off for a lab)")
    # A command that writes straight to InfluxDB (backfill, settling orders, the operator page) retries a write
    # that failed for a passing reason (unreachable, 5xx, 429), then gives up and says so: a person is waiting.
    write_retry_initial_s: float = Field(0.2, gt=0, description="first wait before writing again")
    write_retry_max_s: float = Field(10.0, gt=0, description="the wait doubles up to this")
    write_retry_max_total_s: float = Field(
        60.0, ge=0, description="a write still failing after this long is given up, with the reason"
    )


class IngestSettings(BaseModel):
    group: str = Field("ingest", description="shared-subscription group: workers in one group split the load")
    worker_id: str = Field("ingest-1", description="stable client id (and identity): a restarted worker resumes")
    processes: int = Field(1, ge=1, description="worker processes `ftel ingest` runs (ids <worker_id>…+N-1)")
    batch_size: int = Field(5000, description="points per write; a batch is written when it is this full")
    flush_interval_s: float = Field(0.25, description="or when its oldest message is this old")
    # A vanished gateway's last messages may still be in another worker's batch when its will arrives: a few
    # flush intervals, and less than a gateway's first reconnect delay (MqttSettings.reconnect_min_s, 1 s), so
    # what the gateway sends after it comes back is not yet stored when its death is read (ingest/deaths.py).
    death_settle_s: float = Field(
        0.75, ge=0, description="a last will's death is decided this long after it arrives (the others' writes)"
    )
    # Flow control in the worker itself: it stops reading the socket while this many messages are received and
    # not yet acknowledged (two batches: one filling while the other is written). Memory stays bounded whatever
    # the broker does with Receive Maximum (Mosquitto 2.0.11 stops honouring it once acknowledgements flow).
    max_unacked: int = Field(10_000, description="messages held unacknowledged before the worker stops reading")
    receive_maximum: int = Field(10_000, description="MQTT 5 Receive Maximum asked of the broker")
    session_expiry_s: int = Field(
        120,
        description="how long the broker keeps a stopped worker's queue; a worker gone longer lets go of its share, "
        "and gateways send what it held again",
    )
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0
    retry_exponential_base: float = 2.0
    retry_max_total_s: float = Field(
        20.0, description="transient write failures are retried this long, then treated as blocking"
    )
    blocked_retry_max_s: float = Field(
        30.0, description="while InfluxDB refuses (credentials, missing database), try again at most this rarely"
    )
    # `ftel ingest --processes N` starts a worker that died again after a backoff, so a worker that dies at
    # every start (a broken setting, a message that kills it) is not restarted in a tight loop.
    restart_initial_s: float = Field(1.0, description="--processes: first wait before a dead worker starts again")
    restart_max_s: float = Field(60.0, description="--processes: the wait doubles at each death in a row up to this")
    restart_reset_after_s: float = Field(
        60.0, description="--processes: a worker that lived this long before it died starts again at once"
    )
    max_future_skew_s: int = Field(300, description="messages stamped further ahead of the clock are rejected")
    max_age_s: int = Field(90 * 24 * 3600, description="messages older than this are rejected")

    def time_limits(self) -> TimeLimits:
        """The same limits for every consumer of the data topics (ingest and the alert worker)."""
        from ftel.contract.codec import TimeLimits  # the contract imports nothing of the settings

        return TimeLimits(self.max_future_skew_s * 1000, self.max_age_s * 1000)

    health_interval_s: float = 5.0
    dead_letter_text_bytes: int = Field(2048, description="how much of a rejected payload a dead letter keeps")


# A gateway's window: the boards' finest roll-up and their smallest bucket are this long (dashboards/queries.py).
DEFAULT_WINDOW_S = 60


class TimingSettings(BaseModel):
    """A gateway's windows and sampling, plant seconds: the simulated gateways' (FTEL_SIMULATION__…) and a
    configured gateway's (its file's ``timing``, each value defaulting to these). The boards' one-minute buckets
    assume the default window."""

    window_s: int = Field(DEFAULT_WINDOW_S, ge=1, le=86_400, description="accumulator window length")
    telemetry_interval_s: int = Field(30, ge=1, le=86_400, description="a machine's telemetry sample every")
    heartbeat_interval_s: int = Field(10, ge=1, le=86_400, description="the gateway's heartbeat every")
    tick_s: float = Field(0.1, gt=0, le=10, description="wall seconds between two turns of the gateway's loop")


class SimulationSettings(TimingSettings):
    plant: Path | None = Field(None, description="plant YAML; the built-in default plant when unset")
    speedup: float = Field(60.0, description="simulated seconds per wall-clock second (capped at real time)")
    # A county's simulated gateways commit a few thousand times a minute: a sync of the disk at each cost them a
    # fifth to a quarter of their CPU on a busy disk (docs/scale.md), and a wait at each commit. What a killed
    # process committed is kept either way; a real gateway's spool always syncs.
    spool_power_safe: bool = Field(
        False,
        description="simulated gateways' spools sync the disk at every commit (survive a power cut, not only "
        "the process's death)",
    )


class PollSettings(BaseModel):
    """How a gateway polls a controller (Modbus, OPC UA), plant seconds: the defaults of each driver entry of a
    gateway file (docs/gateway.md)."""

    poll_interval_s: float = Field(1.0, gt=0, le=86_400, allow_inf_nan=False)
    offline_after: int = Field(2, ge=1, le=100, description="failed polls in a row that make the machine OFFLINE")
    reconnect_min_s: float = Field(
        1.0, gt=0, le=86_400, allow_inf_nan=False, description="first wait before connecting again"
    )
    reconnect_max_s: float = Field(
        30.0, gt=0, le=86_400, allow_inf_nan=False, description="the wait doubles up to this"
    )


class GatewaySettings(BaseModel):
    state_dir: Path | None = Field(
        None,
        description="spool and checkpoint of each gateway, in <state_dir>/<site>/<gateway id>/ "
        "(default: <stack dir>/gateways)",
    )
    spool_max_messages: int = Field(
        1_000_000, description="messages a gateway keeps until ingest confirms them (beyond: dropped and counted)"
    )
    max_in_flight: int = Field(1000, description="messages sent and not yet acknowledged by the broker")
    hole_grace_s: float = Field(
        30.0, description="an unconfirmed message older than a confirmed one is sent again after this long"
    )
    resend_max_s: float = Field(600.0, description="resends of a message that keeps going missing back off to this")
    drain_stall_s: float = Field(60.0, description="at shutdown, wait for confirmations while they keep coming")
    telemetry_spread: bool = Field(
        True, description="each machine samples telemetry at its own offset in the interval (not all on the edge)"
    )
    close_phase_s: float | None = Field(
        None,
        ge=0,
        description="how long after each window edge the gateway sends the windows and roll-ups it closed there "
        "(windows stay on the edge): default a phase in the window derived from the gateway id, so a county's "
        "gateways do not all send at the same instant; 0 sends at the edge",
    )


class StackSettings(BaseModel):
    dir: Path = Path(".ftel")
    tls: bool = Field(
        False,
        description="also serve MQTT over TLS (on mqtt_tls_port) and InfluxDB over HTTPS only, with the "
        "certificates under <dir>/tls (`ftel auth tls` makes throw-away ones; `ftel stack up` too when missing)",
    )
    mqtt_tls_port: int = Field(8883, description="Mosquitto's TLS listener when tls is on")


class AuthSettings(BaseModel):
    credentials_file: Path | None = Field(
        None, description="identities and their passwords (YAML, mode 0600); default <stack.dir>/auth/credentials.yaml"
    )
    ingest_workers: int = Field(8, ge=1, description="identities ingest-1 … ingest-N that `ftel auth init` creates")


# An IDLE with this much planned time and no reason is an unexplained stop: a short wait for yarn or a doffer is
# ordinary; a quarter of an hour is worth someone saying why.
DEFAULT_IDLE_UNEXPLAINED_S = 900.0


class OperatorSettings(BaseModel):
    """The operator page (docs/operators.md)."""

    reasons: Path | None = Field(
        None,
        description="the plant's own reason codes (YAML, grouped planned / unplanned / changeover); default: a "
        "few common ones",
    )
    idle_unexplained_s: float = Field(
        DEFAULT_IDLE_UNEXPLAINED_S,
        gt=0,
        description="an IDLE with at least this much planned time and no reason is an unexplained stop",
    )
    host: str = Field("127.0.0.1", description="address the page listens on")
    port: int = Field(8090, description="port the page listens on")
    recent_h: float = Field(24.0, gt=0, description="the page lists stops that ended this many hours back")
    session_idle_s: float = Field(8 * 3600.0, gt=0, description="a signed-in session ends after this long unused")
    secure_cookies: bool = Field(
        False, description="mark the session cookie Secure (on when the page is served over HTTPS by a proxy)"
    )
    window_s: int = Field(
        60,
        gt=0,
        description="the workshop gateways' window (gateway file window_s): a job set on the page starts "
        "at its next edge",
    )


# A stop shorter than this is a micro-stop (docs/boards.md): a yarn break a knitter ties in seconds, ends pieced
# up on a ring frame, a card's feed topped up; longer stops need someone to find and fix a fault.
DEFAULT_MICRO_STOP_S: dict[str, float] = {"knitting": 30.0, "spinning": 30.0, "carding": 60.0}


class SettleSettings(BaseModel):
    """Settling the boards' figures that InfluxQL cannot compute (planned time, classified reasons, orders;
    docs/calendar.md)."""

    every_s: float = Field(60.0, gt=0, description="how often `ftel settle --every` and `ftel run` settle")
    lookback_h: float = Field(
        8.0,
        gt=0,
        description="how far back each periodic settle reads: a shift, so late windows, operators' reasons given "
        "within it and the orders' rate of the last shift are taken in",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FTEL_", env_nested_delimiter="__", extra="forbid")

    site: str = "qinghe"
    calendar: Path | None = Field(
        None,
        description="the site's calendar (YAML: time zone, shifts, breaks, days off; docs/calendar.md); default: "
        "three 8-hour shifts every day at Asia/Shanghai, all time planned",
    )
    orders: Path | None = Field(
        None,
        description="the plant's styles and orders (YAML: standard time per piece, target pieces, the controller's "
        "program numbers or names; docs/orders.md); default: none, the boards show the jobs machines report",
    )
    ready_file: Path | None = Field(
        None,
        description="a worker (ingest, alerts) creates this file once it is subscribed: a parent that started it "
        "waits on it (ftel/ready.py)",
    )
    micro_stop_s: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MICRO_STOP_S),
        description="per machine type: a stop shorter than this many seconds is a micro-stop, counted apart",
    )
    operators: OperatorSettings = OperatorSettings()
    settle: SettleSettings = SettleSettings()
    mqtt: MqttSettings = MqttSettings()
    influx: InfluxSettings = InfluxSettings()
    ingest: IngestSettings = IngestSettings()
    simulation: SimulationSettings = SimulationSettings()
    gateway: GatewaySettings = GatewaySettings()
    stack: StackSettings = StackSettings()
    auth: AuthSettings = AuthSettings()

    @property
    def credentials_file(self) -> Path:
        """Where this installation's credentials live (``auth.credentials_file`` or under the stack dir)."""
        return self.auth.credentials_file or self.stack.dir / "auth" / "credentials.yaml"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("FTEL_CONFIG")
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


def load_settings(config_file: Path | None = None) -> Settings:
    if config_file is not None:
        os.environ["FTEL_CONFIG"] = str(config_file)
    return Settings()
