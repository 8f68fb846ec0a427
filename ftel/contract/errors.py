class ContractError(ValueError):
    """A message does not follow the wire contract; the text is the reason, fit for a dead letter."""
