"""Says which server host answered and whom it served (tests/e2e_hosts.rs).

Body: `SERVER_NAME REMOTE_ADDR X-Forwarded-For PATH_INFO`, space-separated
(`-` for a missing X-Forwarded-For); SERVER_NAME is the address the server
listens on, so it names the host.
"""


def app(environ, start_response):
    body = " ".join(
        [
            environ["SERVER_NAME"],
            environ.get("REMOTE_ADDR", "-"),
            environ.get("HTTP_X_FORWARDED_FOR", "-").replace(" ", ""),
            environ["PATH_INFO"],
        ]
    ).encode("latin-1")
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]
