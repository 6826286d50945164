"""Runs `rwsgi_lite.serve()` in the main thread, as `python app.py` would,
and reports on stdout, as JSON lines, what serving changed.

    python serve_main.py [--custom-sigterm] [--block-usr1] [--usr1-handler]

--custom-sigterm installs a Python SIGTERM handler first (it must be the
same object afterwards); --block-usr1 blocks SIGUSR1 first (the mask must
be the same afterwards); --usr1-handler installs a SIGUSR1 handler that
prints {"usr1": N} (the host's handlers keep running while it serves). The app answers GET / with what it sees in the
thread that serves it; GET /slow prints {"entered": "/slow"} and sleeps
0.5 s first.
"""

import json
import logging
import signal
import sys
import threading
import time

import rwsgi_lite
import sigstate


def custom_sigterm(signum, frame):
    print(json.dumps({"custom_sigterm_called": signum}), flush=True)


def usr1_handler(signum, frame):
    print(json.dumps({"usr1": signum}), flush=True)


def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        print(json.dumps({"entered": "/slow"}), flush=True)
        time.sleep(0.5)
    body = json.dumps(
        {
            "main_thread": threading.current_thread() is threading.main_thread(),
            "mask": sigstate.mask(),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def snapshot():
    state = sigstate.signal_state()
    return state, {
        "caught": state["caught"],
        "ignored": state["ignored"],
        "mask": state["mask"],
        "sigint": repr(state["handlers"][int(signal.SIGINT)]),
        "sigterm": repr(state["handlers"][int(signal.SIGTERM)]),
    }


def main():
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(name)s %(levelname)s %(message)s"
    )
    if "--custom-sigterm" in sys.argv:
        signal.signal(signal.SIGTERM, custom_sigterm)
    if "--usr1-handler" in sys.argv:
        signal.signal(signal.SIGUSR1, usr1_handler)
    if "--block-usr1" in sys.argv:
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    before, shown_before = snapshot()
    print(json.dumps({"before": shown_before}), flush=True)
    result = rwsgi_lite.serve(app, port=0)
    after, shown_after = snapshot()
    print(
        json.dumps(
            {
                "returned": repr(result),
                "after": shown_after,
                # Identity, not equality: the very handler objects are back.
                "same_handlers": all(
                    after["handlers"][s] is h for s, h in before["handlers"].items()
                ),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
