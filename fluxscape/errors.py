"""Errors that the command line reports as one clear line (exit status 1)."""

from __future__ import annotations

import errno


class FluxscapeError(Exception):
    """A problem the user can fix: bad input file, bad workflow, missing path.

    The message names the file or key and says what was expected.
    """


class ReaderError(FluxscapeError):
    """An input file that no reader can open or decode (the message names the file)."""


class WorkflowError(FluxscapeError):
    """A workflow file that fails validation (the message names the key)."""


#: OSError numbers that say the storage, not the data, is the problem, in words.
STORAGE_ERRORS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
}


def storage_problem(exc: BaseException) -> str | None:
    """``disk full`` (or quota exceeded, read-only, permission denied) when ``exc`` is an
    OSError of that kind; None for anything else."""
    return STORAGE_ERRORS.get(exc.errno) if isinstance(exc, OSError) else None


def storage_message(exc: OSError, store: object) -> str:
    """``disk full writing STORE (FILE: strerror); free space and rerun with --resume``."""
    remedy = "free space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "make it writable"
    where = f"{exc.filename}: " if exc.filename else ""
    return (
        f"{storage_problem(exc)} writing {store} ({where}{exc.strerror}); {remedy} and rerun "
        "with --resume"
    )


def one_line(exc: BaseException) -> str:
    """The message of an exception for the terminal: a storage OSError as ``FILE: disk full``
    (its file when known), anything else as ``Type: message``; line breaks escaped."""
    problem = storage_problem(exc)
    if problem is not None:
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{problem} ({exc.strerror})"
    elif isinstance(exc, FluxscapeError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text.strip().replace("\n", "\\n")
