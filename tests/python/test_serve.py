"""rwsgi_lite.serve() in the main thread of a process of its own: SIGINT
and SIGTERM stop it gracefully, it returns, and the process's signal
handlers, dispositions and mask are as they were."""

import http.client
import json
import signal
import socket
import sys
import time

import pytest

from conftest import APPS, LISTENING, TIMEOUT, fetch, python_env, refuses


def start(spawn, *flags):
    proc = spawn([sys.executable, APPS / "serve_main.py", *flags], env=python_env())
    before = json.loads(proc.wait_line(r"^\{.*\"before\".*", stream="stdout").group(0))["before"]
    port = int(proc.wait_line(LISTENING.pattern).group(1))
    return proc, before, port


def finish(proc):
    assert proc.finish() == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    report = [line for line in lines if "returned" in line]
    assert len(report) == 1, proc.stdout
    return report[0], lines


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("custom", [False, True], ids=["default-sigterm", "custom-sigterm"])
def test_a_signal_stops_serve_and_the_handlers_are_restored(spawn, signum, custom):
    flags = ["--custom-sigterm"] if custom else []
    proc, before, port = start(spawn, *flags)
    status, _, body = fetch(port)
    assert status == 200
    served = json.loads(body)
    assert served["main_thread"] is True
    proc.signal(signum)
    report, lines = finish(proc)
    assert report["returned"] == "None"
    assert report["same_handlers"] is True, (before, report["after"])
    assert report["after"] == before
    # The custom handler was not called for the signal that stopped it.
    assert not any("custom_sigterm_called" in line for line in lines)
    if custom:
        assert "custom_sigterm" in before["sigterm"]
    else:
        assert before["sigterm"] == "<Handlers.SIG_DFL: 0>"
    assert "all connections finished" in proc.stderr
    assert refuses(port)


def test_serve_changes_no_signal_mask(spawn):
    proc, before, port = start(spawn, "--block-usr1")
    assert before["mask"] == [int(signal.SIGUSR1)]
    served = json.loads(fetch(port)[2])
    # The app runs in the thread that called serve(), with its mask.
    assert served == {"main_thread": True, "mask": [int(signal.SIGUSR1)]}
    proc.signal(signal.SIGINT)
    report, _ = finish(proc)
    assert report["after"]["mask"] == [int(signal.SIGUSR1)]
    assert report["after"] == before


def test_a_response_in_flight_when_sigint_arrives_completes(spawn):
    proc, _, port = start(spawn)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/slow")
        # The signal comes while the app sleeps (in the main thread, where
        # the SIGINT handler runs too).
        proc.wait_line(r'"entered"', stream="stdout")
        proc.signal(signal.SIGINT)
        resp = conn.getresponse()
        assert resp.status == 200
        assert json.loads(resp.read())["main_thread"] is True
    finally:
        conn.close()
    report, _ = finish(proc)
    assert report["same_handlers"] is True


def test_a_second_sigint_stops_at_once(spawn):
    proc, _, port = start(spawn)
    # A connection that never finishes its request holds a graceful stop.
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as held:
        held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert fetch(port)[0] == 200  # served: the held one is in the loop too
        proc.signal(signal.SIGINT)
        proc.wait_line(r"shutting down: finishing \d+ connection")
        started = time.monotonic()
        proc.signal(signal.SIGINT)
        report, _ = finish(proc)
        # Not after the held connection's header timeout, nor the 30 s.
        assert time.monotonic() - started < 5
    assert report["same_handlers"] is True


def test_the_hosts_own_handlers_run_while_it_serves(spawn):
    proc, _, port = start(spawn, "--usr1-handler")
    proc.signal(signal.SIGUSR1)
    assert proc.wait_line(r'"usr1"', stream="stdout")
    assert fetch(port)[0] == 200
    proc.signal(signal.SIGINT)
    report, _ = finish(proc)
    assert report["same_handlers"] is True
