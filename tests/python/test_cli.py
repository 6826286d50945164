"""The command line from the package: the `rwsgi-lite` console script and
`python -m rwsgi_lite`, which must behave as the standalone binary does."""

import os
import signal
import sys
from pathlib import Path

import pytest

import rwsgi_lite
from conftest import EXAMPLES, LISTENING, REPO, fetch, refuses, run, venv_script

FRONT_ENDS = {
    "console-script": lambda: [venv_script("rwsgi-lite")],
    "python-m": lambda: [sys.executable, "-m", "rwsgi_lite"],
}


@pytest.fixture(params=sorted(FRONT_ENDS))
def command(request):
    return FRONT_ENDS[request.param]()


def standalone_binary():
    """The cargo-built binary: $RWSGI_LITE_BINARY, else target/debug or
    target/release of this repository; None when there is none."""
    given = os.environ.get("RWSGI_LITE_BINARY")
    if given:
        assert Path(given).is_file(), "RWSGI_LITE_BINARY=%s is not a file" % given
        return Path(given)
    for profile in ("debug", "release"):
        path = REPO / "target" / profile / "rwsgi-lite"
        if path.is_file():
            return path
    return None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serves_examples_hello_and_stops_on_a_signal(spawn, command, signum):
    proc = spawn([*command, "--chdir", EXAMPLES, "-b", "127.0.0.1:0", "hello:app"])
    port = int(proc.wait_line(LISTENING.pattern).group(1))
    status, headers, body = fetch(port, "/anything")
    assert (status, body) == (200, b"Hello, World!\n")
    assert headers["content-type"] == "text/plain; charset=utf-8"
    proc.signal(signum)
    assert proc.finish() == 0, proc.stderr
    assert refuses(port)
    # The command line keeps its own log format, not Python logging's.
    assert "[INFO] rwsgi-lite %s serving hello:app" % rwsgi_lite.__version__ in proc.stderr
    assert "sys.prefix %s" % sys.prefix in proc.stderr, "not serving in this venv"
    assert proc.stdout == ""


def test_serves_in_the_installing_interpreter(spawn, command, tmp_path):
    """The app runs in this venv's interpreter, with its packages."""
    (tmp_path / "whichpy.py").write_text(
        "import sys\n"
        "def app(environ, start_response):\n"
        "    body = (sys.prefix + '\\n' + sys.executable).encode()\n"
        "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
        "    return [body]\n"
    )
    proc = spawn([*command, "--chdir", tmp_path, "-b", "127.0.0.1:0", "whichpy:app"])
    port = int(proc.wait_line(LISTENING.pattern).group(1))
    prefix, executable = fetch(port)[2].decode().split("\n")
    assert prefix == sys.prefix
    assert os.path.realpath(executable) == os.path.realpath(sys.executable)
    proc.signal(signal.SIGTERM)
    assert proc.finish() == 0, proc.stderr


def test_version(command):
    done = run([*command, "--version"])
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"rwsgi-lite %s\n" % rwsgi_lite.__version__.encode()
    assert done.stderr == b""


def test_python_m_version_is_the_packages():
    done = run([sys.executable, "-m", "rwsgi_lite", "--version"])
    assert done.returncode == 0
    assert done.stdout.decode().strip() == "rwsgi-lite " + rwsgi_lite.__version__


@pytest.mark.parametrize("args", [["--bogus"], ["--keep-alive", "x", "hello:app"], []])
def test_a_bad_command_line_exits_2_with_one_line(command, args):
    done = run([*command, *args])
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == b""
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("rwsgi-lite: ")


def test_help_is_the_standalone_binarys(command):
    ours = run([*command, "--help"])
    assert ours.returncode == 0
    assert ours.stdout.startswith(b"Usage: rwsgi-lite [OPTIONS] APP\n")
    assert ours.stderr == b""
    binary = standalone_binary()
    if binary is None:
        pytest.skip(
            "no standalone binary to compare with: cargo build, or set RWSGI_LITE_BINARY"
        )
    theirs = run([binary, "--help"])
    assert theirs.returncode == 0
    assert ours.stdout == theirs.stdout
    assert ours.stderr == theirs.stderr


@pytest.mark.parametrize("args", [["--bogus"], ["--version"], ["-w", "0", "x:app"]])
def test_exit_and_output_match_the_standalone_binary(command, args):
    binary = standalone_binary()
    if binary is None:
        pytest.skip(
            "no standalone binary to compare with: cargo build, or set RWSGI_LITE_BINARY"
        )
    ours = run([*command, *args])
    theirs = run([binary, *args])
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        theirs.returncode,
        theirs.stdout,
        theirs.stderr,
    )


def test_an_app_that_fails_to_import_exits_1(command, tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('broken at import')\n")
    done = run([*command, "--chdir", tmp_path, "-b", "127.0.0.1:0", "broken:app"])
    assert done.returncode == 1, done.stderr
    assert b"RuntimeError: broken at import" in done.stderr
