"""Ends the interpreter while servers still serve: one started with
Server.start(), one whose serve() a daemon thread of the script's own
runs. The process must exit 0 at once, not hang or crash."""

import threading
import urllib.request

import rwsgi_lite
import simple

started = rwsgi_lite.Server(simple.app, port=0)
started.start()
own = rwsgi_lite.Server(simple.app, port=0)
threading.Thread(target=own.serve, daemon=True).start()
for server in (started, own):
    with urllib.request.urlopen(server.url + "/", timeout=10) as resp:
        print(resp.read().decode(), flush=True)
