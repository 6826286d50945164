"""A small app wrapped in wsgiref.validate.validator.

Any PEP 3333 violation by the server makes the validator raise an
AssertionError (or, for WSGIWarning, an exception: warnings are turned into
errors below), which the server answers with 500 and logs as a traceback.
"""

import warnings
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)


def inner(environ, start_response):
    path = environ["PATH_INFO"]
    method = environ["REQUEST_METHOD"]
    if path == "/echo" and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or "0")
        body = environ["wsgi.input"].read(length)
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
        )
        return [body]
    if path == "/lines" and method == "POST":
        f = environ["wsgi.input"]
        first = f.readline()
        rest = f.readlines()
        body = b"%d|%s|%d" % (len(first), first.strip(), len(rest))
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        return [body]
    if path == "/gen":
        def gen():
            for i in range(3):
                yield b"part%d\n" % i

        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and returned"]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    body = b"hello validated"
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]


app = validator(inner)
