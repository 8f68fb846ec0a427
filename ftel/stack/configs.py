"""Configuration files for the local services (pure: text in, text out)."""

from __future__ import annotations

from pathlib import Path


def mosquitto_conf(*, data_dir: Path, port: int, user: str) -> str:
    # Started as root, mosquitto drops to the `mosquitto` user, which cannot write our data dir: no
    # persistence and sessions lost on restart. Keep the starting user (ignored when not root).
    return f"""# written by ftel stack; edits are overwritten
user {user}
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {data_dir}/
autosave_interval 10
# A stopped ingest worker's persistent session must keep everything that arrives meanwhile.
max_queued_messages 0
max_queued_bytes 0
persistent_client_expiration 14d
# Lets a gateway drain its spool fast after an outage (the server Receive Maximum for MQTT 5 clients).
max_inflight_messages 1000
# Oversized payloads up to this reach ingest, which dead-letters them with a reason.
max_packet_size 2097152
set_tcp_nodelay true
log_dest file {data_dir}/mosquitto.log
log_type error
log_type warning
log_type notice
connection_messages false
"""


def influxdb_conf(*, data_dir: Path, http_port: int, rpc_port: int) -> str:
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

[monitor]
  store-enabled = false

[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
  max-body-size = 0

[continuous_queries]
  enabled = false

[logging]
  level = "warn"
"""
