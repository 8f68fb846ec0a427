"""InfluxDB 1.x users from the credentials (pure: the InfluxQL statements; the stack runs them as admin).

One user per kind of access, shared by the identities of the roles that need it: ``ftel_ingest`` and
``ftel_alerts`` may only write the database, ``ftel_reader`` (supervisors, maintenance, Grafana) may only read
it, ``ftel_admin`` has ALL PRIVILEGES (InfluxDB 1.x lets the first admin be created without credentials).
"""

from __future__ import annotations

from ftel.security.credentials import Credentials
from ftel.security.identities import INFLUX_PRIVILEGES, InfluxUser


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def create_admin(credentials: Credentials) -> str:
    password = quote_string(credentials.influx_password(InfluxUser.ADMIN))
    return f"CREATE USER {quote_ident(InfluxUser.ADMIN.value)} WITH PASSWORD {password} WITH ALL PRIVILEGES"


def user_statements(credentials: Credentials, existing: set[str]) -> list[str]:
    """Create the missing users and set every user's password to the file's (so the file is the truth)."""
    statements: list[str] = []
    for user in InfluxUser:
        password = quote_string(credentials.influx_password(user))
        if user.value not in existing:
            extra = " WITH ALL PRIVILEGES" if INFLUX_PRIVILEGES[user] == "ALL" else ""
            statements.append(f"CREATE USER {quote_ident(user.value)} WITH PASSWORD {password}{extra}")
        else:
            statements.append(f"SET PASSWORD FOR {quote_ident(user.value)} = {password}")
    return statements


def grant_statements(database: str) -> list[str]:
    """The per-database privileges (the admin has ALL already)."""
    return [
        f"GRANT {privilege} ON {quote_ident(database)} TO {quote_ident(user.value)}"
        for user, privilege in INFLUX_PRIVILEGES.items()
        if privilege != "ALL"
    ]
