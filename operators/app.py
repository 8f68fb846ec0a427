"""The operator page as a WSGI application (standard library only). Every path but the sign-in form needs a
signed-in operator; an operator sees and writes only the workshops it is bound to; every POST carries the
session's CSRF token. Reading and writing are passed in (``StopReader``, a ``LineWriter``)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import tzinfo
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, quote
from wsgiref.types import StartResponse, WSGIEnvironment

from ftel.errors import FtelError
from ftel.plant.orders import OrdersError
from ftel.plant.reasons import ReasonBook, ReasonError, make_choice
from ftel.security.identities import Identity
from ftel.storage.writer import LineWriter, RetryPolicy
from operators import view
from operators.accounts import Accounts
from operators.board import StopReader
from operators.jobs import JobDesk, record_job_change
from operators.record import record_choice
from operators.sessions import COOKIE, Session, Sessions

log = logging.getLogger(__name__)

# A form is a few fields; anything larger is not ours.
MAX_FORM_BYTES = 4096
MAX_FORM_FIELDS = 10
SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]


@dataclass(frozen=True, slots=True)
class Response:
    status: HTTPStatus
    body: str = ""
    location: str | None = None
    cookie: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    form: dict[str, str]
    session: Session | None


def _redirect(location: str, cookie: str | None = None) -> Response:
    return Response(HTTPStatus.SEE_OTHER, location=location, cookie=cookie)


class OperatorPage:
    def __init__(
        self,
        *,
        accounts: Accounts,
        sessions: Sessions,
        reader: StopReader,
        desk: JobDesk,
        writer: LineWriter,
        write_policy: RetryPolicy,
        book: ReasonBook,
        zone: tzinfo,
        secure_cookies: bool = False,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._accounts = accounts
        self._sessions = sessions
        self._reader = reader
        self._desk = desk
        self._writer = writer
        self._write_policy = write_policy
        self._book = book
        self._zone = zone
        self._secure = secure_cookies
        self._now_ms = now_ms

    # --- WSGI ------------------------------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            response = self._handle(self._request(environ))
        except _BadRequest as error:
            response = Response(HTTPStatus.BAD_REQUEST, view.refusal("Bad request", str(error)))
        except FtelError as error:  # InfluxDB away or refusing: say so, keep serving
            log.warning("operator page: %s", error)
            response = Response(HTTPStatus.SERVICE_UNAVAILABLE, view.refusal("Not available", str(error)))
        headers = [("Content-Type", "text/html; charset=utf-8"), *SECURITY_HEADERS]
        if response.location:
            headers.append(("Location", response.location))
        if response.cookie is not None:
            headers.append(("Set-Cookie", self._cookie(response.cookie)))
        body = response.body.encode()
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{response.status.value} {response.status.phrase}", headers)
        return [body]

    def _cookie(self, value: str) -> str:
        expire = "; Max-Age=0" if not value else ""
        secure = "; Secure" if self._secure else ""
        return f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{expire}"

    def _request(self, environ: WSGIEnvironment) -> Request:
        method = environ["REQUEST_METHOD"]
        form: dict[str, str] = {}
        if method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                raise _BadRequest("the request's length is not a number") from None
            if not 0 <= length <= MAX_FORM_BYTES:
                raise _BadRequest("the form is too large")
            raw = environ["wsgi.input"].read(length).decode("utf-8", errors="replace")
            try:
                form = {k: v[0] for k, v in parse_qs(raw, max_num_fields=MAX_FORM_FIELDS).items()}
            except ValueError:
                raise _BadRequest("the form has too many fields") from None
        cookies: SimpleCookie = SimpleCookie()
        with contextlib.suppress(CookieError):  # a malformed cookie is no session
            cookies.load(environ.get("HTTP_COOKIE", ""))
        morsel = cookies.get(COOKIE)
        session = self._sessions.get(morsel.value if morsel else None)
        return Request(method, environ.get("PATH_INFO", "/") or "/", form, session)

    # --- routes ----------------------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        if request.path == "/login":
            return self._login(request)
        session = request.session
        if session is None or session.identity is None:
            if request.method == "GET":
                return _redirect("/login")
            return Response(HTTPStatus.UNAUTHORIZED, view.refusal("Sign in first", "Sign in, then try again."))
        if request.method == "POST" and not session.csrf_ok(request.form.get("csrf")):
            return Response(HTTPStatus.FORBIDDEN, view.refusal("Refused", "This form is stale: open the page again."))
        identity = session.identity
        parts = [p for p in request.path.split("/") if p]
        if request.path == "/logout" and request.method == "POST":
            self._sessions.end(session.id)
            return _redirect("/login", cookie="")
        if not parts and request.method == "GET":
            return _redirect(f"/w/{quote(identity.workshops[0])}")
        if len(parts) >= 2 and parts[0] == "w":
            workshop = parts[1]
            if workshop not in identity.workshops:
                return Response(
                    HTTPStatus.FORBIDDEN,
                    view.refusal("Not your workshop", f"{identity.name} is not signed up for workshop {workshop}."),
                )
            if len(parts) == 2 and request.method == "GET":
                return self._list(identity, workshop, session)
            if len(parts) == 3 and parts[2] == "jobs" and request.method == "GET":
                return self._jobs(identity, workshop, session)
            if len(parts) == 4 and parts[2] == "job":
                return self._job(request, identity, workshop, parts[3], session=session)
            if len(parts) == 5 and parts[2] == "stop" and parts[4].isdigit():
                return self._stop(request, identity, workshop, parts[3], int(parts[4]), session=session)
        return Response(HTTPStatus.NOT_FOUND, view.refusal("Not found", "There is no such page."))

    def _login(self, request: Request) -> Response:
        if request.method == "GET":
            session = request.session or self._sessions.new()
            return Response(HTTPStatus.OK, view.login(session.csrf), cookie=session.id)
        if request.method != "POST":
            return Response(HTTPStatus.METHOD_NOT_ALLOWED, view.refusal("Not allowed", "Use the sign-in form."))
        if request.session is None or not request.session.csrf_ok(request.form.get("csrf")):
            return Response(HTTPStatus.FORBIDDEN, view.refusal("Refused", "This form is stale: open the page again."))
        identity = self._accounts.sign_in(request.form.get("name", ""), request.form.get("password", ""))
        if identity is None:
            return Response(HTTPStatus.UNAUTHORIZED, view.login(request.session.csrf, error="Wrong name or password."))
        self._sessions.end(request.session.id)  # a new id at sign-in: one known before is worth nothing
        signed_in = self._sessions.new(identity)
        log.info("operator %s signed in", identity.name)
        return _redirect("/", cookie=signed_in.id)

    def _list(self, identity: Identity, workshop: str, session: Session, notice: str = "") -> Response:
        listed = self._reader.listed(workshop, self._now_ms())
        html = view.stops(
            who=identity.name,
            workshops=identity.workshops,
            workshop=workshop,
            listed=listed,
            book=self._book,
            zone=self._zone,
            csrf=session.csrf,
            notice=notice,
        )
        return Response(HTTPStatus.OK, html)

    def _stop(
        self,
        request: Request,
        identity: Identity,
        workshop: str,
        machine_id: str,
        start_ms: int,
        *,
        session: Session,
    ) -> Response:
        now = self._now_ms()
        listed = self._reader.find(workshop, machine_id, start_ms, now)
        if listed is None:
            return Response(
                HTTPStatus.NOT_FOUND,
                view.refusal("No such stop", f"{machine_id} has no stop without a reason from that time."),
            )
        if request.method == "GET":
            html = view.choose(
                who=identity.name,
                workshops=identity.workshops,
                workshop=workshop,
                listed=listed,
                book=self._book,
                zone=self._zone,
                csrf=session.csrf,
            )
            return Response(HTTPStatus.OK, html)
        if request.method != "POST":
            return Response(HTTPStatus.METHOD_NOT_ALLOWED, view.refusal("Not allowed", "Use the buttons."))
        try:
            choice = make_choice(
                self._book,
                listed.stop,
                request.form.get("reason", ""),
                who=identity.name,
                at_ms=now,
                rule=self._reader.rule,
            )
        except ReasonError as error:
            return Response(HTTPStatus.BAD_REQUEST, view.refusal("Not a reason for this machine", str(error)))
        record_choice(self._writer, choice, self._write_policy)
        log.info("%s gave %s to the stop of %s from %d", identity.name, choice.reason, machine_id, start_ms)
        return _redirect(f"/w/{quote(workshop)}")

    def _jobs(self, identity: Identity, workshop: str, session: Session) -> Response:
        machines = self._desk.machines(workshop, self._now_ms())
        html = view.jobs(
            who=identity.name, workshops=identity.workshops, workshop=workshop, machines=machines, csrf=session.csrf
        )
        return Response(HTTPStatus.OK, html)

    def _job(
        self, request: Request, identity: Identity, workshop: str, machine_id: str, *, session: Session
    ) -> Response:
        now = self._now_ms()
        machine = self._desk.machine(workshop, machine_id, now)
        if machine is None:
            return Response(
                HTTPStatus.NOT_FOUND, view.refusal("No such machine", f"{machine_id} is not knitting here.")
            )
        if request.method == "GET":
            html = view.job_picker(
                who=identity.name,
                workshops=identity.workshops,
                workshop=workshop,
                machine=machine,
                book=self._desk.book,
                csrf=session.csrf,
            )
            return Response(HTTPStatus.OK, html)
        if request.method != "POST":
            return Response(HTTPStatus.METHOD_NOT_ALLOWED, view.refusal("Not allowed", "Use the buttons."))
        try:
            change = self._desk.change(
                machine,
                order=request.form.get("order"),
                style=request.form.get("style"),
                who=identity.name,
                now_ms=now,
            )
        except OrdersError as error:
            return Response(HTTPStatus.BAD_REQUEST, view.refusal("Not in the orders file", str(error)))
        record_job_change(self._writer, machine.machine, change, self._write_policy)
        log.info("%s set %s on %s from %d", identity.name, change.job, machine_id, change.at_ms)
        return _redirect(f"/w/{quote(workshop)}/jobs")


class _BadRequest(Exception):
    pass
