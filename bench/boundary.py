"""Benchmark (not a test): what the per-message boundary and the one bounded parse cost on the ingest hot path.

In one run, over the same window messages as bench/drain.py (contract-valid, as gateways send them), without a
broker or a database so that only the per-message work is timed:

- the previous decode, for the baseline: pydantic parsing the bytes itself (``model_validate_json``), then the
  points and their lines, as route() did before it parsed once with limits;
- route() now: the one bounded parse (pydantic-core's ``from_json``), validation of the parsed value, the sender
  read from the same parse, the points and lines;
- the worker's own handling of a message (``IngestWorker._take``: route, then into the batch) outside the
  boundary, and inside it (``_on_message``: the boundary, as deployed).

Printed: messages per second of each, and the ratios (boundary vs none, new parse vs old).

    python bench/boundary.py [--messages 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from bench.drain import backlog
from ftel.boundary import Stage
from ftel.contract.codec import MODEL_BY_KIND
from ftel.contract.topics import parse_topic
from ftel.settings import IngestSettings, Settings
from ftel.storage.lineproto import encode_point
from ftel.storage.points import to_points
from ingest.batch import Batch
from ingest.route import route
from ingest.worker import IngestWorker, wall_ms

console = Console()


class NullTransport:
    """Takes whatever the worker would send; nothing is sent (only per-message work is timed)."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None: ...
    def ack(self, mid: int) -> None: ...
    def wake(self) -> None: ...
    def close(self) -> None: ...


class NullWriter:
    def write(self, body: bytes) -> None: ...
    def close(self) -> None: ...


def previous_route(topic: str, payload: bytes) -> tuple[str, ...]:
    """The baseline: how route() decoded before (pydantic parsing the bytes itself), then the same lines."""
    address = parse_topic(topic)
    message = MODEL_BY_KIND[address.kind].model_validate_json(payload)
    return tuple(encode_point(p) for p in to_points(message))  # type: ignore[arg-type]


def rate(messages: list[tuple[str, bytes]], handle: Callable[[str, bytes, int], object], repeat: int) -> float:
    """The best of ``repeat`` passes, in messages per second."""
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        for mid, (topic, payload) in enumerate(messages, start=1):
            handle(topic, payload, mid)
        best = max(best, len(messages) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    messages = backlog(args.messages, "qinghe")
    limits = IngestSettings().time_limits()
    worker = IngestWorker(
        Settings(ingest=IngestSettings(worker_id="bench")),
        transport=NullTransport(),  # type: ignore[arg-type]
        writer=NullWriter(),
    )

    def fresh_batch(mid: int) -> None:
        if mid % 10_000 == 0:
            worker._batch = Batch(0)  # as a stored batch would leave it

    def take(topic: str, payload: bytes, mid: int) -> None:
        worker._take(Stage("route"), topic, payload, wall_ms(), mid)
        fresh_batch(mid)

    def contained(topic: str, payload: bytes, mid: int) -> None:
        worker._on_message(topic, payload, mid, 1)
        fresh_batch(mid)

    console.print(f"{len(messages):,} window messages, best of {args.repeat} passes each…")
    figures = {
        "previous decode (model_validate_json) + lines": rate(
            messages, lambda t, p, _: previous_route(t, p), args.repeat
        ),
        "route(): one bounded parse + lines": rate(
            messages, lambda t, p, _: route(t, p, received_ms=wall_ms(), limits=limits), args.repeat
        ),
        "worker, outside the boundary (_take)": rate(messages, take, args.repeat),
        "worker, inside the boundary (_on_message)": rate(messages, contained, args.repeat),
    }
    table = Table(title="ingest hot path, per message (no broker, no database)")
    table.add_column("path")
    table.add_column("messages/s", justify="right")
    table.add_column("µs/message", justify="right")
    for name, value in figures.items():
        table.add_row(name, f"{value:,.0f}", f"{1e6 / value:.1f}")
    console.print(table)
    names = list(figures)
    console.print(f"new parse vs previous decode: ratio {figures[names[1]] / figures[names[0]]:.2f}")
    console.print(f"inside vs outside the boundary: ratio {figures[names[3]] / figures[names[2]]:.2f}")


if __name__ == "__main__":
    main()
