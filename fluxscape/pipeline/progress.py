"""Progress reporting: a rich progress bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
from typing import Protocol

log = logging.getLogger("fluxscape")


class Progress(Protocol):
    def advance(self, message: str = "") -> None: ...
    def close(self) -> None: ...


class _LogProgress:
    def __init__(self, label: str, total: int):
        self.label, self.total, self.done = label, total, 0

    def advance(self, message: str = "") -> None:
        self.done += 1
        log.info("%s: %d/%d %s", self.label, self.done, self.total, message)

    def close(self) -> None:
        pass


class _BarProgress:
    def __init__(self, label: str, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            "[bold]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(label, total=total)

    def advance(self, message: str = "") -> None:
        self._bar.advance(self._task)

    def close(self) -> None:
        self._bar.stop()


def progress(label: str, total: int) -> Progress:
    """A progress reporter for ``total`` steps: a bar when stderr is a terminal."""
    if sys.stderr.isatty():
        return _BarProgress(label, total)
    return _LogProgress(label, total)
