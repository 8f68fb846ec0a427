"""`ftel ingest`: one ingest worker."""

from __future__ import annotations

import argparse
import asyncio
import signal

from ftel.settings import Settings
from ingest.worker import IngestWorker


async def run_worker(settings: Settings) -> IngestWorker:
    worker = IngestWorker(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await worker.run(stop)
    return worker


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    if args.worker_id:
        settings.ingest.worker_id = args.worker_id
    if args.group:
        settings.ingest.group = args.group
    worker = asyncio.run(run_worker(settings))
    print(f"worker {settings.ingest.worker_id} stopped: {worker.stats}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="run an ingest worker (MQTT shared subscription → InfluxDB)",
        description="Takes its share of every data topic ($share/<group>/ftel/v1/+/+/+/+/+) with a persistent "
        "MQTT 5 session, validates each message against the contract, writes line protocol in batches to "
        "InfluxDB and acknowledges messages only after their batch is written. Rejected messages go to "
        "ftel/v1/deadletter/<worker> with the reason. Run several with distinct --worker-id to share the load.",
    )
    parser.add_argument("--worker-id", help="stable client id: a restarted worker resumes its session by it")
    parser.add_argument("--group", help="shared-subscription group (default: ingest)")
    parser.set_defaults(handler=_ingest)
