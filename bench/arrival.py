"""Diagnosis beside a running load test (not a test): per message kind, how long after its own timestamp each
message reaches the broker, from a subscriber on the plant's data topics.

The load test's end-to-end latency (docs/scale.md) is one histogram, machine timestamp to stored point; this
splits the part before the broker by kind (telemetry, window, rollup, event, heartbeat, status…), which tells the
gateways' share of a slow percentile from ingest's. Run it while `ftel loadtest` runs at real time, pointed at the
load test's broker and credentials file (both in its --out directory), with an identity that may read the data
topics (maintenance by default: the load test's own monitor is the supervisor, and one identity connects once).
Messages in the first --warmup-s seconds are left out, and the table is printed again every --every-s seconds,
and at Ctrl-C:

    python bench/arrival.py --port <the listener in OUT/stack/mosquitto/mosquitto.conf> \\
        --credentials OUT/stack/auth/credentials.yaml [--site qinghe] [--warmup-s 180] [--every-s 30]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from ftel.contract.topics import data_filter
from ftel.histogram import Histogram
from ftel.mqtt import paho_client
from ftel.security.credentials import with_identity
from ftel.settings import Settings

LATE_MS = 2_000  # a bucket bound (ftel/histogram.py), so the count above it is exact


class Arrivals:
    """One latency histogram per message kind (the topic's last level)."""

    def __init__(self, *, warmup_s: float) -> None:
        self._from_s = time.time() + warmup_s
        self._lock = threading.Lock()
        self.by_kind: dict[str, Histogram] = defaultdict(Histogram)

    def note(self, topic: str, payload: bytes) -> None:
        now_s = time.time()
        if now_s < self._from_s:
            return
        try:
            ts = int(json.loads(payload)["ts"])
        except (ValueError, KeyError, TypeError):
            return  # not a contract message: the load test's verdict judges those
        latency_ms = max(0, round(now_s * 1000) - ts)
        kind = topic.rsplit("/", 1)[-1]
        with self._lock:
            self.by_kind[kind].add(latency_ms)

    def table(self) -> Table:
        table = Table(title="broker arrival minus the message's ts, ms (upper bounds of histogram buckets)")
        for column in ("kind", "messages", "p50", "p95", "p99", f"over {LATE_MS:,} ms"):
            table.add_column(column, justify="left" if column == "kind" else "right")
        with self._lock:
            everything = Histogram()
            for kind, histogram in sorted(self.by_kind.items()):
                everything.merge(histogram)
                table.add_row(kind, *_figures(histogram))
            table.add_row("all", *_figures(everything))
        return table


def _figures(histogram: Histogram) -> list[str]:
    percentiles = (histogram.percentile(p) for p in (50, 95, 99))
    shown = ("–" if ms is None else f"≤ {ms:,}" for ms in percentiles)
    return [f"{histogram.total:,}", *shown, f"{histogram.over(LATE_MS):,}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True, help="the load test's broker port")
    parser.add_argument("--credentials", type=Path, required=True, help="the load test's credentials file")
    parser.add_argument("--site", default="qinghe")
    parser.add_argument("--identity", default="maintenance")
    parser.add_argument("--warmup-s", type=float, default=180.0)
    parser.add_argument("--every-s", type=float, default=30.0)
    args = parser.parse_args()
    os.environ["FTEL_MQTT__PORT"] = str(args.port)
    os.environ["FTEL_AUTH__CREDENTIALS_FILE"] = str(args.credentials)
    mqtt = with_identity(Settings(), args.identity).mqtt
    arrivals = Arrivals(warmup_s=args.warmup_s)
    client = paho_client(mqtt, client_id=args.identity)
    client.on_message = lambda _c, _u, message: arrivals.note(message.topic, bytes(message.payload))
    client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(data_filter(args.site), qos=0)
    client.connect(mqtt.host, mqtt.port)
    client.loop_start()
    console = Console()
    try:
        while True:
            time.sleep(args.every_s)
            console.print(arrivals.table())
    except KeyboardInterrupt:
        console.print(arrivals.table())
    finally:
        client.loop_stop()
        client.disconnect()


if __name__ == "__main__":
    main()
