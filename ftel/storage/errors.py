from ftel.errors import FtelError


class StorageError(FtelError):
    """Base of the storage package's errors: InfluxDB could not be written or read."""
