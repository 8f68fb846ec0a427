from ftel.errors import FtelError


class ContractError(FtelError, ValueError):
    """A message does not follow the wire contract; the text is the reason, fit for a dead letter."""
