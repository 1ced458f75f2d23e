"""`make run` for real: the supervisor, the web server (autoreloader and serving process), the
two Celery workers with their pool processes and beat, on a free port with a temporary var
folder (SQLite database, file-system queue, logs). Each stop signal ends every process it
started and frees the port; its first seconds of output are quiet; it shows the friendly 404.

Needs nothing but SQLite (and Linux, for /proc)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
START_SECONDS = 90  # a loaded 2-core machine takes a while to start six Python processes
STOP_SECONDS = 40

# Only off Linux or without make; never in CI (BIZDEVOPS_REQUIRE_SERVICES=1), where it must run.
pytestmark = pytest.mark.skipif(
    (not sys.platform.startswith("linux") or shutil.which("make") is None)
    and os.environ.get("BIZDEVOPS_REQUIRE_SERVICES") != "1",
    reason="reads /proc and runs make",
)


def _environment(var: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        # The embedded default of `make run`, whatever services the suite runs against.
        if key
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "DEMO_WAREHOUSE_PATH",
            "MAKEFLAGS",
            "MFLAGS",
            "DEBUG_PAGES",
            "SITE_URL",
        }
    }
    env.update({"DEBUG": "1", "VAR_DIR": str(var), "PYTHONUNBUFFERED": "1"})
    return env


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied into each run's var folder (migrating takes longer
    than a run)."""
    var = tmp_path_factory.mktemp("make-run-template")
    subprocess.run(  # noqa: S603  (our own manage.py)
        [str(PYTHON), "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=_environment(var),
        check=True,
    )
    return var / "bizdevops.sqlite3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    """Nothing answers on the port, and the next server can listen on it (as runserver does,
    with SO_REUSEADDR: the connections the test made may linger in TIME_WAIT)."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces: split after the last one.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def _tree(root: int) -> dict[int, int]:
    """Every living process descended from `root` (and root), with its start time: a pid
    reused by a new process later is not mistaken for one of ours."""
    parents: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[1] != "Z":
            parents[int(entry.name)] = (stat[0], stat[2])
    found = {root: parents[root][1]} if root in parents else {}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, start) in parents.items():
            if ppid in found and pid not in found:
                found[pid] = start
                grew = True
    return found


def _alive(processes: dict[int, int]) -> list[str]:
    left = []
    for pid, start in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[1] != "Z" and stat[2] == start:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            left.append(f"{pid} {command.decode(errors='replace')}")
    return left


@dataclass
class Run:
    make: subprocess.Popen[bytes]
    port: int
    log: Path
    var: Path
    processes: dict[int, int]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (local URL)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _wait_until_up(run: Run) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        assert run.make.poll() is None, f"make run ended early:\n{run.output()}"
        try:
            status, _ = _get(f"http://127.0.0.1:{run.port}/accounts/login/")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            status = 0
        logs = [run.var / "control.log", run.var / "worker.log"]
        ready = all(log.is_file() and " ready." in log.read_text(errors="replace") for log in logs)
        if status == 200 and ready:
            return
        time.sleep(0.5)
    raise AssertionError(f"make run did not start within {START_SECONDS} s:\n{run.output()}")


@pytest.fixture
def make_run(migrated: Path, tmp_path: Path) -> Iterator[Run]:
    var = tmp_path / "var"
    var.mkdir()
    shutil.copy(migrated, var / "bizdevops.sqlite3")
    port = _free_port()
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        make = subprocess.Popen(  # noqa: S603  (fixed arguments)
            # -o demo: the database is migrated already (and needs no demo data here);
            # a session of its own, as a terminal's foreground job has a group of its own.
            ["make", "--no-print-directory", "-o", "demo", "run", f"PORT={port}", "HOST=127.0.0.1"],  # noqa: S607
            cwd=ROOT,
            env=_environment(var),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    run = Run(make=make, port=port, log=log, var=var, processes={})
    try:
        _wait_until_up(run)
        run.processes = _tree(make.pid)
        yield run
    finally:
        # Whatever the test left: nothing of it may outlive the test run.
        for pid in [*run.processes, *_tree(make.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        make.wait(timeout=10)


def _assert_all_stopped(run: Run) -> None:
    try:
        run.make.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail("make run still running:\n" + "\n".join(_alive(run.processes)))
    # make has ended, after the supervisor. Had the supervisor no chance to stop its children,
    # they are ending by themselves (a worker's warm shutdown takes a few seconds).
    deadline = time.monotonic() + STOP_SECONDS
    while _alive(run.processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive(run.processes) == []
    assert _port_free(run.port)


def _supervisor(run: Run) -> int:
    return next(pid for pid in run.processes if _parent(pid) == run.make.pid)


def _parent(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[0] if stat else None


def test_started_processes(make_run: Run) -> None:
    """What the signal tests stop: make, the supervisor; the web server (the autoreloader and
    the serving process it restarts); two workers, with the pool processes and beat."""
    supervisor = _supervisor(make_run)
    children = {pid: _alive({pid: make_run.processes[pid]}) for pid in make_run.processes}
    direct = [" ".join(children[pid]) for pid in children if _parent(pid) == supervisor]
    assert sum("celery -A bizdevops worker" in command for command in direct) == 2, direct
    assert sum("devserver --serve" in command for command in direct) == 1, direct
    assert len(make_run.processes) >= 8, "\n".join(_alive(make_run.processes))


def test_ctrl_c_stops_everything(make_run: Run) -> None:
    # Ctrl-C: the terminal sends SIGINT to the foreground process group.
    os.killpg(make_run.make.pid, signal.SIGINT)
    _assert_all_stopped(make_run)


def test_sigterm_stops_everything(make_run: Run) -> None:
    # `kill <pid of make>`: make passes SIGTERM on to its child, the supervisor.
    make_run.make.send_signal(signal.SIGTERM)
    _assert_all_stopped(make_run)


def test_sigterm_to_the_group_stops_everything(make_run: Run) -> None:
    # Every process of the group at once (as `timeout` or a process manager does): make
    # passes a second SIGTERM on, which must not cut the supervisor's clean-up short.
    os.killpg(make_run.make.pid, signal.SIGTERM)
    _assert_all_stopped(make_run)


def test_closed_terminal_stops_everything(make_run: Run) -> None:
    # A terminal that is closed sends SIGHUP to its foreground process group.
    os.killpg(make_run.make.pid, signal.SIGHUP)
    _assert_all_stopped(make_run)


def test_supervisor_killed_takes_everything_with_it(make_run: Run) -> None:
    # No chance to clean up (SIGKILL): the children die with their parent (PR_SET_PDEATHSIG).
    os.kill(_supervisor(make_run), signal.SIGKILL)
    _assert_all_stopped(make_run)


def test_output_is_quiet_and_errors_are_friendly(make_run: Run) -> None:
    # A few seconds more: an autoreloader that restarts in a loop would print again.
    time.sleep(3)
    status, body = _get(f"http://127.0.0.1:{make_run.port}/no-such-page/")
    assert status == 404
    assert "Not found" in body
    assert "Using the URLconf" not in body  # Django's technical 404 lists the URL patterns
    output = make_run.output()
    assert output.count("Watching for file changes") <= 1, output
    assert [line for line in output.splitlines() if "warning" in line.lower()] == [], output
    assert "No hostname was supplied" not in output
    assert output.count("Not Found: /no-such-page/") == 1, output
    assert f"http://127.0.0.1:{make_run.port}/" in output
