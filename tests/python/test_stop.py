"""stop() lets a response in flight finish, and cuts it when its timeout
runs out."""

import socket
import threading
import time

import rwsgi_lite
from conftest import TIMEOUT, read_to_close, refuses, split_response, stop_within

BODY = b"x" * 300_000


class Gate:
    """An app that answers only once released: `entered` is set when a
    request reaches it."""

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ, start_response):
        self.entered.set()
        released = self.release.wait(TIMEOUT)
        start_response("200 OK", [("Content-Length", str(len(BODY)))])
        return [BODY if released else b"not released"]


def send_request(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def test_a_response_in_flight_when_stop_is_called_completes():
    gate = Gate()
    server = rwsgi_lite.Server(gate, port=0)
    server.start()
    try:
        client = send_request(server.port)
        assert gate.entered.wait(TIMEOUT), "the request never reached the app"
        stopped = threading.Event()
        stopper = threading.Thread(target=lambda: (server.stop(), stopped.set()), daemon=True)
        stopper.start()
        # stop() waits for the response: it has not returned yet.
        assert not stopped.wait(0.3), "stop() returned with a response in flight"
        gate.release.set()
        with client:
            raw = read_to_close(client)
        status, headers, body = split_response(raw)
        assert status == 200
        assert headers["content-length"] == str(len(BODY))
        assert body == BODY
        stopper.join(TIMEOUT)
        assert stopped.is_set(), "stop() did not return after the response"
        assert refuses(server.port)
    finally:
        gate.release.set()
        stop_within(server)


def test_stop_timeout_cuts_a_slow_response():
    chunks_sent = threading.Event()

    def drip(environ, start_response):
        start_response("200 OK", [])

        def body():
            yield b"first "
            chunks_sent.set()
            for _ in range(200):
                time.sleep(0.05)
                yield b"more "

        return body()

    server = rwsgi_lite.Server(drip, port=0)
    server.start()
    client = send_request(server.port)
    try:
        assert chunks_sent.wait(TIMEOUT)
        started = time.monotonic()
        stop_within(server, timeout=0.2)
        assert time.monotonic() - started < 5, "stop(0.2) waited for the whole response"
        raw = read_to_close(client)
        assert raw.startswith(b"HTTP/1.1 200")
        # Chunked and cut: the last chunk never came.
        assert not raw.endswith(b"0\r\n\r\n")
    finally:
        client.close()
        stop_within(server)
