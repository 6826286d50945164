"""The application the end-to-end tests (tests/e2e_*.rs) run against.

Routes (by PATH_INFO prefix):
  /path/...            body = PATH_INFO (utf-8, surrogateescape), Content-Length
  /environ...          the environ as `key<TAB>type<TAB>repr` lines
  /echo                body = the whole request body (read to EOF), Content-Length
  /checksum            reads wsgi.input in 64 KiB pieces; body = "len crc32"
  /input?OP            exercises one wsgi.input method sequence (see INPUT_OPS)
  /write               uses the write() callable, no Content-Length
  /write_cl            uses write() with a Content-Length
  /stream?n=N&size=S   generator of N chunks, no Content-Length
  /big?size=N          one body of N bytes (bytes(range(256)) repeated)
  /tracked?token=T&n=N&size=S[&fail=K]
                       iterable whose close() records T (see /closed)
  /closed?token=T      "unknown" | "started" | "closed"
  /error               raises before start_response
  /error_first         start_response, then the first item raises
  /error_after         sends one chunk, then raises
  /slow                logs "slow-start", sleeps 1 s, answers "slow done"
  /drip?n=N            logs "drip-start"; N chunks, 0.2 s apart
  /gate?file=F[&waiting=W]
                       yields a block, then waits (<= 8 s) for file F to exist
                       (creating W, if named, once it starts waiting)
  /bad_str /no_start /bad_status /twice   app errors answered 500
  /exc_info            second start_response with exc_info -> 503
  /status/CODE         answers CODE with a body (which must not be sent for
                       HEAD/204/304)
  /errors              writes to wsgi.errors
  /file                serves this file through wsgi.file_wrapper if present
Anything else: 404.

`application` (the `module` APP form) and `create_app()` (the factory form)
are separate tiny apps so the tests can tell which callable was loaded.
"""

import os
import sys
import time
import zlib
from urllib.parse import parse_qs

CLOSED = set()
STARTED = set()


def _qs(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _ok(start_response, body, ctype="text/plain", status="200 OK", extra=()):
    start_response(
        status,
        [("Content-Type", ctype), ("Content-Length", str(len(body)))] + list(extra),
    )
    return [body]


def _kv_lines(items):
    out = []
    for k, v in items:
        out.append("%s\t%s\t%r" % (k, type(v).__name__, v))
    return ("\n".join(out) + "\n").encode("utf-8", "backslashreplace")


INPUT_BODY = b"alpha\nbeta\n\ngamma delta epsilon\nlast-no-newline"

INPUT_OPS = {
    "read": lambda f: [f.read(), f.read(), f.read(5)],
    "readn": lambda f: [f.read(3), f.read(4), f.read(0), f.read(1000), f.read(1), f.read(-1)],
    "readline": lambda f: [f.readline() for _ in range(7)],
    "readline_n": lambda f: [
        f.readline(3),
        f.readline(3),
        f.readline(100),
        f.readline(0),
        f.readline(-1),
        f.readline(),
        f.readline(5),
        f.readline(100),
        f.readline(100),
    ],
    "readlines": lambda f: [f.readlines(), f.read(), f.readline()],
    "iter": lambda f: [list(f), f.read()],
    "mixed": lambda f: [f.readline(), f.read(2), f.readline(), list(iter(f)), f.read(1)],
}


class Tracked:
    """An iterable whose close() is observable through /closed."""

    def __init__(self, token, n, size, fail):
        self.token = token
        self.n = n
        self.size = size
        self.fail = fail
        self.i = 0
        STARTED.add(token)

    def __iter__(self):
        return self

    def __next__(self):
        if self.i >= self.n:
            raise StopIteration
        if self.fail is not None and self.i == self.fail:
            raise RuntimeError("tracked iterable failing on purpose")
        self.i += 1
        return b"t" * self.size

    def close(self):
        CLOSED.add(self.token)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    method = environ["REQUEST_METHOD"]
    q = _qs(environ)

    if path.startswith("/path/"):
        return _ok(start_response, path.encode("utf-8", "surrogateescape"))

    if path.startswith("/environ"):
        items = []
        for k in sorted(environ):
            v = environ[k]
            if k in ("wsgi.input", "wsgi.errors", "wsgi.file_wrapper"):
                v = "<%s>" % ("present" if v is not None else "none")
            items.append((k, v))
        return _ok(start_response, _kv_lines(items))

    if path == "/echo":
        data = environ["wsgi.input"].read()
        cl = environ.get("CONTENT_LENGTH", "<absent>")
        return _ok(start_response, data, extra=[("X-Content-Length", cl)])

    if path == "/checksum":
        f = environ["wsgi.input"]
        n = 0
        crc = 0
        while True:
            chunk = f.read(65536)
            if not chunk:
                break
            n += len(chunk)
            crc = zlib.crc32(chunk, crc)
        return _ok(start_response, ("%d %d" % (n, crc)).encode())

    if path == "/input":
        op = environ.get("QUERY_STRING", "")
        results = INPUT_OPS[op](environ["wsgi.input"])
        return _ok(start_response, _kv_lines(enumerate(results)))

    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"hello ")
        write(b"from ")
        return [b"write", b"()"]

    if path == "/one_item":
        # No Content-Length: the server knows it from the one item.
        start_response("200 OK", [("Content-Type", "text/plain")])
        kind = q.get("kind", "list")
        body = b"" if kind == "empty" else b"one item"
        if kind == "tuple":
            return (body,)
        if kind == "two":
            return [body[:3], body[3:]]
        return [body]

    if path == "/write_cl":
        write = start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")]
        )
        write(b"hello ")
        return [b"world"]

    if path == "/stream":
        n = int(q.get("n", "5"))
        size = q.get("size")

        def gen():
            for i in range(n):
                if size is None:
                    yield ("chunk%d\n" % i).encode()
                else:
                    yield b"s" * int(size)

        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()

    if path == "/big":
        size = int(q["size"])
        body = (bytes(range(256)) * (size // 256 + 1))[:size]
        return _ok(start_response, body, ctype="application/octet-stream")

    if path == "/tracked":
        fail = q.get("fail")
        it = Tracked(
            q["token"],
            int(q.get("n", "3")),
            int(q.get("size", "10")),
            None if fail is None else int(fail),
        )
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return it

    if path == "/closed":
        t = q["token"]
        state = "closed" if t in CLOSED else "started" if t in STARTED else "unknown"
        return _ok(start_response, state.encode())

    if path == "/error":
        raise RuntimeError("boom before start_response")

    if path == "/error_first":
        def gen():
            raise RuntimeError("boom in first item")
            yield b"never"  # pragma: no cover

        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()

    if path == "/error_after":
        def gen():
            yield b"first part of the body\n"
            raise RuntimeError("boom after headers")

        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()

    if path == "/slow":
        sys.stderr.write("slow-start\n")
        sys.stderr.flush()
        time.sleep(1.0)
        return _ok(start_response, b"slow done")

    if path == "/drip":
        n = int(q.get("n", "10"))
        sys.stderr.write("drip-start\n")
        sys.stderr.flush()

        def gen():
            for i in range(n):
                time.sleep(0.2)
                yield ("drip%d\n" % i).encode()

        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()

    if path == "/gate":
        # PEP 3333 "Buffering and Streaming": the server must send a block
        # before asking for the next one. The second item is produced only
        # once the client, having received the first, creates q["file"].
        marker = q["file"]
        waiting = q.get("waiting")

        def gen():
            yield b"first block\n"
            if waiting:
                open(waiting, "w").close()
            deadline = time.monotonic() + 8.0
            while not os.path.exists(marker) and time.monotonic() < deadline:
                time.sleep(0.02)
            yield b"second block\n" if os.path.exists(marker) else b"gave up waiting\n"

        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()

    if path == "/bad_str":
        # PEP 3333: body items must be bytes; a str is an app error (500).
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["a str, not bytes"]

    if path == "/no_start":
        # Returns a body without ever calling start_response (500).
        return [b"no start_response"]

    if path == "/bad_status":
        start_response("abc def", [("Content-Type", "text/plain")])
        return [b"bad status"]

    if path == "/exc_info":
        # PEP 3333 error handling: a second start_response with exc_info
        # before any body was sent replaces the first.
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("handled error")
        except ValueError:
            body = b"replaced by exc_info"
            start_response(
                "503 Service Unavailable",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
                sys.exc_info(),
            )
        return [body]

    if path == "/twice":
        # A second start_response without exc_info is an error (500).
        start_response("200 OK", [("Content-Type", "text/plain")])
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [b"twice"]

    if path.startswith("/status/"):
        code = int(path[len("/status/"):])
        reason = {204: "No Content", 304: "Not Modified"}.get(code, "Whatever")
        body = b"this body must not be sent"
        start_response("%d %s" % (code, reason), [("Content-Type", "text/plain")])
        return [body]

    if path == "/errors":
        err = environ["wsgi.errors"]
        err.write("message-to-wsgi-errors\n")
        err.writelines(["second-line-", "to-wsgi-errors\n"])
        err.flush()
        return _ok(start_response, b"ok")

    if path == "/file":
        fw = environ.get("wsgi.file_wrapper")
        fn = os.path.abspath(__file__)
        size = os.path.getsize(fn)
        f = open(fn, "rb")
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/plain"),
                ("Content-Length", str(size)),
                ("X-File-Wrapper", "yes" if fw else "no"),
            ],
        )
        if fw:
            return fw(f, 4096)
        data = f.read()
        f.close()
        return [data]

    return _ok(start_response, b"not found\n", status="404 Not Found")


def application(environ, start_response):
    """The `module` APP form loads this one."""
    return _ok(start_response, b"from application")


FACTORY_CALLS = 0


def create_app():
    """The `module:factory()` APP form calls this once."""
    global FACTORY_CALLS
    FACTORY_CALLS += 1
    calls = FACTORY_CALLS

    def factory_app(environ, start_response):
        return _ok(start_response, ("from factory %d" % calls).encode())

    return factory_app


class _Holder:
    pass


holder = _Holder()
holder.app = app

not_callable = 42
