"""Shared helpers of the measurement scripts (stdlib only): start an
rwsgi-lite binary on a free loopback port, read /proc numbers, talk HTTP."""

import os
import re
import signal
import socket
import subprocess
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPS = os.path.join(REPO, "tests", "apps")


class Server:
    """An rwsgi-lite process listening on 127.0.0.1:<free port>."""

    def __init__(self, binary, app="hardening:app", args=(), chdir=APPS, timeout=30.0):
        cmd = [binary, "-b", "127.0.0.1:0", "--chdir", chdir] + list(args) + [app]
        self.cmd = cmd
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=env,
        )
        self.lines = []
        self.port = None
        got_port = threading.Event()

        def reader():
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                # Keep the log bounded: the apps may log every request.
                if len(self.lines) < 10000:
                    self.lines.append(line)
                m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    got_port.set()

        self.thread = threading.Thread(target=reader, daemon=True)
        self.thread.start()
        if not got_port.wait(timeout):
            self.stop()
            raise RuntimeError("server did not start; log:\n" + "\n".join(self.lines))
        self.pid = self.proc.pid

    def status_kib(self, field):
        """A kB field (VmRSS, VmHWM) of /proc/PID/status."""
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def cpu_seconds(self):
        """utime + stime of the server process, in seconds."""
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def connect(self, timeout=10.0):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def read_response(sock):
    """Reads one Content-Length framed response; returns (status, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("EOF in response head: %r" % buf)
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    if length is None:
        raise ValueError("response without Content-Length: %r" % head)
    while len(rest) < length:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("EOF in response body")
        rest += d
    return status, rest[:length]


def request(server, raw, timeout=10.0):
    """One request on a fresh connection; returns (status, body, seconds)."""
    t = time.perf_counter()
    s = server.connect(timeout)
    try:
        s.sendall(raw)
        status, body = read_response(s)
    finally:
        s.close()
    return status, body, time.perf_counter() - t
