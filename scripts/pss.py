#!/usr/bin/env python3
"""Total memory (PSS) of a pre-forked server's process tree, side by side.

Starts each named command on a free loopback port, waits until it answers,
sends requests over several connections so that every worker has served
some (and imported what serving imports), then sums Pss from
/proc/PID/smaps_rollup over the server process and all its descendants.
PSS splits a page shared by N processes N ways, so the sum is what the
whole tree costs the machine (RSS would count shared pages once per
process). Stdlib only; Linux.

    scripts/pss.py --workers 4 \\
        --target 'binary=target/release/rwsgi-lite -w {workers} -b 127.0.0.1:{port} \\
                  --virtualenv /opt/peers --chdir ../shared/bench/apps flaskapp:app' \\
        --target 'gunicorn=/opt/peers/bin/gunicorn -w {workers} -b 127.0.0.1:{port} \\
                  --chdir ../shared/bench/apps flaskapp:app'

Each target runs --rounds times (alternating); the median is reported.
"""

import argparse
import os
import shlex
import signal
import socket
import statistics
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid):
    """pid and every process below it."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def get(port, conns=8, rounds=25, timeout=5.0):
    """Rounds of `conns` concurrent one-request connections (so the kernel
    hands them to different workers; gunicorn's sync worker keeps no
    connection alive); returns how many got a 200."""
    ok = 0
    for _ in range(rounds):
        socks = [socket.create_connection(("127.0.0.1", port), timeout=timeout)
                 for _ in range(conns)]
        for s in socks:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for s in socks:
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            ok += buf.startswith(b"HTTP/1.1 200") or buf.startswith(b"HTTP/1.0 200")
            s.close()
    return ok


def measure(cmd, workers, settle):
    port = free_port()
    argv = shlex.split(cmd.format(port=port, workers=workers))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("did not start: %s" % cmd)
                time.sleep(0.1)
        # Every worker up (each forked process below the master).
        while len(descendants(proc.pid)) < workers + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        ok = sum(get(port) for _ in range(4))
        time.sleep(settle)
        pids = descendants(proc.pid)
        total = sum(pss_kib(p) for p in pids)
        return total, len(pids), ok
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", action="append", required=True, metavar="NAME=CMD",
                    help="{port} and {workers} are filled in")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds between the last request and the reading")
    args = ap.parse_args()
    targets = [t.split("=", 1) for t in args.target]
    results = {name: [] for name, _ in targets}
    procs = {}
    for _ in range(args.rounds):
        for name, cmd in targets:
            total, n, ok = measure(cmd, args.workers, args.settle)
            results[name].append(total)
            procs[name] = (n, ok)
    print("| server | processes | 200s per round | PSS MiB (median of %d) | rounds |" % args.rounds)
    print("| --- | --- | --- | --- | --- |")
    for name, _ in targets:
        vals = results[name]
        n, ok = procs[name]
        print("| %s | %d | %d | %.1f | %s |" % (
            name, n, ok, statistics.median(vals) / 1024,
            ", ".join("%.1f" % (v / 1024) for v in vals)))


if __name__ == "__main__":
    main()
