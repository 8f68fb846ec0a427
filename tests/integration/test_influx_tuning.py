"""The InfluxDB of Debian's package reads the stack's county-start tuning under the names the stack writes
(1.x ignores a key it does not know, so a misspelt one would leave the server's default in place unseen)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

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
        for name in COUNTY_START.__slots__
        if (value := getattr(COUNTY_START, name)) is not None
    }
    assert expected
    assert expected <= {line.strip() for line in merged}
