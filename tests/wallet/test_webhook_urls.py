"""The webhook SSRF guard and the Retry-After reader, without the network (an injected resolver)."""
from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from wallet.errors import Invalid
from wallet.webhooks import http, urls


def resolver(*addresses: str):
    return lambda host, port: list(addresses)


def test_a_public_name_gives_the_address_to_connect_to():
    target = urls.check("https://hooks.example.com:8443/in?x=1", allow_private=False,
                        resolver=resolver("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"))
    assert target == urls.Target("https", "hooks.example.com", 8443, "/in?x=1", "93.184.216.34")


@pytest.mark.parametrize("addresses", [("93.184.216.34", "10.0.0.1"), ("127.0.0.1",), ("169.254.169.254",),
                                       ("::1",), ("fe80::1%eth0",), ("::ffff:10.0.0.1",), ("0.0.0.0",),
                                       ("198.18.0.1",), ("240.0.0.1",), ("ff02::1",)])
def test_a_name_resolving_to_any_private_address_is_refused(addresses):
    with pytest.raises(urls.UrlNotAllowed) as refused:
        urls.check("https://rebind.example.com/", allow_private=False, resolver=resolver(*addresses))
    assert refused.value.code == "webhook_url_not_allowed"
    assert urls.check("https://rebind.example.com/", allow_private=True, resolver=resolver(*addresses)).address \
        == addresses[0]


def test_a_name_that_does_not_resolve_is_refused():
    def fails(host, port):
        raise OSError("no such host")
    with pytest.raises(urls.UrlNotAllowed) as refused:
        urls.check("https://nowhere.example/", allow_private=True, resolver=fails)
    assert refused.value.code == "webhook_url_unresolvable"


@pytest.mark.parametrize("url", ["ftp://example.com/", "https:///path", "https://u:p@example.com/",
                                 "https://example.com:99999/", "javascript:alert(1)"])
def test_malformed_urls_are_invalid(url):
    with pytest.raises(Invalid) as refused:
        urls.check(url, allow_private=True, resolver=resolver("93.184.216.34"))
    assert refused.value.code == "validation_error"


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC).timestamp()
    assert http.retry_after("120", now) == 120.0
    assert http.retry_after(format_datetime(datetime(2026, 11, 22, 10, 1, 30, tzinfo=UTC), usegmt=True), now) == 90.0
    assert http.retry_after(format_datetime(datetime(2026, 11, 22, 9, 0, tzinfo=UTC), usegmt=True), now) == 0.0
    assert http.retry_after("soon", now) is None
    assert http.retry_after(None, now) is None
