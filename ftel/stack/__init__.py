"""Local Mosquitto and InfluxDB from Debian's packages, configured by the project, on loopback ports."""

from ftel.stack.services import LocalStack, StackError, free_port

__all__ = ["LocalStack", "StackError", "free_port"]
