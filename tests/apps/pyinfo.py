"""Reports the interpreter the server embeds, and installs signal handlers.

GET anything -> JSON: sys.prefix, sys.base_prefix, sys.executable,
sys.path[0], the value of `venvmarker.VALUE` if that module imports (the
tests put it in a virtualenv's site-packages) and the signal events seen.

SIGUSR1 -> recorded, and "USR1-HANDLED" logged: Python handlers installed by
the app must still run inside the server. SIGUSR2 -> SystemExit: the server
must stop gracefully.
"""

import json
import signal
import sys

EVENTS = []


def _usr1(signum, frame):
    EVENTS.append("usr1")
    sys.stderr.write("USR1-HANDLED\n")
    sys.stderr.flush()


def _usr2(signum, frame):
    raise SystemExit(0)


signal.signal(signal.SIGUSR1, _usr1)
signal.signal(signal.SIGUSR2, _usr2)


def app(environ, start_response):
    try:
        import venvmarker

        marker = venvmarker.VALUE
    except ImportError:
        marker = None
    body = json.dumps(
        {
            "prefix": sys.prefix,
            "base_prefix": sys.base_prefix,
            "executable": sys.executable,
            "path0": sys.path[0],
            "marker": marker,
            "events": EVENTS,
        }
    ).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
