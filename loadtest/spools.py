"""What the gateways' spools hold, read from outside their processes (read-only SQLite: a gateway may be
writing). The load test says it while its gateways drain, and what is left when it was stopped at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.spool import SPOOL_FILE


def spool_files(state_dir: Path) -> dict[str, Path]:
    """Each gateway's spool under a state dir laid out as gateway/runner.py's ``gateway_state_dir``
    (<site>/<gateway id>/spool.sqlite), by gateway id."""
    return {path.parent.name: path for path in sorted(state_dir.glob(f"*/*/{SPOOL_FILE}"))}


def held(path: Path) -> int:
    """Messages the spool holds (unconfirmed by ingest); 0 for one that cannot be read (being created)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0) as db:
            return int(db.execute("SELECT count(*) FROM spool").fetchone()[0])
    except sqlite3.Error:
        return 0


def left_in_spools(state_dir: Path) -> dict[str, tuple[int, Path]]:
    """Gateways whose spool holds messages: how many, and where."""
    found = {gateway_id: (held(path), path) for gateway_id, path in spool_files(state_dir).items()}
    return {gateway_id: entry for gateway_id, entry in found.items() if entry[0]}
