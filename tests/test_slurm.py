"""``dask.cluster: slurm`` against a real Slurm (one node on localhost, .ci/slurm-up.sh): a run
submits worker jobs and cancels them at the end; a driver job killed by its time limit resumes
with ``--resume`` to the stores of an uninterrupted run, running only the missing tiles.

Run with ``pytest -m slurm tests/test_slurm.py`` after ``.ci/slurm-up.sh`` (root). The tests
skip only when Slurm is not installed and FLUXSCAPE_REQUIRE_SLURM is unset (``.ci/run`` sets
it: there a missing Slurm fails)."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import FLUXSCAPE, run_cli

pytestmark = pytest.mark.slurm

if shutil.which("sbatch") is None and not os.environ.get("FLUXSCAPE_REQUIRE_SLURM"):
    pytest.skip(
        "Slurm is not installed (.ci/slurm-up.sh installs and starts a one-node Slurm)",
        allow_module_level=True,
    )

TILES = 16
# A 1 x 1 degree, 16-tile, one-year vi product; the dask section sends its tiles to Slurm jobs.
WORKFLOW = """\
name: slurm
region:
  bbox: [138.0, 35.5, 139.0, 36.5]
  crs: EPSG:4326
  resolution: 0.01
tile_size: 25
period: {{start: 2021-01-01, end: 2021-12-31, step: 16D}}
data_dir: {data_dir}
inputs:
  modis_vi:
    reader: modis_hdf4
    paths: ["modis/MOD13A2.A*.hdf"]
products:
  vi:
    kind: vi
    input: modis_vi
    variables: [ndvi, evi]
output:
  dir: out
dask:
  cluster: slurm
  workers: 1
  threads_per_worker: 1
  memory_limit: 2GiB
  jobqueue:
    job_name: {job_name}
    walltime: "00:10:00"
"""


def _slurm(*args: str) -> str:
    """The standard output of a Slurm command (squeue, scontrol, ...); fails the test on error."""
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"{' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def _jobs(name: str) -> list[str]:
    """Ids of the jobs named ``name`` Slurm still lists as pending, running or suspended."""
    return _slurm("squeue", "-h", "-n", name, "-o", "%i").split()


def _state(job: str) -> str:
    """A finished or running job's state (scontrol keeps finished jobs for MinJobAge, 60 s)."""
    found = re.search(r"JobState=(\S+)", _slurm("scontrol", "show", "job", job))
    assert found, f"no state for job {job}"
    return found.group(1)


def _tiles_done(out: Path) -> int:
    path = out / ".fluxscape" / "vi.manifest.jsonl"
    return path.read_text().count('"tile"') if path.exists() else 0


@pytest.fixture(scope="module")
def slurm() -> str:
    """A name unique to this test run for the worker jobs, once Slurm answers."""
    if shutil.which("sbatch") is None:
        pytest.fail(
            "FLUXSCAPE_REQUIRE_SLURM is set but Slurm is not installed: run .ci/slurm-up.sh"
        )
    if importlib.util.find_spec("dask_jobqueue") is None:
        pytest.fail("dask-jobqueue is not installed (pip install -e '.[cluster]')")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    if "UP" not in ping.stdout:
        pytest.fail(
            f"the Slurm controller does not answer ({ping.stdout}{ping.stderr}): run "
            ".ci/slurm-up.sh"
        )
    return f"fx-{os.getpid()}"


def _workflow(folder: Path, data_dir: Path, job_name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "slurm.yaml"
    path.write_text(WORKFLOW.format(data_dir=data_dir, job_name=job_name))
    return path


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory, sample_dir: Path, slurm: str) -> tuple[Path, str]:
    """An uninterrupted ``fluxscape run`` on Slurm (the driver here, as on a login node);
    returns its output folder and its standard output."""
    folder = tmp_path_factory.mktemp("slurm_run")
    wf = _workflow(folder, sample_dir, slurm)
    try:
        proc = run_cli("run", wf, "--out", folder / "out", timeout=300)
    finally:
        leftover = _jobs(slurm)
        if leftover:
            subprocess.run(["scancel", *leftover], timeout=30)
    assert not leftover, f"worker jobs {leftover} still queued after the run"
    return folder / "out", proc.stdout


def test_run_submits_worker_jobs_and_cancels_them(slurm_run, slurm):
    out, stdout = slurm_run
    assert f"vi: {TILES} of {TILES} tiles run" in stdout
    run_log = (out / ".fluxscape" / "run.log").read_text()
    assert "submitting 1 slurm worker job(s)" in run_log
    # worker job logs go into the output folder, not the folder the run was started from
    logs = sorted((out / ".fluxscape" / "jobs").glob(f"{slurm}-*.err"))
    assert logs, "no worker job wrote a log: no job was submitted"
    jobs = [p.stem.rsplit("-", 1)[1] for p in logs]
    # the driver cancelled its workers at the end (they would otherwise run to their walltime)
    assert {_state(job) for job in jobs} == {"CANCELLED"}
    assert not _jobs(slurm)
    # the only workers were those jobs, and they joined the driver's scheduler
    assert all("Registered to:" in p.read_text() for p in logs)
    with xr.open_zarr(out / "products" / "vi.zarr") as ds:
        assert int(np.isfinite(ds["ndvi"]).sum()) > 0


def test_driver_job_killed_by_its_time_limit_resumes(tmp_path, sample_dir, slurm, slurm_run):
    """The driver runs in a batch job with a one-minute time limit (Slurm's shortest). Once a
    tile is written its worker job is suspended, so the run cannot finish in time on any
    machine; Slurm's time limit then stops the driver (SIGTERM), which cancels its worker
    job. ``--resume`` runs the other tiles, and the store equals the uninterrupted run's."""
    reference, _ = slurm_run
    wf = _workflow(tmp_path, sample_dir, slurm)
    out = tmp_path / "out"
    command = shlex.join([*FLUXSCAPE, "run", str(wf), "--out", str(out)])
    driver = (
        _slurm(
            "sbatch",
            "--parsable",
            "--time=1",
            "--mem=1G",
            f"--job-name={slurm}-driver",
            f"--output={tmp_path / 'driver.out'}",
            f"--chdir={tmp_path}",
            "--wrap",
            f"exec {command}",
        )
        .strip()
        .split(";")[0]
    )
    try:
        deadline = time.time() + 150
        while time.time() < deadline and _tiles_done(out) < 1:
            assert _jobs(f"{slurm}-driver"), (tmp_path / "driver.out").read_text()
            time.sleep(0.5)
        assert _tiles_done(out) >= 1, "no tile written in 150 s"
        workers = _jobs(slurm)
        assert workers, "the driver job submitted no worker job"
        _slurm("scontrol", "suspend", ",".join(workers))
        deadline = time.time() + 150  # the limit is checked every 30 s, then KillWait (10 s)
        while time.time() < deadline and _jobs(f"{slurm}-driver"):
            time.sleep(1)
        assert _state(driver) == "TIMEOUT"
        leftover = _jobs(slurm)
        assert not leftover, f"the stopped driver left worker jobs {leftover}"
    finally:
        stray = _jobs(slurm) + _jobs(f"{slurm}-driver")
        if stray:
            subprocess.run(["scancel", *stray], timeout=30)
    log = (tmp_path / "driver.out").read_text()
    assert "DUE TO TIME LIMIT" in log
    assert f"interrupted; resume with: fluxscape run {wf} --resume --out {out}" in log
    done = _tiles_done(out)
    assert 1 <= done < TILES

    resumed = run_cli("run", wf, "--resume", "--out", out, timeout=300)
    assert f"vi: {TILES - done} of {TILES} tiles run" in resumed.stdout
    assert not _jobs(slurm)
    with (
        xr.open_zarr(out / "products" / "vi.zarr") as got,
        xr.open_zarr(reference / "products" / "vi.zarr") as want,
    ):
        assert sorted(got.data_vars) == sorted(want.data_vars)
        for name in want.data_vars:
            np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)
