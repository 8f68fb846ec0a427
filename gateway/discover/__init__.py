"""`ftel gateway discover`: look at equipment and draft the gateway file that reads it (gateway/discover/opcua.py
for an OPC UA endpoint; Modbus beside it). Discovery only reads: it never writes to a device. The draft is a
starting point that `ftel gateway probe` accepts; the integrator checks each guess it marks ``# check``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Progress lines for the person waiting (the CLI prints them on stderr; tests collect them).
Progress = Callable[[str], None]

NOT_ID = re.compile(r"[^A-Za-z0-9_-]+")


def machine_id(name: str) -> str:
    """A browse name or label as a machine id the contract accepts (ftel/contract/topics.py ID_PATTERN)."""
    cleaned = NOT_ID.sub("-", name).strip("-_") or "machine"
    return cleaned[:64]
