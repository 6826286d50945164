"""In-process log records go to the `rwsgi_lite.error` logger."""

import logging

import rwsgi_lite
from conftest import fetch, stop_within

LOGGER = "rwsgi_lite.error"


def app(environ, start_response):
    if environ["PATH_INFO"] == "/raise":
        raise ZeroDivisionError("the app divided by zero")
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def test_an_exception_in_the_app_is_a_logged_500(caplog):
    # Before construction: the server lets through what the logger does then.
    caplog.set_level(logging.INFO, logger=LOGGER)
    with rwsgi_lite.Server(app, port=0) as server:
        status, _, body = fetch(server.port, "/raise")
        assert status == 500
        assert b"divided by zero" not in body, "the traceback leaked to the client"
        # The server keeps serving.
        assert fetch(server.port, "/fine")[::2] == (200, b"ok")
        port = server.port
    records = [r for r in caplog.records if r.name == LOGGER]
    errors = [r for r in records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in records]
    message = errors[0].getMessage()
    assert "GET /raise" in message
    assert "Traceback (most recent call last)" in message
    assert "ZeroDivisionError: the app divided by zero" in message
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert any("Listening at: http://127.0.0.1:%d" % port in m for m in infos), infos


def test_a_handler_on_the_logger_gets_the_records():
    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append((record.levelname, record.getMessage()))

    logger = logging.getLogger(LOGGER)
    handler = Collect()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        server = rwsgi_lite.Server(app, port=0)
        server.start()
        assert fetch(server.port, "/raise")[0] == 500
        stop_within(server)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert any(level == "ERROR" and "ZeroDivisionError" in m for level, m in seen), seen
    assert any(level == "INFO" and "Listening at" in m for level, m in seen), seen


def test_access_log_to_a_file(tmp_path):
    path = tmp_path / "access.log"
    with rwsgi_lite.Server(app, port=0, access_logfile=str(path)) as server:
        assert fetch(server.port, "/logged")[0] == 200
    text = path.read_text()
    assert '"GET /logged HTTP/1.1" 200' in text, text
