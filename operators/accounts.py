"""Operators' sign-in: each operator identity of the credentials file (`ftel auth add NAME --role operator --site S
--workshop W1,W2`), its password kept only as a salted scrypt hash in the page's memory."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from ftel.security.credentials import Credentials
from ftel.security.identities import Identity, Role

# scrypt's cost (RFC 7914's interactive setting): about 50 ms and 16 MiB per sign-in.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)


@dataclass(frozen=True, slots=True)
class Account:
    identity: Identity
    salt: bytes
    digest: bytes

    def accepts(self, password: str) -> bool:
        return hmac.compare_digest(_hash(password, self.salt), self.digest)


@dataclass(frozen=True, slots=True)
class Accounts:
    by_name: Mapping[str, Account]

    @classmethod
    def of(cls, identities_and_passwords: Mapping[Identity, str]) -> Accounts:
        accounts = {}
        for identity, password in identities_and_passwords.items():
            salt = secrets.token_bytes(SALT_BYTES)
            accounts[identity.name] = Account(identity, salt, _hash(password, salt))
        return cls(accounts)

    @classmethod
    def from_credentials(cls, credentials: Credentials) -> Accounts:
        operators = [i for i in credentials.all_identities() if i.role is Role.OPERATOR]
        return cls.of({i: credentials.identities[i.name].password.get_secret_value() for i in operators})

    def sign_in(self, name: str, password: str) -> Identity | None:
        account = self.by_name.get(name)
        if account is None:
            _hash(password, b"\0" * SALT_BYTES)  # as slow as a known name: the time tells nothing
            return None
        return account.identity if account.accepts(password) else None
