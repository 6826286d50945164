"""rwsgi-lite: a fast, strict WSGI (PEP 3333) server written in Rust.

From Python code or a test suite::

    import rwsgi_lite

    rwsgi_lite.serve(app, port=8000)           # blocks; Ctrl-C stops it

    with rwsgi_lite.Server(app, port=0) as server:
        requests.get(server.url)               # served from a thread

Options are the command line's long flags with underscores
(``keep_alive=5``, ``access_logfile="-"``, ``bind=["unix:/run/app.sock"]``).
Log records go to the ``rwsgi_lite.error`` logger.
"""

from rwsgi_lite._core import __version__
from rwsgi_lite._server import Server, serve

__all__ = ["Server", "serve", "__version__"]
