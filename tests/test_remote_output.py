"""Outputs on object storage (issue #17), against a real S3 API on 127.0.0.1 (moto's server):
a small vi + phenology + flux workflow with its inputs read from one bucket and its outputs
written to another gives the local run's stores chunk by chunk; the catalog and stores open
from the bucket, also through ``fluxscape serve``; a run killed mid-way resumes from the
bucket's state and ends equal; a reader never sees a half-built store; no credential reaches
any object, local file or log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import FLUXSCAPE, run_cli, small_workflow
from test_remote import BUCKET, SECRET, s3  # noqa: F401  (the moto server fixture)

OUT_BUCKET = "fluxscape-outputs"
PHENOLOGY = """\
  phenology:
    kind: phenology
    source: vi
    variable: ndvi
    method: whittaker
    seasons: 1
"""


FLUX = """\
  flux:
    kind: flux
    source: vi
    predictors: [ndvi, evi]
    towers: towers
    meteo: meteo
    meteo_variables: [ta]
    targets: [gpp]
    methods: [rf]
    ensemble_folds: 2
    method_params:
      rf: {{n_estimators: 20, min_samples_leaf: 5}}
    cv: loso
    regions: regions/prefectures.geojson
"""
TOWERS = """\
  towers:
    reader: fluxnet
    paths: ["towers/FLX_*_FLUXNET2015_FULLSET_DD_*.csv"]
  meteo:
    reader: cf_meteo
    paths: ["meteo/era5_daily_*.nc"]
"""


def _workflow(folder: Path, data_dir, towers: bool = False) -> Path:
    """The small 4-tile vi workflow (moved south to hold five towers) plus a phenology
    product read from its vi store and, with ``towers``, a one-target flux product on the
    towers, meteorology and region polygons under ``data_dir`` (read outside the granule
    index: tables, NetCDF and GeoJSON from the bucket too)."""
    path = small_workflow(folder, data_dir, workers=1)
    text = path.read_text().replace("[138.0, 36.0, 138.5, 36.5]", "[138.0, 35.5, 138.5, 36.0]")
    products = PHENOLOGY
    if towers:
        text = text.replace("products:\n", TOWERS + "products:\n")
        products += FLUX.format()
    path.write_text(text.replace("output:\n", products + "output:\n"))
    return path


def _fs():
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True)


def _objects(prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix`` (``bucket/path``), by path relative to it."""
    fs = _fs()
    return {p[len(prefix) + 1 :]: fs.cat_file(p) for p in fs.find(prefix)}


def _local_chunks(store: Path) -> dict[str, bytes]:
    store = store.resolve()
    return {
        str(p.relative_to(store)): p.read_bytes()
        for p in store.rglob("*")
        if p.is_file() and p.name not in (".zmetadata", ".zattrs", ".zarray", ".zgroup")
    }


def _current(prefix: str, product: str) -> str:
    """The URL of a product's current version, from its pointer object."""
    doc = json.loads(_fs().cat_file(f"{prefix}/products/{product}.zarr.current"))
    return f"s3://{prefix}/products/{doc['store']}"


@pytest.fixture(scope="module")
def local_run(sample_dir: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("s3out_local")
    run_cli("run", _workflow(folder, sample_dir, towers=True), "--out", folder / "out")
    return folder / "out"


@pytest.fixture(scope="module")
def bucket_run(s3, sample_dir, tmp_path_factory):  # noqa: F811
    """The workflow with inputs from ``s3://BUCKET/sample`` and outputs to
    ``s3://OUT_BUCKET/runs/small``; returns (output prefix, folder with stdout.txt)."""
    _fs().mkdir(OUT_BUCKET)
    folder = tmp_path_factory.mktemp("s3out_bucket")
    prefix = f"{OUT_BUCKET}/runs/small"
    wf = _workflow(folder, f"s3://{BUCKET}/sample", towers=True)
    cwd = folder / "cwd"  # where the command runs: an output URL must never become a local path
    cwd.mkdir()
    proc = run_cli("run", wf, "--out", f"s3://{prefix}", cwd=cwd)
    (folder / "stdout.txt").write_text(proc.stdout + proc.stderr)
    return prefix, folder


def test_nothing_is_written_to_the_folder_the_command_runs_in(bucket_run):
    _, folder = bucket_run
    assert not any((folder / "cwd").iterdir())  # e.g. "s3:/bucket/..." from a URL made a Path


def test_stores_on_the_bucket_equal_the_local_run_chunk_by_chunk(local_run, bucket_run):
    prefix, _ = bucket_run
    for product in ("vi", "phenology", "flux"):
        url = _current(prefix, product)
        there = _objects(url.removeprefix("s3://"))
        here = _local_chunks(local_run / "products" / f"{product}.zarr")
        chunks = {
            k: v
            for k, v in there.items()
            if k.rsplit("/", 1)[-1] not in (".zmetadata", ".zattrs", ".zarray", ".zgroup")
        }
        assert len(here) > 5, product
        assert chunks.keys() == here.keys(), product
        for key, data in here.items():
            assert chunks[key] == data, f"{product}: {key}"
        a = xr.open_zarr(local_run / "products" / f"{product}.zarr")
        b = xr.open_zarr(url)  # xarray opens the published store on the bucket
        assert set(a.data_vars) == set(b.data_vars)
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_layout_on_the_bucket_pointer_manifest_and_no_building_left(bucket_run):
    prefix, _ = bucket_run
    fs = _fs()
    doc = json.loads(fs.cat_file(f"{prefix}/products/vi.zarr.current"))
    assert doc["store"].startswith(".versions/vi/small-") and doc["store"].endswith(".zarr")
    tiles = fs.ls(f"{prefix}/.fluxscape/manifests/vi/tiles")
    assert len(tiles) == 4  # one object per finished tile
    assert fs.exists(f"{prefix}/.fluxscape/manifests/vi/complete.json")
    assert not fs.exists(f"{prefix}/.fluxscape/building/vi.zarr")
    for name in (
        "catalog/catalog.json",
        "workflow.yaml",
        ".fluxscape/run.log",
        "report.html",
        "models/flux/flux_model.skops",
        "reports/flux/regional_totals.csv",  # from the region polygons on the input bucket
    ):
        assert fs.exists(f"{prefix}/{name}"), name


def test_flux_provenance_names_towers_and_meteorology_by_url_size_and_etag(bucket_run):
    prefix, _ = bucket_run
    entries = xr.open_zarr(_current(prefix, "flux")).attrs["inputs"]
    folders = {"FLX_": "towers", "era5_daily_": "meteo"}
    found = {f: [e for e in entries if e["file"].startswith(f)] for f in folders}
    assert len(found["FLX_"]) >= 2 and len(found["era5_daily_"]) >= 1
    for start, folder in folders.items():
        for entry in found[start]:
            assert entry["path"] == f"s3://{BUCKET}/sample/{folder}/{entry['file']}"
            assert entry["size"] > 0 and len(entry["etag"]) >= 16
            assert "sha256" not in entry


def test_open_catalog_and_serve_read_the_catalog_on_the_bucket(bucket_run, tmp_path):
    from fastapi.testclient import TestClient

    from fluxscape.catalog.api import open_catalog
    from fluxscape.catalog.serve import create_app

    prefix, _ = bucket_run
    cat = open_catalog(f"s3://{prefix}/catalog")
    ids = {e.id for e in cat.entries()}
    assert ids == {"small.vi", "small.phenology", "small.flux"}
    ds = cat.open("small.vi")
    assert float(ds["ndvi"].max()) > 0.3
    client = TestClient(create_app(f"s3://{prefix}/catalog"))
    coll = client.get("/collections").json()
    assert {c["id"] for c in coll["collections"]} == ids
    meta = client.get("/zarr/small.vi/.zmetadata")
    assert meta.status_code == 200 and "ndvi/.zarray" in meta.json()["metadata"]


def test_no_credential_in_any_object_local_file_or_log(bucket_run):
    prefix, folder = bucket_run
    from fluxscape.pipeline import remote

    objects = _objects(OUT_BUCKET)
    assert len(objects) > 20
    for value in (SECRET, "fluxscape-test-key"):
        assert [k for k, v in objects.items() if value.encode() in v] == [], value
        roots = [remote.cache_dir(), folder]
        leaks = [
            str(p)
            for root in roots
            for p in root.rglob("*")
            if p.is_file() and value.encode() in p.read_bytes()
        ]
        assert leaks == [], value
    assert (folder / "stdout.txt").stat().st_size > 0


def test_a_resume_on_a_machine_without_the_work_folder_keeps_everything(bucket_run):
    """The local work folder is only a cache: without it, --resume keeps every product (state
    read from the bucket) and the catalog still lists them all."""
    import shutil

    from fluxscape.catalog.api import open_catalog
    from fluxscape.pipeline.outstore import work_dir

    prefix, folder = bucket_run
    before = {p: _current(prefix, p) for p in ("vi", "phenology", "flux")}
    shutil.rmtree(work_dir(f"s3://{prefix}"))
    proc = run_cli("run", folder / "small.yaml", "--out", f"s3://{prefix}", "--resume")
    assert proc.stdout.count("0 of 4 tiles run") == 3, proc.stdout
    assert {p: _current(prefix, p) for p in before} == before
    ids = {e.id for e in open_catalog(f"s3://{prefix}/catalog").entries()}
    assert ids == {"small.vi", "small.phenology", "small.flux"}


def test_a_killed_run_resumes_from_the_bucket_and_readers_never_see_a_partial_store(
    s3,  # noqa: F811
    local_run,
    bucket_run,
    tmp_path,
):
    fs = _fs()
    prefix = f"{OUT_BUCKET}/runs/killed"
    wf = _workflow(tmp_path, f"s3://{BUCKET}/sample")
    args = [*FLUXSCAPE, "run", str(wf), "--out", f"s3://{prefix}"]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    tiles = f"{prefix}/.fluxscape/manifests/vi/tiles"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        fs.invalidate_cache()
        if fs.exists(tiles) and len(fs.ls(tiles)) >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    fs.invalidate_cache()
    done = len(fs.ls(tiles))
    assert 1 <= done < 4
    # a reader meanwhile: no pointer, so no store (never the half-built one); the killed
    # workflow has no flux product: its vi and phenology chunks equal the local run's
    assert not fs.exists(f"{prefix}/products/vi.zarr.current")
    assert not fs.exists(f"{prefix}/catalog/catalog.json")
    again = run_cli("run", wf, "--out", f"s3://{prefix}", "--resume")
    assert f"{4 - done} of 4 tiles to run" in again.stdout + again.stderr
    for product in ("vi", "phenology"):
        there = _objects(_current(prefix, product).removeprefix("s3://"))
        here = _local_chunks(local_run / "products" / f"{product}.zarr")
        for key, data in here.items():
            assert there[key] == data, f"{product}: {key}"


def test_upload_leaves_out_files_still_being_written(tmp_path):
    # A worker may be drawing another product's maps (NAME.png.tmp.png, renamed when done)
    # while a product's publication uploads the quicklooks folder: listing then uploading
    # such a file failed the run when the rename came in between (seen in CI).
    import fsspec

    from fluxscape.pipeline.outstore import Outputs

    out = tmp_path / "work"
    maps = out / "quicklooks" / "vi"
    maps.mkdir(parents=True)
    (maps / "ndvi_2021.png").write_bytes(b"png")
    (maps / "evi_2021.png.tmp.png").write_bytes(b"half")
    (out / "reports").mkdir()
    (out / "reports" / "vi.html.tmp").write_text("half")
    (out / "reports" / "vi.html").write_text("done")
    url = f"memory://fluxscape-test-{os.getpid()}/run"
    Outputs(out, url).upload_published(tmp_path / "elsewhere")
    fs = fsspec.filesystem("memory")
    root = url.removeprefix("memory://")
    names = sorted(p.removeprefix(f"/{root}/") for p in fs.find(root))
    assert names == ["quicklooks/vi/ndvi_2021.png", "reports/vi.html"]
