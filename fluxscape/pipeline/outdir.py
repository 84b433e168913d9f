"""The output folder OUT: what may be one, what is written where, and one writer at a time.

- :func:`check_output_dir` refuses folders a run must never write into (``/``, the home
  folder and its parents, a top-level system folder) and folders holding files fluxscape did
  not write;
- :func:`inside` proves that a path the run writes lies inside OUT once resolved (no ``..``,
  no absolute names, no symlink leading out);
- :class:`OutputLock` is the exclusive lock a run holds on OUT while it works.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from fluxscape.errors import FluxscapeError

#: The run's own state folder inside OUT; its presence marks a folder as a fluxscape output.
STATE_DIR = ".fluxscape"
#: What a run writes at the top of OUT (anything else there was not written by fluxscape).
RUN_ENTRIES = frozenset(
    {
        STATE_DIR,
        "products",
        "catalog",
        "quicklooks",
        "reports",
        "models",
        "workflow.yaml",
        "report.html",
    }
)


def check_output_dir(out_dir: Path, data_dirs: list[Path] = ()) -> Path:
    """``out_dir`` resolved, or a FluxscapeError naming ``output.dir`` when a run must not
    write there: ``/``, the home folder or one of its parents, a top-level folder such as
    ``/usr``, or an existing folder holding entries that no fluxscape run wrote (entries that
    hold one of ``data_dirs``, e.g. a sample world in ``OUT/sample``, are allowed)."""
    out = Path(out_dir).expanduser().resolve()
    home = Path.home().resolve()
    if len(out.parts) <= 2 or out == home or out in home.parents:
        raise FluxscapeError(
            f"output.dir: {out} is a system or home folder; give the run a folder of its own, "
            f"e.g. {out / 'fluxscape-out'}"
        )
    if out.exists() and not out.is_dir():
        raise FluxscapeError(f"output.dir: {out} exists and is not a folder")
    if not out.is_dir() or (out / STATE_DIR).is_dir():
        return out
    data = [Path(d).resolve() for d in data_dirs]
    foreign = sorted(
        entry.name
        for entry in out.iterdir()
        if entry.name not in RUN_ENTRIES and not any(d == entry or entry in d.parents for d in data)
    )
    if foreign:
        raise FluxscapeError(
            f"output.dir: {out} holds files that no fluxscape run wrote (first: {foreign[0]}); "
            "use an empty or new folder, or the output folder of an earlier run"
        )
    return out


def mark_output_dir(out_dir: Path) -> Path:
    """Create OUT and its state folder (which marks it as a fluxscape output); returns it."""
    state = Path(out_dir) / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    return state


def inside(out_dir: Path, path: Path) -> Path:
    """``path`` resolved (symlinks followed), or a FluxscapeError if it lies outside OUT."""
    root = Path(out_dir).resolve()
    resolved = Path(path).resolve()
    if resolved != root and root not in resolved.parents:
        raise FluxscapeError(f"refusing to write {path}: it lies outside the output folder {root}")
    return resolved


class OutputLock:
    """Exclusive lock on OUT for the length of a run (``OUT/.fluxscape/lock``).

    The lock is an ``flock`` on the file, so the kernel releases it when the holder dies: the
    file of a dead run is simply taken over. The holder's pid, host, start time and command
    are written into the file for the message a second run prints."""

    def __init__(self, out_dir: Path, command: str = "", then: str = "rerun with --resume"):
        self.path = Path(out_dir) / STATE_DIR / "lock"
        self.command = command
        self.then = then  # what the message of a refused second writer tells it to do
        self._fh = None

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = _holder(fh.read())
            fh.close()
            raise FluxscapeError(
                f"{self.path.parent.parent}: another fluxscape run is writing here ({holder}); "
                f"wait for it to finish or stop it, then {self.then}"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": datetime.now(UTC).replace(microsecond=0).isoformat(),
                    "command": self.command,
                }
            )
        )
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> bool:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
        return False


def _holder(text: str) -> str:
    """'pid 123 on host, started 2026-...: fluxscape run ...' from a lock file's JSON."""
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        return "holder unknown"
    what = f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}"
    return f"{what}: {info['command']}" if info.get("command") else what
