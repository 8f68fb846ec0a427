"""What `ftel run` remembers between runs (pure, plus one small JSON file): the simulated plant's start, so a
second run continues the same plant from where the first stopped instead of simulating its past again."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

RUN_FILE = "run.json"
# Catching up a longer gap than this at the history speed-up takes too long: a new plant history starts.
MAX_CATCH_UP_MS = 24 * 3_600_000


@dataclass(frozen=True, slots=True)
class RunState:
    plant: str  # fingerprint of the plant file: a different plant is a different run
    start_ms: int  # the simulation's start (the machines' seeds depend on it)
    stopped_ms: int  # plant time when the last run stopped


def plant_fingerprint(plant_json: str) -> str:
    return hashlib.blake2b(plant_json.encode(), digest_size=12).hexdigest()


def load(directory: Path) -> RunState | None:
    path = directory / RUN_FILE
    try:
        return RunState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def save(directory: Path, state: RunState) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RUN_FILE).write_text(json.dumps(asdict(state)))


def continues(previous: RunState | None, *, plant: str, now_ms: int) -> RunState | None:
    """The previous run to continue, if it is the same plant and its gap can be caught up."""
    if previous is None or previous.plant != plant or now_ms - previous.stopped_ms > MAX_CATCH_UP_MS:
        return None
    return previous
