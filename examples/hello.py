"""The smallest useful WSGI (PEP 3333) application.

Serve it with:  rwsgi-lite --chdir examples hello:app
"""

BODY = b"Hello, World!\n"


def app(environ, start_response):
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(BODY))),
        ],
    )
    return [BODY]


# The callable a bare module name (`rwsgi-lite hello`) looks for.
application = app
