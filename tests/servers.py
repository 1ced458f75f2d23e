"""The outside world of the outbound HTTP tests: a scripted TCP server on a loopback address
(answers dripped a byte at a time, gzip bombs, redirects, optionally over TLS with a test CA)
and a fake resolver whose answers change between lookups (DNS rebinding)."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes


Respond = Callable[[Request, socket.socket], None]


class LocalServer:
    """Accepts connections on `host` (a loopback address, port 0 = any free port), reads one
    request and lets `respond` write whatever it likes to the socket, in a thread each."""

    def __init__(
        self,
        respond: Respond,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.respond = respond
        self.tls = tls
        self.requests: list[Request] = []
        self.sni: list[str | None] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(16)
        self.host, self.port = self._listener.getsockname()[:2]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, path: str = "/", host: str | None = None) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread
        self._listener.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            if self.tls:
                self.tls.sni_callback = self._note_sni
                conn = self.tls.wrap_socket(conn, server_side=True)
            request = _read_request(conn)
            if request is None:
                return
            self.requests.append(request)
            self.respond(request, conn)
        except (OSError, ValueError):
            pass  # the client went away (or refused our certificate): that is the test's point
        finally:
            conn.close()

    def _note_sni(self, _sock: Any, name: str | None, _context: Any) -> None:
        self.sni.append(name)


def _read_request(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return Request(method, target, headers, body)


def head(status: int = 200, headers: dict[str, str] | None = None, length: int | None = 0) -> bytes:
    lines = [f"HTTP/1.1 {status} Status"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None) -> Respond:
    def respond(_request: Request, conn: socket.socket) -> None:
        conn.sendall(
            head(status, {"Content-Type": "application/json", **(headers or {})}, len(body))
        )
        conn.sendall(body)

    return respond


def drip(data: bytes, interval: float = 1.0, *, after: bytes = b"") -> Respond:
    """Send `after` at once, then `data` one byte every `interval` seconds (until the client
    hangs up)."""

    def respond(_request: Request, conn: socket.socket) -> None:
        if after:
            conn.sendall(after)
        for byte in data:
            conn.sendall(bytes([byte]))
            time.sleep(interval)

    return respond


def gzip_of_zeros(size: int) -> bytes:
    """The gzip encoding of `size` zero bytes, made without holding them in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [
        compressor.compress(block[: min(len(block), size - done)])
        for done in range(0, size, len(block))
    ]
    return b"".join([*parts, compressor.flush()])


@pytest.fixture
def serve() -> Iterator[Callable[..., LocalServer]]:
    """Start local servers (closed at teardown): serve(respond, host=..., port=..., tls=...)."""
    servers: list[LocalServer] = []

    def start(respond: Respond, **options: Any) -> LocalServer:
        server = LocalServer(respond, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@dataclass
class FakeResolver:
    """Answers `name` with `answers[0]` first and `answers[-1]` on every later lookup (the
    rebinding attacker's DNS); other names go to the real resolver."""

    name: str
    answers: list[str]
    lookups: list[str] = field(default_factory=list)

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host != self.name:
            return _real_getaddrinfo(host, port, *args, **kwargs)
        address = self.answers[min(len(self.lookups), len(self.answers) - 1)]
        self.lookups.append(address)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sockaddr = (address, port or 0, 0, 0) if family == socket.AF_INET6 else (address, port or 0)
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]


_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, list[str]], FakeResolver]:
    def install(name: str, answers: list[str]) -> FakeResolver:
        fake = FakeResolver(name, answers)
        monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
        return fake

    return install


@dataclass
class TestCA:
    __test__ = False
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    path: Path  # the CA certificate, PEM

    def server_context(self, hostname: str, directory: Path) -> ssl.SSLContext:
        """A server TLS context with a certificate for `hostname` signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        try:
            alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(hostname))
        except ValueError:
            alt = x509.DNSName(hostname)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path = directory / f"{hostname}.pem"
        key_path = directory / f"{hostname}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        return context


@pytest.fixture
def test_ca(tmp_path: Path) -> TestCA:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "BizDevOps test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "test-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TestCA(key, cert, path)


def peak_rss_growth(run: Callable[[], Any]) -> tuple[int, Any]:
    """(the peak resident memory of this process while `run` ran, above what it used before,
    in bytes; what `run` returned or raised). Linux: resets the peak through clear_refs."""
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    try:
        outcome: Any = run()
    except Exception as error:  # noqa: BLE001 (the caller asserts on it)
        outcome = error
    return (_status_kib("VmHWM") - before) * 1024, outcome


def _status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise LookupError(field_name)
