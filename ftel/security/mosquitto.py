"""Mosquitto's password file and ACL file, generated from the identities (pure: values in, text out).

Password lines are Mosquitto 2.0's own format, ``user:$7$<iterations>$<salt>$<hash>``: PBKDF2-HMAC-SHA512 over
the password with a 12-byte random salt, both base64 (what ``mosquitto_passwd`` writes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping

from ftel.security.identities import Identity, grants

HASH_TYPE = 7  # Mosquitto's id for PBKDF2-SHA512
# Mosquitto's own default. The passwords are 256-bit random tokens, so offline guessing is hopeless at any
# iteration count; a low one keeps a reconnect storm of thousands of gateways cheap for the broker.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64
HEADER = "# written by ftel auth from the credentials file; edits are overwritten\n"


def password_line(
    username: str, password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """One line of Mosquitto's password file (without the newline)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return f"{username}:${HASH_TYPE}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_line(line: str, username: str, password: str) -> bool:
    """Whether ``line`` lets ``username`` in with ``password`` (as Mosquitto checks it)."""
    name, _, hashed = line.strip().partition(":")
    parts = hashed.split("$")
    if name != username or len(parts) != 5 or parts[0] != "" or parts[1] != str(HASH_TYPE):
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except (ValueError, binascii.Error):
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(expected))
    return hmac.compare_digest(digest, expected)


def password_file(passwords: Mapping[str, str], previous: str = "") -> str:
    """The whole password file, sorted by user. A line of ``previous`` that still verifies is kept as it is,
    so the file changes (and the broker is reloaded) only when an identity or a password does."""
    kept: dict[str, str] = {}
    for line in previous.splitlines():
        name = line.partition(":")[0]
        if name in passwords and verify_line(line, name, passwords[name]):
            kept[name] = line.strip()
    lines = [kept.get(name) or password_line(name, passwords[name]) for name in sorted(passwords)]
    return HEADER + "".join(f"{line}\n" for line in lines)


def acl_file(identities: Iterable[Identity]) -> str:
    """One ``user`` block per identity with exactly its grants; anything not listed is denied.

    Mosquitto 2.0 checks ``read`` when it delivers a message (retained ones included), not when it grants a
    subscription: a client may subscribe to ``#`` or to ``$share/<group>/…`` but receives only topics its
    ``read`` lines match. ``write`` is checked on every PUBLISH and on the last will.
    """
    blocks = [HEADER.rstrip("\n"), "# no lines before the first user: clients without a username get nothing"]
    for identity in sorted(identities, key=lambda i: i.name):
        g = grants(identity)
        lines = [f"# {identity.describe()}", f"user {identity.name}"]
        both = [t for t in g.publish if t in g.receive]
        lines += [f"topic readwrite {t}" for t in both]
        lines += [f"topic write {t}" for t in g.publish if t not in both]
        lines += [f"topic read {t}" for t in g.receive if t not in both]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
