"""Outbound HTTP for every part of the project (HTTP data sources, webhooks): the address
check that keeps requests away from internal networks (SSRF), timeouts, a size cap and
redirects that are checked hop by hop. Messages never carry a URL's credentials."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings

from bizdevops.crypto import redact

MAX_REDIRECTS = 3
USER_AGENT = "BizDevOps"


class OutboundError(Exception):
    """The request was refused or failed for good (a bad address, a 4xx, not JSON, ...)."""


class TransientOutboundError(OutboundError):
    """A passing failure (name not resolved, connection refused, timeout, 5xx, 429)."""


def check_address(host: str, allow_private: bool) -> None:
    """Refuse hosts that resolve to private, loopback, link-local or otherwise internal
    addresses unless the caller allows them (SSRF guard)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise TransientOutboundError(f"Cannot resolve {host}: {error}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        # Anything not globally routable: private, loopback, link-local (cloud metadata),
        # shared address space (100.64/10), reserved, unspecified; and multicast.
        internal = not address.is_global or address.is_multicast
        if internal and not allow_private:
            raise OutboundError(
                f"{host} resolves to {address}, a private or internal address, which is not "
                "allowed here."
            )


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise OutboundError(f"Only http and https URLs are allowed, not {parts.scheme!r}.")
    if not parts.hostname:
        raise OutboundError(f"{redact(url)!r} has no host.")
    return parts.hostname


def check_url(url: str, allow_private: bool) -> None:
    """An http(s) URL with a host whose addresses are allowed, else OutboundError."""
    check_address(_host_of(url), allow_private)


def _read_capped(response: requests.Response, shown: str, deadline: float, timeout: float) -> bytes:
    body = b""
    for chunk in response.iter_content(65536):
        body += chunk
        if len(body) > settings.KPI_HTTP_MAX_BYTES:
            raise OutboundError(f"The response is larger than {settings.KPI_HTTP_MAX_BYTES} bytes.")
        # The read timeout is per read; this bounds the whole download.
        if time.monotonic() > deadline:
            raise OutboundError(f"GET {shown} took longer than {timeout:g} s.")
    return body


def _get(url: str, timeout: float) -> requests.Response:
    try:
        return requests.get(
            url,
            timeout=(settings.KPI_HTTP_CONNECT_TIMEOUT, timeout),
            allow_redirects=False,
            stream=True,
            headers={"Accept": "application/json", "User-Agent": f"{USER_AGENT} KPI job"},
        )
    except (requests.ConnectionError, requests.Timeout) as error:
        raise TransientOutboundError(
            f"GET {redact(url)} failed ({type(error).__name__})."
        ) from None


def _refuse_status(status: int, shown: str) -> None:
    if status >= 500 or status == 429:
        raise TransientOutboundError(f"GET {shown} answered {status}.")
    if status >= 400:
        raise OutboundError(f"GET {shown} answered {status}.")


def get_json(
    url: str, *, allow_private: bool, timeout: float, same_host_as: str | None = None
) -> Any:
    """GET a URL and parse JSON, with timeouts, a size cap and checked redirects (only to the
    same host as `same_host_as`, and every hop passes the address check)."""
    origin = urlsplit(same_host_as or url)
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        shown = redact(url)
        hostname = _host_of(url)
        if hostname != origin.hostname:
            raise OutboundError(f"Redirect to another host ({hostname}) refused.")
        check_address(hostname, allow_private)
        with _get(url, timeout) as response:
            if response.is_redirect:
                url = urljoin(url, response.headers.get("Location", ""))
                continue
            _refuse_status(response.status_code, shown)
            body = _read_capped(response, shown, deadline, timeout)
        try:
            return requests.models.complexjson.loads(body)
        except ValueError:
            raise OutboundError(f"GET {shown} did not return JSON.") from None
    raise OutboundError(f"More than {MAX_REDIRECTS} redirects.")


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    error: str  # empty when the receiver answered 2xx


def post(
    url: str, *, body: bytes, headers: dict[str, str], allow_private: bool, timeout: float
) -> Answer:
    """POST a body once; redirects are not followed. Never raises for the receiver's sake:
    a refused address, no answer or a non-2xx status is reported in `error`."""
    try:
        check_url(url, allow_private)
        response = requests.post(
            url,
            data=body,
            timeout=timeout,
            allow_redirects=False,
            headers={"User-Agent": f"{USER_AGENT} webhooks", **headers},
        )
    except OutboundError as refusal:
        return Answer(None, str(refusal))
    except requests.RequestException as failure:
        return Answer(None, f"{type(failure).__name__}: the receiver did not answer.")
    status = response.status_code
    return Answer(status, "" if 200 <= status < 300 else f"Answered {status}.")
