from ftel.errors import FtelError


class AlertError(FtelError):
    """Base of the alert package's errors."""


class RulesError(AlertError):
    """The rules file cannot be read or does not validate; the text says which rule and why."""


class DeliveryError(AlertError):
    """One delivery attempt (webhook, InfluxDB, MQTT) failed; the outbox retries it later, not sooner than
    ``retry_after_s`` when the receiver said so."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
