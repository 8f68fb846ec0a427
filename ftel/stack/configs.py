"""Configuration files for the local services (pure: text in, text out)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Caps on what the broker queues for one client (beyond its in-flight window). A stopped ingest worker's
# persistent session must hold everything that arrives while it is away: a 500,000-message backlog fits twice
# over, in messages and in bytes (payloads are a few hundred bytes). Unbounded queues (0) would let one dead
# session eat the broker's memory; past the cap Mosquitto drops and the gateways' spools and sequence numbers
# make the gap visible and replayable.
MAX_QUEUED_MESSAGES = 1_000_000
MAX_QUEUED_BYTES = 1024 * 1024 * 1024
# A session nobody resumes is removed after this long (a worker gone for good, a one-off tool's session).
# MQTT 5 clients ask for their own expiry (ingest: 7 days); this also bounds the ones that ask for none.
PERSISTENT_CLIENT_EXPIRATION = "14d"


@dataclass(frozen=True, slots=True)
class MosquittoAuth:
    password_file: Path
    acl_file: Path


@dataclass(frozen=True, slots=True)
class MosquittoTls:
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path


# Mosquitto's own log (the local stack's configuration sends it there): reloads are read from it.
MOSQUITTO_LOG = "mosquitto.log"


def mosquitto_conf(
    *, data_dir: Path, port: int, user: str, auth: MosquittoAuth, tls: MosquittoTls | None = None
) -> str:
    # Started as root, mosquitto drops to the `mosquitto` user, which cannot write our data dir: no
    # persistence and sessions lost on restart. Keep the starting user (ignored when not root).
    # use_username_as_clientid: the client id is the identity, so no client can take over another's session
    # or disconnect it by connecting with its client id.
    tls_listener = (
        ""
        if tls is None
        else f"""
listener {tls.port} 127.0.0.1
use_username_as_clientid true
cafile {tls.ca_file}
certfile {tls.cert_file}
keyfile {tls.key_file}
tls_version tlsv1.2
"""
    )
    return f"""# written by ftel stack; edits are overwritten
user {user}
per_listener_settings false
allow_anonymous false
password_file {auth.password_file}
acl_file {auth.acl_file}

listener {port} 127.0.0.1
use_username_as_clientid true
{tls_listener}
persistence true
persistence_location {data_dir}/
# A snapshot writes every queued message and stalls the broker while it does (seconds for a large backlog);
# nothing depends on it being recent: the gateways keep every message until ingest confirms it is stored.
autosave_interval 300
max_queued_messages {MAX_QUEUED_MESSAGES}
max_queued_bytes {MAX_QUEUED_BYTES}
persistent_client_expiration {PERSISTENT_CLIENT_EXPIRATION}
# Lets a gateway drain its spool fast after an outage (the server Receive Maximum for MQTT 5 clients).
max_inflight_messages 1000
# Oversized payloads up to this reach ingest, which dead-letters them with a reason.
max_packet_size 2097152
set_tcp_nodelay true
log_dest file {data_dir}/{MOSQUITTO_LOG}
log_type error
log_type warning
log_type notice
# information: "Reloading config." tells `ftel stack` that a reload (SIGHUP) has been taken in.
log_type information
connection_messages false
"""


@dataclass(frozen=True, slots=True)
class InfluxTls:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class InfluxTuning:
    """Server settings of InfluxDB 1.x that decide how it takes a county's start (docs/scale.md, "The start of a
    county"); None leaves the server's own default. ``InfluxTuning()`` is the Debian package's configuration."""

    index_version: str | None = None  # [data] index-version: "inmem" or "tsi1"
    wal_fsync_delay: str | None = None  # [data] wal-fsync-delay
    cache_max_memory_size: str | None = None  # [data]
    cache_snapshot_memory_size: str | None = None  # [data]
    max_series_per_database: int | None = None  # [data]; 0: no limit
    max_values_per_tag: int | None = None  # [data]; 0: no limit
    max_index_log_file_size: str | None = None  # [data], tsi1 only
    series_id_set_cache_size: int | None = None  # [data], tsi1 only
    write_timeout: str | None = None  # [coordinator] write-timeout: the 500 "timeout" answer comes after this
    max_concurrent_write_limit: int | None = None  # [http]; 0: no limit
    max_enqueued_write_limit: int | None = None  # [http]; 0: no limit
    enqueued_write_timeout: str | None = None  # [http]
    # Not configuration keys: the Go runtime's settings of the server process, InfluxDB 1.x and 2.x alike. GOGC:
    # its garbage collector runs when the heap has grown by this percentage of what the last collection kept (Go's
    # default is 100); GOMEMLIMIT: past this much memory it collects as often as it must, whatever GOGC says.
    go_gc_percent: int | None = None
    go_memory_limit: str | None = None  # Go's syntax: "6GiB"

    def environment(self) -> dict[str, str]:
        """The variables the server process starts with beside the inherited ones."""
        settings = {"GOGC": self.go_gc_percent, "GOMEMLIMIT": self.go_memory_limit}
        return {name: str(value) for name, value in settings.items() if value is not None}

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        """The settings written into the configuration file, each in its section."""
        return tuple(key for keys in _SECTIONS.values() for key in keys)

    def section(self, name: str) -> str:
        """The lines of ``[name]`` this tuning sets, each as ``  key = value``."""
        keys = _SECTIONS[name]
        out = []
        for key in keys:
            value = getattr(self, key)
            if value is not None:
                text = f'"{value}"' if isinstance(value, str) else str(value)
                out.append(f"  {key.replace('_', '-')} = {text}\n")
        return "".join(out)


_SECTIONS = {
    "data": (
        "index_version",
        "wal_fsync_delay",
        "cache_max_memory_size",
        "cache_snapshot_memory_size",
        "max_series_per_database",
        "max_values_per_tag",
        "max_index_log_file_size",
        "series_id_set_cache_size",
    ),
    "coordinator": ("write_timeout",),
    "http": ("max_concurrent_write_limit", "max_enqueued_write_limit", "enqueued_write_timeout"),
}
DEBIAN_DEFAULTS = InfluxTuning()
_SIZE_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def size_bytes(size: str) -> int:
    """A size as InfluxDB's configuration writes it (``256m``, ``2g``, or bytes) in bytes; InfluxDB 2.x's
    environment variables take bytes."""
    unit = _SIZE_UNITS.get(size[-1].lower(), 1)
    return int(size[:-1] if unit > 1 else size) * unit


# The local stack's InfluxDB (bench/series.py, docs/scale.md "The start of a county"). At 60,000 machines every
# point of the start is of another series, and Debian's 25 MiB snapshots of the cache made the start six times
# slower (writes timed out beside the simulated gateways): 256 MiB, with room to 2 GiB before InfluxDB refuses
# writes. A write slower than that is answered when done (25 s), not refused and written again by ingest's
# retry; below the client's own timeout (InfluxSettings.timeout_s, 30 s), so the server's answer comes first.
# GOGC 400: at 60,000 machines the server keeps 0.7-1.9 GB of live heap (the series index and the cache); at Go's
# default it collected every 13 s, each collection marking for 2-4 s on the busy box, and the one that came with
# the first snapshot of the cache had the writes do 2.4 s of its marking (docs/scale.md, "fifth round"). At 5 times
# the live heap, not twice: a collection a minute or two, whose marking the writes hardly share (0-31 ms), and
# fewer late messages in the 60,000-machine load test (0-0.09 % in three runs, 0.2 % at the default), for about
# 1 GiB more memory. GOMEMLIMIT keeps that from growing without end when the cache fills (a backlog): past 6 GiB
# the collector runs as often as at the default.
COUNTY_START = InfluxTuning(
    cache_max_memory_size="2g",
    cache_snapshot_memory_size="256m",
    write_timeout="25s",
    go_gc_percent=400,
    go_memory_limit="6GiB",
)


def influxdb_conf(
    *,
    data_dir: Path,
    http_port: int,
    rpc_port: int,
    tls: InfluxTls | None = None,
    tuning: InfluxTuning = DEBIAN_DEFAULTS,
) -> str:
    https = (
        ""
        if tls is None
        else f"""  https-enabled = true
  https-certificate = "{tls.cert_file}"
  https-private-key = "{tls.key_file}"
"""
    )
    return f"""# written by ftel stack; edits are overwritten
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{data_dir}/meta"

[data]
  dir = "{data_dir}/data"
  wal-dir = "{data_dir}/wal"
  query-log-enabled = false
  trace-logging-enabled = false
{tuning.section("data")}
[coordinator]
{tuning.section("coordinator")}
[monitor]
  store-enabled = false

[http]
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = true
{https}  log-enabled = false
  max-body-size = 0
{tuning.section("http")}
[continuous_queries]
  enabled = false

[logging]
  level = "warn"
"""
