"""Where a webhook may be sent: http(s) URLs that resolve to public addresses only (an SSRF guard)."""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import Invalid


class UrlNotAllowed(Invalid):
    code = "webhook_url_not_allowed"
    title = "This webhook URL is not allowed"


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (an address that was checked, not a name resolved again later)."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    address: str


Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def public(address: str) -> bool:
    """Whether an address is one a webhook may reach without LOYALTY_WEBHOOK_ALLOW_PRIVATE."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast
                or ip.is_reserved or not ip.is_global)


def check(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> Target:
    """The URL's target if it may be called; Invalid (422) for a malformed URL, UrlNotAllowed for a private one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("A webhook URL is an http:// or https:// URL with a host", code="validation_error",
                      errors={"url": ["An http or https URL with a host."]})
    if parts.username or parts.password:
        raise Invalid("Put no credentials in a webhook URL; verify the signature instead", code="validation_error",
                      errors={"url": ["No user:password@ in the URL."]})
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Invalid("The URL's port is not a number from 1 to 65535", code="validation_error",
                      errors={"url": ["Bad port."]}) from None
    try:
        addresses = resolver(parts.hostname, port)
    except (OSError, UnicodeError):
        raise UrlNotAllowed(f"{parts.hostname} does not resolve", code="webhook_url_unresolvable",
                            errors={"url": ["The host does not resolve."]}) from None
    if not addresses:
        raise UrlNotAllowed(f"{parts.hostname} does not resolve", code="webhook_url_unresolvable",
                            errors={"url": ["The host does not resolve."]})
    # Every address must be public: a name that also resolves to 10.0.0.1 could be made to reach it.
    private = [a for a in addresses if not public(a)]
    if private and not allow_private:
        raise UrlNotAllowed("A webhook URL must not resolve to a private, loopback or link-local address",
                            errors={"url": [f"Resolves to {private[0]}, which is not a public address."]})
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port, path, addresses[0])
