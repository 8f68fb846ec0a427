"""`ftel ingest`: one ingest worker, or N worker processes on one host (one per core is the usual choice)."""

from __future__ import annotations

import argparse
import os
import re

from ftel.children import Interrupts
from ftel.errors import CliError
from ftel.security.credentials import with_identity
from ftel.settings import Settings
from ftel.signals import stop_on_signals
from ingest.supervisor import Supervisor
from ingest.worker import IngestWorker


def worker_ids(first: str, count: int) -> list[str]:
    """``ingest-1`` and 3 → ingest-1, ingest-2, ingest-3; an id without a number gets -1 … -N."""
    match = re.fullmatch(r"(.*?)-(\d+)", first)
    if match is None:
        return [first] if count == 1 else [f"{first}-{n}" for n in range(1, count + 1)]
    prefix, start = match.group(1), int(match.group(2))
    return [f"{prefix}-{n}" for n in range(start, start + count)]


def run_one(settings: Settings) -> int:
    worker = IngestWorker(with_identity(settings, settings.ingest.worker_id))
    worker.run(stop_on_signals())
    print(f"worker {worker.worker_id} stopped: {worker.stats}")
    return 0


def run_many(settings: Settings, ids: list[str], passthrough: list[str]) -> int:
    """One process per worker id, supervised (ingest/supervisor.py): restarted with backoff when one dies,
    stopped in order on Ctrl-C."""
    interrupts = Interrupts()
    try:
        return Supervisor(settings, ids, passthrough).run(interrupts)
    finally:
        interrupts.restore()


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    if args.worker_id:
        settings.ingest.worker_id = args.worker_id
    if args.group:
        settings.ingest.group = args.group
    processes = args.processes or settings.ingest.processes
    if processes == 1:
        return run_one(settings)
    if settings.mqtt.username:
        # The broker binds a client id to its credentials: N workers need N identities, not one.
        ids = ", ".join(worker_ids(settings.ingest.worker_id, processes))
        raise CliError(
            f"--processes {processes} needs an identity per worker ({ids}) from the credentials file (ftel auth "
            "init), not one FTEL_MQTT__USERNAME: run one worker per identity instead"
        )
    if args.group:
        os.environ["FTEL_INGEST__GROUP"] = args.group  # the children read their settings afresh
    passthrough = ["--config", str(args.config)] if args.config else []
    return run_many(settings, worker_ids(settings.ingest.worker_id, processes), passthrough)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="run ingest workers (MQTT shared subscription → InfluxDB)",
        description="Takes its share of every data topic ($share/<group>/ftel/v1/+/+/+/+/+) with a persistent "
        "MQTT 5 session, validates each message against the contract, writes line protocol in batches to "
        "InfluxDB, confirms to each gateway what is stored and only then acknowledges the messages. Rejected "
        "messages go to ftel/v1/deadletter/<worker> with the reason. While InfluxDB refuses writes the worker "
        "holds back and says so (log, retained ftel/v1/health/ingest/<worker>), and resumes by itself. "
        "--processes N runs N workers (ids ingest-1 … ingest-N) on this host.",
    )
    parser.add_argument("--worker-id", help="stable client id (its identity): a restarted worker resumes by it")
    parser.add_argument("--group", help="shared-subscription group (default: ingest)")
    parser.add_argument("--processes", type=int, help="worker processes on this host (FTEL_INGEST__PROCESSES)")
    parser.set_defaults(handler=_ingest)
