"""The outbound HTTP client's address check (SSRF) and scheme rule, shared by HTTP data
sources and webhooks (their own tests use them through a local test server)."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from bizdevops.http import OutboundError, TransientOutboundError, check_address, get_json, post
from tests.servers import answer, drip, gzip_of_zeros, head, peak_rss_growth


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


# The guarded exchange, against local servers (tests/servers.py plays the outside world)

# Sent a byte every half second, each read is well within a 1 s read timeout; all of it
# would take 30 s.
SLOW_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pad: " + b"x" * 20
SLOW = {
    "status-line-and-headers": drip(SLOW_HEAD, 0.5),
    "body": drip(b"0" * 60, 0.5, after=head(200, {}, 60)),
}


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def hit(url: str, **options: Any) -> Any:
    return get_json(url, allow_private=options.pop("allow_private", True), timeout=2, **options)


def test_get_reaches_the_checked_address_not_a_rebound_one(serve, resolver):
    """DNS rebinding: the name answers 127.0.0.1 to the check and 127.0.0.2 afterwards. The
    request must go to the checked address, and the name is looked up once."""
    checked = serve(answer(body=b'{"from": "checked"}'))
    rebound = serve(answer(body=b'{"from": "rebound"}'), host="127.0.0.2", port=checked.port)
    fake = resolver("rebind.test", ["127.0.0.1", "127.0.0.2"])

    assert hit(f"http://rebind.test:{checked.port}/metrics") == {"from": "checked"}

    assert fake.lookups == ["127.0.0.1"]
    assert rebound.requests == []
    (request,) = checked.requests
    assert request.headers["host"] == f"rebind.test:{checked.port}"  # the name, not the IP
    assert request.target == "/metrics"


def test_post_reaches_the_checked_address_not_a_rebound_one(serve, resolver):
    checked = serve(answer(204))
    rebound = serve(answer(204), host="127.0.0.2", port=checked.port)
    fake = resolver("rebind.test", ["127.0.0.1", "127.0.0.2"])

    result = post(
        f"http://rebind.test:{checked.port}/hook",
        body=b"{}",
        headers={},
        allow_private=True,
        timeout=2,
    )

    assert (result.status_code, result.error) == (204, "")
    assert fake.lookups == ["127.0.0.1"]
    assert rebound.requests == []
    assert checked.requests[0].headers["host"] == f"rebind.test:{checked.port}"


def test_a_public_answer_then_loopback_never_reaches_the_local_server(serve, resolver):
    """allow_private=False: the check sees a public address, a second lookup would say
    127.0.0.1. The connection goes to the public address (unreachable here, or not ours)."""
    local = serve(answer(body=b'{"from": "inside"}'))
    url = f"http://rebind.test:{local.port}/"
    resolver("rebind.test", ["93.184.216.34", "127.0.0.1"])
    with pytest.raises(OutboundError):
        get_json(url, allow_private=False, timeout=1)
    resolver("rebind.test", ["93.184.216.34", "127.0.0.1"])
    result = post(url, body=b"{}", headers={}, allow_private=False, timeout=1)
    assert result.status_code is None

    assert local.requests == []


@pytest.mark.parametrize("respond", SLOW.values(), ids=SLOW.keys())
def test_get_stops_at_the_deadline_of_the_whole_exchange(serve, respond):
    """The server drips its answer (30 s in all): each read is well within a 1 s read
    timeout, so only a deadline for the whole exchange stops it."""
    server = serve(respond)

    began = time.monotonic()
    with pytest.raises(TransientOutboundError, match="Timeout"):
        get_json(server.url("/slow"), allow_private=True, timeout=1)
    assert time.monotonic() - began < 10


def test_post_stops_at_the_deadline_of_the_whole_exchange(serve):
    server = serve(SLOW["status-line-and-headers"])

    began = time.monotonic()
    result = post(server.url("/hook"), body=b"{}", headers={}, allow_private=True, timeout=1)

    assert time.monotonic() - began < 10
    assert result.status_code is None
    assert "Timeout" in result.error


def test_post_does_not_wait_for_the_receivers_body(serve):
    server = serve(SLOW["body"])

    began = time.monotonic()
    result = post(server.url("/hook"), body=b"{}", headers={}, allow_private=True, timeout=1)

    assert time.monotonic() - began < 10
    assert (result.status_code, result.error) == (200, "")


BOMB_SIZE = 256 << 20  # 256 MiB of zeros, about 256 KiB gzipped


def test_get_caps_the_decoded_size_of_a_gzip_bomb(serve, settings):
    bomb = gzip_of_zeros(BOMB_SIZE)
    server = serve(answer(body=bomb, headers={"Content-Encoding": "gzip"}))

    growth, outcome = peak_rss_growth(lambda: hit(server.url("/bomb")))

    print(f"GET gzip bomb: {len(bomb)} bytes on the wire, peak RSS growth {growth >> 20} MiB")
    assert isinstance(outcome, OutboundError)
    assert f"larger than {settings.KPI_HTTP_MAX_BYTES} bytes" in str(outcome)
    assert growth < 64 << 20


def test_get_reads_a_small_gzip_body(serve):
    import gzip

    server = serve(
        answer(body=gzip.compress(b'{"value": 7}'), headers={"Content-Encoding": "gzip"})
    )

    assert hit(server.url("/small")) == {"value": 7}
    assert server.requests[0].headers["accept-encoding"] == "identity"


def test_get_refuses_an_encoding_it_does_not_decode(serve):
    server = serve(answer(body=b"\x00\x01", headers={"Content-Encoding": "br"}))

    with pytest.raises(OutboundError, match="br"):
        hit(server.url("/brotli"))


def test_post_does_not_read_a_gzip_bomb_answer(serve):
    bomb = gzip_of_zeros(BOMB_SIZE)
    server = serve(answer(body=bomb, headers={"Content-Encoding": "gzip"}))

    growth, result = peak_rss_growth(
        lambda: post(server.url("/hook"), body=b"{}", headers={}, allow_private=True, timeout=5)
    )

    print(
        f"POST gzip bomb answer: {len(bomb)} bytes on the wire, peak RSS growth {growth >> 20} MiB"
    )
    assert (result.status_code, result.error) == (200, "")
    assert growth < 64 << 20


@pytest.mark.parametrize("change", ["scheme", "port"])
def test_a_redirect_that_changes_scheme_or_port_is_refused(serve, change):
    other = serve(answer(body=b'{"from": "other"}'))
    first = serve(answer(302))
    target = other.url("/x") if change == "port" else first.url("/x").replace("http:", "https:")
    first.respond = answer(302, headers={"Location": target})

    with pytest.raises(OutboundError, match="Redirect to another origin") as refused:
        hit(first.url("/start"))

    assert type(refused.value) is OutboundError  # for good, not worth a retry
    assert other.requests == []
    assert [r.target for r in first.requests] == ["/start"]


def test_https_keeps_the_server_name_and_verifies_the_certificate(
    serve, resolver, test_ca, tmp_path, settings
):
    """Connected to the pinned IP, TLS still sends the name (SNI) and checks the certificate
    against the name, with the CA bundle of OUTBOUND_CA_BUNDLE."""
    settings.OUTBOUND_CA_BUNDLE = str(test_ca.path)
    server = serve(
        answer(body=b'{"tls": true}'), tls=test_ca.server_context("metrics.test", tmp_path)
    )
    fake = resolver("metrics.test", ["127.0.0.1", "127.0.0.2"])

    assert hit(server.url("/m", host="metrics.test")) == {"tls": True}
    assert server.sni == ["metrics.test"]
    assert server.requests[0].headers["host"] == f"metrics.test:{server.port}"
    assert fake.lookups == ["127.0.0.1"]

    # A certificate for another name, or from a CA we do not trust, is refused.
    resolver("other.test", ["127.0.0.1"])
    with pytest.raises(OutboundError, match="certificate"):
        hit(server.url("/m", host="other.test"))
    settings.OUTBOUND_CA_BUNDLE = ""
    resolver("metrics.test", ["127.0.0.1"])
    with pytest.raises(OutboundError, match="certificate"):
        hit(server.url("/m", host="metrics.test"))
    assert len(server.requests) == 1


def test_url_credentials_are_sent_as_basic_auth_and_never_shown(serve):
    server = serve(answer(404))
    url = server.url("/m").replace("http://", "http://kpi-reader:S3cret%2Fpw@")

    with pytest.raises(OutboundError) as refused:
        hit(url)

    assert "S3cret" not in str(refused.value)
    expected = "Basic " + base64.b64encode(b"kpi-reader:S3cret/pw").decode()
    assert server.requests[0].headers["authorization"] == expected
