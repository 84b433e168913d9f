"""Where and how tiles run: an external Dask scheduler with two workers gives the same store as
the local cluster; a run killed with SIGKILL and resumed ends identical to an uninterrupted one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import FLUXSCAPE, free_port, run_cli, small_workflow

# Differ between two runs by design: creation time, and the resolved workflow text (output
# folder, scheduler address). ``workflow_hash`` covers what determines the data and is compared.
VOLATILE_ATTRS = {"date_created", "history", "workflow", "run_id"}  # run_id: one per execution


def _dask_cli() -> list[str]:
    exe = Path(sys.executable).with_name("dask")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dask"]


def assert_same_store(a: Path, b: Path, chunks_identical: bool = True) -> None:
    """Same variables, values (NaN-aware), attributes (but creation time) and chunk bytes."""
    da_, db_ = xr.open_zarr(a), xr.open_zarr(b)
    assert set(da_.data_vars) == set(db_.data_vars)
    for name in da_.data_vars:
        np.testing.assert_array_equal(da_[name].values, db_[name].values, err_msg=name)
        assert da_[name].attrs == db_[name].attrs, name
    strip = lambda attrs: {k: v for k, v in attrs.items() if k not in VOLATILE_ATTRS}  # noqa: E731
    assert strip(da_.attrs) == strip(db_.attrs)
    if chunks_identical:
        for chunk in sorted(p for p in a.rglob("*") if p.is_file() and not p.name.startswith(".")):
            other = b / chunk.relative_to(a)
            assert other.exists(), chunk
            assert chunk.read_bytes() == other.read_bytes(), chunk


@pytest.fixture()
def dask_cluster():
    """A real ``dask scheduler`` plus two ``dask worker`` processes on 127.0.0.1."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        subprocess.Popen(
            [
                *_dask_cli(),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    for _ in range(2):
        procs.append(
            subprocess.Popen(
                [
                    *_dask_cli(),
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--no-nanny",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    from distributed import Client

    with Client(address, timeout="60s") as client:
        client.wait_for_workers(2, timeout=60)
    yield address
    # Workers first, while their scheduler still answers: a worker told to stop after its
    # scheduler went away tries to reconnect (the connect timeout) before it exits, which made
    # this teardown wait 20-40 s.
    for group in (procs[1:], procs[:1]):
        for p in group:
            p.terminate()
        for p in group:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_external_scheduler_with_two_workers_gives_same_store(
    tmp_path, sample_dir, small_reference, dask_cluster
):
    wf = small_workflow(tmp_path, sample_dir)
    proc = run_cli("run", wf, "--out", tmp_path / "out", "--scheduler", dask_cluster)
    assert "4 of 4 tiles run" in proc.stdout
    resolved = (tmp_path / "out" / "workflow.yaml").read_text()
    assert dask_cluster in resolved
    assert_same_store(
        tmp_path / "out" / "products" / "vi.zarr", small_reference / "products" / "vi.zarr"
    )


def _manifest_tiles(out: Path) -> int:
    path = out / ".fluxscape" / "vi.manifest.jsonl"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"tile"' in line)


def test_sigkill_halfway_then_resume_matches_uninterrupted_run(
    tmp_path, sample_dir, small_reference
):
    wf = small_workflow(tmp_path, sample_dir, workers=1)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*FLUXSCAPE, "run", str(wf), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 180
    while _manifest_tiles(out) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its Dask worker processes
    proc.wait()
    done = _manifest_tiles(out)
    assert 1 <= done < 4, f"killed after {done} of 4 tiles: not halfway"
    assert not (out / "catalog" / "small.vi" / "collection.json").exists()
    resumed = run_cli("run", out / "workflow.yaml", "--resume")
    assert f"{4 - done} of 4 tiles run" in resumed.stdout
    assert_same_store(out / "products" / "vi.zarr", small_reference / "products" / "vi.zarr")
    assert (out / "catalog" / "small.vi" / "collection.json").exists()
    manifest = [
        json.loads(line)
        for line in (out / ".fluxscape" / "vi.manifest.jsonl").read_text().splitlines()
    ]
    assert manifest[-1] == {"complete": True}


def test_fresh_rebuilds_a_store_from_scratch(tmp_path, small_reference):
    out = tmp_path / "out"
    shutil.copytree(small_reference, out, symlinks=True)
    wf = out / "workflow.yaml"
    proc = run_cli("run", wf, "--out", out, "--fresh")
    assert "4 of 4 tiles run" in proc.stdout
    assert_same_store(out / "products" / "vi.zarr", small_reference / "products" / "vi.zarr")
