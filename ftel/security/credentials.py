"""Each process connects as an identity (a gateway id, an ingest worker id, ``alerts``, ``supervisor``…)
whose passwords `ftel auth init` generated into the credentials file (YAML, mode 0600).

``with_identity(settings, identity)`` is what every entry point calls before it connects: it fills in the
identity's MQTT username and password and its role's InfluxDB user, unless the settings already carry
credentials of their own (explicit settings always win).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from ftel.security.errors import AuthError
from ftel.security.identities import Identity, InfluxUser, Role, check_unique
from ftel.settings import Settings

log = logging.getLogger(__name__)

FILE_HEADER = (
    "# ftel credentials: every identity's MQTT password and the InfluxDB users' passwords.\n"
    "# Written by `ftel auth init` (mode 0600). Keep it secret; never commit it. `ftel auth show NAME` prints\n"
    "# what a person or a process needs to connect as NAME.\n"
)
PASSWORD_BYTES = 32


def new_password() -> str:
    # URL-safe base64: nothing to escape in YAML, InfluxQL strings, environment files or URLs.
    return secrets.token_urlsafe(PASSWORD_BYTES)


class IdentityEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    password: SecretStr
    site: str | None = None
    workshop: str | None = None


class InfluxEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    password: SecretStr


class Credentials(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    identities: dict[str, IdentityEntry] = {}
    influx: dict[InfluxUser, InfluxEntry] = {}

    def identity(self, name: str) -> Identity:
        entry = self.identities[name]
        return Identity(name, entry.role, entry.site, entry.workshop)

    def all_identities(self) -> list[Identity]:
        return [self.identity(name) for name in sorted(self.identities)]

    def mqtt_passwords(self) -> dict[str, str]:
        return {name: entry.password.get_secret_value() for name, entry in self.identities.items()}

    def influx_password(self, user: InfluxUser) -> str:
        entry = self.influx.get(user)
        if entry is None:
            raise AuthError(f"the credentials file has no password for the InfluxDB user {user}; run `ftel auth init`")
        return entry.password.get_secret_value()

    def to_yaml(self) -> str:
        def identity(entry: IdentityEntry) -> dict[str, str]:
            data = {"role": entry.role.value, "password": entry.password.get_secret_value()}
            if entry.site is not None and entry.workshop is not None:
                data |= {"site": entry.site, "workshop": entry.workshop}
            return data

        data = {
            "version": self.version,
            "identities": {name: identity(self.identities[name]) for name in sorted(self.identities)},
            "influx": {user.value: {"password": self.influx[user].password.get_secret_value()} for user in self.influx},
        }
        return FILE_HEADER + yaml.safe_dump(data, sort_keys=False)


def merged(
    existing: Credentials | None,
    wanted: Iterable[Identity],
    *,
    password: Callable[[], str] = new_password,
) -> Credentials:
    """``existing`` plus every ``wanted`` identity (pure but for the passwords it draws): passwords already
    given are kept, a wanted identity's role and binding replace the old ones, identities not wanted now
    (granted earlier) stay, and every InfluxDB user has a password."""
    base = existing or Credentials()
    wanted = list(wanted)
    check_unique(wanted)
    identities = dict(base.identities)
    for identity in wanted:
        old = identities.get(identity.name)
        identities[identity.name] = IdentityEntry(
            role=identity.role,
            password=old.password if old is not None else SecretStr(password()),
            site=identity.site,
            workshop=identity.workshop,
        )
    influx = {user: base.influx.get(user) or InfluxEntry(password=SecretStr(password())) for user in InfluxUser}
    return Credentials(identities=identities, influx=influx)


def load_credentials(path: Path) -> Credentials:
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except OSError as error:
        raise AuthError(f"cannot read the credentials file {path}: {error}; create it with `ftel auth init`") from error
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("credentials file %s can be read by others; chmod 600 it", path)
    try:
        return Credentials.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as error:
        raise AuthError(f"credentials file {path} is not valid ({error}); rewrite it with `ftel auth init`") from error


def write_private(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` with mode 0600 (atomically, directory 0700); False when it was already so."""
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:  # mkstemp creates it 0600
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True


def save_credentials(path: Path, credentials: Credentials) -> bool:
    return write_private(path, credentials.to_yaml())


def _explicit(settings: Settings) -> tuple[bool, bool]:
    """Whether the settings carry MQTT and InfluxDB credentials of their own."""
    return settings.mqtt.username is not None, settings.influx.username is not None or settings.influx.token is not None


def without_credentials(settings: Settings) -> Settings:
    mqtt = settings.mqtt.model_copy(update={"username": None, "password": None})
    influx = settings.influx.model_copy(update={"username": None, "password": None, "token": None})
    return settings.model_copy(update={"mqtt": mqtt, "influx": influx})


def identity_settings(settings: Settings, credentials: Credentials, identity: str, *, source: str) -> Settings:
    """``settings`` with ``identity``'s credentials from ``credentials`` where the settings have none."""
    mqtt_explicit, influx_explicit = _explicit(settings)
    if mqtt_explicit and influx_explicit:
        return settings
    entry = credentials.identities.get(identity)
    if entry is None:
        raise AuthError(
            f"no identity {identity!r} in {source}; gateways come from the plant file and ingest workers are "
            "ingest-1 … ingest-N (FTEL_AUTH__INGEST_WORKERS): run `ftel auth init`, or give credentials "
            "with FTEL_MQTT__USERNAME/PASSWORD"
        )
    updates: dict[str, object] = {}
    if not mqtt_explicit:
        updates["mqtt"] = settings.mqtt.model_copy(update={"username": identity, "password": entry.password})
    influx_user = Identity(identity, entry.role, entry.site, entry.workshop).influx_user
    if not influx_explicit and influx_user is not None:
        password = SecretStr(credentials.influx_password(influx_user))
        updates["influx"] = settings.influx.model_copy(update={"username": influx_user.value, "password": password})
    return settings.model_copy(update=updates)


def with_identity(settings: Settings, identity: str) -> Settings:
    """``settings`` with the MQTT and InfluxDB credentials of ``identity`` filled in from the credentials file,
    unless they are given explicitly. Unchanged when there is no credentials file."""
    path = settings.credentials_file
    if all(_explicit(settings)) or not path.exists():
        return settings
    return identity_settings(settings, load_credentials(path), identity, source=str(path))


def credential_env(settings: Settings) -> dict[str, str]:
    """The FTEL_* variables that carry ``settings``' credentials (for a process started with them)."""
    env: dict[str, str] = {}
    if settings.mqtt.username is not None:
        env["FTEL_MQTT__USERNAME"] = settings.mqtt.username
        if settings.mqtt.password is not None:
            env["FTEL_MQTT__PASSWORD"] = settings.mqtt.password.get_secret_value()
    if settings.influx.username is not None:
        env["FTEL_INFLUX__USERNAME"] = settings.influx.username
        if settings.influx.password is not None:
            env["FTEL_INFLUX__PASSWORD"] = settings.influx.password.get_secret_value()
    return env
