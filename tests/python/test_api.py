"""rwsgi_lite.Server from Python: binding, starting, stopping, options and
the errors construction raises."""

import errno
import os
import socket
import sys
import threading

import pytest

import rwsgi_lite
from conftest import (
    APPS,
    TIMEOUT,
    fetch,
    python_env,
    raw_exchange,
    read_to_close,
    refuses,
    run,
    run_bounded,
    split_response,
    stop_within,
)


def hello(environ, start_response):
    body = b"hello " + environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def named(name):
    def app(environ, start_response):
        body = name.encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    return app


def server_threads():
    return {t for t in threading.enumerate() if t.name.startswith("rwsgi-lite ")}


def test_start_serves_from_a_thread_and_stop_ends_it():
    before = server_threads()
    server = rwsgi_lite.Server(hello, port=0)
    try:
        assert isinstance(server.port, int) and server.port > 0
        assert server.host == "127.0.0.1"
        assert server.url == "http://127.0.0.1:%d" % server.port
        assert server.port != 8000
        assert run_bounded(server.start) is server
        new = server_threads() - before
        assert len(new) == 1 and next(iter(new)).is_alive()

        status, headers, body = fetch(server.port, "/there")
        assert (status, body) == (200, b"hello /there")
        assert headers["content-length"] == "12"
        # The same over raw bytes, HTTP/1.0: the server closes afterwards.
        raw = raw_exchange(server.port, b"GET /raw HTTP/1.0\r\nHost: x\r\n\r\n")
        assert split_response(raw)[0] == 200 and raw.endswith(b"hello /raw")
    finally:
        stop_within(server)
    assert not (server_threads() - before), "the serving thread is still there"
    assert refuses(server.port)
    # A second stop is harmless.
    stop_within(server)


def test_context_manager_starts_and_stops():
    before = server_threads()
    with rwsgi_lite.Server(hello, port=0) as server:
        assert isinstance(server, rwsgi_lite.Server)
        assert fetch(server.port, "/cm")[2] == b"hello /cm"
        port = server.port
    assert not (server_threads() - before)
    assert refuses(port)


def test_url_of_an_ipv6_address():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        server = rwsgi_lite.Server(hello, host="::1", port=0)
    except OSError as e:
        pytest.skip("cannot bind [::1]: %s" % e)
    with server:
        assert server.url == "http://[::1]:%d" % server.port
        assert fetch(server.port, "/six", host="::1")[2] == b"hello /six"


def test_a_unix_socket(tmp_path):
    path = str(tmp_path / "app.sock")
    with rwsgi_lite.Server(hello, bind=["unix:" + path]) as server:
        assert (server.host, server.port) == (path, None)
        assert server.url == "unix:" + path
        assert server.addresses == ["unix:" + path]
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(path)
            sock.sendall(b"GET /unix HTTP/1.0\r\n\r\n")
            status, _, body = split_response(read_to_close(sock))
        assert (status, body) == (200, b"hello /unix")
    assert not os.path.exists(path), "the socket file is left behind"


def test_several_addresses(tmp_path):
    path = str(tmp_path / "app.sock")
    with rwsgi_lite.Server(hello, bind=["127.0.0.1:0", "unix:" + path]) as server:
        assert len(server.addresses) == 2
        assert server.addresses[0] == server.url
        assert fetch(server.port, "/tcp")[2] == b"hello /tcp"
        assert server.addresses[1] == "unix:" + path


def test_start_twice_is_an_error(running):
    server = running(hello)
    with pytest.raises(RuntimeError):
        server.start()
    assert fetch(server.port)[0] == 200


def test_serve_after_stop_is_an_error():
    server = rwsgi_lite.Server(hello, port=0)
    with server:
        pass
    with pytest.raises(RuntimeError):
        run_bounded(server.serve)


def test_the_interpreter_exits_with_servers_still_serving():
    done = run([sys.executable, APPS / "exit_running.py"], env=python_env())
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"simple app\nsimple app\n"
    assert b"Traceback" not in done.stderr


def test_two_servers_at_once(running):
    one = running(named("one"))
    two = running(named("two"))
    assert one.port != two.port
    for _ in range(3):
        assert fetch(one.port)[2] == b"one"
        assert fetch(two.port)[2] == b"two"
    # A connection held open on one does not stop the other.
    with socket.create_connection(("127.0.0.1", one.port), timeout=TIMEOUT) as held:
        held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert fetch(two.port)[2] == b"two"
        held.sendall(b"Connection: close\r\n\r\n")
        raw = b""
        while True:
            data = held.recv(65536)
            if not data:
                break
            raw += data
        assert raw.endswith(b"one")


def test_restart_on_the_same_port():
    first = rwsgi_lite.Server(named("first"), port=0)
    port = first.port
    with first:
        assert fetch(port)[2] == b"first"
        # A keep-alive connection left open when stop() is called.
        conn = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(65536).endswith(b"first")
    conn.close()
    with rwsgi_lite.Server(named("second"), port=port) as second:
        assert second.port == port
        assert fetch(port)[2] == b"second"


def test_a_server_never_started_frees_its_port_when_dropped():
    server = rwsgi_lite.Server(hello, port=0)
    port = server.port
    del server
    with rwsgi_lite.Server(named("again"), port=port):
        assert fetch(port)[2] == b"again"


def test_stop_from_inside_the_app():
    box = {}
    before = server_threads()

    def app(environ, start_response):
        box["server"].stop()
        start_response("200 OK", [("Content-Length", "4")])
        return [b"last"]

    server = rwsgi_lite.Server(app, port=0)
    box["server"] = server
    run_bounded(server.start)
    assert fetch(server.port)[2] == b"last"
    assert refuses(server.port)
    stop_within(server)
    assert not (server_threads() - before)


def test_address_in_use_raises_oserror_at_construction():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError) as info:
            rwsgi_lite.Server(hello, port=port)
        assert info.value.errno == errno.EADDRINUSE
        assert str(port) in str(info.value)


def test_address_of_a_running_server_is_in_use(running):
    server = running(hello)
    with pytest.raises(OSError) as info:
        rwsgi_lite.Server(hello, port=server.port)
    assert info.value.errno == errno.EADDRINUSE
    assert fetch(server.port)[0] == 200


def test_app_as_an_import_string(running):
    server = running("simple:app")
    status, headers, body = fetch(server.port)
    assert (status, headers["content-type"], body) == (200, "text/plain", b"simple app")
    factory = running("simple:make_app()")
    assert fetch(factory.port)[2] == b"made by a factory"


def test_pythonpath_option_finds_the_app(running, tmp_path):
    (tmp_path / "elsewhere_app.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '9')])\n"
        "    return [b'elsewhere']\n"
    )
    server = running("elsewhere_app:app", pythonpath=str(tmp_path))
    assert fetch(server.port)[2] == b"elsewhere"


def test_options_reach_the_server(running):
    server = running(hello, keep_alive=1, limit_request_line=100)
    status, _, _ = fetch(server.port, "/" + "x" * 200)
    assert status == 414
    assert fetch(server.port, "/short")[2] == b"hello /short"


def test_bind_option_replaces_host_and_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with rwsgi_lite.Server(hello, bind=["127.0.0.1:%d" % port]) as server:
        assert server.port == port
        assert fetch(port)[2] == b"hello /"
    with pytest.raises(TypeError):
        rwsgi_lite.Server(hello, port=0, bind="127.0.0.1:0")


@pytest.mark.parametrize("keyword", ["no_such_option", "keep-alive", "help", "version"])
def test_unknown_option_is_a_type_error_naming_it(keyword):
    with pytest.raises(TypeError, match=keyword):
        rwsgi_lite.Server(hello, port=0, **{keyword: 1})


@pytest.mark.parametrize(
    "keyword, value",
    [
        ("keep_alive", "x"),
        ("keep_alive", -1),
        ("bind", "nope:"),
        ("backlog", 0),
        ("limit_request_body", "lots"),
    ],
)
def test_bad_value_is_a_value_error_naming_it(keyword, value):
    with pytest.raises(ValueError, match=keyword):
        rwsgi_lite.Server(hello, **{keyword: value})


@pytest.mark.parametrize("app", [42, None, b"simple:app", object()])
def test_non_callable_app_is_a_type_error(app):
    with pytest.raises(TypeError, match="callable"):
        rwsgi_lite.Server(app, port=0)


def test_bad_import_string_raises_the_imports_own_exception():
    with pytest.raises(ModuleNotFoundError) as info:
        rwsgi_lite.Server("no_such_module_rwsgi:app", port=0)
    assert info.value.name == "no_such_module_rwsgi"
    with pytest.raises(AttributeError, match="nope"):
        rwsgi_lite.Server("simple:nope", port=0)
    with pytest.raises(RuntimeError, match="boom at import time"):
        rwsgi_lite.Server("boom:app", port=0)
    with pytest.raises(TypeError, match="not callable"):
        rwsgi_lite.Server("simple:not_callable", port=0)


@pytest.mark.parametrize("options", [{"workers": 2}, {"workers": 4}])
def test_workers_say_to_use_the_command(options):
    with pytest.raises(ValueError, match="rwsgi-lite command"):
        rwsgi_lite.Server("simple:app", port=0, **options)


@pytest.mark.parametrize("keyword", ["reload", "preload"])
def test_process_options_are_refused_with_a_reason(keyword):
    with pytest.raises(ValueError, match=keyword):
        rwsgi_lite.Server("simple:app", port=0, **{keyword: True})


def test_stop_with_a_negative_timeout_is_a_value_error(running):
    server = running(hello)
    with pytest.raises(ValueError):
        server.stop(-1)
    assert fetch(server.port)[0] == 200
