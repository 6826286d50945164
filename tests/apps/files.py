"""File responses through wsgi.file_wrapper, for tests/e2e_file_wrapper.rs.

Routes:
  /file?path=P[&seek=N][&cl=N|rest][&block=N][&token=T][&wrap=1]
        P opened "rb", seeked to N, wrapped with block_size N (keyword).
        cl=N sends Content-Length: N, cl=rest the bytes from the position
        to the end; without cl, none. wrap=1 returns a generator over the
        wrapper (the server must iterate it, not send the file itself).
  /bytesio?size=N[&block=N][&token=T]   N bytes (i % 251) in a BytesIO
  /pipe?size=N[&token=T]                 N bytes (i % 251) through a pipe
  /plain?size=N[&token=T]                a file-like with only read/close
  /badblock                              block_size=0: ValueError, a 500
  /stats?token=T                         "reads=R closes=C" for token T
The token's file-like object counts its read() and close() calls, so a
test can tell whether the body went through Python at all.
"""

import io
import os
from urllib.parse import parse_qs

READS = {}
CLOSES = {}


class Recorded:
    """Delegates to a real file-like object, counting read() and close()."""

    def __init__(self, inner, token):
        self.inner = inner
        self.token = token
        READS.setdefault(token, 0)
        CLOSES.setdefault(token, 0)

    def fileno(self):
        return self.inner.fileno()

    def tell(self):
        return self.inner.tell()

    def read(self, n=-1):
        READS[self.token] += 1
        return self.inner.read(n)

    def close(self):
        CLOSES[self.token] += 1
        self.inner.close()


class Plain:
    """Only what PEP 3333 asks of a file-like object: read (and close)."""

    def __init__(self, data, token):
        self.inner = io.BytesIO(data)
        self.token = token
        READS.setdefault(token, 0)
        CLOSES.setdefault(token, 0)

    def read(self, n=-1):
        READS[self.token] += 1
        return self.inner.read(n)

    def close(self):
        CLOSES[self.token] += 1


def _data(n):
    return bytes(i % 251 for i in range(n))


def app(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    fw = environ["wsgi.file_wrapper"]
    token = q.get("token", "-")
    block = int(q.get("block", "8192"))

    if path == "/stats":
        body = ("reads=%d closes=%d" % (READS.get(token, -1), CLOSES.get(token, -1))).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    headers = [("Content-Type", "application/octet-stream")]
    if path == "/file":
        f = open(q["path"], "rb")
        if "seek" in q:
            f.seek(int(q["seek"]))
        cl = q.get("cl")
        if cl == "rest":
            headers.append(("Content-Length", str(os.path.getsize(q["path"]) - f.tell())))
        elif cl is not None:
            headers.append(("Content-Length", cl))
        start_response("200 OK", headers)
        wrapper = fw(Recorded(f, token), block_size=block)
        if q.get("wrap"):
            return (block for block in wrapper)
        return wrapper

    if path == "/bytesio":
        start_response("200 OK", headers)
        return fw(Recorded(io.BytesIO(_data(int(q["size"]))), token), block)

    if path == "/pipe":
        r, w = os.pipe()
        # Fits the pipe's buffer: written in full before the server reads.
        os.write(w, _data(int(q["size"])))
        os.close(w)
        start_response("200 OK", headers)
        return fw(Recorded(os.fdopen(r, "rb"), token), block)

    if path == "/plain":
        start_response("200 OK", headers)
        return fw(Plain(_data(int(q["size"])), token), block)

    if path == "/badblock":
        start_response("200 OK", headers)
        return fw(io.BytesIO(b"x"), 0)

    start_response("404 Not Found", [("Content-Length", "0")])
    return [b""]
