"""The auth files on disk: the credentials file and, beside it, Mosquitto's password and ACL files made from it.

`ftel auth init`, `ftel stack up` and the tests' grants all come through ``provision``: it adds what is
missing, keeps every password already given, and rewrites a file only when its content changes, so the
broker is reloaded only when something did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ftel.security.credentials import Credentials, load_credentials, merged, save_credentials, write_private
from ftel.security.identities import Identity
from ftel.security.mosquitto import acl_file, password_file

PASSWORD_FILE = "mosquitto.passwd"
ACL_FILE = "mosquitto.acl"


@dataclass(frozen=True, slots=True)
class AuthFiles:
    credentials: Path

    @property
    def directory(self) -> Path:
        return self.credentials.parent

    @property
    def mosquitto_passwords(self) -> Path:
        return self.directory / PASSWORD_FILE

    @property
    def mosquitto_acl(self) -> Path:
        return self.directory / ACL_FILE

    def exist(self) -> bool:
        return all(p.exists() for p in (self.credentials, self.mosquitto_passwords, self.mosquitto_acl))


@dataclass(frozen=True, slots=True)
class Provisioned:
    credentials: Credentials
    # Mosquitto's password or ACL file changed: a running broker must reload them (SIGHUP).
    broker_changed: bool


def provision(files: AuthFiles, wanted: Iterable[Identity]) -> Provisioned:
    existing = load_credentials(files.credentials) if files.credentials.exists() else None
    credentials = merged(existing, wanted)
    save_credentials(files.credentials, credentials)
    previous = files.mosquitto_passwords.read_text() if files.mosquitto_passwords.exists() else ""
    changed = write_private(files.mosquitto_passwords, password_file(credentials.mqtt_passwords(), previous))
    changed |= write_private(files.mosquitto_acl, acl_file(credentials.all_identities()))
    return Provisioned(credentials, changed)
