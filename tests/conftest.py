"""Shared fixtures: real data folder, the sample world and one demo run (session-scoped)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
FLUXSCAPE = [sys.executable, "-m", "fluxscape.cli"]


def missing_realdata(reason: str) -> None:
    """Skip (with the reason) or, when FLUXSCAPE_REQUIRE_REALDATA=1, fail."""
    if os.environ.get("FLUXSCAPE_REQUIRE_REALDATA") == "1":
        pytest.fail(f"{reason} (FLUXSCAPE_REQUIRE_REALDATA=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def realdata_dir() -> Path:
    """Folder of real input files: $FLUXSCAPE_REALDATA, default <repo>/../shared/realdata.

    Skips when absent, unless FLUXSCAPE_REQUIRE_REALDATA=1 (then the test fails).
    """
    default = REPO.parent / "shared" / "realdata"
    root = Path(os.environ.get("FLUXSCAPE_REALDATA", str(default)))
    if not root.is_dir():
        missing_realdata(f"real-data folder {root} not found (set FLUXSCAPE_REALDATA)")
    return root


def run_cli(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run the fluxscape command in a subprocess; returns the completed process."""
    proc = subprocess.run([*FLUXSCAPE, *map(str, args)], capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"fluxscape {' '.join(map(str, args))} failed "
            f"({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def shared_folder(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``name`` built by ``build(folder)`` once per test run, also when pytest-xdist
    spreads the tests over several processes: in the run's base folder (``pytest-N/name``,
    above the workers' own ``popen-gwK``), the first worker to need it builds it under a file
    lock while the others wait, then all read it. A build that raised is tried again by the
    next worker that needs the folder (and fails it the same way)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    folder = root / name
    done = root / f"{name}.done"
    with FileLock(root / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session", autouse=True)
def kernels_compiled_once(tmp_path_factory) -> None:
    """Under pytest-xdist, the phenology kernels are compiled into numba's on-disk cache by
    the first test process, before any of its tests, while the others wait and then load
    them: otherwise on a fresh install two processes (or a process and a run it started)
    compiled the same kernels at the same time (issue #18: the cold compile at most once per
    install). In one process nothing is done here: the kernels compile at first use."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def build(folder: Path) -> None:
        from typing import get_args

        from fluxscape.pipeline.steps.phenology import PhenologyConfig, warm_kernels

        for method in get_args(PhenologyConfig.model_fields["method"].annotation):
            warm_kernels(method)

    shared_folder(tmp_path_factory, "numba_kernels", build)


@pytest.fixture(scope="session")
def demo_out(tmp_path_factory) -> Path:
    """``fluxscape demo --out DIR`` run once: the sample world in DIR/sample, products in DIR.

    For local iterations, FLUXSCAPE_TEST_DEMO_OUT names a finished demo output to reuse
    (treated as read-only)."""
    reuse = os.environ.get("FLUXSCAPE_TEST_DEMO_OUT")
    if reuse:
        return Path(reuse)

    def build(out: Path) -> None:
        proc = run_cli("demo", "--out", out)
        (out / "demo_stdout.txt").write_text(proc.stdout)
        (out / "demo_stderr.txt").write_text(proc.stderr)

    return shared_folder(tmp_path_factory, "demo", build)


@pytest.fixture(scope="session")
def sample_dir(demo_out: Path) -> Path:
    """The demo's sample world (read-only: copy before changing it)."""
    return demo_out / "sample"


def on_sample(recipe: Path, sample_dir: Path, folder: Path) -> Path:
    """A copy of ``recipe`` in ``folder`` reading ``sample_dir`` and writing ``folder/out``."""
    import yaml

    doc = yaml.safe_load(recipe.read_text())
    doc["data_dir"] = str(sample_dir)
    doc["output"]["dir"] = str(folder / "out")
    path = folder / recipe.name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def disturbance_run(tmp_path_factory) -> Path:
    """The `disturbance` preset (MOD13A2, MOD11A2, MCD64A1, AHI P-Tree; 2017-2022) in DIR/sample
    and a run of workflows/disturbance-fire.yaml on it in DIR/out (vi, lst, lst_ahi,
    disturbance stores).

    For local iterations, FLUXSCAPE_TEST_DISTURBANCE_OUT names a finished DIR to reuse
    (treated as read-only)."""
    reuse = os.environ.get("FLUXSCAPE_TEST_DISTURBANCE_OUT")
    if reuse:
        return Path(reuse)

    def build(folder: Path) -> None:
        run_cli("sample-data", folder / "sample", "--preset", "disturbance")
        recipe = REPO / "workflows" / "disturbance-fire.yaml"
        run_cli("run", on_sample(recipe, folder / "sample", folder))

    return shared_folder(tmp_path_factory, "disturbance", build)


@pytest.fixture(scope="session")
def soil_sample(tmp_path_factory) -> Path:
    """The ``soil`` preset's sample world (COSORE chambers, DEM, MODIS), written once for the
    session (read-only: tests/test_reader_cosore.py reads it, tests/test_soil_flux.py runs the
    soil recipe on it into a folder of its own)."""

    def build(folder: Path) -> None:
        run_cli("sample-data", folder / "sample", "--preset", "soil")

    return shared_folder(tmp_path_factory, "soil", build) / "sample"


SMALL_WORKFLOW = """\
name: small
region:
  bbox: [138.0, 36.0, 138.5, 36.5]
  crs: EPSG:4326
  resolution: 0.01
tile_size: 25
period: {{start: 2021-01-01, end: 2021-12-31, step: 16D}}
data_dir: {data_dir}
inputs:
  modis_vi:
    reader: modis_hdf4
    paths: ["modis/*.hdf"]
products:
  vi:
    kind: vi
    input: modis_vi
    variables: [ndvi, evi]
output:
  dir: out
dask:
  workers: {workers}
"""


def small_workflow(folder: Path, data_dir: Path, workers: int = 2) -> Path:
    """A 0.5 x 0.5 degree, 4-tile, one-year workflow on ``data_dir`` written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "small.yaml"
    path.write_text(SMALL_WORKFLOW.format(data_dir=data_dir, workers=workers))
    return path


@pytest.fixture(scope="session")
def small_reference(tmp_path_factory, sample_dir: Path) -> Path:
    """An uninterrupted local run of the small workflow; returns its output folder."""

    def build(folder: Path) -> None:
        run_cli("run", small_workflow(folder, sample_dir), "--out", folder / "out")

    return shared_folder(tmp_path_factory, "small_ref", build) / "out"


def copy_sample_inputs(sample_dir: Path, dest: Path) -> Path:
    """A copy of the sample world's MODIS folder (symlinked files) that a test may extend."""
    (dest / "modis").mkdir(parents=True)
    for f in (sample_dir / "modis").iterdir():
        (dest / "modis" / f.name).symlink_to(f)
    shutil.copytree(sample_dir / "truth", dest / "truth")
    return dest


def chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing (.ci/run installs Debian's chromium package)")
        pytest.skip("Debian's chromium package is not installed (.ci/run installs it)")
    return exe


def headless(url: str, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    """Headless Chromium on ``url``, console messages logged to stderr."""
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1100,700",
        "--virtual-time-budget=20000",
        "--enable-logging=stderr",
        "--v=0",
        *extra,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(config_for_port):
    """uvicorn in a thread of this process on a free loopback port; ``config_for_port(port)``
    gives its ``uvicorn.Config``. Yields the port; stops the server on exit."""
    import threading
    import time

    import uvicorn

    port = free_port()
    srv = uvicorn.Server(config_for_port(port))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    assert srv.started
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def served_app(app):
    """The ASGI ``app`` served by :func:`served` (warnings only); yields its base URL."""
    import uvicorn

    with served(
        lambda port: uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    ) as port:
        yield f"http://127.0.0.1:{port}"


def assert_detection_floors(ds, truth: dict) -> None:
    """Issue 4's floors for a year of a disturbance store against the world's truth on its
    pixels: F1 >= 0.85, median onset error <= 16 days, false alarms <= 2 %."""
    from fluxscape.products.disturbance import score_detections

    scores = score_detections(
        ds.disturbed.values,
        truth["disturbed"],
        detected_date=ds.date.values,
        reference_date=truth["date"],
    )
    assert scores["f1"] >= 0.85, scores
    assert scores["median_abs_date_error"] <= 16, scores
    assert scores["false_alarm_rate"] <= 0.02, scores
