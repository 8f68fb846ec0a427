"""When a gateway died, decided once (pure).

A gateway that stops says so itself: its death's ``ts`` is its last moment. A last will cannot know when it
will be published (it is registered at connect), so the death of a gateway that vanished is the time of the
last message it was seen to send; whoever watches the stream in order (the alert worker) keeps that time.
A will from an older boot than the gateway's current one is stale: the gateway is already back.
"""

from __future__ import annotations

from ftel.contract.models import GatewayStatus


def death_time_ms(death: GatewayStatus, last_message_ms: int) -> int:
    """The moment ``death`` takes effect, given the time of the gateway's last message seen before it."""
    # A gateway's own death is stamped with its last moment; a will with its connect time, which every later
    # message of that connection outdates: either way the latest of the two is when the gateway was last alive.
    return max(last_message_ms, death.ts)


def is_stale(death: GatewayStatus, current_boot_id: int | None) -> bool:
    """A death of an earlier boot than the one the gateway last announced changes nothing."""
    return current_boot_id is not None and death.boot_id < current_boot_id
