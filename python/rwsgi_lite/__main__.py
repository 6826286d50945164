"""The `rwsgi-lite` command (console script and `python -m rwsgi_lite`).

The whole command line of the standalone binary, served in this
interpreter: the packages of the virtualenv it is installed in are the
app's packages.
"""

import sys

from rwsgi_lite import _core


def main():
    """Runs the command line with `sys.argv` and exits with its status."""
    sys.exit(_core.main(sys.argv[1:]))


if __name__ == "__main__":
    main()
