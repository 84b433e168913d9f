"""Issue #19: no write outside OUT, one writer at a time, budgets before work, rebuilds that
readers never see half-built, self-healing publication, inputs that change during a run."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import run_cli, served

from fluxscape.catalog import index
from fluxscape.catalog.api import open_catalog
from fluxscape.catalog.publish import publication_problem, publish_store
from fluxscape.errors import FluxscapeError, WorkflowError
from fluxscape.pipeline import config as cfg
from fluxscape.pipeline.budget import check_budget
from fluxscape.pipeline.inputs import InputChanged, TileInputs, index_input, read_onto_tile
from fluxscape.pipeline.outdir import OutputLock, check_output_dir, inside
from fluxscape.pipeline.store import publish_version

VI_WORKFLOW = """\
name: hard
region: {{bbox: [138.0, 35.5, 138.5, 36.0], resolution: 0.01}}
tile_size: 25
period: {{start: 2021-01-01, end: 2021-12-31}}
data_dir: {data}
inputs:
  modis: {{reader: modis_hdf4, paths: ["modis/MOD13A2.A2021*.hdf"]}}
products:
  {product}: {{kind: vi, input: modis, variables: [ndvi]}}
dask: {{processes: false, workers: 1}}
"""


def _workflow(sample: Path, product: str = "vi") -> str:
    return VI_WORKFLOW.format(data=sample, product=json.dumps(product))


# --- names and paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../evilprod", "a/b", "/tmp/victim", "x.y", "", "a" * 65])
def test_product_names_that_could_leave_out_are_refused_before_anything_is_written(
    name, tmp_path, sample_dir
):
    wf_file = tmp_path / "wf.yaml"
    wf_file.write_text(_workflow(sample_dir, name))
    out = tmp_path / "out"
    proc = run_cli("run", wf_file, "--out", out, check=False)
    assert proc.returncode == 1
    assert "products." in proc.stderr and "letters, digits" in proc.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wf.yaml"]


def test_input_and_workflow_names_follow_the_same_pattern(sample_dir):
    text = (
        _workflow(sample_dir)
        .replace("  modis:", '  "../m":')
        .replace("input: modis", "input: ../m")
    )
    with pytest.raises(WorkflowError, match=r"inputs\.\.\./m: a name may hold only"):
        cfg.parse_workflow(text)
    with pytest.raises(WorkflowError, match="name"):
        cfg.parse_workflow(_workflow(sample_dir).replace("name: hard", "name: ../hard"))


@pytest.mark.parametrize("where", ["/", "home", "/usr"])
def test_system_and_home_folders_are_refused_as_output(where):
    path = Path.home() if where == "home" else Path(where)
    with pytest.raises(FluxscapeError, match="output.dir: .* system or home folder"):
        check_output_dir(path)


def test_a_folder_holding_other_files_is_refused_unless_it_holds_the_data(tmp_path):
    out = tmp_path / "project"
    (out / "sample").mkdir(parents=True)
    (out / "thesis.tex").write_text("mine")
    with pytest.raises(FluxscapeError, match=r"holds files that no fluxscape run wrote .*thesis"):
        check_output_dir(out, [out / "sample"])
    (out / "thesis.tex").unlink()
    assert check_output_dir(out, [out / "sample"]) == out.resolve()  # the sample world is ok
    (out / "notes").mkdir()
    (out / ".fluxscape").mkdir()  # an earlier run's output: whatever else it holds is its own
    assert check_output_dir(out) == out.resolve()


def test_paths_that_resolve_outside_out_are_refused(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "products").symlink_to(elsewhere)
    with pytest.raises(FluxscapeError, match="outside the output folder"):
        inside(out, out / "products" / "vi.zarr")
    with pytest.raises(FluxscapeError, match="outside the output folder"):
        inside(out, out / ".." / "x")
    assert inside(out, out / "quicklooks" / "vi") == (out / "quicklooks" / "vi").resolve()


def test_a_run_whose_products_folder_leads_outside_writes_nothing_there(tmp_path, sample_dir):
    wf_file = tmp_path / "wf.yaml"
    wf_file.write_text(_workflow(sample_dir))
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (out / ".fluxscape").mkdir(parents=True)
    elsewhere.mkdir()
    (out / "products").symlink_to(elsewhere)
    proc = run_cli("run", wf_file, "--out", out, check=False)
    assert proc.returncode == 1 and "outside the output folder" in proc.stderr
    assert list(elsewhere.iterdir()) == []


# --- one writer --------------------------------------------------------------------------------


def test_a_second_writer_is_refused_with_the_holder_named(tmp_path):
    with OutputLock(tmp_path, command="fluxscape run a.yaml"):
        with pytest.raises(FluxscapeError, match=rf"pid {os.getpid()} on .*fluxscape run a.yaml"):
            OutputLock(tmp_path).__enter__()
    with OutputLock(tmp_path):  # released: the next run takes it
        pass


def test_the_lock_of_a_dead_run_is_taken_over(tmp_path):
    holder = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from fluxscape.pipeline.outdir import OutputLock; "
            "OutputLock(sys.argv[1], 'dead run').__enter__(); import os; os._exit(9)",
            str(tmp_path),
        ],
        check=False,
    )
    assert holder.returncode == 9
    assert "dead run" in (tmp_path / ".fluxscape" / "lock").read_text()
    with OutputLock(tmp_path, command="next"):
        assert "next" in (tmp_path / ".fluxscape" / "lock").read_text()


def test_a_run_into_a_folder_another_run_holds_exits_with_the_lock_message(tmp_path, sample_dir):
    wf_file = tmp_path / "wf.yaml"
    wf_file.write_text(_workflow(sample_dir))
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from fluxscape.pipeline.outdir import OutputLock\n"
            "with OutputLock(sys.argv[1], 'fluxscape run other.yaml'):\n"
            "    print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = run_cli("run", wf_file, "--out", out, check=False)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1
    assert f"another fluxscape run is writing here (pid {holder.pid}" in proc.stderr
    assert "fluxscape run other.yaml" in proc.stderr
    assert not (out / "products").exists() and not (out / "workflow.yaml").exists()


# --- budgets -----------------------------------------------------------------------------------


def _budget_workflow(sample_dir, **changes) -> cfg.Workflow:
    wf, base = cfg.load_workflow("demo")
    wf = cfg.resolve_workflow(wf, base, data_dir=sample_dir)
    region = changes.pop("region", None)
    if region:
        wf = wf.model_copy(update={"region": wf.region.model_copy(update=region)})
    period = changes.pop("period", None)
    if period:
        wf = wf.model_copy(update={"period": wf.period.model_copy(update=period)})
    return wf.model_copy(update=changes)


def test_a_continental_region_at_a_tenth_of_a_metre_is_refused_at_once(sample_dir):
    wf = _budget_workflow(
        sample_dir, region={"bbox": (100.0, 20.0, 150.0, 55.0), "resolution": 0.0001}
    )
    start = time.monotonic()
    with pytest.raises(WorkflowError, match=r"tiles .* more than limits.max_tiles .*hint"):
        check_budget(wf)
    assert time.monotonic() - start < 2


def test_two_centuries_of_daily_steps_are_refused(sample_dir):
    from datetime import date

    wf = _budget_workflow(
        sample_dir, period={"start": date(1900, 1, 1), "end": date(2100, 12, 31), "step": "1D"}
    )
    with pytest.raises(WorkflowError, match=r"time steps .* limits.max_time_steps"):
        check_budget(wf)


def test_a_tile_larger_than_a_worker_is_refused_with_a_hint(sample_dir):
    from datetime import date

    wf = _budget_workflow(
        sample_dir, period={"start": date(2000, 1, 1), "end": date(2020, 12, 31), "step": "1D"}
    )
    wf = wf.model_copy(update={"tile_size": 4096})
    wf = wf.model_copy(update={"region": wf.region.model_copy(update={"resolution": 0.0005})})
    with pytest.raises(WorkflowError, match=r"tile_size: .* smaller tile_size"):
        check_budget(wf)


def test_the_shipped_recipes_fit_their_budgets():
    for recipe in sorted((Path(__file__).parents[1] / "workflows").glob("*.yaml")):
        budget = check_budget(cfg.load_workflow(recipe)[0])
        assert budget.tiles >= 1 and budget.tile_bytes > 0


# --- inputs that change during a run -----------------------------------------------------------


def test_a_file_changed_after_indexing_fails_the_read_naming_it(tmp_path, sample_dir):
    src = sorted((sample_dir / "modis").glob("MOD13A2.A2021*.hdf"))[0]
    copy = tmp_path / src.name
    shutil.copy(src, copy)
    idx = index_input("modis", "modis_hdf4", [str(copy)])
    (granule,) = idx.granules
    grid = cfg.parse_workflow(_workflow(sample_dir))
    from fluxscape.pipeline.grid import target_grid

    tile = target_grid(grid.region, 25).tiles[0]
    assert list(read_onto_tile("modis_hdf4", [granule], tile.geobox, {"ndvi"}, {}, TileInputs()))
    with open(copy, "r+b") as fh:
        fh.truncate(copy.stat().st_size // 2)
    with pytest.raises(InputChanged, match=rf"input {copy} changed"):
        list(read_onto_tile("modis_hdf4", [granule], tile.geobox, {"ndvi"}, {}, TileInputs()))
    copy.unlink()
    with pytest.raises(InputChanged, match="was removed"):
        list(read_onto_tile("modis_hdf4", [granule], tile.geobox, {"ndvi"}, {}, TileInputs()))


def test_an_input_truncated_mid_run_fails_the_product_naming_the_file(
    tmp_path, sample_dir, monkeypatch
):
    """The run's first tile truncates an input the later tiles read: the product fails with
    the file named and nothing is published (tiles run in threads of this process)."""
    from fluxscape.pipeline import run as runner

    data = tmp_path / "data"
    (data / "modis").mkdir(parents=True)
    files = sorted((sample_dir / "modis").glob("MOD13A2.A2021*.hdf"))
    for f in files:
        shutil.copy(f, data / "modis" / f.name)
    victim = data / "modis" / files[3].name
    wf_file = tmp_path / "wf.yaml"
    wf_file.write_text(_workflow(data))
    original, calls = runner.execute_tile, []

    def first_tile_truncates(run_tile, task, store):
        result = original(run_tile, task, store)
        if not calls:
            with open(victim, "r+b") as fh:
                fh.truncate(1000)
        calls.append(task.tile.id)
        return result

    monkeypatch.setattr(runner, "execute_tile", first_tile_truncates)
    with pytest.raises(FluxscapeError, match=rf"products.vi: input {victim} changed .*--fresh"):
        runner.run_workflow(wf_file, out=tmp_path / "out")
    assert not (tmp_path / "out" / "products" / "vi.zarr").exists()
    assert index.read_rows(tmp_path / "out" / "catalog") == []


# --- publication -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gosat_run(tmp_path_factory, sample_dir) -> Path:
    out = tmp_path_factory.mktemp("hardening") / "out"
    run_cli("run", "gosat-xco2", "--data-dir", sample_dir, "--out", out)
    return out


def test_stores_are_versions_behind_one_link(gosat_run):
    link = gosat_run / "products" / "gosat_l3.zarr"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    target = link.resolve()
    assert target.parent == (gosat_run / "products" / ".versions" / "gosat_l3").resolve()
    coll = json.loads(
        (gosat_run / "catalog" / "gosat-xco2.gosat_l3" / "collection.json").read_text()
    )
    href = coll["assets"]["zarr"]["href"]
    assert (gosat_run / "catalog" / "gosat-xco2.gosat_l3" / href).resolve() == target


def test_publish_version_keeps_the_replaced_version_and_removes_older_ones(tmp_path):
    store = tmp_path / "products" / "p.zarr"
    versions = []
    for v in ("v1", "v2", "v3"):
        staging = tmp_path / "building" / "p.zarr"
        staging.mkdir(parents=True)
        (staging / "data").write_text(v)
        versions.append(publish_version(staging, store, v))
        assert (store / "data").read_text() == v
    assert not versions[0].exists() and versions[1].exists() and versions[2].exists()


def test_a_plain_store_folder_of_an_older_release_becomes_a_version(tmp_path):
    store = tmp_path / "products" / "p.zarr"
    store.mkdir(parents=True)
    (store / "data").write_text("old")
    staging = tmp_path / "new.zarr"
    staging.mkdir()
    (staging / "data").write_text("new")
    publish_version(staging, store, "v2")
    assert store.is_symlink() and (store / "data").read_text() == "new"
    (legacy,) = (tmp_path / "products" / ".versions" / "p").glob("legacy-*.zarr")
    assert (legacy / "data").read_text() == "old"


def test_a_publication_cut_short_by_a_full_disk_is_repaired_by_resume(
    gosat_run, tmp_path, monkeypatch
):
    cat = tmp_path / "catalog"
    store = gosat_run / "products" / "gosat_l3.zarr"

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(cat / index.INDEX_NAME))

    publish_store(store, cat, "other", "vi")  # an index exists, with another product
    monkeypatch.setattr(index, "upsert", disk_full)
    with pytest.raises(OSError):
        publish_store(store, cat, "gosat-xco2", "gosat_l3")
    monkeypatch.undo()
    assert (cat / "gosat-xco2.gosat_l3" / "collection.json").exists()  # written, not indexed
    assert "does not list" in publication_problem(store, cat, "gosat-xco2", "gosat_l3")
    assert [e.id for e in open_catalog(cat).search()] == ["other.vi"]
    publish_store(store, cat, "gosat-xco2", "gosat_l3", only_if_missing=True)
    assert publication_problem(store, cat, "gosat-xco2", "gosat_l3") is None
    assert {e.id for e in open_catalog(cat).search()} == {"other.vi", "gosat-xco2.gosat_l3"}


def test_resume_repairs_an_index_that_lost_the_product(gosat_run):
    cat = gosat_run / "catalog"
    index.upsert(cat, remove="gosat-xco2.gosat_l3")
    assert open_catalog(cat).search() == []
    proc = run_cli("run", gosat_run / "workflow.yaml", "--resume")
    assert "complete" in proc.stderr + proc.stdout
    assert [e.id for e in open_catalog(cat).search()] == ["gosat-xco2.gosat_l3"]


def _full_read(cat: Path) -> tuple[str, np.ndarray]:
    (entry,) = open_catalog(cat).search(product="gosat_l3")
    ds = open_catalog(cat).open(entry)
    return entry.id, ds["xco2"].values


def test_fresh_republish_never_shows_readers_a_partial_store(gosat_run):
    """A reader loops search + open + full read (Python, and over HTTP) for the whole of a
    ``--fresh`` rebuild: every read is a complete store equal to the published one."""
    import uvicorn

    from fluxscape.catalog.serve import create_app

    cat = gosat_run / "catalog"
    _, expected = _full_read(cat)
    app = create_app(cat)
    server = served(lambda p: uvicorn.Config(app, host="127.0.0.1", port=p, log_level="warning"))
    port = server.__enter__()
    reads, failures, stop = [], [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                _, values = _full_read(cat)
                remote = xr.open_zarr(f"http://127.0.0.1:{port}/zarr/gosat-xco2.gosat_l3")
                for got in (values, remote["xco2"].values):
                    np.testing.assert_array_equal(got, expected)
                reads.append(1)
            except Exception as exc:  # every failure is reported below
                failures.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        run_cli("run", gosat_run / "workflow.yaml", "--fresh")
    finally:
        stop.set()
        thread.join()
        server.__exit__(None, None, None)
    assert failures == []
    assert len(reads) >= 3
    assert len(list((gosat_run / "products" / ".versions" / "gosat_l3").iterdir())) == 2


def test_resume_of_a_finished_product_reports_the_skipped_inputs_the_store_lists(tmp_path):
    from fluxscape.pipeline.run import _stored_skipped

    store = tmp_path / "s.zarr"
    xr.Dataset(attrs={"skipped_inputs": [{"file": "a.hdf", "reason": "bad"}]}).to_zarr(store)
    assert _stored_skipped(store) == [{"file": "a.hdf", "reason": "bad"}]


def test_a_store_version_keeps_its_quicklooks_in_the_catalog(gosat_run):
    coll = json.loads(
        (gosat_run / "catalog" / "gosat-xco2.gosat_l3" / "collection.json").read_text()
    )
    looks = [a["href"] for k, a in coll["assets"].items() if k.startswith("quicklook_")]
    assert looks and all("quicklooks/gosat_l3/" in h for h in looks)
    base = gosat_run / "catalog" / "gosat-xco2.gosat_l3"
    assert all((base / h).resolve().is_file() for h in looks)
