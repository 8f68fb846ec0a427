"""Bounds of what a message may say: beyond them a value is not a measurement but a fault (pure data).

InfluxDB stores integers as signed 64-bit, so nothing larger may pass; the rest are what cannot be true of a
machine in a Qinghe workshop, with room to spare.
"""

from __future__ import annotations

INT64_MAX = 2**63 - 1
# Message times lie in this century: 2000-01-01 ≤ ts < 2100-01-01 (InfluxDB refuses epoch 0 in a retention policy).
EPOCH_MIN_MS = 946_684_800_000
EPOCH_MAX_MS = 4_102_444_800_000
# No state lasts longer, no machine runs longer between services, no gateway is up longer without a restart.
MAX_DURATION_MS = 10 * 366 * 86_400_000
MIN_WINDOW_MS = 1_000
MAX_WINDOW_MS = 86_400_000
# A stop lasts at least a millisecond of DOWN and a poll; at most one stop per second of window is plenty.
STOPS_PER_WINDOW_SECOND = 1
# Flat knitting makes a few units an hour; one unit per millisecond of window is far beyond any machine.
UNITS_PER_WINDOW_MS = 1
TEMPERATURE_MIN_C = -50.0
TEMPERATURE_MAX_C = 400.0
MAX_SPEED = 1_000_000.0  # rpm, m/min or m/s: no textile machine comes near
MAX_SERVICE_INTERVAL_H = 100_000.0
# One gateway per workshop; its birth lists every machine with its state, and must fit one payload.
MAX_MACHINES_PER_GATEWAY = 600
MAX_CONFIRM_RANGES = 10_000
# Free text in a message (model and line names, a controller's program name).
MAX_TEXT_CHARS = 200
# A machine's hourly roll-up goes out on one of this many window edges after its hour's end (the gateway spreads a
# fleet's over them), then at the gateway's phase (less than a window): a reader takes an hour's roll-ups as all
# there once this many windows and one more have passed.
MACHINE_HOUR_SPREAD_WINDOWS = 10
