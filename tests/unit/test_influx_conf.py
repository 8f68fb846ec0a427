"""The local InfluxDB's configuration (pure): the county-start tuning is written into the sections InfluxDB reads
it from, and the Debian package's own defaults write none of it."""

from __future__ import annotations

from pathlib import Path

from ftel.stack import LocalStack
from ftel.stack.configs import COUNTY_START, DEBIAN_DEFAULTS, InfluxTuning, influxdb_conf, size_bytes


def _sections(conf: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"": []}
    section = ""
    for line in conf.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = []
        elif line.strip() and not line.startswith("#"):
            out[section].append(line.strip())
    return out


def test_the_county_tuning_goes_into_the_sections_influxdb_reads() -> None:
    tuning = InfluxTuning(
        index_version="tsi1", cache_snapshot_memory_size="256m", write_timeout="25s", max_concurrent_write_limit=2
    )
    sections = _sections(influxdb_conf(data_dir=Path("/d"), http_port=8086, rpc_port=8088, tuning=tuning))
    assert 'index-version = "tsi1"' in sections["data"]
    assert 'cache-snapshot-memory-size = "256m"' in sections["data"]
    assert sections["coordinator"] == ['write-timeout = "25s"']
    assert "max-concurrent-write-limit = 2" in sections["http"]


def test_debian_defaults_write_no_tuning() -> None:
    plain = _sections(influxdb_conf(data_dir=Path("/d"), http_port=8086, rpc_port=8088, tuning=DEBIAN_DEFAULTS))
    assert plain["coordinator"] == []
    assert not any(line.startswith(("cache-", "index-version", "max-")) for line in plain["data"])


def test_every_local_stack_starts_influxdb_with_the_county_tuning(tmp_path: Path) -> None:
    assert LocalStack(tmp_path, 1, 2, 3).influx_tuning == COUNTY_START
    assert COUNTY_START != DEBIAN_DEFAULTS


def test_sizes_are_read_as_influxdb_reads_them() -> None:
    assert size_bytes("256m") == 268_435_456
    assert size_bytes("2g") == 2_147_483_648
    assert size_bytes("64k") == 65_536
    assert size_bytes("1048576") == 1_048_576


def test_the_go_runtime_s_settings_go_into_the_environment_not_a_section() -> None:
    tuning = InfluxTuning(go_gc_percent=400, go_memory_limit="6GiB")
    assert tuning.environment() == {"GOGC": "400", "GOMEMLIMIT": "6GiB"}
    assert InfluxTuning(go_gc_percent=200).environment() == {"GOGC": "200"}
    assert DEBIAN_DEFAULTS.environment() == {}
    conf = influxdb_conf(data_dir=Path("/d"), http_port=8086, rpc_port=8088, tuning=tuning)
    assert not any("gc" in line.lower() or "mem" in line.lower() for v in _sections(conf).values() for line in v)
