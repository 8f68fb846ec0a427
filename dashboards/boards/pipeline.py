"""Pipeline health: message and point rates, ingest lag, batch sizes, retries, dead letters, gateways."""

from __future__ import annotations

from dashboards import panels as p
from dashboards import queries as q
from dashboards.board import Board, Row

UID = "ftel-pipeline"


def board() -> Board:
    return Board(
        uid=UID,
        title="Pipeline health",
        description="Is the telemetry getting through: ingest rates, lag, batches, retries, dead letters.",
        variables=p.site_variables(),
        rows=[
            Row(
                "Ingest",
                [
                    p.timeseries(
                        "Messages per second",
                        "MQTT messages taken in, per ingest worker.",
                        q.ingest_rate("messages_in"),
                        unit="reqps",
                    ),
                    p.timeseries(
                        "Points per second",
                        "Points written to InfluxDB, per ingest worker.",
                        q.ingest_rate("points_written"),
                        unit="wps",
                    ),
                    p.timeseries(
                        "Ingest lag",
                        "From the gateway's time stamp to the write, worst per interval.",
                        q.ingest_gauge("lag_ms"),
                        unit="ms",
                    ),
                    p.timeseries(
                        "Batch sizes",
                        "Points per write: the last batch (mean) and the largest so far.",
                        q.ingest_gauge("last_batch_size", "mean"),
                        q.ingest_gauge("max_batch_size"),
                    ),
                    p.timeseries(
                        "Retries",
                        "Write retries per interval; steady retries mean InfluxDB is struggling.",
                        q.ingest_increase("retries"),
                    ),
                    p.timeseries(
                        "Dead letters",
                        "Messages rejected per interval (they go to the dead-letter topic).",
                        q.ingest_increase("dead_letters"),
                    ),
                ],
            ),
            Row(
                "Gateways",
                [
                    p.stat_panel("Gateways online", "Gateways whose last status is online.", q.gateways_online()),
                    p.table_panel(
                        "Gateway status",
                        "Each gateway's last birth or death.",
                        q.gateway_status(),
                        w=6,
                        transformations=[
                            p.organise(
                                {
                                    "gateway_id": "Gateway",
                                    "workshop": "Workshop",
                                    "online": "Online",
                                    "Time": "Since",
                                },
                                hide=(),
                            )
                        ],
                    ),
                    p.timeseries("Spool depth", "Messages a gateway holds while the broker is away.", q.spool_depth()),
                ],
            ),
            Row(
                "Rejected",
                [
                    p.table_panel(
                        "Recent dead letters",
                        "Why messages were rejected.",
                        q.dead_letters(),
                        w=24,
                        transformations=[p.sort_by("Time")],
                    ),
                ],
            ),
        ],
    )
