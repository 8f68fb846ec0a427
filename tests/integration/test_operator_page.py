"""The operator page in a real browser (Debian's chromium driven through chromedriver), on a real InfluxDB filled
by the simulated plant: an operator signs in on a phone-sized window, sees the workshop's unexplained stops (open
and ended, as the simulated machines had them), gives one a reason and corrects it; the stored point is one per
stop with the last reason, the log keeps both.
Refusals over plain HTTP: not signed in, another workshop, a POST without or with a wrong CSRF token."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from ftel.plant.layout import default_plant
from ftel.plant.reasons import MachineRef, UnexplainedRule
from ftel.plant.stops import micro_stop_limits_ms
from ftel.security.identities import Role
from ftel.storage.query import InfluxQuery
from ftel.storage.schema import Field, Measurement
from operators.cli import build_page
from operators.server import page_server
from simulators.backfill import backfill
from simulators.jobs import DEFAULT_ORDERS
from simulators.machine import plant_models
from simulators.operators import segment_stop
from tests.support import Services, ftel_env, start_ftel, stop_processes, unique, wait_for_log

pytestmark = pytest.mark.integration

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "operator-page.png"
START = int(datetime(2026, 11, 16, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
# KNIT-015 is DOWN with unknown_fault from 15:17:13 to 15:18:06: still stopped at the end of the period.
END = START + 438 * 60_000
OPERATOR, OTHER = "op-knit", "op-yarn"
IDLE_LIMIT_MS = 300_000


@dataclass(frozen=True)
class Page:
    url: str
    password: str
    client: InfluxQuery
    database: str


def _csrf(html: str) -> str:
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


@pytest.fixture(scope="module")
def page(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    plant = default_plant()
    database = unique("operators")
    settings = services.settings(database)
    backfill(
        plant,
        services.admin(database).influx,
        start_ms=START,
        end_ms=END,
        window_ms=60_000,
        telemetry_interval_ms=600_000,
    )
    services.grant(OPERATOR, Role.OPERATOR, site=plant.site, workshop="knit")
    services.grant(OTHER, Role.OPERATOR, site=plant.site, workshop="yarn")
    credentials = services.stack.credentials()
    # Idle stops from 5 minutes: the simulated knitting shop has some in six hours.
    orders = tmp_path_factory.mktemp("orders") / "orders.yaml"
    orders.write_text(DEFAULT_ORDERS)
    settings = settings.model_copy(
        update={
            "operators": settings.operators.model_copy(update={"idle_unexplained_s": IDLE_LIMIT_MS / 1000}),
            "orders": orders,
        }
    )
    # The plant's clock runs on from the end of the simulated period.
    began = time.monotonic()
    clock = lambda: END + int((time.monotonic() - began) * 1000)  # noqa: E731
    server = page_server(build_page(settings, credentials, now_ms=clock), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Page(
            f"http://127.0.0.1:{server.server_port}",
            credentials.identities[OPERATOR].password.get_secret_value(),
            InfluxQuery(services.admin(database).influx),
            database,
        )
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=412,915"):
        options.add_argument(argument)
    # The Debian driver named explicitly: selenium's own driver download never runs.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _sign_in(browser: webdriver.Chrome, page: Page) -> None:
    browser.get(page.url + "/")
    assert browser.current_url == page.url + "/login"
    browser.find_element(By.NAME, "name").send_keys(OPERATOR)
    browser.find_element(By.NAME, "password").send_keys(page.password)
    _submit(browser, "button", page.url + "/w/knit")


def _submit(browser: webdriver.Chrome, button: str, lands_on: str) -> None:
    """Tap a form's button and wait for the page it leads to (the click returns before the navigation ends)."""
    browser.find_element(By.CSS_SELECTOR, button).click()
    WebDriverWait(browser, timeout=30).until(expected_conditions.url_to_be(lands_on))


def _simulated_unexplained(workshop: str) -> set[tuple[str, int]]:
    """The ground truth: the workshop's stops, open or ended in the period, that want a reason (all time planned,
    as without a calendar file)."""
    found = set()
    plant = default_plant()
    rule = UnexplainedRule(IDLE_LIMIT_MS, None, micro_stop_limits_ms())
    for w, model in plant_models(plant, start_ms=START, workshop=workshop):
        machine = MachineRef(plant.site, w, model.spec.type, model.spec.id)
        for segment in model.segments():
            if segment.start_ms >= END:
                break
            stop = segment_stop(machine, segment, end_ms=END)
            if stop is not None and rule.ms(stop, END):
                found.add(stop.key)
    return found


def _reasons(page: Page, measurement: str) -> list[dict[str, object]]:
    return page.client.rows(
        f'SELECT "{Field.REASON}", "{Field.SET_BY}", "{Field.STOP_START_MS}" FROM "{measurement}" GROUP BY *'
    )


def test_an_operator_classifies_a_stop_and_corrects_it_in_a_real_browser(page: Page, browser: webdriver.Chrome) -> None:
    _sign_in(browser, page)
    cards = browser.find_elements(By.CSS_SELECTOR, "a.stop")
    listed = {(href.rsplit("/", 2)[1], int(href.rsplit("/", 1)[1])) for c in cards if (href := c.get_attribute("href"))}
    assert listed == _simulated_unexplained("knit")
    assert "KNIT-015 still stopped" in cards[0].text.replace("\n", " ")  # open stops first
    first = cards[0].get_attribute("href") or ""
    start_ms = int(first.rsplit("/", 1)[1])
    machine = first.rsplit("/", 2)[1]
    card = f'a[href="{first.removeprefix(page.url)}"]'
    browser.get(first)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT.with_name("operator-page-reasons.png")))
    _submit(browser, "button[value=no_yarn]", page.url + "/w/knit")
    assert "No yarn / material (op-knit)" in browser.find_element(By.CSS_SELECTOR, card).text
    browser.save_screenshot(str(SCREENSHOT))

    browser.get(first)
    assert "Tap another reason to correct it" in browser.page_source
    _submit(browser, "button[value=meeting]", page.url + "/w/knit")
    assert "Meeting / training (op-knit)" in browser.find_element(By.CSS_SELECTOR, card).text

    standing = _reasons(page, Measurement.STOP_REASON)
    assert [(r["machine_id"], r["time"], r[Field.REASON], r[Field.SET_BY]) for r in standing] == [
        (machine, start_ms, "meeting", OPERATOR)
    ]
    log = _reasons(page, Measurement.STOP_REASON_LOG)
    assert sorted(str(r[Field.REASON]) for r in log) == ["meeting", "no_yarn"]
    assert {r[Field.STOP_START_MS] for r in log} == {start_ms}


def test_an_operator_sets_the_order_a_knitting_machine_is_on(page: Page, browser: webdriver.Chrome) -> None:
    _sign_in(browser, page)
    browser.find_element(By.LINK_TEXT, "Styles & orders").click()
    WebDriverWait(browser, timeout=30).until(expected_conditions.url_to_be(page.url + "/w/knit/jobs"))
    machines = [c.text.split("\n")[0] for c in browser.find_elements(By.CSS_SELECTOR, "a.stop")]
    assert machines == sorted(machines)
    assert machines[0] == "KNIT-001"
    assert "CARD-" not in browser.page_source  # only the workshop's knitting machines
    browser.get(page.url + "/w/knit/job/KNIT-004")
    _submit(browser, "button[value=PO-2613]", page.url + "/w/knit/jobs")
    rows = page.client.rows(
        f'SELECT "{Field.STYLE}", "{Field.ORDER}", "{Field.SOURCE}", "{Field.SET_BY}" FROM "{Measurement.MACHINE_JOB}" '
        "WHERE \"machine_id\" = 'KNIT-004'"
    )
    assert [(r[Field.STYLE], r[Field.ORDER], r[Field.SOURCE], r[Field.SET_BY]) for r in rows] == [
        ("CREW-12G", "PO-2613", "operator", OPERATOR)
    ]
    assert rows[0]["time"] % 60_000 == 0  # from the next window edge
    assert rows[0]["time"] > END


def test_the_page_refuses_anyone_not_signed_in_for_that_workshop(page: Page) -> None:
    written = len(_reasons(page, Measurement.STOP_REASON_LOG))
    with httpx.Client(base_url=page.url) as anonymous:
        assert anonymous.get("/w/knit").status_code == 303
        assert anonymous.get("/w/knit").headers["location"] == "/login"
        assert anonymous.post("/w/knit/stop/KNIT-001/1", data={"reason": "no_yarn"}).status_code == 401
    with httpx.Client(base_url=page.url) as client:
        form = client.get("/login")
        csrf = _csrf(form.text)
        assert client.post("/login", data={"name": OPERATOR, "password": page.password}).status_code == 403
        wrong = client.post("/login", data={"name": OPERATOR, "password": "guess", "csrf": csrf})
        assert wrong.status_code == 401
        signed_in = client.post("/login", data={"name": OPERATOR, "password": page.password, "csrf": csrf})
        assert signed_in.status_code == 303
        listing = client.get("/w/knit")
        assert listing.status_code == 200
        csrf = _csrf(listing.text)
        assert client.get("/w/yarn").status_code == 403
        assert client.post("/w/yarn/stop/CARD-001/1", data={"reason": "no_yarn", "csrf": csrf}).status_code == 403
        stop = listing.text.split('href="/w/knit/stop/', 1)[1].split('"', 1)[0]
        assert client.post(f"/w/knit/stop/{stop}", data={"reason": "no_yarn"}).status_code == 403
        assert client.post(f"/w/knit/stop/{stop}", data={"reason": "no_yarn", "csrf": "x" * 43}).status_code == 403
        assert client.post(f"/w/knit/stop/{stop}", data={"reason": "fibre_choke", "csrf": csrf}).status_code == 400
        assert client.post("/w/knit/job/KNIT-004", data={"order": "PO-2611"}).status_code == 403
        assert client.post("/w/yarn/job/CARD-001", data={"order": "PO-2611", "csrf": csrf}).status_code == 403
        assert client.post("/w/knit/job/KNIT-004", data={"order": "PO-9999", "csrf": csrf}).status_code == 400
        crowded = {f"f{n}": "x" for n in range(20)} | {"reason": "no_yarn", "csrf": csrf}
        assert client.post(f"/w/knit/stop/{stop}", data=crowded).status_code == 400
    assert len(_reasons(page, Measurement.STOP_REASON_LOG)) == written  # nothing refused was written


def test_ftel_operators_serve_signs_an_operator_in_and_lists_the_stops(
    services: Services, page: Page, tmp_path: Path
) -> None:
    """The command end to end: credentials from the file, the page on a free port, sign-in and the listing."""
    settings = services.settings(page.database)
    log = tmp_path / "operators.log"
    process = start_ftel(["operators", "serve", "--port", "0"], ftel_env(settings), log)
    try:
        wait_for_log(log, "operator page on http://")
        url = log.read_text().split("operator page on ", 1)[1].split()[0].rstrip("/")
        with httpx.Client(base_url=url) as client:
            csrf = _csrf(client.get("/login").text)
            signed_in = client.post("/login", data={"name": OPERATOR, "password": page.password, "csrf": csrf})
            assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/")
            listing = client.get("/w/knit")
            assert listing.status_code == 200
            assert "Stops in knit" in listing.text
    finally:
        stop_processes([process], timeout_s=10)
