"""Ctrl-C and SIGTERM stop a run quietly: the cluster is closed, no worker traceback or
warning reaches the terminal, one line says how to resume (exit 130 / 143), and that
command finishes the run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FLUXSCAPE, run_cli, small_workflow

LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d INFO ")


def _tiles_done(out: Path) -> int:
    path = out / ".fluxscape" / "vi.manifest.jsonl"
    return path.read_text().count('"tile"') if path.exists() else 0


def _started(out: Path) -> bool:
    """The run has planned its product: the cluster is about to start."""
    log = out / ".fluxscape" / "run.log"
    return log.exists() and "tiles to run" in log.read_text()


def _interrupt(folder: Path, sample_dir: Path, signum: int, group: bool, early: bool = False):
    """Start the small 4-tile run, send ``signum`` once a tile is finished (``early``: as the
    cluster starts) to the process group, as a terminal's Ctrl-C does, or to the driver
    alone, as ``kill`` does."""
    wf = small_workflow(folder, sample_dir, workers=2)
    out = folder / "out"
    proc = subprocess.Popen(
        [*FLUXSCAPE, "run", str(wf), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if _started(out) if early else _tiles_done(out) >= 1:
            break
        time.sleep(0.02)
    time.sleep(0.5 if early else 0)
    (os.killpg if group else os.kill)(proc.pid, signum)
    try:
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return wf, out, proc.returncode, stderr


@pytest.mark.parametrize(
    ("signum", "group", "status"),
    [(signal.SIGINT, True, 130), (signal.SIGTERM, False, 143)],
    ids=["ctrl-c", "sigterm"],
)
def test_interrupted_run_says_how_to_resume_and_resumes(
    tmp_path, sample_dir, signum, group, status
):
    wf, out, code, stderr = _interrupt(tmp_path, sample_dir, signum, group)
    done = _tiles_done(out)
    assert done < 4, "the run finished before the signal"
    assert code == status, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    assert all(LOG_LINE.match(line) for line in lines[:-1]), stderr
    assert lines[-1] == f"interrupted; resume with: fluxscape run {wf} --resume --out {out}"
    resumed = run_cli("run", wf, "--resume", "--out", out)
    assert f"vi: {4 - done} of 4 tiles run" in resumed.stdout
    assert (out / "products" / "vi.zarr").is_dir()


def test_sigterm_while_the_cluster_starts_is_quiet(tmp_path, sample_dir):
    """A SIGTERM held back until the cluster is up, then handled as any other: a half-started
    cluster would print tracebacks when Python exits."""
    wf, out, code, stderr = _interrupt(tmp_path, sample_dir, signal.SIGTERM, False, early=True)
    assert code == 143, stderr
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    assert stderr.splitlines()[-1].startswith("interrupted; resume with: fluxscape run ")
