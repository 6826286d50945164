#!/usr/bin/env python3
"""Memory per idle keep-alive connection, and the latency of a new client
next to them.

Starts BINARY (e.g. target/release/rwsgi-lite) with tests/apps/hardening.py,
opens N connections that each send one `GET /peek` and read the response,
then stay open; reports the server's VmRSS before and after, the RSS per
idle connection in KiB, and how long a fresh client's request takes.

    python3 scripts/idle_connections.py target/release/rwsgi-lite -n 10000 \\
        -- --keep-alive 120 --max-connections 16384

Arguments after `--` go to the server. Stdlib only; Linux (/proc).
"""

import argparse
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _server import Server, read_response, request  # noqa: E402

REQ = b"GET /peek HTTP/1.1\r\nHost: x\r\n\r\n"
FRESH = b"GET /peek HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        usage="%(prog)s BINARY [-n N] [--app APP] [-- SERVER_ARGS...]")
    ap.add_argument("binary")
    ap.add_argument("-n", type=int, default=10000, help="idle connections (10000)")
    ap.add_argument("--app", default="hardening:app")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds to wait before measuring RSS (1)")
    ap.add_argument("--fresh", type=int, default=20,
                    help="fresh-client requests to time (20)")
    argv = sys.argv[1:]
    server_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, server_args = argv[:i], argv[i + 1:]
    a = ap.parse_args(argv)
    a.server_args = server_args

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.n + 256
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            sys.exit("RLIMIT_NOFILE hard limit %d < %d needed" % (hard, want))
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    srv = Server(os.path.abspath(a.binary), app=a.app, args=a.server_args)
    try:
        # Warm up: a few requests, so the baseline includes steady buffers.
        for _ in range(10):
            st, _, _ = request(srv, FRESH)
            assert st == 200, st
        time.sleep(a.settle)
        rss0 = srv.status_kib("VmRSS")

        socks = []
        t = time.perf_counter()
        for i in range(a.n):
            s = srv.connect()
            s.sendall(REQ)
            st, _ = read_response(s)
            if st != 200:
                sys.exit("connection %d: status %d" % (i, st))
            socks.append(s)
        open_s = time.perf_counter() - t
        time.sleep(a.settle)
        rss1 = srv.status_kib("VmRSS")
        hwm = srv.status_kib("VmHWM")

        lat = []
        for _ in range(a.fresh):
            st, _, dt = request(srv, FRESH)
            assert st == 200, st
            lat.append(dt)

        # All idle connections still alive? Check a sample.
        for s in socks[:: max(1, a.n // 20)]:
            s.sendall(REQ)
            st, _ = read_response(s)
            assert st == 200, st

        per = (rss1 - rss0) / a.n if a.n else 0.0
        print("command:            %s" % " ".join(srv.cmd))
        print("idle connections:   %d (opened in %.2f s)" % (a.n, open_s))
        print("VmRSS before:       %d KiB" % rss0)
        print("VmRSS after:        %d KiB (VmHWM %d KiB)" % (rss1, hwm))
        print("per idle connection: %.2f KiB" % per)
        print("new client latency: median %.3f ms, max %.3f ms over %d requests"
              % (statistics.median(lat) * 1e3, max(lat) * 1e3, len(lat)))
        for s in socks:
            s.close()
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
