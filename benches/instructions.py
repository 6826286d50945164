#!/usr/bin/env python3
"""Instructions per request, measured with callgrind.

Runs a server command under `valgrind --tool=callgrind` twice, once serving
N keep-alive requests and once 2N, and reports (total(2N) - total(N)) / N:
start-up and shutdown cancel out, what is left is the steady-state cost of
one request in user space (kernel time is not counted). Instruction counts
do not depend on machine load, so figures from different runs compare.

    benches/instructions.py                      # rwsgi-lite, hello app
    benches/instructions.py --app echo --requests 2000
    benches/instructions.py --name bjoern --cmd \
        '/opt/peers/bin/python ../shared/bench/launch.py bjoern 127.0.0.1 {port} {app}'

{port} and {app} (module:callable) are filled in; the command runs with
cwd ../shared/bench/apps so the bench apps import. Python stdlib only.
"""

import argparse
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPS = os.path.join(ROOT, "..", "shared", "bench", "apps")
RWSGI = os.environ.get("RWSGI_BIN", os.path.join(ROOT, "target", "release", "rwsgi-lite"))

HELLO = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
REQUESTS = {
    "hello": HELLO,
    # The bench's Flask app (needs Flask: add --virtualenv /opt/peers to --cmd
    # for rwsgi-lite, or use a peer's Python that has it).
    "flaskapp": HELLO,
    "echo": (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: 4096\r\n\r\n" + b"x" * 4096
    ),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_response(sock, buf):
    """Reads one Content-Length-framed response; returns the leftover bytes."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode("latin-1")
            m = re.search(r"(?im)^content-length:\s*(\d+)", head)
            if not m:
                sys.exit("response without Content-Length: use an app that sets it")
            total = end + 4 + int(m.group(1))
            if len(buf) >= total:
                return buf[total:]
        data = sock.recv(65536)
        if not data:
            sys.exit("server closed the connection")
        buf += data


def wait_port(port, proc, deadline=60):
    t0 = time.time()
    while time.time() - t0 < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited early ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("server did not start listening")


def total_instructions(cmd, app, request, n, pipeline=1, conns=1, keep=None):
    port = free_port()
    out = keep or tempfile.mktemp(prefix="callgrind.", suffix=".out")
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"]
    argv += shlex.split(cmd.format(port=port, app=app))
    # A fixed hash seed: randomised string hashing changes dict collisions,
    # and with them the instruction count, from run to run.
    env = dict(os.environ, PYTHONHASHSEED="0",
               PYTHONPATH=os.pathsep.join(filter(None, [APPS, os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(argv, cwd=APPS, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port, proc)
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
        bufs = [b""] * conns
        # Pipelined: `pipeline` requests leave in one send, then all their
        # responses are read, as wrk's pipelining script does. With several
        # connections, each sends before any response is read, so the
        # server finds them all ready at once, as under load.
        for _ in range(n // (pipeline * conns)):
            for sock in socks:
                sock.sendall(request * pipeline)
            for i, sock in enumerate(socks):
                for _ in range(pipeline):
                    bufs[i] = read_response(sock, bufs[i])
        for sock in socks:
            sock.close()
    finally:
        # SIGINT first: bjoern and friends stop cleanly on it, so callgrind
        # writes its totals; SIGTERM as a fallback.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    with open(out) as f:
        text = f.read()
    if not keep:
        os.unlink(out)
    m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if not m:
        sys.exit("no totals in callgrind output")
    return int(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cmd", default=f"{RWSGI} -b 127.0.0.1:{{port}} --log-level error {{app}}")
    ap.add_argument("--name", default="rwsgi-lite")
    ap.add_argument("--app", default="hello", choices=sorted(REQUESTS))
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--pipeline", type=int, default=1, metavar="N",
                    help="send N requests back to back before reading (default 1)")
    ap.add_argument("--conns", type=int, default=1, metavar="C",
                    help="spread the requests over C connections, each sending "
                         "before any reads, as C concurrent clients (default 1)")
    ap.add_argument("--keep", metavar="PREFIX",
                    help="keep the callgrind outputs as PREFIX.small and PREFIX.large "
                         "(for callgrind_annotate)")
    args = ap.parse_args()
    if args.requests % (args.pipeline * args.conns):
        ap.error("--requests must be a multiple of --pipeline times --conns")
    app = f"{args.app}:app"
    request = REQUESTS[args.app]
    n = args.requests
    keep = (lambda size: f"{args.keep}.{size}") if args.keep else (lambda size: None)
    small = total_instructions(args.cmd, app, request, n, args.pipeline, args.conns,
                               keep("small"))
    large = total_instructions(args.cmd, app, request, 2 * n, args.pipeline, args.conns,
                               keep("large"))
    how = f", {args.pipeline} pipelined" if args.pipeline > 1 else ""
    how += f", over {args.conns} connections" if args.conns > 1 else ""
    print(f"{args.name} {args.app}: {(large - small) / n:,.0f} instructions per request "
          f"(callgrind, {n} vs {2 * n} keep-alive requests{how})")


if __name__ == "__main__":
    main()
