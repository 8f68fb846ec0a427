"""Server-side sessions: a random id in an HttpOnly, SameSite=Strict cookie, and per session a CSRF token that
every form carries back. A session is made before sign-in (the sign-in form is protected too) and replaced by a
new one at sign-in, so an id known before cannot be used after."""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ftel.security.identities import Identity

COOKIE = "ftel_operator_session"
TOKEN_BYTES = 32


@dataclass(slots=True)
class Session:
    id: str
    csrf: str
    identity: Identity | None = None
    last_seen: float = 0.0

    def csrf_ok(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


@dataclass(slots=True)
class Sessions:
    idle_s: float
    clock: Callable[[], float]
    _by_id: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new(self, identity: Identity | None = None) -> Session:
        session = Session(secrets.token_urlsafe(TOKEN_BYTES), secrets.token_urlsafe(TOKEN_BYTES), identity)
        session.last_seen = self.clock()
        with self._lock:
            self._drop_expired()
            self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None
            now = self.clock()
            if now - session.last_seen > self.idle_s:
                del self._by_id[session_id]
                return None
            session.last_seen = now
            return session

    def end(self, session_id: str) -> None:
        with self._lock:
            self._by_id.pop(session_id, None)

    def _drop_expired(self) -> None:
        now = self.clock()
        for old in [s.id for s in self._by_id.values() if now - s.last_seen > self.idle_s]:
            del self._by_id[old]
