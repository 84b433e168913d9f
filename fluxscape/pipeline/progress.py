"""Progress of long work: a rich bar with the time left on a terminal, plain log lines with
the time left otherwise; no phase stays silent for more than :data:`HEARTBEAT` seconds.

- :func:`progress` counts steps known in advance (tiles, model fits) and estimates the time
  left from the mean time per step so far;
- :func:`phase` wraps one piece of work of unknown length (planning a product, finishing a
  store, writing the report): a line when it starts, one every :data:`HEARTBEAT` seconds
  while it runs, and its duration when it took more than a second.

On a terminal, counted steps draw a bar on stderr (never stdout: ``--json`` owns it); off a
terminal, or with ``-q``, they are INFO log lines (the run log keeps them even when the
terminal shows warnings only).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Protocol

log = logging.getLogger("fluxscape")

#: Longest silence (s) of a long phase off a terminal.
HEARTBEAT = 15.0
_settings = {"bars": True}
#: The reporters running, innermost last: only the innermost one speaks up when silent.
_active: list = []
_lock = threading.Lock()


def configure(bars: bool = True) -> None:
    """``bars=False`` (``-q``): no progress bar even on a terminal."""
    _settings["bars"] = bars


class Progress(Protocol):
    def advance(self, message: str = "") -> None: ...
    def close(self) -> None: ...


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def eta(done: int, total: int, elapsed: float) -> str:
    """The time left, from the mean time per step so far (``?`` before the first step)."""
    if done <= 0:
        return "?"
    return duration(elapsed / done * max(0, total - done))


class _Heartbeat:
    """A daemon thread that calls ``self.beat()`` when the reporter has said nothing for
    :data:`HEARTBEAT` seconds and is the innermost one running."""

    def _start_heartbeat(self) -> None:
        self.started = self.last = time.monotonic()
        self._stop = threading.Event()
        with _lock:
            _active.append(self)
        self._thread = threading.Thread(target=self._watch, daemon=True, name="fluxscape-beat")
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, HEARTBEAT / 4)):
            now = time.monotonic()
            with _lock:
                innermost = bool(_active) and _active[-1] is self
            if innermost and now - self.last >= HEARTBEAT:
                self.last = now
                self.beat(now - self.started)

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        with _lock:
            if self in _active:
                _active.remove(self)

    def beat(self, elapsed: float) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _LogProgress(_Heartbeat):
    def __init__(self, label: str, total: int, every: float = 0.0):
        self.label, self.total, self.done, self.every = label, total, 0, every
        self._start_heartbeat()

    def _line(self, elapsed: float, message: str = "") -> str:
        what = f" {message}" if message else ""
        return (
            f"{self.label}: {self.done}/{self.total}{what} ({duration(elapsed)} elapsed, "
            f"{eta(self.done, self.total, elapsed)} left)"
        )

    def advance(self, message: str = "") -> None:
        self.done += 1
        now = time.monotonic()
        if self.done in (1, self.total) or now - self.last >= self.every:
            self.last = now
            log.info("%s", self._line(now - self.started, message))

    def beat(self, elapsed: float) -> None:
        log.info("%s", self._line(elapsed, "still working"))

    def close(self) -> None:
        self._stop_heartbeat()


class _BarProgress:
    def __init__(self, label: str, total: int):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(label, total=total)
        with _lock:
            _active.append(self)  # the bar shows the time: the phases around it keep quiet

    def advance(self, message: str = "") -> None:
        self._bar.advance(self._task)

    def close(self) -> None:
        self._bar.stop()
        with _lock:
            if self in _active:
                _active.remove(self)


def progress(label: str, total: int, every: float = 0.0) -> Progress:
    """A progress reporter for ``total`` steps: a bar when stderr is a terminal (and bars
    are on), log lines with the time left otherwise: one per step, or with ``every`` (s) at
    most one per ``every`` seconds (the first and the last step always)."""
    if _settings["bars"] and sys.stderr.isatty():
        return _BarProgress(label, total)
    return _LogProgress(label, total, every)


class phase(_Heartbeat):
    """``with phase("flux: planning"):`` logs the start, a line every :data:`HEARTBEAT`
    seconds of silence, and the duration at the end (when over a second)."""

    def __init__(self, label: str):
        self.label = label

    def __enter__(self) -> phase:
        log.info("%s ...", self.label)
        self._start_heartbeat()
        return self

    def beat(self, elapsed: float) -> None:
        log.info("%s: still working (%s)", self.label, duration(elapsed))

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._stop_heartbeat()
        elapsed = time.monotonic() - self.started
        if exc_type is None and elapsed >= 1.0:
            log.info("%s: done in %s", self.label, duration(elapsed))
        return False
