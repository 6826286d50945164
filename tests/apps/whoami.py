"""Tells the client who the server thinks it is (tests/e2e_logs.rs).

Body: `REMOTE_ADDR url_scheme X-Forwarded-For` (the last `-` when absent),
with an `X-Whoami` response header carrying REMOTE_ADDR too.
`/fail` raises before start_response.
"""


def app(environ, start_response):
    if environ["PATH_INFO"] == "/fail":
        raise RuntimeError("whoami failing on purpose")
    remote = environ.get("REMOTE_ADDR", "")
    body = " ".join(
        [
            remote or "''",
            environ["wsgi.url_scheme"],
            environ.get("HTTP_X_FORWARDED_FOR", "-"),
        ]
    ).encode("latin-1")
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("X-Whoami", remote),
        ],
    )
    return [body]
