"""Library mode is a guest in someone else's process: a server in a
non-main thread installs no signal handler, and no server changes the
process's signal dispositions or mask."""

import json
import signal
import sys
import threading

from conftest import APPS, fetch, python_env, run, stop_within
import rwsgi_lite
import sigstate

USR1 = 1 << (int(signal.SIGUSR1) - 1)


def test_servers_in_other_threads_leave_the_signal_state_alone():
    # In a fresh process: nothing ran a server there before.
    done = run([sys.executable, APPS / "guest_main.py"], env=python_env())
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["before"]["mask"] == [int(signal.SIGUSR1)]
    assert report["during"] == report["before"]
    assert report["after"] == report["before"]
    assert report["same_handlers"] is True
    assert report["own_thread_ended"] is True
    for served in report["served"]:
        # Each app ran in a thread of its own, which has the mask it was
        # created with (the main thread's), as the kernel sees it too.
        assert served["tid"] != report["main_tid"]
        assert served["mask"] == [int(signal.SIGUSR1)]
    assert set(report["serving_thread_sigblk"].values()) == {USR1}


def test_a_server_started_here_installs_no_handler():
    """The same in this (pytest's) process, with Python's and the kernel's
    view, and the mask of the main thread while the server serves."""

    def app(environ, start_response):
        body = json.dumps(sigstate.mask()).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    before = sigstate.signal_state()
    server = rwsgi_lite.Server(app, port=0)
    server.start()
    try:
        during = sigstate.signal_state()
        served_mask = json.loads(fetch(server.port)[2])
    finally:
        stop_within(server)
    after = sigstate.signal_state()
    assert during == before
    assert after == before
    assert served_mask == before["mask"]


def test_serve_called_from_a_non_main_thread_installs_no_handler():
    server = rwsgi_lite.Server(lambda e, s: (s("204 No Content", []), [])[1], port=0)
    before = sigstate.signal_state()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        # Serving once a request is answered.
        assert fetch(server.port)[0] == 204
        assert sigstate.signal_state() == before
        assert signal.getsignal(signal.SIGINT) is before["handlers"][int(signal.SIGINT)]
    finally:
        stop_within(server)
        thread.join(10)
    assert not thread.is_alive()
    assert sigstate.signal_state() == before
