"""The one way a person's reason is stored: the page and the simulated operators both write through here."""

from __future__ import annotations

from ftel.plant.reasons import Choice
from ftel.storage.lineproto import encode_batch
from ftel.storage.points import reason_points
from ftel.storage.writer import LineWriter, RetryPolicy, write_with_retry


def record_choice(writer: LineWriter, choice: Choice, policy: RetryPolicy) -> None:
    """Write the stop's standing reason (overwriting an earlier one) and the choice's log entry; retried by
    ``policy`` (the settings' ``direct_write_policy``), a WriteError when it gives up."""
    write_with_retry(writer, encode_batch(reason_points(choice)), policy)
