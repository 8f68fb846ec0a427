"""A worker's readiness as a file its parent names (ftel/ready.py): waited on, never read from a log."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from ftel.ready import READY_FILE_ENV, Readiness, announce_ready, ready_env, wait_ready
from ftel.settings import Settings


def child(code: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL)


def test_a_child_that_announces_itself_is_ready_and_a_stale_file_is_not_taken_for_it(tmp_path: Path) -> None:
    path = tmp_path / "worker.ready"
    path.write_text("left from the last run")
    env = ready_env(path)
    assert not path.exists()
    # The child reads the file's name from its settings, as a worker does, once its stdin says so.
    code = "import sys; from ftel.ready import announce_ready; from ftel.settings import Settings; sys.stdin.read(); "
    code += "announce_ready(Settings().ready_file, 'w-1')"
    process = subprocess.Popen([sys.executable, "-c", code], env=env | _path_env(), stdin=subprocess.PIPE)
    try:
        stop = threading.Event()
        assert process.stdin is not None
        process.stdin.close()
        assert wait_ready(path, process, timeout_s=60, stop=stop) is Readiness.READY
        assert "w-1" in path.read_text()
    finally:
        process.wait(30)


def test_a_child_that_ends_first_is_not_ready(tmp_path: Path) -> None:
    process = child("pass", _path_env())
    assert wait_ready(tmp_path / "never.ready", process, timeout_s=60) is Readiness.EXITED


def test_the_parents_stop_ends_the_wait(tmp_path: Path) -> None:
    process = child("import time; time.sleep(30)", _path_env())
    try:
        stop = threading.Event()
        stop.set()
        assert wait_ready(tmp_path / "never.ready", process, timeout_s=60, stop=stop) is Readiness.STOPPED
    finally:
        process.kill()
        process.wait(10)


def test_without_a_file_asked_for_the_worker_announces_nothing(tmp_path: Path) -> None:
    announce_ready(None, "w-1")
    announce_ready(tmp_path / "a" / "w.ready", "w-1")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["w.ready"]  # whole: no partial file left
    assert Settings.model_fields["ready_file"].default is None
    assert READY_FILE_ENV == "FTEL_READY_FILE"


def _path_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FTEL_")}
