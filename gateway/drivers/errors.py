"""Errors of the drivers (under the project's one root, ftel.errors.FtelError)."""

from __future__ import annotations

from ftel.errors import FtelError


class DriverError(FtelError):
    """A driver cannot do its job; the text names the machine and what to check."""


class SourceError(DriverError):
    """A controller did not answer, or answered with something unusable: this poll failed."""
