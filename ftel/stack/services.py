"""Start, stop and inspect the local services. Each runs as its own process with a pid file in the stack dir,
so `ftel stack up` survives the command that started it and `ftel stack down` finds it again."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from ftel.errors import FtelError
from ftel.stack.configs import influxdb_conf, mosquitto_conf

# Services started by this process, kept so they are reaped on stop (and not reported as leaked).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
DEBIAN_PACKAGES = {"mosquitto": "mosquitto", "influxd": "influxdb"}
# InfluxDB needs a few seconds on a cold disk; CI machines can be slow.
START_TIMEOUT_S = 60.0


class StackError(FtelError):
    """A local service could not be installed, started or reached; the text says what to do."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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

    def start(self, argv: list[str], ready: Callable[[], bool]) -> None:
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
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
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
    """Mosquitto and InfluxDB under ``directory`` on the given loopback ports."""

    directory: Path
    mqtt_port: int
    influx_port: int
    influx_rpc_port: int
    database: str = "ftel"
    retention_policy: str = "ftel_rp"
    retention: str = "90d"

    @classmethod
    def on_free_ports(cls, directory: Path, **kwargs: str) -> Self:
        return cls(directory, free_port(), free_port(), free_port(), **kwargs)

    @property
    def influx_url(self) -> str:
        return f"http://127.0.0.1:{self.influx_port}"

    @property
    def mosquitto(self) -> Service:
        return Service("mosquitto", self.directory / "mosquitto", self.mqtt_port)

    @property
    def influxdb(self) -> Service:
        return Service("influxdb", self.directory / "influxdb", self.influx_port)

    def up(self) -> None:
        mosquitto_bin = ensure_installed("mosquitto")
        influxd_bin = ensure_installed("influxd")
        mq = self.mosquitto
        mq.directory.mkdir(parents=True, exist_ok=True)
        conf = mq.directory / "mosquitto.conf"
        conf.write_text(mosquitto_conf(data_dir=mq.directory.resolve(), port=self.mqtt_port, user=getpass.getuser()))
        mq.start([mosquitto_bin, "-c", str(conf)], lambda: _port_open(self.mqtt_port))
        ix = self.influxdb
        ix.directory.mkdir(parents=True, exist_ok=True)
        conf = ix.directory / "influxdb.conf"
        conf.write_text(
            influxdb_conf(data_dir=ix.directory.resolve(), http_port=self.influx_port, rpc_port=self.influx_rpc_port)
        )
        ix.start([influxd_bin, "-config", str(conf)], self._influx_ready)
        self.create_database()

    def down(self) -> None:
        self.influxdb.stop()
        self.mosquitto.stop()

    def status(self) -> dict[str, str]:
        return {
            "mosquitto": _describe(self.mosquitto, _port_open(self.mqtt_port)),
            "influxdb": _describe(self.influxdb, self._influx_ready()),
        }

    def _influx_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.influx_url}/ping", timeout=1) as response:
                return bool(response.status == 204)
        except (OSError, urllib.error.URLError):
            return False

    def create_database(self) -> None:
        statements = [
            f'CREATE DATABASE "{self.database}"',
            f'CREATE RETENTION POLICY "{self.retention_policy}" ON "{self.database}" '
            f"DURATION {self.retention} REPLICATION 1 DEFAULT",
        ]
        for statement in statements:
            body = urllib.parse.urlencode({"q": statement}).encode()
            with urllib.request.urlopen(f"{self.influx_url}/query", data=body, timeout=10) as response:
                text = response.read().decode()
                if '"error"' in text and "already exists" not in text:
                    raise StackError(f"InfluxDB refused {statement!r}: {text}")

    def __enter__(self) -> Self:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


def _describe(service: Service, answering: bool) -> str:
    pid = service.pid()
    if pid is None:
        return f"stopped (port {service.port} {'answers: another program?' if answering else 'free'})"
    return f"running, pid {pid}, port {service.port}, {'answering' if answering else 'NOT answering'}"
