"""The heap of a long-lived process: what it built to start is put out of the cyclic collector's reach.

A county's gateway process builds its machines' models, drivers and trackers once (hundreds of thousands of
objects that live as long as it does); every full collection walked them all again, 200-400 ms at 10,000
machines every minute or two, and every message made meanwhile waited (bench/gateway_core.py). Frozen, they are
left alone; what is made later is collected as before.
"""

from __future__ import annotations

import gc


def freeze_start() -> None:
    """Collect once, then freeze everything alive: call when the process's start-up objects are built."""
    gc.collect()
    gc.freeze()
