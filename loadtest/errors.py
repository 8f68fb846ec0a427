from ftel.errors import FtelError


class LoadTestError(FtelError):
    """A load test could not be set up or run; the text says what to do."""
