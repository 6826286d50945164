"""Small WSGI apps for the API tests, importable as "simple:NAME"."""


def _text(start_response, body, status="200 OK"):
    start_response(
        status,
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


def app(environ, start_response):
    return _text(start_response, b"simple app")


def other(environ, start_response):
    return _text(start_response, b"other app")


def make_app():
    def made(environ, start_response):
        return _text(start_response, b"made by a factory")

    return made


not_callable = 42
