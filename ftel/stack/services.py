"""Start, stop and inspect the local services. Each runs as its own process with a pid file in the stack dir,
so `ftel stack up` survives the command that started it and `ftel stack down` finds it again."""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Self

import httpx
from pydantic import SecretStr

from ftel.errors import FtelError
from ftel.security.credentials import Credentials, load_credentials
from ftel.security.identities import DEFAULT_INGEST_WORKERS, Identity, InfluxUser, roster
from ftel.security.influx import create_admin, grant_statements, quote_ident, user_statements
from ftel.security.provision import AuthFiles, provision
from ftel.security.tls import TlsFiles, make_throwaway_pki
from ftel.settings import InfluxSettings
from ftel.stack.configs import (
    COUNTY_START,
    MOSQUITTO_LOG,
    InfluxTls,
    InfluxTuning,
    MosquittoAuth,
    MosquittoTls,
    influxdb_conf,
    mosquitto_conf,
)
from ftel.stack.influx_admin import InfluxAdmin, InfluxAdminError

# Services started by this process, kept so they are reaped on stop (and not reported as leaked).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
DEBIAN_PACKAGES = {"mosquitto": "mosquitto", "influxd": "influxdb"}
# InfluxDB needs a few seconds on a cold disk; CI machines can be slow.
START_TIMEOUT_S = 60.0


class StackError(FtelError):
    """A local service could not be installed, started or reached; the text says what to do."""


# Ports handed out by free_port, by any process on this host, and when: a port is free when asked for, but the
# program it is for binds it later, and the kernel may hand the same free port to a parallel stack meanwhile
# (eight fault scenarios starting at once did meet that).
HANDED_OUT = Path(tempfile.gettempdir()) / f"ftel-free-ports-{os.getuid()}"
HANDED_OUT_KEEP_S = 600.0


def recent_ports(registry: str, now: float) -> dict[int, float]:
    """The registry's ports handed out in the last HANDED_OUT_KEEP_S (pure): ``port time`` lines; anything else
    (a line cut short by a full disk, a file of another version) is left out, never an error."""
    recent: dict[int, float] = {}
    for line in registry.splitlines():
        match = re.fullmatch(r"(\d{1,5}) (\d+(?:\.\d*)?)", line)
        if match and now - float(match.group(2)) < HANDED_OUT_KEEP_S:
            recent[int(match.group(1))] = float(match.group(2))
    return recent


def free_port() -> int:
    """A loopback port nothing listens on, and that no process of this host was handed in the last ten minutes."""
    with HANDED_OUT.open("a+") as registry:
        fcntl.flock(registry, fcntl.LOCK_EX)
        registry.seek(0)
        now = time.time()
        recent = recent_ports(registry.read(), now)
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in recent:
                break
        recent[port] = now
        registry.seek(0)
        registry.truncate()
        registry.writelines(f"{p} {at}\n" for p, at in recent.items())
        return port


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def ensure_installed(binary: str) -> str:
    """Return the binary's path, installing its Debian package with apt-get when root and missing."""
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
    if path:
        return path
    package = DEBIAN_PACKAGES[binary]
    command = f"apt-get update && apt-get install -y {package}"
    if os.geteuid() != 0:
        raise StackError(f"{binary} is not installed; run as root: sudo sh -c '{command}'")
    subprocess.run(["sh", "-c", f"DEBIAN_FRONTEND=noninteractive {command}"], check=True)
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
    if not path:
        raise StackError(f"installed {package} but found no {binary}")
    return path


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    directory: Path
    port: int

    @property
    def pid_file(self) -> Path:
        return self.directory / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / f"{self.name}.out"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def start(self, argv: list[str], ready: Callable[[], bool], environment: Mapping[str, str] | None = None) -> None:
        if self.pid() is not None and ready():
            return
        if _port_open(self.port):
            raise StackError(
                f"port {self.port} for {self.name} is taken by another program; "
                f"choose another with the settings (see README, Configuration)"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **environment} if environment else None,
            )
        self.pid_file.write_text(str(process.pid))
        _CHILDREN[process.pid] = process
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise StackError(f"{self.name} exited with code {process.returncode}; its log says:\n{tail}")
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise StackError(f"{self.name} did not answer on port {self.port} within {START_TIMEOUT_S:.0f} s")

    def stop(self, timeout_s: float = 15.0) -> None:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGTERM)
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            try:
                child.wait(timeout_s)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            self.pid_file.unlink(missing_ok=True)
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                finished, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                finished = 0
                try:
                    os.kill(pid, 0)
                except OSError:
                    finished = pid
            if finished == pid:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class LocalStack:
    """Mosquitto and InfluxDB under ``directory`` on the given loopback ports, secure by default: no anonymous
    access, an identity per process (gateways, ``ingest-1`` … ``ingest-N``, alerts, supervisor, maintenance,
    admin) from the credentials file, Mosquitto's ACL by role, InfluxDB users by kind of access; with ``tls``
    also MQTT over TLS on ``mqtt_tls_port`` and InfluxDB over HTTPS only."""

    directory: Path
    mqtt_port: int
    influx_port: int
    influx_rpc_port: int
    database: str = "ftel"
    retention_policy: str = "ftel_rp"
    retention: str = "90d"
    gateways: tuple[Identity, ...] = ()
    ingest_workers: int = DEFAULT_INGEST_WORKERS
    credentials_file: Path | None = None
    tls: bool = False
    mqtt_tls_port: int = 8883
    influx_tuning: InfluxTuning = COUNTY_START

    @classmethod
    def on_free_ports(cls, directory: Path, **kwargs: Any) -> Self:
        if kwargs.get("tls"):
            kwargs.setdefault("mqtt_tls_port", free_port())
        return cls(directory, free_port(), free_port(), free_port(), **kwargs)

    @property
    def influx_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.influx_port}"

    @property
    def auth_files(self) -> AuthFiles:
        return AuthFiles(self.credentials_file or self.directory / "auth" / "credentials.yaml")

    @property
    def tls_files(self) -> TlsFiles:
        return TlsFiles(self.directory / "tls")

    @property
    def mosquitto(self) -> Service:
        return Service("mosquitto", self.directory / "mosquitto", self.mqtt_port)

    @property
    def influxdb(self) -> Service:
        return Service("influxdb", self.directory / "influxdb", self.influx_port)

    def log_files(self) -> list[Path]:
        """The servers' own logs that exist: what each printed, and Mosquitto's log."""
        files = (self.influxdb.log_file, self.mosquitto.log_file, self.mosquitto.directory / MOSQUITTO_LOG)
        return [path for path in files if path.exists()]

    def up(self) -> None:
        mosquitto_bin = ensure_installed("mosquitto")
        influxd_bin = ensure_installed("influxd")
        provisioned = provision(self.auth_files, roster(self.gateways, self.ingest_workers))
        if self.tls and not self.tls_files.exist():
            make_throwaway_pki(self.tls_files.directory)
        self._start_mosquitto(mosquitto_bin, reload=provisioned.broker_changed)
        ix = self.influxdb
        tls = InfluxTls(self.tls_files.cert.resolve(), self.tls_files.key.resolve()) if self.tls else None
        conf = influxdb_conf(
            data_dir=ix.directory.resolve(),
            http_port=self.influx_port,
            rpc_port=self.influx_rpc_port,
            tls=tls,
            tuning=self.influx_tuning,
        )
        _start_with_conf(
            ix,
            conf,
            [influxd_bin, "-config", str(ix.directory / "influxdb.conf")],
            self._influx_ready,
            self.influx_tuning.environment(),
        )
        self._influx_users(provisioned.credentials)
        self.prepare_database(self.database, retention_policy=self.retention_policy, retention=self.retention)

    def _start_mosquitto(self, binary: str, *, reload: bool) -> None:
        mq = self.mosquitto
        files = self.auth_files
        auth = MosquittoAuth(files.mosquitto_passwords.resolve(), files.mosquitto_acl.resolve())
        tls = None
        if self.tls:
            t = self.tls_files
            tls = MosquittoTls(self.mqtt_tls_port, t.ca.resolve(), t.cert.resolve(), t.key.resolve())
        conf = mosquitto_conf(
            data_dir=mq.directory.resolve(), port=self.mqtt_port, user=getpass.getuser(), auth=auth, tls=tls
        )
        ready = partial(_port_open, self.mqtt_port)
        if not _start_with_conf(mq, conf, [binary, "-c", str(mq.directory / "mosquitto.conf")], ready) and reload:
            self.reload_mosquitto()

    def reload_mosquitto(self) -> None:
        reload_mosquitto(self.mosquitto)

    def grant(self, identity: Identity) -> None:
        """Add (or re-bind) one identity in the credentials, password and ACL files; reload a running broker."""
        if provision(self.auth_files, [identity]).broker_changed:
            self.reload_mosquitto()

    def credentials(self) -> Credentials:
        return load_credentials(self.auth_files.credentials)

    def down(self) -> None:
        self.influxdb.stop()
        self.mosquitto.stop()

    def status(self) -> dict[str, str]:
        return {
            "mosquitto": _describe(self.mosquitto, _port_open(self.mqtt_port)),
            "influxdb": _describe(self.influxdb, self._influx_ready()),
        }

    def _verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.tls_files.ca)) if self.tls else True

    def _influx_ready(self) -> bool:
        try:
            response = httpx.get(f"{self.influx_url}/ping", timeout=1, verify=self._verify())
        except httpx.HTTPError:
            return False
        return response.status_code == 204

    def influx_settings(self, database: str, *, admin: bool = True) -> InfluxSettings:
        """Settings for this InfluxDB (as its admin, or anonymous), TLS included."""
        credentials: dict[str, Any] = {}
        if admin:
            password = self.credentials().influx_password(InfluxUser.ADMIN)
            credentials = {"username": InfluxUser.ADMIN.value, "password": SecretStr(password)}
        ca = {"ca_file": self.tls_files.ca} if self.tls else {}
        return InfluxSettings(url=self.influx_url, database=database, retention_policy="autogen", **credentials, **ca)

    def _influx_users(self, credentials: Credentials) -> None:
        """The admin first (InfluxDB 1.x allows that one without credentials), then every user, as admin."""
        with InfluxAdmin(self.influx_settings(self.database)) as admin:
            try:
                users = {str(row["user"]) for row in admin.run("SHOW USERS")}
            except InfluxAdminError as error:
                if "create admin user first" not in str(error):
                    raise StackError(self._admin_refused(error)) from error
                with InfluxAdmin(self.influx_settings(self.database, admin=False)) as anonymous:
                    anonymous.run(create_admin(credentials))
                users = {InfluxUser.ADMIN.value}
            for statement in user_statements(credentials, users):
                admin.run(statement)

    def _admin_refused(self, error: Exception) -> str:
        return (
            f"InfluxDB under {self.influxdb.directory} refused its admin {InfluxUser.ADMIN.value} ({error}): its "
            f"users were made with another credentials file than {self.auth_files.credentials}. Restore that "
            f"file, or stop the stack and remove {self.influxdb.directory} to start with an empty InfluxDB"
        )

    def prepare_database(self, database: str, *, retention_policy: str | None = None, retention: str = "") -> None:
        """Create ``database`` (and a default retention policy) and grant the role users their access to it."""
        statements = [f"CREATE DATABASE {quote_ident(database)}"]
        if retention_policy is not None:
            statements.append(
                f"CREATE RETENTION POLICY {quote_ident(retention_policy)} ON {quote_ident(database)} "
                f"DURATION {retention} REPLICATION 1 DEFAULT"
            )
        statements += grant_statements(database)
        with InfluxAdmin(self.influx_settings(database)) as admin:
            for statement in statements:
                try:
                    admin.run(statement)
                except InfluxAdminError as error:
                    if "already exists" not in str(error):
                        raise StackError(f"InfluxDB refused {statement!r}: {error}") from error

    def __enter__(self) -> Self:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


def reload_mosquitto(mosquitto: Service) -> None:
    """SIGHUP a running Mosquitto so it re-reads its password and ACL files; return once it has."""
    pid = mosquitto.pid()
    if pid is None:
        return
    log = mosquitto.directory / MOSQUITTO_LOG
    before = _reloads(log)
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + START_TIMEOUT_S
    # Mosquitto logs the line, then reloads before it reads another packet: anything sent after is judged by
    # the new files.
    while _reloads(log) <= before:
        if time.monotonic() > deadline:
            raise StackError(f"mosquitto (pid {pid}) did not reload its auth files; see {log}")
        time.sleep(0.02)


def _start_with_conf(
    service: Service,
    conf: str,
    argv: list[str],
    ready: Callable[[], bool],
    environment: Mapping[str, str] | None = None,
) -> bool:
    """Write the service's configuration and start it; restart it if it runs with another one, or with another
    ``environment``. A variable the caller's own environment sets wins over ``environment`` (an engineer's
    ``GOGC=100`` for a baseline). True when it (re)started, False when it was already running as asked."""
    effective = {name: os.environ.get(name, value) for name, value in (environment or {}).items()}
    # The environment is named in the file, so that a running server is compared with both.
    conf = "".join(f"# started with {name}={value}\n" for name, value in effective.items()) + conf
    service.directory.mkdir(parents=True, exist_ok=True)
    path = service.directory / f"{service.name}.conf"
    previous = path.read_text() if path.exists() else None
    path.write_text(conf)
    running = service.pid() is not None and ready()
    if running and previous == conf:
        return False
    if running:
        service.stop()  # listeners and authentication switches are not reloadable
    service.start(argv, ready, effective)
    return True


def _reloads(log: Path) -> int:
    try:
        return log.read_text(errors="replace").count("Reloading config.")
    except OSError:
        return 0


def _describe(service: Service, answering: bool) -> str:
    pid = service.pid()
    if pid is None:
        return f"stopped (port {service.port} {'answers: another program?' if answering else 'free'})"
    return f"running, pid {pid}, port {service.port}, {'answering' if answering else 'NOT answering'}"
