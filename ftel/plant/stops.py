"""Micro-stops: a stop shorter than its machine type's threshold (settings: ``micro_stop_s``; defaults in
ftel/settings.py) is counted apart, by count and time, where it ends (docs/boards.md)."""

from __future__ import annotations

from collections.abc import Mapping

from ftel.settings import DEFAULT_MICRO_STOP_S


def micro_stop_limits_ms(limits_s: Mapping[str, float] | None = None) -> dict[str, int]:
    """Per machine type, the micro-stop threshold in ms (the settings' defaults unless given)."""
    return {machine_type: int(s * 1000) for machine_type, s in (limits_s or DEFAULT_MICRO_STOP_S).items()}
