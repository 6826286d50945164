"""A Flask app through the in-process API."""

import json

import pytest

import rwsgi_lite
from conftest import REPO, fetch

flask = pytest.importorskip(
    "flask", reason="Flask is not installed (pip install '.[test]' brings it)"
)


@pytest.fixture
def flask_server():
    import sys

    sys.path.insert(0, str(REPO / "tests" / "apps"))
    try:
        import flask_app
    finally:
        sys.path.remove(str(REPO / "tests" / "apps"))
    with rwsgi_lite.Server(flask_app.app, port=0) as server:
        yield server


def test_flask_routes(flask_server):
    port = flask_server.port
    status, headers, body = fetch(port, "/")
    assert (status, body) == (200, b"hello from flask")
    assert headers["content-type"].startswith("text/html")

    status, headers, body = fetch(port, "/user/ada?q=x%20y")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"name": "ada", "q": "x y"}

    payload = json.dumps({"numbers": [1, 2, 3, 4]}).encode()
    status, _, body = fetch(
        port, "/api/sum", method="POST", body=payload,
        headers={"Content-Type": "application/json"},
    )
    assert status == 200 and json.loads(body) == {"n": 4, "sum": 10}

    status, _, body = fetch(
        port, "/form", method="POST", body=b"a=1&b=two",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, body) == (200, b"a=1 b=two")

    assert fetch(port, "/missing")[0] == 404


def test_flask_app_as_an_import_string():
    with rwsgi_lite.Server(
        "flask_app:app", port=0, pythonpath=str(REPO / "tests" / "apps")
    ) as server:
        assert fetch(server.port, "/")[2] == b"hello from flask"
