"""post_webhook over real sockets: a receiver on loopback, reached only when allowed, through one pooled
keep-alive connection, with the URL's host in the Host header; refusals, errors and redirects are
DeliveryErrors (the outbox retries them), never followed."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alerts.delivery import post_webhook, webhook_client
from alerts.errors import DeliveryError
from alerts.rules import WebhookTarget
from alerts.webhook_policy import IPAddress, refusal

NAME = "hooks.example"  # resolved by the test's resolver to the receiver on loopback


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, int, bytes]] = []  # path, Host header, client port, body
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse shows

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests.append((self.path, self.headers["Host"], self.client_address[1], body))
                if self.path == "/slow":
                    time.sleep(1.0)
                status = {"/fail": 500, "/moved": 302}.get(self.path, 204)
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def to_loopback(host: str, port: int) -> list[IPAddress]:
    assert host == NAME
    address = ipaddress.ip_address("127.0.0.1")
    assert refusal(address) == "loopback"
    return [address]


def test_an_allowed_receiver_gets_the_body_over_one_pooled_connection_and_the_rest_is_refused(
    receiver: Receiver,
) -> None:
    client = webhook_client()
    allowed = WebhookTarget(name="board", url=f"http://{NAME}:{receiver.port}/alerts", allow_hosts=(NAME,))
    body = json.dumps({"event_id": "a:firing"})
    post_webhook(allowed, body, client=client, resolve=to_loopback)
    post_webhook(allowed, body, client=client, resolve=to_loopback)
    (path, host, port1, got), (_, _, port2, _) = receiver.requests
    assert (path, host, got) == ("/alerts", f"{NAME}:{receiver.port}", body.encode())
    assert port1 == port2  # one keep-alive connection for both

    # The same name, not allowed: it resolves to loopback, so nothing is sent.
    unallowed = WebhookTarget(name="board", url=f"http://{NAME}:{receiver.port}/alerts")
    with pytest.raises(DeliveryError, match=r"hooks.example is loopback \(127.0.0.1\)"):
        post_webhook(unallowed, body, client=client, resolve=to_loopback)
    assert receiver.count() == 2

    def at(path: str, **options: float) -> WebhookTarget:
        return WebhookTarget(name="board", url=f"http://{NAME}:{receiver.port}{path}", allow_hosts=(NAME,), **options)

    with pytest.raises(DeliveryError, match="answered 500"):
        post_webhook(at("/fail"), body, client=client, resolve=to_loopback)
    with pytest.raises(DeliveryError, match="answered 302"):  # never followed to where it points
        post_webhook(at("/moved"), body, client=client, resolve=to_loopback)
    with pytest.raises(DeliveryError, match="unreachable"):
        post_webhook(at("/slow", timeout_s=0.2), body, client=client, resolve=to_loopback)
    assert [r[0] for r in receiver.requests] == ["/alerts", "/alerts", "/fail", "/moved", "/slow"]
    client.close()
