"""Servers in non-main threads of a fresh process, which must leave the
process's signal state alone: prints one JSON report on stdout.

Two servers: one started with Server.start() and one whose serve() a
thread of the script's own calls. The main thread blocks SIGUSR1 first,
so a reset of the mask would show. Snapshots are taken before the first
server exists, while both serve, and after both stopped; each app reports
the mask of the thread that runs it, and /proc the kernel's view of every
thread's mask.
"""

import json
import signal
import threading
import urllib.request

import rwsgi_lite
import sigstate

TIMEOUT = 10


def app(environ, start_response):
    body = json.dumps(
        {"mask": sigstate.mask(), "tid": threading.get_native_id()}
    ).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def fetch(server):
    with urllib.request.urlopen(server.url + "/", timeout=TIMEOUT) as resp:
        return json.loads(resp.read())


def comparable(state):
    return {
        "handlers": {s: repr(h) for s, h in state["handlers"].items()},
        "caught": state["caught"],
        "ignored": state["ignored"],
        "mask": state["mask"],
    }


def main():
    # glibc installs a handler of its own (a real-time signal) when the
    # process makes its first thread: make one before the first snapshot.
    first = threading.Thread(target=lambda: None)
    first.start()
    first.join()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    before = sigstate.signal_state()

    started = rwsgi_lite.Server(app, port=0)
    started.start()
    own = rwsgi_lite.Server(app, port=0)
    own_thread = threading.Thread(target=own.serve, name="own serve()")
    own_thread.start()
    during_main = sigstate.signal_state()
    served = [fetch(started), fetch(own)]
    threads = {
        tid: sigstate.proc_status(tid)["SigBlk"] for tid in (s["tid"] for s in served)
    }
    started.stop()
    own.stop()
    own_thread.join(TIMEOUT)
    after = sigstate.signal_state()

    print(
        json.dumps(
            {
                "before": comparable(before),
                "during": comparable(during_main),
                "after": comparable(after),
                "same_handlers": all(
                    after["handlers"][s] is h and during_main["handlers"][s] is h
                    for s, h in before["handlers"].items()
                ),
                "served": served,
                "main_tid": threading.get_native_id(),
                "serving_thread_sigblk": threads,
                "own_thread_ended": not own_thread.is_alive(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
