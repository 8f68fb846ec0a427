"""Where a webhook may point (pure): http or https only, and never at this host or the plant's internal
network (loopback, link-local, private and other non-global addresses) unless that host is allowed by name,
address or network (``allow_hosts``). Checked when the rules are loaded and again, against the resolved
addresses, before every request, so a name that later resolves somewhere internal is refused too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from alerts.errors import AlertError

ALLOWED_SCHEMES = ("http", "https")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookRefused(AlertError, ValueError):
    """A webhook URL or address this worker will not send to; the text names the webhook and the fix. Also a
    ValueError, so that a rules file's validation reports it by rule and field."""


def url_host(name: str, url: str) -> str:
    """The URL's host, once its scheme and shape are acceptable."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as error:
        raise WebhookRefused(
            f"webhook {name}: {url!r} is not a URL ({error}); write it as https://host[:port]/path"
        ) from error
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise WebhookRefused(
            f"webhook {name}: scheme {parts.scheme or '(none)'!r} is not allowed in {url!r}: only http or https"
        )
    if not parts.hostname:
        raise WebhookRefused(f"webhook {name}: {url!r} names no host; write it as https://host[:port]/path")
    if parts.username or parts.password:
        raise WebhookRefused(f"webhook {name}: put credentials in headers, not in the URL")
    return parts.hostname.lower().rstrip(".")


def refusal(address: IPAddress) -> str | None:
    """Why an address is off limits, or None for a globally routable one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refusal(address.ipv4_mapped)
    for kind, matches in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
    ):
        if matches:
            return kind
    return None if address.is_global else "not globally routable"


def is_allowed(host: str, address: IPAddress | None, allow_hosts: Iterable[str]) -> bool:
    """Whether ``allow_hosts`` names ``host`` or contains ``address`` (entries: names, addresses, networks)."""
    for entry in (e.lower().rstrip(".") for e in allow_hosts):
        if entry == host:
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue  # a name, not an address or network
    return False


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(name: str, url: str, allow_hosts: Sequence[str]) -> None:
    """The check at load: scheme, and a host that is plainly internal (an address, or localhost)."""
    host = url_host(name, url)
    literal = _literal(host)
    if literal is not None:
        kind = refusal(literal)
    elif host == "localhost" or host.endswith(".localhost"):
        kind = "loopback"
    else:
        return  # a name: judged by what it resolves to, at send time
    if kind is not None and not is_allowed(host, literal, allow_hosts):
        raise WebhookRefused(_advice(name, host, kind))


def check_addresses(name: str, host: str, addresses: Sequence[IPAddress], allow_hosts: Sequence[str]) -> IPAddress:
    """The check before a request: every address the host resolves to must be acceptable (one internal address
    among public ones is how a rebinding attack looks). Returns the address to connect to."""
    if not addresses:
        raise WebhookRefused(
            f"webhook {name}: {host} resolves to no address; check the name in the rules file and this host's DNS"
        )
    for address in addresses:
        kind = refusal(address)
        if kind is not None and not is_allowed(host, address, allow_hosts):
            raise WebhookRefused(_advice(name, host, f"{kind} ({address})"))
    return addresses[0]


def _advice(name: str, host: str, kind: str) -> str:
    return (
        f"webhook {name}: {host} is {kind}, refused so that alerts cannot be turned against this host or the "
        f"internal network; if it is really meant, add {host!r} to allow_hosts (of the webhook, or the worker's)"
    )
