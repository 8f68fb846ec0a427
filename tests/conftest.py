from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from ftel.settings import InfluxSettings, MqttSettings, Settings, StackSettings
from ftel.stack import free_port, stack_from_settings
from tests.support import Services, unique

# In CI every Hypothesis search is derandomised (the same examples each run, no example database), so that CI
# passes or fails by the code, never by the draw; a case a search has found is kept as an @example.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules of the tests that take minutes run first (in their order), so that the test processes of
    `make test` end together instead of one of them starting such a test when the others are nearly done."""
    long_modules = {getattr(item, "module", None) for item in items if item.get_closest_marker("minutes")}
    items.sort(key=lambda item: getattr(item, "module", None) not in long_modules)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """One real Mosquitto and one real InfluxDB for the whole run, on free loopback ports, configured by the
    code of `ftel stack up`: the default plant's gateways, ingest-1 … ingest-N, alerts, supervisor,
    maintenance and admin, no anonymous access, ACL by role, InfluxDB with authentication."""
    settings = Settings(
        mqtt=MqttSettings(port=free_port()),
        influx=InfluxSettings(url=f"http://127.0.0.1:{free_port()}"),
        stack=StackSettings(dir=tmp_path_factory.mktemp("stack")),
    )
    stack = stack_from_settings(settings)
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


class _SwallowedExceptions(logging.Handler):
    """Collects every exception code under test logged instead of raising (``log.exception``, ``exc_info``)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture(autouse=True)
def fail_on_swallowed_exceptions(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test in which an exception was caught and logged where nobody expected one (Home Assistant's
    fixture is the model): a swallowed exception is a bug hiding. A test that provokes one on purpose (a fault
    contained by a worker's boundary) says so with ``@pytest.mark.logs_exceptions``."""
    handler = _SwallowedExceptions()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
    if handler.records and request.node.get_closest_marker("logs_exceptions") is None:
        first = handler.records[0]
        error = first.exc_info[1] if first.exc_info else None
        pytest.fail(
            f"{len(handler.records)} exception(s) logged and swallowed during the test, the first from "
            f"{first.name}: {first.getMessage()} ({error!r}); mark the test logs_exceptions if it "
            "provokes them on purpose",
            pytrace=False,
        )
