"""``fluxscape update``: a replay of the sample world's AHI P-Tree scenes delivered step by step
into an inbox, an update after each delivery, ends with the same stores as a batch run over
the same period; provisional periods are replaced; a killed update rerun gives the same
stores; nothing new is answered from a listing; two updates never run at once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import FLUXSCAPE, run_cli

#: Scenes every 4th day (02:30 UTC) delivered in four steps: three 16-day periods, the last
#: step reaching period.end (all periods final).
STEPS = [
    ["202101/01", "202101/05", "202101/09"],
    ["202101/13", "202101/17", "202101/21"],
    ["202101/25", "202101/29", "202102/02"],
    ["202102/06", "202102/10", "202102/14"],
]
#: period_status of vi (three 16-day periods), phenology and disturbance (2021) after each step
VI_STATUS = [[1], [0, 1], [0, 0, 1], [0, 0, 0]]
YEAR_STATUS = [[1], [1], [1], [0]]

WORKFLOW = """\
name: nrt
region:
  bbox: [138.0, 35.5, 138.5, 36.0]
  crs: EPSG:4326
  resolution: 0.01
tile_size: 25
period: {{start: 2021-01-01, end: 2021-02-14, step: 16D}}
data_dir: {inbox}
inputs:
  ahi:
    reader: ahi_ptree
    paths: ["*.nc"]
products:
  vi:
    kind: vi
    input: ahi
    variables: [ndvi, evi2]
  phenology:
    kind: phenology
    source: vi
    method: whittaker
    seasons: 1
  disturbance:
    kind: disturbance
    source: vi
    history: [2021-01-01, 2021-01-20]
    monitor: [2021-01-21, 2021-02-14]
output:
  dir: {out}
dask:
  workers: 1
"""


def _setup(folder: Path) -> tuple[Path, Path, Path]:
    inbox, out = folder / "inbox", folder / "out"
    inbox.mkdir(parents=True)
    wf = folder / "nrt.yaml"
    wf.write_text(WORKFLOW.format(inbox=inbox, out=out))
    return wf, inbox, out


def _deliver(sample_dir: Path, inbox: Path, days: list[str]) -> None:
    """Copy the P-Tree scenes of ``days`` (YYYYMM/DD) into the inbox."""
    for day in days:
        for f in (sample_dir / "ahi" / "ptree" / day).rglob("*.nc"):
            shutil.copy2(f, inbox / f.name)


def _update(wf: Path):
    from fluxscape.pipeline.update import update_workflow

    return update_workflow(wf)


def _status(store: Path) -> list[int]:
    with xr.open_zarr(store, consolidated=True) as ds:
        return ds["period_status"].values.tolist()


PRODUCTS = ("vi", "phenology", "disturbance")


def assert_same_stores(updated: Path, batch: Path, products=PRODUCTS) -> None:
    """Every variable of the batch store equal in the updated one (NaN == NaN), same
    coordinates; provenance attributes aside."""
    for name in products:
        with (
            xr.open_zarr(updated / "products" / f"{name}.zarr", consolidated=True) as a,
            xr.open_zarr(batch / "products" / f"{name}.zarr", consolidated=True) as b,
        ):
            assert dict(a.sizes) == dict(b.sizes), name
            for coord in b.coords:
                np.testing.assert_array_equal(a[coord].values, b[coord].values)
            for var in b.data_vars:
                assert a[var].dtype == b[var].dtype, (name, var)
                assert np.array_equal(a[var].values, b[var].values, equal_nan=True), (name, var)


@pytest.fixture(scope="module")
def replay(tmp_path_factory, sample_dir):
    """The replay: after each delivery one update (in this process); returns the folder,
    the results and the status of each store after each step."""
    folder = tmp_path_factory.mktemp("replay")
    wf, inbox, out = _setup(folder)
    results, status = [], []
    for days in STEPS:
        _deliver(sample_dir, inbox, days)
        results.append(_update(wf))
        status.append({p: _status(out / "products" / f"{p}.zarr") for p in PRODUCTS})
    return folder, results, status


@pytest.fixture(scope="module")
def batch(replay):
    """A batch run of the same workflow over all the files delivered."""
    folder = replay[0]
    run_cli("run", folder / "nrt.yaml", "--out", folder / "batch")
    return folder / "batch"


def test_replay_ends_equal_to_the_batch_run(replay, batch):
    folder, results, _ = replay
    assert_same_stores(folder / "out", batch)
    first, *later = results
    assert [p.action for p in first.products] == ["built"] * 3
    for result in later:
        assert [p.action for p in result.products] == ["updated"] * 3


def test_only_the_periods_with_new_files_are_recomputed(replay):
    _, results, _ = replay
    changed = [r.products[0].periods_changed for r in results]
    assert changed == [
        ["2021-01-01"],
        ["2021-01-01", "2021-01-17"],
        ["2021-01-17", "2021-02-02"],
        ["2021-02-02"],
    ]
    assert [r.products[0].inputs_added for r in results] == [3, 3, 3, 3]
    # a period with a composite already gets the new scenes added to it, the others are made
    continued = [r.products[0].periods_continued for r in results]
    assert continued == [[], ["2021-01-01"], ["2021-01-17"], ["2021-02-02"]]


def test_derived_products_follow_when_a_period_closes(tmp_path, sample_dir):
    """A new scene in the open period only: vi is updated, phenology waits (kept); the next
    scene closes the period and phenology catches up with both."""
    wf, inbox, out = _setup(tmp_path)
    _deliver(sample_dir, inbox, ["202101/01", "202101/05", "202101/09"])
    _update(wf)
    _deliver(sample_dir, inbox, ["202101/13"])  # still in the open period 2021-01-01
    waiting = {p.name: p.action for p in _update(wf).products}
    assert waiting == {"vi": "updated", "phenology": "kept", "disturbance": "kept"}
    _deliver(sample_dir, inbox, ["202101/17"])  # closes 2021-01-01
    after = {p.name: (p.action, p.tiles_run) for p in _update(wf).products}
    assert after == {
        "vi": ("updated", 4),
        "phenology": ("updated", 4),
        "disturbance": ("updated", 4),
    }


def test_provisional_periods_are_replaced_when_they_close(replay):
    _, _, status = replay
    assert [s["vi"] for s in status] == VI_STATUS
    assert [s["phenology"] for s in status] == YEAR_STATUS
    assert [s["disturbance"] for s in status] == YEAR_STATUS


def test_update_history_in_the_store_and_the_catalog(replay):
    folder, results, _ = replay
    store = folder / "out" / "products" / "vi.zarr"
    with xr.open_zarr(store, consolidated=True) as ds:
        history = ds.attrs["update_history"]
        flags = ds["period_status"].attrs
    assert [h["inputs_added"] for h in history] == [3, 3, 3, 3]
    assert history[-1]["periods_changed"] == ["2021-02-02"]
    assert history[-1]["files"][0].startswith("NC_H08_20210206")
    assert flags["flag_meanings"] == "final provisional"
    collection = json.loads((folder / "out" / "catalog" / "nrt.vi" / "collection.json").read_text())
    assert collection["fluxscape:update_history"] == history
    assert collection["fluxscape:run_id"] == results[-1].version
    assert Path(collection["assets"]["zarr"]["href"]).name == f"{results[-1].version}.zarr"


def test_unchanged_chunks_are_shared_with_the_previous_version(replay):
    """A version's chunks of periods the last update did not touch are hard links."""
    folder = replay[0]
    current = (folder / "out" / "products" / "vi.zarr").resolve()
    old = sorted((current.parent).glob("*.zarr"))
    assert len(old) == 2  # the current version and the one it replaced
    chunk = current / "ndvi" / "0.0.0"  # period 2021-01-01, untouched by the last update
    assert chunk.stat().st_nlink >= 2
    assert (current / "ndvi" / "2.0.0").stat().st_nlink == 1  # recomputed: a new file


def test_nothing_new_is_decided_from_the_listing(replay):
    """No file changed: "nothing new", exit 0, without importing xarray (no file read)."""
    wf = replay[0] / "nrt.yaml"
    code = (
        "import sys; from fluxscape.pipeline.update_record import nothing_new; "
        f"print(nothing_new({str(wf)!r}) is not None, 'xarray' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["True", "False"]
    proc = run_cli("update", wf)
    assert proc.stdout.strip() == "nothing new"


def test_a_second_update_is_refused_while_one_runs(tmp_path, replay):
    from fluxscape.pipeline.outdir import OutputLock

    folder = replay[0]
    touched = sorted((folder / "inbox").glob("*.nc"))[0]
    stamp = touched.stat()
    try:
        os.utime(touched, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1))  # a changed file
        with OutputLock(folder / "out", command="fluxscape update (test)"):
            proc = run_cli("update", folder / "nrt.yaml", check=False)
    finally:
        os.utime(touched, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert proc.returncode == 1
    assert "another fluxscape run is writing here" in proc.stderr
    assert "fluxscape update (test)" in proc.stderr
    assert "then update again" in proc.stderr


def _building(out: Path) -> bool:
    return (out / ".fluxscape" / "building" / "vi.zarr" / "ndvi").is_dir()


def test_a_killed_update_rerun_equals_the_uninterrupted_one(tmp_path, sample_dir, batch):
    """The last delivery's update is killed (SIGKILL) while it builds the new vi version;
    the published stores are untouched, and the next update gives the batch run's stores."""
    wf, inbox, out = _setup(tmp_path)
    _deliver(sample_dir, inbox, [d for step in STEPS[:3] for d in step])
    _update(wf)
    before = os.readlink(out / "products" / "vi.zarr")
    _deliver(sample_dir, inbox, STEPS[3])
    proc = subprocess.Popen(
        [*FLUXSCAPE, "update", str(wf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not _building(out):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the update finished before the kill"
    assert os.readlink(out / "products" / "vi.zarr") == before  # readers see the old version
    assert _status(out / "products" / "vi.zarr") == [0, 0, 1]
    again = run_cli("update", wf)
    assert "vi: updated" in again.stdout
    assert_same_stores(out, batch)
    assert _status(out / "products" / "vi.zarr") == [0, 0, 0]


def test_an_update_cut_short_between_products_is_finished_by_the_next(
    tmp_path, sample_dir, batch, monkeypatch
):
    """vi is published, then the phenology update fails: the next update recomputes the
    phenology tiles the vi versions since its own changed, and nothing else."""
    from fluxscape.pipeline.steps import step_for

    wf, inbox, out = _setup(tmp_path)
    _deliver(sample_dir, inbox, [d for step in STEPS[:3] for d in step])
    _update(wf)
    _deliver(sample_dir, inbox, STEPS[3])
    phenology = step_for("phenology")

    def boom(task):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(phenology), "run_tile", staticmethod(boom))
    with pytest.raises(KeyboardInterrupt):
        _update(wf)
    monkeypatch.undo()
    result = _update(wf)
    actions = {p.name: (p.action, p.tiles_run) for p in result.products}
    assert actions == {
        "vi": ("kept", 0),
        "phenology": ("updated", 4),
        "disturbance": ("updated", 4),
    }
    assert_same_stores(out, batch)


def test_watch_runs_one_update_per_tick_and_stops(replay):
    proc = run_cli("watch", replay[0] / "nrt.yaml", "--every", "0.2s", "--times", "2")
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and all(line.endswith(" nothing new") for line in lines)


@pytest.mark.parametrize(
    ("text", "seconds"), [("10m", 600), ("30s", 30), ("1h", 3600), ("45", 45), ("0.5m", 30)]
)
def test_watch_intervals(text, seconds):
    from fluxscape.cli import parse_every

    assert parse_every(text) == seconds


@pytest.mark.parametrize("text", ["0s", "-1m", "ten minutes", ""])
def test_watch_refuses_bad_intervals(text):
    import click

    from fluxscape.cli import parse_every

    with pytest.raises(click.BadParameter):
        parse_every(text)


FLUX_PRODUCTS = """\
  towers:
    reader: fluxnet
    paths: ["{towers}/FLX_*_FLUXNET2015_FULLSET_DD_*.csv"]
products:
  vi:
    kind: vi
    input: ahi
    variables: [ndvi, evi2]
  flux:
    kind: flux
    source: vi
    predictors: [ndvi, evi2]
    towers: towers
    targets: [gpp]
    methods: [rf]
    ensemble_folds: 2
    method_params:
      rf: {{n_estimators: 10}}
    cv: loso
output:
"""


def _flux_setup(folder: Path, sample_dir: Path) -> tuple[Path, Path, Path]:
    wf, inbox, out = _setup(folder)
    text = wf.read_text()
    head, tail = text.split("products:\n")
    tail = tail.split("output:\n")[1]
    wf.write_text(head + FLUX_PRODUCTS.format(towers=sample_dir / "towers") + tail)
    return wf, inbox, out


def _model(out: Path) -> list[str]:
    with xr.open_zarr(out / "products" / "flux.zarr", consolidated=True) as ds:
        return ds.attrs["models"]


def test_flux_keeps_its_model_until_asked_to_retrain(tmp_path, sample_dir):
    """Updates predict the new periods with the saved model (same card); ``retrain`` trains
    on the data so far and then equals a build from all the files at once."""
    from fluxscape.pipeline.update import update_workflow

    wf, inbox, out = _flux_setup(tmp_path / "a", sample_dir)
    _deliver(sample_dir, inbox, [d for step in STEPS[:2] for d in step])
    update_workflow(wf)
    first = _model(out)
    _deliver(sample_dir, inbox, [d for step in STEPS[2:] for d in step])
    result = update_workflow(wf)
    assert {p.name: p.action for p in result.products} == {"vi": "updated", "flux": "updated"}
    assert _model(out) == first  # no retraining
    assert _status(out / "products" / "flux.zarr") == [0, 0, 0]
    touched = sorted(inbox.glob("*.nc"))[-1]
    os.utime(touched)  # something to update, with retraining this time
    update_workflow(wf, retrain=True)
    assert _model(out) != first
    whole, whole_inbox, whole_out = _flux_setup(tmp_path / "b", sample_dir)
    _deliver(sample_dir, whole_inbox, [d for step in STEPS for d in step])
    update_workflow(whole)
    with (
        xr.open_zarr(out / "products" / "flux.zarr", consolidated=True) as a,
        xr.open_zarr(whole_out / "products" / "flux.zarr", consolidated=True) as b,
    ):
        for var in ("gpp", "gpp_sd"):
            np.testing.assert_allclose(a[var].values, b[var].values, rtol=1e-6, equal_nan=True)


def test_watch_stops_on_ctrl_c(replay):
    proc = subprocess.Popen(
        [*FLUXSCAPE, "watch", str(replay[0] / "nrt.yaml"), "--every", "0.2s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()  # the first tick
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert first.endswith(" nothing new\n")
    assert proc.returncode == 0
    assert err.strip().endswith("watch stopped") and "Traceback" not in err


def test_an_unreadable_granule_cache_rebuilds_the_product(tmp_path, sample_dir, batch):
    from fluxscape.pipeline.update import GRANULES_FILE

    wf, inbox, out = _setup(tmp_path)
    _deliver(sample_dir, inbox, [d for step in STEPS[:3] for d in step])
    _update(wf)
    (out / "products" / "vi.zarr" / GRANULES_FILE).write_bytes(b"not a pickle")
    _deliver(sample_dir, inbox, STEPS[3])
    result = _update(wf)
    assert result.products[0].action == "built"
    assert_same_stores(out, batch)
