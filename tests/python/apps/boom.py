"""Importing this module fails: Server("boom:app") raises this error."""

raise RuntimeError("boom at import time")
