"""Logging of the ``fluxscape`` command: how much the terminal shows, and what it never shows.

Levels: ``-q`` warnings and errors only; the default, progress and what each product does;
``-v`` fluxscape's debug messages too; ``--debug`` also the libraries' INFO messages and
every message of distributed. Whatever the level, a run's log file
(``OUT/.fluxscape/run.log``) keeps fluxscape's INFO messages and distributed's warnings.

distributed's routine complaints (:data:`DASK_NOISE`: a port already taken, worker processes
killed when the cluster is closed) say nothing a user can act on: they go to the run log
only, not to the terminal (shown with ``--debug``).
"""

from __future__ import annotations

import logging
import re
import sys
import warnings

#: Messages of distributed (log records and Python warnings) kept off the terminal.
DASK_NOISE = re.compile(
    r"Port \d+ is already in use"
    r"|Worker process still alive after"
    r"|Perhaps you already have a cluster running"
)
#: Libraries whose INFO messages are shown with ``--debug`` only.
LIBRARIES = ("distributed", "asyncio", "tornado", "rasterio", "fsspec", "bokeh", "numexpr")
_state = {"debug": False}
_show_warning = warnings.showwarning


class TerminalFilter(logging.Filter):
    """Drops distributed's :data:`DASK_NOISE` from the terminal (unless ``--debug``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _state["debug"]:
            return True
        if record.name.split(".")[0] not in ("distributed", "tornado", "asyncio", "py"):
            return True
        return DASK_NOISE.search(record.getMessage()) is None


def setup(level: int, debug: bool = False) -> None:
    """Log ``level`` and above of fluxscape to stderr (``--debug``: libraries' INFO too)."""
    _state["debug"] = debug
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for handler in logging.root.handlers:
        # the handler's own level: a run raises fluxscape's logger to INFO for its log file,
        # which must not bring INFO lines to a terminal asked for warnings only
        handler.setLevel(level)
        handler.addFilter(TerminalFilter())
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO if debug else logging.WARNING)
    if "distributed" in sys.modules:
        tame_dask_loggers()
    warnings.showwarning = _showwarning


def tame_dask_loggers() -> None:
    """distributed sets its loggers' levels when it is imported: bring them back to ours
    (called again by :mod:`fluxscape.pipeline.cluster` when it imports distributed)."""
    debug = _state["debug"]
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] == "distributed":
            logging.getLogger(name).setLevel(logging.INFO if debug else logging.WARNING)
    # A failed tile is reported by the runner in one line (its traceback in OUT/.fluxscape/
    # run.log); the workers' own "Compute Failed" dumps would repeat it on the terminal.
    if not debug:
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("distributed.worker"):
                logging.getLogger(name).setLevel(logging.CRITICAL)


def _showwarning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings of distributed's :data:`DASK_NOISE` (``Port 8787 is already in use``)
    become log records of ``distributed.warnings``: in the run log, off the terminal."""
    if DASK_NOISE.search(str(message)):
        text = " ".join(str(message).split())
        logging.getLogger("distributed.warnings").warning("%s", text)
        return
    _show_warning(message, category, filename, lineno, file, line)
