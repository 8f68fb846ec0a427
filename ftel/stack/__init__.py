"""Local Mosquitto and InfluxDB from Debian's packages, configured by the project, on loopback ports."""

from ftel.stack.configured import stack_from_settings
from ftel.stack.services import LocalStack, StackError, free_port

__all__ = ["LocalStack", "StackError", "free_port", "stack_from_settings"]
