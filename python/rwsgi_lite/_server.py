"""The in-process API: `Server` and `serve()`.

The server is a guest in this process: it installs no signal handler and
changes no signal mask, except that `serve()` in the main thread catches
SIGINT and SIGTERM for as long as it runs (so Ctrl-C stops it gracefully)
and puts the previous handlers back before it returns.
"""

import atexit
import signal
import threading
import weakref

from rwsgi_lite import _core

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Servers serving from a thread, stopped at interpreter exit: a thread still
# in the event loop when Python finalizes could not take the GIL back.
_running = weakref.WeakSet()


class Server:
    """A WSGI server, bound when constructed.

    `app` is a WSGI callable or a ``"module:callable"`` string. `host` and
    `port` default to 127.0.0.1 and 8000; ``port=0`` picks a free port
    (read it from `.port`). Other options are the command line's long
    flags with underscores; ``bind=[...]`` replaces host and port.

    Raises TypeError for an unknown option or a non-callable app,
    ValueError for a bad option value, OSError when the address cannot be
    bound, and whatever importing an import string raises.
    """

    def __init__(self, app, host=None, port=None, **options):
        self._core = _core.Server(app, host, port, options)
        self._thread = None
        self._failure = []

    @property
    def host(self):
        """The host of the first address served (a unix socket's path)."""
        return self._core.host

    @property
    def port(self):
        """The port of the first address served (None for a unix socket)."""
        return self._core.port

    @property
    def url(self):
        """``http://host:port`` of the first address served."""
        return self._core.url

    @property
    def addresses(self):
        """Every address served, as the log's "Listening at" names them."""
        return self._core.addresses

    def serve(self):
        """Serves until stopped. In the main thread SIGINT and SIGTERM stop
        it gracefully (a second one at once) and it returns."""
        if threading.current_thread() is threading.main_thread():
            with _StopOnSignals(self._core):
                self._core.serve()
        else:
            self._core.serve()

    def start(self):
        """Serves from a background thread; returns once it is serving.
        What stops it from serving is raised here."""
        if self._thread is not None:
            raise RuntimeError("this server has been started already")
        failure = []

        def run():
            try:
                self._core.serve()
            except BaseException as e:  # raised by start() or stop()
                failure.append(e)

        thread = threading.Thread(target=run, name="rwsgi-lite %s" % self.url, daemon=True)
        self._thread = thread
        thread.start()
        if not self._core.wait_serving():
            # It ended before serving: what ended it is there once the
            # thread is.
            thread.join()
            if failure:
                raise failure[0]
        self._failure = failure
        _running.add(self)
        return self

    def stop(self, timeout=None):
        """Stops accepting, lets in-flight responses finish (for at most
        `timeout` seconds, then cuts them), and returns when the serving
        thread has ended. Safe to call more than once."""
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be >= 0, not %r" % (timeout,))
        self._core.stop(timeout)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        _running.discard(self)
        if thread is None:
            self._core.close()
        if self._failure:
            # The loop failed while serving from its thread: say so here.
            raise self._failure.pop()

    def close(self):
        """Releases the sockets of a server that was never started (a
        started one releases them when it stops)."""
        self._core.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<rwsgi_lite.Server %s>" % (self.url,)


def serve(app, host=None, port=None, **options):
    """Serves `app` until stopped (in the main thread: SIGINT, SIGTERM).

    Arguments as for `Server`.
    """
    Server(app, host, port, **options).serve()


class _StopOnSignals:
    """SIGINT and SIGTERM stop the server while it serves: the first
    gracefully, a second one at once. The handlers found are put back
    afterwards; a signal whose handler was set outside Python (which
    `signal` cannot put back) is left alone."""

    def __init__(self, core):
        self._core = core
        self._saved = {}
        self._received = 0

    def __enter__(self):
        for sig in _STOP_SIGNALS:
            previous = signal.getsignal(sig)
            if previous is None:
                continue
            signal.signal(sig, self._handle)
            self._saved[sig] = previous

    def _handle(self, signum, frame):
        self._received += 1
        self._core.stop(0.0 if self._received > 1 else None)

    def __exit__(self, *exc):
        for sig, previous in self._saved.items():
            signal.signal(sig, previous)


@atexit.register
def _stop_all():
    for server in list(_running):
        try:
            server.stop(timeout=5.0)
        except Exception:  # the interpreter is exiting: nobody to raise it to
            pass
