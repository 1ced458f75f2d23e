"""The outbound HTTP client's address check (SSRF) and scheme rule, shared by HTTP data
sources and webhooks (their own tests use them through a local test server)."""

from __future__ import annotations

import pytest

from bizdevops.http import OutboundError, check_address, get_json


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",  # noqa: S104
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_internal_addresses_are_refused(host):
    with pytest.raises(OutboundError, match="private or internal"):
        check_address(host, allow_private=False)
    check_address(host, allow_private=True)


@pytest.mark.parametrize(
    "host",
    [
        # Shared address space (RFC 6598), not "private" to Python's ipaddress but internal:
        # 100.100.100.200 is Alibaba Cloud's instance metadata service.
        "100.100.100.200",
        "100.64.0.1",
    ],
)
def test_shared_address_space_is_refused(host):
    with pytest.raises(OutboundError, match="private or internal"):
        check_address(host, allow_private=False)


@pytest.mark.parametrize("host", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(host):
    check_address(host, allow_private=False)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/"])
def test_get_json_only_speaks_http_and_https(url):
    with pytest.raises(OutboundError, match="Only http and https"):
        get_json(url, allow_private=True, timeout=2)
