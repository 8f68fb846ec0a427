from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ftel.stack import LocalStack
from tests.support import Services, unique


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """One real Mosquitto and one real InfluxDB for the whole run, on free loopback ports."""
    stack = LocalStack.on_free_ports(tmp_path_factory.mktemp("stack"))
    stack.up()
    try:
        yield Services(stack)
    finally:
        stack.down()


@pytest.fixture
def database() -> str:
    return unique("test")


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "artifacts"
    path.mkdir(exist_ok=True)
    return path
