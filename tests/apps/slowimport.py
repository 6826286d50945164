"""An app whose import takes a while (e2e_signals: signals during it)."""

import time

time.sleep(2.0)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"imported"]
