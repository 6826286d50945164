"""The application of the hardening tests (tests/e2e_strict.rs, e2e_limits.rs)
and of the measurement scripts (scripts/*.py).

Every request that reaches the app, except /peek, increments a counter and
logs `APP-SEEN <method> <path>` on stderr, so a test can prove that a request
smuggled behind a rejected one never reached the application.

Routes (by PATH_INFO):
  /peek                 body = "count=N" (the counter; does not count itself)
  /upload               reads wsgi.input in 64 KiB blocks; body = "len crc32"
  /stream?n=N&size=S&token=T
                        generator of N items of S bytes (default 4096 x 64 KiB),
                        no Content-Length; its close() logs "STREAM-CLOSED T"
  /resp/NAME            the misbehaving responses of RESPONSES below, and
                        /resp/long_list, /resp/long_gen (body longer than its
                        Content-Length), /resp/short (shorter)
  anything else         reads the whole body; body =
                        "count=N method=M path=P query=Q body=LEN"
"""

import sys
import zlib

COUNT = 0

# A second response hidden in a body or a header: it must never be parsed
# by the client as a response of its own.
SMUGGLED = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nSet-Cookie: evil\r\n\r\nevil"
)

# name -> (status, headers): each must be refused by start_response (500).
RESPONSES = {
    "value_crlf": ("200 OK", [("X-A", "x\r\nSet-Cookie: evil")]),
    "value_lf": ("200 OK", [("X-A", "x\nSet-Cookie: evil")]),
    "value_cr": ("200 OK", [("X-A", "x\rSet-Cookie: evil")]),
    "value_nul": ("200 OK", [("X-A", "a\x00b")]),
    "name_space": ("200 OK", [("Bad Name", "1")]),
    "name_colon": ("200 OK", [("X:Y", "1")]),
    "name_crlf": ("200 OK", [("X-A\r\nSet-Cookie", "evil")]),
    "name_empty": ("200 OK", [("", "1")]),
    "status_bare": ("200", []),
    "status_reversed": ("OK 200", []),
    "status_4digits": ("2000 X", []),
    "status_crlf": ("200 OK\r\nSet-Cookie: evil", []),
    "hop_te": ("200 OK", [("Transfer-Encoding", "chunked")]),
    "hop_connection": ("200 OK", [("Connection", "keep-alive")]),
    "hop_upgrade": ("200 OK", [("Upgrade", "h2c")]),
    "hop_keepalive": ("200 OK", [("Keep-Alive", "5")]),
}


def _ok(start_response, body, status="200 OK"):
    start_response(
        status,
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _qs(environ):
    out = {}
    for part in environ.get("QUERY_STRING", "").split("&"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


class Stream:
    """A large streamed body whose close() is visible in the log."""

    def __init__(self, token, n, size):
        self.token = token
        self.n = n
        self.block = b"s" * size
        self.i = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.i >= self.n:
            raise StopIteration
        self.i += 1
        return self.block

    def close(self):
        sys.stderr.write("STREAM-CLOSED %s after %d items\n" % (self.token, self.i))
        sys.stderr.flush()


def app(environ, start_response):
    global COUNT
    path = environ["PATH_INFO"]
    method = environ["REQUEST_METHOD"]
    if path == "/peek":
        return _ok(start_response, ("count=%d" % COUNT).encode())

    COUNT += 1
    sys.stderr.write("APP-SEEN %s %s\n" % (method, path))
    sys.stderr.flush()

    if path == "/upload":
        f = environ["wsgi.input"]
        n = 0
        crc = 0
        while True:
            block = f.read(65536)
            if not block:
                break
            n += len(block)
            crc = zlib.crc32(block, crc)
        return _ok(start_response, ("%d %d" % (n, crc)).encode())

    if path == "/stream":
        q = _qs(environ)
        it = Stream(q.get("token", "-"), int(q.get("n", "4096")), int(q.get("size", "65536")))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return it

    if path.startswith("/resp/"):
        name = path[len("/resp/"):]
        if name in RESPONSES:
            status, headers = RESPONSES[name]
            start_response(status, [("Content-Type", "text/plain")] + headers)
            return [b"this body must not be sent"]
        if name == "long_list":
            start_response("200 OK", [("Content-Length", "5")])
            return [b"hello" + SMUGGLED]
        if name == "long_gen":
            def gen():
                yield b"hel"
                yield b"lo" + SMUGGLED
                yield SMUGGLED

            start_response("200 OK", [("Content-Length", "5")])
            return gen()
        if name == "short":
            start_response("200 OK", [("Content-Length", "100")])
            return [b"only ten b"]
        return _ok(start_response, b"no such response\n", status="404 Not Found")

    body = environ["wsgi.input"].read()
    text = "count=%d method=%s path=%s query=%s body=%d host=%s|" % (
        COUNT,
        method,
        path,
        environ.get("QUERY_STRING", ""),
        len(body),
        environ.get("HTTP_HOST", "<none>"),
    )
    return _ok(start_response, text.encode("latin-1", "replace"))
