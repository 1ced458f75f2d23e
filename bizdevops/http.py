"""Outbound HTTP for every part of the project (HTTP data sources, webhooks), through one
guarded exchange:

- the address check that keeps requests away from internal networks (SSRF), on every address
  the name resolves to, and the connection made to one of those checked addresses (the name is
  resolved once, so DNS rebinding between check and connect cannot move it), with the Host
  header, the TLS server name and the certificate check still on the name;
- one wall-clock deadline for the whole exchange (connect, TLS, status line, headers, body):
  every socket operation gets only the time left, so a server dripping a byte a second stops
  at the deadline, not after one read timeout per byte;
- `Accept-Encoding: identity`, and a body capped on the wire and after decoding (a gzip body
  sent anyway is decoded step by step, never past the cap; other encodings are refused);
- redirects followed (sources only) when scheme, host and port stay the same, each hop checked
  again; webhooks follow none and never read the receiver's body;
- no proxy from the environment (a proxy would resolve the name itself).

Messages never carry a URL's credentials."""

from __future__ import annotations

import base64
import functools
import http.client
import ipaddress
import socket
import ssl
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import SplitResult, quote, unquote, urljoin, urlsplit

import certifi
from django.conf import settings

from bizdevops import jsonsafe
from bizdevops.crypto import redact

MAX_REDIRECTS = 3
USER_AGENT = "BizDevOps"
REDIRECTS = {301, 302, 303, 307, 308}
DEFAULT_PORTS = {"http": 80, "https": 443}
READ_SIZE = 65536
# Characters left as they are in a request target (RFC 3986 reserved and unreserved, and %).
TARGET_SAFE = "/?#[]@!$&'()*+,;=:%~-._"

Address = tuple[socket.AddressFamily, tuple[Any, ...]]


class OutboundError(Exception):
    """The request was refused or failed for good (a bad address, a 4xx, not JSON, ...)."""


class TransientOutboundError(OutboundError):
    """A passing failure (name not resolved, connection refused, timeout, 5xx, 429)."""


def resolve(host: str, allow_private: bool) -> list[Address]:
    """The addresses `host` resolves to (one lookup), each checked: a host with any private,
    loopback, link-local or otherwise internal address is refused unless the caller allows
    them (SSRF guard)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise TransientOutboundError(f"Cannot resolve {host}: {error}") from None
    addresses: list[Address] = []
    for family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        # Anything not globally routable: private, loopback, link-local (cloud metadata),
        # shared address space (100.64/10), reserved, unspecified; and multicast.
        internal = not address.is_global or address.is_multicast
        if internal and not allow_private:
            raise OutboundError(
                f"{host} resolves to {address}, a private or internal address, which is not "
                "allowed here."
            )
        if (family, sockaddr) not in addresses:
            addresses.append((family, sockaddr))
    if not addresses:
        raise TransientOutboundError(f"Cannot resolve {host}: no address.")
    return addresses


def check_address(host: str, allow_private: bool) -> None:
    resolve(host, allow_private)


def _split(url: str) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise OutboundError(f"Only http and https URLs are allowed, not {parts.scheme!r}.")
    if not parts.hostname:
        raise OutboundError(f"{redact(url)!r} has no host.")
    try:
        parts.port  # noqa: B018 (raises for a port that is not a number in range)
    except ValueError:
        raise OutboundError(f"{redact(url)!r} has an invalid port.") from None
    return parts


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    return parts.scheme, parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme]


def check_url(url: str, allow_private: bool) -> None:
    """An http(s) URL with a host whose addresses are allowed, else OutboundError."""
    check_address(_split(url).hostname or "", allow_private)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline")
        return left


class _DeadlineMixin:
    """Every read and write of the socket may take only the time left to the deadline."""

    deadline: _Deadline | None = None

    def _arm(self) -> None:
        if self.deadline is not None:
            self.settimeout(self.deadline.left())  # type: ignore[attr-defined]

    def recv(self, *args: Any) -> bytes:
        self._arm()
        return super().recv(*args)  # type: ignore[misc]

    def recv_into(self, *args: Any) -> int:
        self._arm()
        return super().recv_into(*args)  # type: ignore[misc]

    def send(self, *args: Any) -> int:
        self._arm()
        return super().send(*args)  # type: ignore[misc]

    def sendall(self, *args: Any) -> None:
        self._arm()
        super().sendall(*args)  # type: ignore[misc]


class _DeadlineSocket(_DeadlineMixin, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineMixin, ssl.SSLSocket):
    pass


@functools.lru_cache(maxsize=4)
def _tls_context(ca_bundle: str) -> ssl.SSLContext:
    """Certificates checked against the name in the URL (CA bundle: certifi's unless
    OUTBOUND_CA_BUNDLE names one)."""
    context = ssl.create_default_context(cafile=ca_bundle or certifi.where())
    context.sslsocket_class = _DeadlineSSLSocket
    return context


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP/1.1 to `host` (the Host header, TLS server name and certificate name) over a
    connection to one of the addresses that passed the check."""

    def __init__(
        self, parts: SplitResult, addresses: list[Address], deadline: _Deadline, connect: float
    ) -> None:
        super().__init__(parts.hostname or "", _origin(parts)[2])
        self._tls = parts.scheme == "https"
        self._addresses = addresses
        self._deadline = deadline
        self._connect_timeout = connect

    def connect(self) -> None:
        error: OSError = ConnectionError("no address")
        for family, sockaddr in self._addresses:
            sock = _DeadlineSocket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            try:
                sock.settimeout(min(self._connect_timeout, self._deadline.left()))
                sock.connect((sockaddr[0], self.port, *sockaddr[2:]))
                break
            except OSError as failure:
                sock.close()
                error = failure
        else:
            raise error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls:
            # The handshake is one operation in the ssl module, bounded by this timeout.
            sock.settimeout(self._deadline.left())
            tls = _tls_context(settings.OUTBOUND_CA_BUNDLE).wrap_socket(
                sock, server_hostname=self.host
            )
            cast(_DeadlineSSLSocket, tls).deadline = self._deadline
            self.sock = tls
        else:
            sock.deadline = self._deadline
            self.sock = sock


def _target(parts: SplitResult) -> str:
    target = quote(parts.path or "/", safe=TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=TARGET_SAFE)
    return target


def _basic_auth(parts: SplitResult) -> dict[str, str]:
    if parts.username is None:
        return {}
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


@contextmanager
def _exchange(
    method: str,
    parts: SplitResult,
    *,
    label: str,
    allow_private: bool,
    deadline: _Deadline,
    headers: dict[str, str],
    body: bytes | None = None,
    connect_timeout: float | None = None,
) -> Iterator[http.client.HTTPResponse]:
    """Send one request to the checked addresses of the URL's host and yield the response
    (status and headers read, body not yet); the connection is closed afterwards. Network
    failures become TransientOutboundError, a refused certificate OutboundError."""
    addresses = resolve(parts.hostname or "", allow_private)
    connection = _PinnedConnection(parts, addresses, deadline, connect_timeout or deadline.seconds)
    try:
        connection.request(
            method, _target(parts), body=body, headers={"Connection": "close", **headers}
        )
        yield connection.getresponse()
    except ssl.SSLCertVerificationError as error:
        raise OutboundError(
            f"{label} failed: the server's TLS certificate was refused ({error.verify_message})."
        ) from None
    except TimeoutError:
        raise TransientOutboundError(
            f"{label} failed (Timeout: no complete answer within {deadline.seconds:g} s)."
        ) from None
    except ConnectionRefusedError:
        raise TransientOutboundError(f"{label} failed (ConnectionError: refused).") from None
    except (OSError, http.client.HTTPException) as error:
        raise TransientOutboundError(
            f"{label} failed (ConnectionError: {type(error).__name__})."
        ) from None
    finally:
        connection.close()


def _read_capped(response: http.client.HTTPResponse, label: str, limit: int) -> bytes:
    """The body, at most `limit` bytes as received and as decoded."""
    encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding in {"gzip", "x-gzip", "deflate"}:
        decoder: Any = zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip or zlib header
    elif encoding == "identity":
        decoder = None
    else:
        raise OutboundError(f"{label} answered in {encoding} encoding, which is not accepted.")
    too_large = OutboundError(f"The response is larger than {limit} bytes.")
    body = bytearray()
    received = 0
    while chunk := response.read(READ_SIZE):
        received += len(chunk)
        if received > limit:
            raise too_large
        if decoder is None:
            body += chunk
            continue
        try:
            # max_length keeps what one step decodes within the cap; the rest of the input
            # waits in unconsumed_tail.
            while chunk:
                body += decoder.decompress(chunk, limit + 1 - len(body))
                if len(body) > limit:
                    raise too_large
                chunk = decoder.unconsumed_tail
        except zlib.error:
            raise OutboundError(
                f"{label} sent a body that does not decode as {encoding}."
            ) from None
    if decoder is not None and not decoder.eof:
        raise OutboundError(f"{label} sent an incomplete {encoding} body.")
    return bytes(body)


def _refuse_status(status: int, label: str) -> None:
    if status >= 500 or status == 429:
        raise TransientOutboundError(f"{label} answered {status}.")
    if status >= 400:
        raise OutboundError(f"{label} answered {status}.")


def get_json(
    url: str, *, allow_private: bool, timeout: float, same_host_as: str | None = None
) -> Any:
    """GET a URL and parse JSON, within `timeout` seconds for the whole exchange (redirects
    included), a size cap and redirects followed only within the origin (scheme, host and
    port) of `same_host_as`, every hop checked and pinned again."""
    deadline = _Deadline(timeout)
    origin = _origin(_split(same_host_as or url))
    first = _split(url)
    headers = {
        "Accept": "application/json",
        "User-Agent": f"{USER_AGENT} KPI job",
        **_basic_auth(first),
    }
    for _ in range(MAX_REDIRECTS + 1):
        parts = _split(url)
        label = f"GET {redact(url)}"
        scheme, host, port = _origin(parts)
        if host != origin[1]:
            raise OutboundError(f"Redirect to another host ({host}) refused.")
        if (scheme, host, port) != origin:
            raise OutboundError(
                f"Redirect to another origin ({scheme}://{host}:{port}) refused: the scheme, "
                "host and port must stay the same."
            )
        with _exchange(
            "GET",
            parts,
            label=label,
            allow_private=allow_private,
            deadline=deadline,
            headers=headers,
            connect_timeout=min(settings.KPI_HTTP_CONNECT_TIMEOUT, timeout),
        ) as response:
            if response.status in REDIRECTS and response.getheader("Location"):
                url = urljoin(url, response.getheader("Location", ""))
                continue
            _refuse_status(response.status, label)
            body = _read_capped(response, label, settings.KPI_HTTP_MAX_BYTES)
        try:
            return jsonsafe.loads(body)
        except jsonsafe.JSONTooDeep as error:
            raise OutboundError(
                f"{label} returned JSON nested deeper than {error.limit} levels."
            ) from None
        except ValueError:
            raise OutboundError(f"{label} did not return JSON.") from None
    raise OutboundError(f"More than {MAX_REDIRECTS} redirects.")


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    error: str  # empty when the receiver answered 2xx


def post(
    url: str, *, body: bytes, headers: dict[str, str], allow_private: bool, timeout: float
) -> Answer:
    """POST a body once, within `timeout` seconds for the whole exchange; redirects are not
    followed and the receiver's body is not read (only its status counts). Never raises for
    the receiver's sake: a refused address, no answer or a non-2xx status is reported in
    `error`, without the URL (a webhook URL's path is often its secret)."""
    try:
        with _exchange(
            "POST",
            _split(url),
            label="POST",
            allow_private=allow_private,
            deadline=_Deadline(timeout),
            headers={"User-Agent": f"{USER_AGENT} webhooks", **headers},
            body=body,
        ) as response:
            status = response.status
    except OutboundError as refusal:
        return Answer(None, str(refusal))
    return Answer(status, "" if 200 <= status < 300 else f"Answered {status}.")
