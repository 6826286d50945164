"""Exercises what the server reuses between requests on one connection:
the start_response object and its write(), header tuples validated once
(module constants), the base environ's request defaults, cached value
strings. Each route behaves differently so leftovers would show."""

import sys
import threading
import time

# Constant tuples: the server remembers them by identity.
PLAIN = [("Content-Type", "text/plain"), ("X-Const", "1")]
CLOSE = [("Content-Type", "text/plain"), ("Connection", "close")]
BAD_NAME = [("Bad Name", "x")]
CONFLICT = [("Content-Length", "5"), ("Content-Length", "6")]
LENGTH_5 = ("Content-Length", "5")

# Routes that answer 200 with one of the constant header lists.
CONSTANT_ROUTES = {
    "/plain": (PLAIN, b"plain"),
    "/close": (CLOSE, b"closing"),
    "/bad_name": (BAD_NAME, b"never"),
    "/conflict": (CONFLICT, b"never"),
}

KEPT = []

# Tokens of /sized responses whose generator has not finished yet.
OPEN_SIZED = set()

SHOWN = (
    "REQUEST_METHOD", "PATH_INFO", "RAW_URI", "QUERY_STRING", "CONTENT_LENGTH",
    "CONTENT_TYPE", "HTTP_X_A", "HTTP_X_B", "SERVER_PROTOCOL",
)


def show(environ):
    lines = ["%s=%r" % (k, environ.get(k, "<absent>")) for k in SHOWN]
    lines.append("input=%r" % environ["wsgi.input"].read())
    return ("\n".join(lines) + "\n").encode()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path in CONSTANT_ROUTES:
        headers, body = CONSTANT_ROUTES[path]
        start_response("200 OK", list(headers))
        return [body]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"w1")
        return [b"rest"]
    if path == "/length":
        start_response("200 OK", [LENGTH_5, PLAIN[0]])
        return [b"12345"]
    if path == "/keep":
        # The app holds on to both callables: they must not be handed to
        # another request.
        write = start_response("200 OK", list(PLAIN))
        KEPT[:] = [start_response, write]
        return [b"kept"]
    if path == "/stale":
        # Calling the kept start_response of an earlier request must not
        # touch this one.
        old_start, old_write = KEPT
        old_start("500 Stale", [("X-Stale", "1")])
        old_write(b"stale bytes")
        start_response("200 OK", list(PLAIN))
        return [b"fresh"]
    if path == "/exc":
        start_response("200 OK", list(PLAIN))
        try:
            raise ValueError("handled")
        except ValueError:
            start_response("503 Busy", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"busy"]
    if path == "/thread":
        # start_response, write() and wsgi.input used from another thread
        # while the server's thread waits in the app.
        out = []

        def run():
            try:
                write = start_response("200 OK", [("Content-Type", "text/plain")])
                write(b"w:")
                out.append(environ["wsgi.input"].read())
            except BaseException as e:  # reported in the body
                out.append(repr(e).encode())

        t = threading.Thread(target=run)
        t.start()
        t.join()
        return out
    if path == "/raise":
        raise RuntimeError("failing on purpose")
    if path == "/not_iterable":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return 42
    if path == "/gen_fail":
        def failing():
            start_response("200 OK", [("Content-Type", "text/plain")])
            raise RuntimeError("failing in the body")
            yield b""
        return failing()
    if path == "/count":
        # Bound methods of StartResponse objects still alive (bound methods
        # are tracked by the garbage collector; the objects are not).
        import gc

        gc.collect()
        n = sum(
            1
            for o in gc.get_objects()
            if type(getattr(o, "__self__", None)).__name__ == "StartResponse"
        )
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(n).encode()]
    if path == "/sized":
        # Flask's shape: a one-item generator with a Content-Length. The
        # body says how many earlier /sized responses were still unfinished
        # when this one was called.
        if environ["QUERY_STRING"].startswith("sleep="):
            time.sleep(float(environ["QUERY_STRING"][len("sleep="):]))
        body = b"open=%d" % len(OPEN_SIZED)
        token = object()
        OPEN_SIZED.add(token)

        def sized():
            try:
                yield body
            finally:
                OPEN_SIZED.discard(token)

        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return sized()
    if path == "/gen":
        def body():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"g1"
            yield b"g2"
        return body()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [show(environ)]
