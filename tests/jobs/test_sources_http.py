from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from bizdevops.errors import DomainError
from jobs import services
from jobs.models import RunState
from jobs.services import job_update, run_execute, run_request
from jobs.sources import SourceError, TransientSourceError, run_http
from kpis.models import Measurement

pytestmark = pytest.mark.django_db

METRICS = {
    "fraud": {"caught": 87.5, "alarms": 3},
    "items": [{"v": 1}, {"v": 2}],
    "label": "high",
    "flag": True,
    "nothing": None,
    "text_number": "12.5",
    "infinite": "inf",
}


class Handler(BaseHTTPRequestHandler):
    server: TestServer

    def do_GET(self) -> None:  # noqa: N802
        self.server.seen.append(self.path)
        path = urlsplit(self.path).path
        port = self.server.server_address[1]
        routes: dict[str, tuple[int, dict[str, str], bytes]] = {
            "/metrics": (200, {}, json.dumps(METRICS).encode()),
            "/api/v1/metrics": (200, {}, json.dumps({"value": 42}).encode()),
            "/small": (200, {}, b'{"value": 3}'),
            "/deep": (200, {}, b"[" * 100_000 + b"]" * 100_000),
            "/huge": (200, {}, json.dumps({"value": 1, "pad": "x" * 200_000}).encode()),
            "/error": (500, {}, b'{"error": "boom"}'),
            "/busy": (429, {}, b"{}"),
            "/missing": (404, {}, b"{}"),
            "/html": (200, {"Content-Type": "text/html"}, b"<html><body>hello</body></html>"),
            "/redirect/same": (302, {"Location": "/metrics"}, b""),
            "/redirect/absolute-same": (
                301,
                {"Location": f"http://127.0.0.1:{port}/metrics"},
                b"",
            ),
            "/redirect/localhost": (302, {"Location": f"http://localhost:{port}/metrics"}, b""),
            "/redirect/metadata": (
                302,
                {"Location": "http://169.254.169.254/latest/meta-data/"},
                b"",
            ),
            "/redirect/file": (302, {"Location": "file:///etc/passwd"}, b""),
            # Port 9 (discard): nothing listens there; the redirect must not even be tried.
            "/redirect/other-port": (302, {"Location": "http://127.0.0.1:9/metrics"}, b""),
            "/redirect/loop": (302, {"Location": "/redirect/loop"}, b""),
        }
        if path == "/drip":
            return self._drip()
        status, headers, body = routes.get(path, (404, {}, b"{}"))
        self.send_response(status)
        headers.setdefault("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self) -> None:
        """The status line and headers a byte every half second (30 s in all), each byte well
        within a read timeout."""
        with contextlib.suppress(OSError):
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pad: " + b"x" * 10:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.5)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class TestServer(ThreadingHTTPServer):
    __test__ = False
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


@pytest.fixture(scope="module")
def _server() -> Iterator[TestServer]:
    server = TestServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def server(_server: TestServer, monkeypatch: pytest.MonkeyPatch) -> TestServer:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    _server.seen.clear()
    return _server


@pytest.fixture
def api(server: TestServer, admin_user: Any):
    """An HTTP data source on the local test server (private addresses allowed)."""
    return services.data_source_save(
        user=admin_user,
        name="Metrics API",
        kind="http",
        url=server.base,
        allow_private_addresses=True,
    )


@pytest.fixture
def public_only_api(server: TestServer, admin_user: Any):
    return services.data_source_save(
        user=admin_user, name="Public API", kind="http", url=server.base
    )


# Reading a number


def test_number_is_read_through_the_json_path(api, server):
    assert run_http(api, "metrics", "$.fraud.caught", 5) == 87.5
    assert run_http(api, "/metrics", "fraud.alarms", 5) == 3.0
    assert server.seen == ["/metrics", "/metrics"]


def test_path_is_joined_to_a_base_url_with_a_path(server, admin_user):
    source = services.data_source_save(
        user=admin_user,
        name="Versioned",
        kind="http",
        url=server.base + "api/v1",
        allow_private_addresses=True,
    )
    assert run_http(source, "metrics", "$.value", 5) == 42.0
    assert server.seen == ["/api/v1/metrics"]


def test_numeric_text_is_read_as_a_number(api):
    assert run_http(api, "metrics", "$.text_number", 5) == 12.5


def test_same_host_redirect_is_followed(api, server):
    assert run_http(api, "redirect/same", "$.fraud.caught", 5) == 87.5
    assert run_http(api, "redirect/absolute-same", "$.fraud.caught", 5) == 87.5
    assert server.seen == ["/redirect/same", "/metrics", "/redirect/absolute-same", "/metrics"]


def test_http_job_run_records_the_value(ops_job, engineer, api):
    job_update(
        job=ops_job,
        user=engineer,
        source_kind="http",
        data_source=api,
        http_path="metrics",
        json_path="$.fraud.caught",
    )
    run = run_request(job=ops_job, user=engineer)

    assert run_execute(run_id=run.pk).state == RunState.SUCCEEDED

    assert Measurement.objects.get(kpi=ops_job.kpi).value == 87.5


# Address checks (SSRF)


def test_loopback_is_refused_unless_the_source_allows_private_addresses(public_only_api, server):
    with pytest.raises(SourceError, match="private or internal") as excinfo:
        run_http(public_only_api, "metrics", "$.fraud.caught", 5)

    assert type(excinfo.value) is SourceError
    assert server.seen == []


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("redirect/metadata", "169.254.169.254"),
        ("redirect/localhost", "localhost"),
    ],
)
def test_redirect_to_another_host_is_refused(api, server, path, target):
    with pytest.raises(SourceError, match=f"another host \\({target}\\)"):
        run_http(api, path, "$.fraud.caught", 5)

    assert server.seen == ["/" + path]


def test_absolute_path_to_another_host_is_refused(api, server):
    with pytest.raises(SourceError, match="another host"):
        run_http(api, "http://169.254.169.254/latest/meta-data/", "$.x", 5)

    assert server.seen == []


def test_redirect_to_a_file_url_is_refused(api, server):
    with pytest.raises(SourceError, match="Only http and https"):
        run_http(api, "redirect/file", "$.x", 5)


def test_redirect_loop_is_cut(api, server):
    with pytest.raises(SourceError, match="redirects"):
        run_http(api, "redirect/loop", "$.x", 5)

    assert len(server.seen) == 4


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "example.com/x"])
def test_http_data_source_url_must_be_http_or_https(admin_user, url):
    with pytest.raises(DomainError) as excinfo:
        services.data_source_save(user=admin_user, name="Bad", kind="http", url=url)

    assert excinfo.value.field == "url"


# Responses


def test_body_over_the_limit_is_refused(api, settings):
    settings.KPI_HTTP_MAX_BYTES = 1000

    with pytest.raises(SourceError, match="larger than 1000 bytes"):
        run_http(api, "huge", "$.value", 5)

    assert run_http(api, "small", "$.value", 5) == 3.0


def test_body_under_the_default_limit_is_read(api, settings):
    assert settings.KPI_HTTP_MAX_BYTES >= 300_000
    assert run_http(api, "huge", "$.value", 5) == 1.0


def test_a_dripping_server_is_cut_at_the_deadline_of_the_run(api, server):
    began = time.monotonic()
    with pytest.raises(TransientSourceError, match="Timeout"):
        run_http(api, "drip", "$.value", 1)
    assert time.monotonic() - began < 10
    assert server.seen == ["/drip"]


def test_a_deeply_nested_document_is_refused_not_a_crash(api, server):
    # 100,000 nested arrays were a RecursionError in the worker.
    with pytest.raises(SourceError, match="nested deeper than 64 levels") as excinfo:
        run_http(api, "deep", "$.value", 5)

    assert type(excinfo.value) is SourceError


def test_a_redirect_to_another_port_is_refused(api, server):
    with pytest.raises(SourceError, match="another origin") as excinfo:
        run_http(api, "redirect/other-port", "$.value", 5)

    assert type(excinfo.value) is SourceError
    assert server.seen == ["/redirect/other-port"]


@pytest.mark.parametrize(("path", "status"), [("error", 500), ("busy", 429)])
def test_server_errors_are_transient(api, path, status):
    with pytest.raises(TransientSourceError, match=str(status)):
        run_http(api, path, "$.value", 5)


def test_client_errors_are_permanent(api):
    with pytest.raises(SourceError, match="404") as excinfo:
        run_http(api, "missing", "$.value", 5)

    assert type(excinfo.value) is SourceError


def test_connection_refused_is_transient(admin_user):
    source = services.data_source_save(
        user=admin_user,
        name="Closed",
        kind="http",
        url="http://127.0.0.1:1/",
        allow_private_addresses=True,
    )

    with pytest.raises(TransientSourceError):
        run_http(source, "metrics", "$.value", 2)


def test_non_json_body_fails(api):
    with pytest.raises(SourceError, match="did not return JSON") as excinfo:
        run_http(api, "html", "$.value", 5)

    assert type(excinfo.value) is SourceError


@pytest.mark.parametrize(
    ("json_path", "message"),
    [
        ("$.nope", "found nothing"),
        ("$.fraud.nope", "found nothing"),
        ("$.items[*].v", "found 2 values"),
        ("$.label", "a text value, not a number"),
        ("$.flag", "a true/false value, not a number"),
        ("$.nothing", "no value (NULL), not a number"),
        ("$.fraud", "an object (dict), not a number"),
        ("$.items", "a list, not a number"),
        ("$.infinite", "not a finite number"),
        ("$[", "not a JSON path"),
    ],
)
def test_json_path_must_find_exactly_one_number(api, json_path, message):
    with pytest.raises(SourceError) as excinfo:
        run_http(api, "metrics", json_path, 5)

    assert type(excinfo.value) is SourceError
    assert message in str(excinfo.value)


# Secrets stay out of error messages (run errors are shown on the job page)


@pytest.mark.parametrize("path", ["error", "missing", "html", "redirect/metadata"])
def test_error_messages_do_not_reveal_credentials_of_the_url(server, admin_user, path):
    url = server.base.replace("http://", "http://kpi-reader:S3cretPassw0rd@")
    source = services.data_source_save(
        user=admin_user, name="With credentials", kind="http", url=url, allow_private_addresses=True
    )
    assert "S3cretPassw0rd" not in source.display_url

    with pytest.raises(SourceError) as excinfo:
        run_http(source, path, "$.value", 5)

    assert "S3cretPassw0rd" not in str(excinfo.value)


def test_failed_run_error_does_not_reveal_credentials(ops_job, engineer, server, admin_user):
    url = server.base.replace("http://", "http://kpi-reader:S3cretPassw0rd@")
    source = services.data_source_save(
        user=admin_user, name="With credentials", kind="http", url=url, allow_private_addresses=True
    )
    job_update(
        job=ops_job,
        user=engineer,
        source_kind="http",
        data_source=source,
        http_path="missing",
        json_path="$.value",
    )
    run = run_request(job=ops_job, user=engineer)

    assert run_execute(run_id=run.pk).state == RunState.FAILED

    run.refresh_from_db()
    assert "404" in run.error
    assert "S3cretPassw0rd" not in run.error
