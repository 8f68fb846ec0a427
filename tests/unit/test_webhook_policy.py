"""Where webhooks may point: http(s) only, no loopback, link-local or private host unless allowed; checked at
load (the rules file, the command line) and against the resolved addresses before each request."""

from __future__ import annotations

import ipaddress
import re

import pytest

from alerts.delivery import post_webhook
from alerts.errors import DeliveryError, RulesError
from alerts.rules import WebhookTarget, load_config, parse_config
from alerts.webhook_policy import IPAddress, WebhookRefused, check_addresses, check_url, refusal
from ftel.errors import FtelError


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/hostname", "scheme 'file' is not allowed"),
        ("ftp://example.com/x", "scheme 'ftp'"),
        ("gopher://example.com/x", "scheme 'gopher'"),
        ("example.com/hook", "scheme '(none)'"),
        ("http:///path-only", "names no host"),
        ("https://user:secret@example.com/x", "credentials in headers"),
        ("http://example.com:99999/x", "not a URL"),
    ],
)
def test_only_http_and_https_urls_with_a_host_are_accepted(url: str, message: str) -> None:
    with pytest.raises(WebhookRefused, match=re.escape(message)) as refused:
        check_url("board", url, ())
    assert "webhook board" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8080/x", "loopback"),
        ("http://127.9.9.9/x", "loopback"),
        ("http://[::1]/x", "loopback"),
        ("http://[::ffff:127.0.0.1]/x", "loopback"),
        ("http://localhost/x", "loopback"),
        ("http://api.localhost./x", "loopback"),
        ("http://0.0.0.0/x", "unspecified"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://10.1.2.3/x", "private"),
        ("http://172.16.0.1/x", "private"),
        ("https://192.168.1.20/x", "private"),
        ("http://[fd00::1]/x", "private"),
        ("http://100.64.0.1/x", "not globally routable"),
    ],
)
def test_internal_addresses_are_refused_at_load_and_say_how_to_allow_them(url: str, kind: str) -> None:
    with pytest.raises(WebhookRefused, match=f"is {kind}") as refused:
        check_url("board", url, ())
    assert "allow_hosts" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.1:8080/x", ("127.0.0.1",)),
        ("http://127.0.0.1:8080/x", ("127.0.0.0/8",)),
        ("http://10.1.2.3/x", ("10.0.0.0/8",)),
        ("http://localhost/x", ("LOCALHOST",)),
        ("https://93.184.216.34/x", ()),
        ("https://hooks.example.com/x", ()),  # a name: judged by its addresses when sending
    ],
)
def test_allowed_and_public_hosts_pass_the_load_check(url: str, allow: tuple[str, ...]) -> None:
    check_url("board", url, allow)


def _ips(*addresses: str) -> list[IPAddress]:
    return [ipaddress.ip_address(a) for a in addresses]


def test_every_resolved_address_must_pass() -> None:
    public = _ips("93.184.216.34", "2606:2800:220:1::1")
    assert check_addresses("board", "hooks.example.com", public, ()) == public[0]
    with pytest.raises(WebhookRefused, match=r"private \(10.0.0.7\)"):
        check_addresses("board", "hooks.example.com", [*public, *_ips("10.0.0.7")], ())
    assert check_addresses("board", "hooks.lan", _ips("10.0.0.7"), ("hooks.lan",)) == _ips("10.0.0.7")[0]
    assert check_addresses("board", "hooks.lan", _ips("10.0.0.7"), ("10.0.0.0/24",)) == _ips("10.0.0.7")[0]
    with pytest.raises(WebhookRefused, match="no address"):
        check_addresses("board", "hooks.lan", [], ())
    assert refusal(ipaddress.ip_address("8.8.8.8")) is None


def _rules(webhook: dict[str, object], **worker: object) -> dict[str, object]:
    data = load_config().model_dump(mode="json")
    return {**data, "webhooks": [webhook], "worker": {**data["worker"], **worker}}


def test_the_rules_file_refuses_a_bad_webhook_by_name_and_adds_the_workers_allow_list() -> None:
    with pytest.raises(RulesError, match="webhook board: scheme 'file'"):
        parse_config(_rules({"name": "board", "url": "file:///etc/hostname"}))
    with pytest.raises(RulesError, match=r"webhook board: 127\.0\.0\.1 is loopback"):
        parse_config(_rules({"name": "board", "url": "http://127.0.0.1:9/x"}))
    config = parse_config(_rules({"name": "board", "url": "http://127.0.0.1:9/x"}, allow_hosts=["127.0.0.1"]))
    assert config.webhooks[0].allow_hosts == ("127.0.0.1",)
    again = parse_config(config.model_dump())  # validating again does not grow the list
    assert again.webhooks[0].allow_hosts == ("127.0.0.1",)
    own = parse_config(_rules({"name": "board", "url": "http://10.0.0.5/x", "allow_hosts": ["10.0.0.5"]}))
    assert own.webhooks[0].allow_hosts == ("10.0.0.5",)


def test_a_name_that_resolves_inside_is_refused_before_any_connection() -> None:
    hook = WebhookTarget(name="board", url="https://hooks.example.com/alerts")

    def resolver(host: str, port: int) -> list[IPAddress]:
        assert (host, port) == ("hooks.example.com", 443)
        return _ips("93.184.216.34", "169.254.169.254")

    with pytest.raises(DeliveryError, match=r"webhook board: hooks\.example\.com is link-local"):
        post_webhook(hook, "{}", resolve=resolver)


def test_a_refused_webhook_is_one_of_the_projects_errors_and_says_what_to_do() -> None:
    with pytest.raises(FtelError) as caught:
        check_url("board", "https://user:secret@hooks.example.com/x", ())
    assert isinstance(caught.value, WebhookRefused)
    assert "put credentials in headers" in str(caught.value)
    with pytest.raises(FtelError, match=r"names no host; write it as https://host\[:port\]/path"):
        check_url("board", "https:///x", ())
