from ftel.errors import FtelError


class AuthError(FtelError):
    """Credentials, identities or TLS material are missing or wrong; the text says what to do."""
