"""The application tests/e2e_workers.rs runs: which process answers, and
ways to keep a worker busy.

Routes:
  /pid[?sleep=S]   body = this process's pid, after sleeping S seconds
                   (keeps the worker busy so others accept meanwhile)
  /sleep?s=S       logs "sleep-start PID", sleeps S seconds, answers
                   "slept PID"
  /count           "PID N": requests this process has served, this one
                   included
Anything else: 404.

Import side effect: when RWSGI_TEST_MARKER names a file, a line with the
importing process's pid is appended to it (tells --preload's one import
from one import per worker).

A SIGUSR1 handler logs "usr1 PID": the server's own handler runs it too,
which shows the master forwarded the signal to this worker.
"""

import os
import signal
import time
from urllib.parse import parse_qs

_MARKER = os.environ.get("RWSGI_TEST_MARKER")
if _MARKER:
    with open(_MARKER, "a") as f:
        f.write("%d\n" % os.getpid())


def _log(line):
    # One write(2): lines of concurrent workers never interleave.
    os.write(2, (line + "\n").encode())


def _on_usr1(signum, frame):
    _log("usr1 %d" % os.getpid())


signal.signal(signal.SIGUSR1, _on_usr1)

COUNT = 0


def _arg(environ, name, default):
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return float(values[0]) if values else default


def app(environ, start_response):
    global COUNT
    COUNT += 1
    path = environ.get("PATH_INFO", "")
    pid = os.getpid()
    status = "200 OK"
    if path == "/pid":
        time.sleep(_arg(environ, "sleep", 0))
        body = str(pid)
    elif path == "/sleep":
        _log("sleep-start %d" % pid)
        time.sleep(_arg(environ, "s", 1))
        body = "slept %d" % pid
    elif path == "/count":
        body = "%d %d" % (pid, COUNT)
    else:
        status = "404 Not Found"
        body = "not found"
    data = body.encode()
    start_response(
        status,
        [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))],
    )
    return [data]
