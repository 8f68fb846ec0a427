"""Many gateways in one thread: a county's workshops on one small machine.

Each gateway is cheap between the changes of its machines (gateway/runner.py reads a simulated machine only when
it changes and at window and telemetry edges), so one thread ticks them all in turn instead of a thread each;
their MQTT links share one more, their network thread (a ``LinkHub``, gateway/link_hub.py, given to every
gateway's link by whoever builds them: simulators/session.py). At the end they drain in parallel (each waits for
its own confirmations).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ftel.heap import freeze_start
from gateway.runner import Gateway, Progress


def run_gateways(
    gateways: Sequence[Gateway],
    stop: threading.Event,
    *,
    tick_s: float,
    end_ms: int | None = None,
    first_read_ms: int | None = None,
    on_progress: Callable[[Gateway, Progress], None] | None = None,
    progress_every_s: float = 2.0,
) -> dict[str, Progress]:
    """Run every gateway until ``end_ms`` or ``stop``; return each one's final progress by gateway id."""
    for gateway in gateways:
        gateway.begin(first_read_ms=first_read_ms, end_ms=end_ms)
    freeze_start()
    next_progress = time.monotonic() + progress_every_s
    while not stop.is_set() and not all(g.finished for g in gateways):
        began = time.monotonic()
        for gateway in gateways:
            if not gateway.finished:
                gateway.tick()
        if on_progress and time.monotonic() >= next_progress:
            for gateway in gateways:
                on_progress(gateway, gateway.progress(gateway.last_ms))
            next_progress = time.monotonic() + progress_every_s
        stop.wait(max(0.0, tick_s - (time.monotonic() - began)))
    with ThreadPoolExecutor(max_workers=max(1, len(gateways)), thread_name_prefix="drain") as pool:
        finals = list(pool.map(lambda g: g.shutdown(g.last_ms), gateways))
    return {g.origin.gateway_id: final for g, final in zip(gateways, finals, strict=True)}
