"""The InfluxDB of Debian's package reads the stack's county-start tuning under the names the stack writes
(1.x ignores a key it does not know, so a misspelt one would leave the server's default in place unseen)."""

from __future__ import annotations

import os
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


def _gogc(pid: int | None) -> str | None:
    for variable in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if variable.startswith(b"GOGC="):
            return variable.split(b"=", 1)[1].decode()
    return None


def test_the_local_stack_starts_influxd_with_the_tuning_s_environment(tmp_path: Path) -> None:
    """GOGC is no configuration key: the running server process itself carries it (as /proc shows), and a
    stack whose tuning changes it restarts the server (its configuration file names it)."""
    stack = LocalStack.on_free_ports(tmp_path / "stack")
    stack.up()
    try:
        first = stack.influxdb.pid()
        assert _gogc(first) == str(COUNTY_START.go_gc_percent)
        plain = replace(stack, influx_tuning=replace(COUNTY_START, go_gc_percent=None))
        plain.up()
        assert plain.influxdb.pid() != first
        assert _gogc(plain.influxdb.pid()) == os.environ.get("GOGC")  # the inherited one, if any
    finally:
        stack.down()
