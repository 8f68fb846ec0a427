"""The InfluxDB of Debian's package reads the stack's county-start tuning under the names the stack writes
(1.x ignores a key it does not know, so a misspelt one would leave the server's default in place unseen)."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from ftel.stack import LocalStack
from ftel.stack.configs import COUNTY_START, influxdb_conf, size_bytes
from ftel.stack.services import ensure_installed

pytestmark = pytest.mark.integration


def _value(text: str | int) -> str:
    """How ``influxd config`` prints a value: sizes in bytes, durations and names quoted, numbers bare."""
    if isinstance(text, int):
        return str(text)
    if text[-1] in "kmg" and text[:-1].isdigit():
        return str(size_bytes(text))
    return f'"{text}"'


def test_influxd_reads_every_setting_of_the_county_tuning(tmp_path: Path) -> None:
    conf = tmp_path / "influxdb.conf"
    conf.write_text(influxdb_conf(data_dir=tmp_path, http_port=8086, rpc_port=8088, tuning=COUNTY_START))
    merged = subprocess.run(
        [ensure_installed("influxd"), "config", "-config", str(conf)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    expected = {
        f"{name.replace('_', '-')} = {_value(value)}"
        for name in COUNTY_START.config_keys()
        if (value := getattr(COUNTY_START, name)) is not None
    }
    assert expected
    assert expected <= {line.strip() for line in merged}


def _environ(pid: int | None) -> dict[str, str]:
    variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(v.decode().split("=", 1) for v in variables if b"=" in v)


def test_the_local_stack_starts_influxd_with_the_tuning_s_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Go runtime's settings are no configuration keys: the running server process itself carries them (as
    /proc shows); a tuning that changes them restarts the server; a variable of the caller's own environment wins
    (an engineer's baseline)."""
    for name in COUNTY_START.environment():
        monkeypatch.delenv(name, raising=False)
    stack = LocalStack.on_free_ports(tmp_path / "stack")
    stack.up()
    try:
        first = stack.influxdb.pid()
        assert COUNTY_START.environment().items() <= _environ(first).items()
        stack.up()
        assert stack.influxdb.pid() == first  # nothing changed: the running server is kept
        plain = replace(stack, influx_tuning=replace(COUNTY_START, go_gc_percent=None, go_memory_limit=None))
        plain.up()
        assert plain.influxdb.pid() != first
        assert not {"GOGC", "GOMEMLIMIT"} & _environ(plain.influxdb.pid()).keys()
        monkeypatch.setenv("GOGC", "100")
        stack.up()
        assert _environ(stack.influxdb.pid())["GOGC"] == "100"
        assert _environ(stack.influxdb.pid())["GOMEMLIMIT"] == COUNTY_START.go_memory_limit
    finally:
        stack.down()
