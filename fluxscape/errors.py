"""Errors that the command line reports as one clear line (exit status 1)."""

from __future__ import annotations


class FluxscapeError(Exception):
    """A problem the user can fix: bad input file, bad workflow, missing path.

    The message names the file or key and says what was expected.
    """


class ReaderError(FluxscapeError):
    """An input file that no reader can open or decode (the message names the file)."""


class WorkflowError(FluxscapeError):
    """A workflow file that fails validation (the message names the key)."""
