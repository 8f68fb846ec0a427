from ftel.errors import FtelError


class AlertError(FtelError):
    """Base of the alert package's errors."""


class RulesError(AlertError):
    """The rules file cannot be read or does not validate; the text says which rule and why."""


class DeliveryError(AlertError):
    """One delivery attempt (webhook, InfluxDB, MQTT) failed; the outbox retries it later."""
