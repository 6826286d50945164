#!/usr/bin/env python3
"""Peak server memory (VmHWM growth) for large uploads and a large streamed
response read slowly.

Each measurement runs on a fresh BINARY process (tests/apps/hardening.py),
warmed up by a small upload and a small stream; the growth is VmHWM after
the transfer minus VmHWM after the warm-up:

  1. a Content-Length upload (default 256 MiB) sent in 64 KiB pieces; the
     app reads wsgi.input in 64 KiB blocks and answers "len crc32";
  2. the same, chunked (default 64 MiB, 64 KiB chunks);
  3. a streamed response (default 256 MiB: a generator of 64 KiB items, no
     Content-Length, so chunked) read 64 KiB at a time with a 5 ms sleep
     after each read for up to --slow-seconds (default 30), then at full
     speed.

    python3 scripts/upload_memory.py target/release/rwsgi-lite

Stdlib only; Linux (/proc).
"""

import argparse
import os
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _server import Server, read_response  # noqa: E402

BLOCK = 65536


def block(base, i):
    return i.to_bytes(8, "little") + base[8:]


def warm(srv):
    s = srv.connect()
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    assert read_response(s)[0] == 200
    s.close()
    s = srv.connect()
    s.sendall(b"GET /stream?n=4&size=65536 HTTP/1.0\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()
    time.sleep(0.2)
    return srv.status_kib("VmHWM")


def upload(binary, mib, chunked):
    srv = Server(binary)
    try:
        hwm0 = warm(srv)
        n = mib * 16
        total = n * BLOCK
        base = bytes(range(256)) * (BLOCK // 256)
        s = srv.connect(timeout=120)
        if chunked:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        else:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        crc = 0
        cpu0 = srv.cpu_seconds()
        t = time.perf_counter()
        for i in range(n):
            b = block(base, i)
            crc = zlib.crc32(b, crc)
            if chunked:
                s.sendall(b"10000\r\n" + b + b"\r\n")
            else:
                s.sendall(b)
        if chunked:
            s.sendall(b"0\r\n\r\n")
        st, body = read_response(s)
        dt = time.perf_counter() - t
        cpu = srv.cpu_seconds() - cpu0
        s.close()
        assert st == 200, st
        assert body == b"%d %d" % (total, crc), (body, total, crc)
        hwm1 = srv.status_kib("VmHWM")
        return hwm0, hwm1, dt, cpu
    finally:
        srv.stop()


def stream(binary, mib, slow_seconds):
    srv = Server(binary)
    try:
        hwm0 = warm(srv)
        n = mib * 16
        s = srv.connect(timeout=120)
        s.sendall(b"GET /stream?token=big&n=%d&size=%d HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n" % (n, BLOCK))
        got = 0
        tail = b""
        t = time.perf_counter()
        slow_bytes = 0
        while True:
            d = s.recv(BLOCK)
            if not d:
                break
            got += len(d)
            tail = (tail + d)[-16:]
            if time.perf_counter() - t < slow_seconds:
                slow_bytes = got
                time.sleep(0.005)
        dt = time.perf_counter() - t
        s.close()
        assert got > n * BLOCK and tail.endswith(b"\r\n0\r\n\r\n"), (got, tail)
        hwm1 = srv.status_kib("VmHWM")
        return hwm0, hwm1, dt, slow_bytes
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--upload-mib", type=int, default=256)
    ap.add_argument("--chunked-mib", type=int, default=64)
    ap.add_argument("--stream-mib", type=int, default=256)
    ap.add_argument("--slow-seconds", type=float, default=30.0)
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)

    h0, h1, dt, cpu = upload(binary, a.upload_mib, chunked=False)
    print("upload %d MiB Content-Length: VmHWM %d -> %d KiB, growth %d KiB (%.1f MiB); "
          "%.2f s (%.0f MiB/s), server CPU %.2f s"
          % (a.upload_mib, h0, h1, h1 - h0, (h1 - h0) / 1024, dt, a.upload_mib / dt, cpu))
    h0, h1, dt, cpu = upload(binary, a.chunked_mib, chunked=True)
    print("upload %d MiB chunked:        VmHWM %d -> %d KiB, growth %d KiB (%.1f MiB); "
          "%.2f s (%.0f MiB/s), server CPU %.2f s"
          % (a.chunked_mib, h0, h1, h1 - h0, (h1 - h0) / 1024, dt, a.chunked_mib / dt, cpu))
    h0, h1, dt, slow = stream(binary, a.stream_mib, a.slow_seconds)
    print("stream %d MiB, slow reader:   VmHWM %d -> %d KiB, growth %d KiB (%.1f MiB); "
          "%.2f s (%.1f MiB read slowly in the first %.0f s)"
          % (a.stream_mib, h0, h1, h1 - h0, (h1 - h0) / 1024, dt, slow / 1048576,
             a.slow_seconds))


if __name__ == "__main__":
    main()
