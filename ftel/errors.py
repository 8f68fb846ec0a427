"""The project's one error root. Each package raises a subclass that carries what a person needs to act:
which machine, topic or service, why, and what to do. Third-party errors are wrapped at the edge with
``raise … from``. This is a leaf module: anything may import it, it imports nothing of ours."""

from __future__ import annotations


class FtelError(Exception):
    """Base of every error this project raises on purpose."""


class CliError(FtelError):
    """A problem the user can fix; the CLI prints it without a traceback and exits with 2."""


class ConfigError(FtelError):
    """A settings or configuration file does not validate; the text names the file, the line and the field."""


class MachineryError(FtelError):
    """A worker's own machinery failed (the broker, the database, its disk), not one message: the worker
    waits, reconnects or stops, and acknowledges nothing it has not stored. Inside a message's boundary
    (ftel/boundary.py) this is the one kind of error that is not that message's fault."""
