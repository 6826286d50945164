"""Shared helpers for the Python package's tests.

Every test talks to a real server over TCP. Nothing here may block without
a bound: sockets get `TIMEOUT`, subprocess steps get `TIMEOUT`, `stop()` is
called through `stop_within`, and a watchdog (`_watchdog`) ends the whole
run with every thread's traceback if one test still hangs after
`TEST_LIMIT` seconds.

Run against the installed package, from the repository root:
    <venv>/bin/python -m pytest tests/python
"""

import faulthandler
import http.client
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
APPS = HERE / "apps"
EXAMPLES = REPO / "examples"

# The modules of tests/python/apps import as "module:callable" (and the
# tests import `sigstate` from there).
sys.path.insert(0, str(APPS))

# Seconds any one step (a connect, a read, a subprocess starting or ending,
# a stop) may take.
TIMEOUT = 10.0
# Seconds a whole test may take before the watchdog ends the run.
TEST_LIMIT = 120

LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


def pytest_report_header(config):
    import rwsgi_lite

    return "rwsgi_lite %s from %s" % (
        rwsgi_lite.__version__,
        Path(rwsgi_lite.__file__).parent,
    )


@pytest.fixture(autouse=True)
def _watchdog():
    faulthandler.dump_traceback_later(TEST_LIMIT, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


# --- HTTP clients ---------------------------------------------------------


def fetch(port, path="/", method="GET", body=None, headers=None, host="127.0.0.1"):
    """One request on a fresh connection: (status, headers dict, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def raw_exchange(port, request, host="127.0.0.1"):
    """Sends raw bytes, then reads until the server closes."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        return read_to_close(sock)


def read_to_close(sock):
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def split_response(raw):
    """(status code, headers dict, body) of one raw HTTP/1.1 response."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, "no end of head in %r" % raw[:200]
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def refuses(port, host="127.0.0.1"):
    """True once nothing listens on the port (within TIMEOUT)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=TIMEOUT).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


# --- servers in this process ---------------------------------------------


def stop_within(server, seconds=TIMEOUT, timeout=None):
    """Calls `server.stop(timeout)` and fails unless it returns in time."""
    run_bounded(lambda: server.stop(timeout), seconds)


def run_bounded(fn, seconds=TIMEOUT):
    """Runs `fn` in a thread; fails the test unless it returns in time.
    Returns its result, raises its exception."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the test's thread
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail("%r did not return within %s s" % (fn, seconds))
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture
def running():
    """`running(app, **options)` builds and starts a Server on a free port;
    every server it started is stopped (bounded) at the end of the test."""
    import rwsgi_lite

    started = []

    def start(app, **options):
        options.setdefault("port", 0)
        server = rwsgi_lite.Server(app, **options)
        run_bounded(server.start)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_within(server)


# --- subprocesses ---------------------------------------------------------


class Proc:
    """A subprocess whose stdout and stderr are read by threads, so that a
    test can wait for a line with a deadline and never blocks on a pipe."""

    def __init__(self, args, **kwargs):
        self.args = args
        self.popen = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **kwargs,
        )
        self.pid = self.popen.pid
        self.lines = {"stdout": queue.Queue(), "stderr": queue.Queue()}
        self.text = {"stdout": [], "stderr": []}
        self.readers = [
            threading.Thread(target=self._read, args=(name, pipe), daemon=True)
            for name, pipe in (("stdout", self.popen.stdout), ("stderr", self.popen.stderr))
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, name, pipe):
        for line in iter(pipe.readline, b""):
            text = line.decode("utf-8", "replace")
            self.text[name].append(text)
            self.lines[name].put(text)
        pipe.close()

    def wait_line(self, pattern, stream="stderr", timeout=TIMEOUT):
        """The first match of `pattern` in a line not read yet."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                line = self.lines[stream].get(timeout=min(left, 0.2))
            except queue.Empty:
                if self.popen.poll() is not None and self.lines[stream].empty():
                    # Let the reader finish the last lines first.
                    self.readers[0 if stream == "stdout" else 1].join(1)
                    if self.lines[stream].empty():
                        break
                continue
            match = regex.search(line)
            if match:
                return match
        pytest.fail(
            "no line matching %r on %s within %s s (exit %r)\nstdout:\n%s\nstderr:\n%s"
            % (pattern, stream, timeout, self.popen.poll(), self.stdout, self.stderr)
        )

    def signal(self, signum):
        self.popen.send_signal(signum)

    def finish(self, timeout=TIMEOUT):
        """Waits for the exit; returns the status (fails on a timeout)."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                "%s did not exit within %s s\nstdout:\n%s\nstderr:\n%s"
                % (self.args, timeout, self.stdout, self.stderr)
            )
        for reader in self.readers:
            reader.join(TIMEOUT)
        return code

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(TIMEOUT)

    @property
    def stdout(self):
        return "".join(self.text["stdout"])

    @property
    def stderr(self):
        return "".join(self.text["stderr"])


@pytest.fixture
def spawn():
    """`spawn(args, **popen_kwargs)` starts a `Proc`; any still running at
    the end of the test is killed."""
    procs = []

    def start(args, **kwargs):
        proc = Proc([str(a) for a in args], **kwargs)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()


def run(args, timeout=TIMEOUT, **kwargs):
    """Runs a command to its end: CompletedProcess with bytes output."""
    return subprocess.run(
        [str(a) for a in args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        **kwargs,
    )


def python_env():
    """The environment for a child interpreter: the apps importable, output
    unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(APPS)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def venv_script(name):
    """The console script installed beside this interpreter."""
    path = Path(sys.executable).parent / name
    assert path.exists(), "%s is not installed beside %s" % (name, sys.executable)
    return path
