"""Importing this module fails: the server must print the traceback, exit 1."""

raise RuntimeError("boom at import time")
