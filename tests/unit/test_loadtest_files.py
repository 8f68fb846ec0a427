"""The load test's listing of InfluxDB's files (kept after a passing run's data is removed): when each was written."""

from __future__ import annotations

import os
from pathlib import Path

from loadtest.run import file_listing


def test_every_file_is_listed_oldest_first_with_its_time_and_size(tmp_path: Path) -> None:
    (tmp_path / "ftel" / "rp" / "1").mkdir(parents=True)
    newer = tmp_path / "ftel" / "rp" / "1" / "000000001-000000001.tsm"
    older = tmp_path / "ftel" / "fields.idx"
    newer.write_bytes(b"x" * 1234)
    older.write_bytes(b"y" * 5)
    os.utime(older, (1_796_656_740.0, 1_796_656_740.0))  # 2026-12-07 15:19:00 UTC
    os.utime(newer, (1_796_657_000.25, 1_796_657_000.25))
    assert file_listing(tmp_path).splitlines() == [
        f"2026-12-07T15:19:00.000+00:00 {5:>12} ftel/fields.idx",
        f"2026-12-07T15:23:20.250+00:00 {1234:>12} ftel/rp/1/000000001-000000001.tsm",
    ]
    assert file_listing(tmp_path / "absent") == ""
