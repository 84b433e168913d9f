"""The demo recipe on object storage (issue #17), against a real S3 API on 127.0.0.1 (moto's
server): ``workflows/demo.yaml`` with every input read from a bucket (MODIS, GOSAT and
land-cover granules, tower tables and their site list, ERA5-like meteorology, the region
polygons) and every output written to another bucket gives, chunk by chunk, the stores of the
local run of the same recipe (the ``demo_out`` fixture); the catalog and stores open from the
bucket; no credential reaches any object, local file or log.

``demo_out`` must be a run of the code under test (in ``.ci/run`` it is the test run's own demo
output; unset, the fixture runs ``fluxscape demo``): a demo output made by older code may hold
other flux models and so other flux chunks.

Slow (255 s measured on 2 shared cores): run by the slow step of ``.ci/run``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import REPO, run_cli
from test_remote import BUCKET, SECRET, s3  # noqa: F401  (the moto server fixture)

pytestmark = pytest.mark.slow

OUT_BUCKET = "fluxscape-demo-outputs"
PRODUCTS = ("vi", "phenology", "gosat_l3", "flux")
#: The sample-world folders the demo recipe reads (of 172 MB, about 56 MB: no AHI or SGLI).
FOLDERS = ("modis", "gosat/nies", "landcover", "towers", "meteo", "regions")
METADATA = (".zmetadata", ".zattrs", ".zarray", ".zgroup", "zarr.json")


def _fs():
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True)


def _objects(prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix`` (``bucket/path``), by path relative to it."""
    fs = _fs()
    return {p[len(prefix) + 1 :]: fs.cat_file(p) for p in fs.find(prefix)}


def _chunks(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if k.rsplit("/", 1)[-1] not in METADATA}


def _local_files(store: Path) -> dict[str, bytes]:
    store = store.resolve()
    return {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*") if p.is_file()}


def _current(prefix: str, product: str) -> str:
    """The URL of a product's current version, from its pointer object."""
    doc = json.loads(_fs().cat_file(f"{prefix}/products/{product}.zarr.current"))
    return f"s3://{prefix}/products/{doc['store']}"


@pytest.fixture(scope="module")
def demo_bucket_run(s3, sample_dir: Path, tmp_path_factory):  # noqa: F811
    """The sample world's folders the recipe reads uploaded to ``s3://BUCKET/sample``; the
    demo recipe run with that ``data_dir`` and ``--out s3://OUT_BUCKET/runs/demo``. Returns
    (output prefix, folder holding the workflow and stdout.txt)."""
    fs = _fs()
    for folder in FOLDERS:
        target = f"{BUCKET}/sample/{folder}"
        if not fs.exists(target):
            fs.put(str(sample_dir / folder) + "/", f"{target}/", recursive=True)
    fs.mkdir(OUT_BUCKET)
    folder = tmp_path_factory.mktemp("demo_s3")
    text = (REPO / "workflows" / "demo.yaml").read_text()
    wf = folder / "demo.yaml"
    wf.write_text(text.replace("data_dir: ../demo-out/sample", f"data_dir: s3://{BUCKET}/sample"))
    prefix = f"{OUT_BUCKET}/runs/demo"
    proc = run_cli("run", wf, "--out", f"s3://{prefix}")
    (folder / "stdout.txt").write_text(proc.stdout + proc.stderr)
    return prefix, folder


def test_the_local_run_is_of_the_same_recipe(demo_out):
    from fluxscape.pipeline.config import load_workflow

    recipe, _ = load_workflow(REPO / "workflows" / "demo.yaml")
    local, _ = load_workflow(demo_out / "workflow.yaml")
    assert local.region == recipe.region and local.period == recipe.period
    assert local.tile_size == recipe.tile_size
    assert local.products.keys() == recipe.products.keys() == set(PRODUCTS)
    for name, prod in recipe.products.items():
        here, there = prod.model_dump(), local.products[name].model_dump()
        for key in ("regions", "sites"):  # resolved to absolute paths in the run's copy
            if here.get(key):
                assert Path(there[key]).name == Path(here[key]).name, (name, key)
                here.pop(key), there.pop(key)
        assert here == there, name
    for name, inp in recipe.inputs.items():
        assert inp.reader == local.inputs[name].reader
        assert [Path(p).name for p in inp.paths] == [
            Path(p).name for p in local.inputs[name].paths
        ], name


def test_every_demo_store_on_the_bucket_equals_the_local_run_chunk_by_chunk(
    demo_bucket_run, demo_out
):
    prefix, _ = demo_bucket_run
    for product in PRODUCTS:
        url = _current(prefix, product)
        there = _chunks(_objects(url.removeprefix("s3://")))
        here = _chunks(_local_files(demo_out / "products" / f"{product}.zarr"))
        assert len(here) >= 1, product
        assert there.keys() == here.keys(), product
        different = [k for k, data in here.items() if there[k] != data]
        assert different == [], f"{product}: {different[:5]}"
        a = xr.open_zarr(demo_out / "products" / f"{product}.zarr")
        b = xr.open_zarr(url)  # xarray opens the published store on the bucket
        assert set(a.data_vars) == set(b.data_vars), product
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_provenance_names_the_non_granule_inputs_by_url_size_and_etag(demo_bucket_run):
    prefix, _ = demo_bucket_run
    attrs = xr.open_zarr(_current(prefix, "flux")).attrs
    inputs = {e["file"]: e for e in attrs["inputs"]}
    towers = [e for f, e in inputs.items() if f.startswith("FLX_")]
    meteo = [e for f, e in inputs.items() if f.startswith("era5_daily_")]
    assert len(towers) >= 5 and len(meteo) == 2
    for entry in towers + meteo:
        folder = "towers" if entry["file"].startswith("FLX_") else "meteo"
        assert entry["path"] == f"s3://{BUCKET}/sample/{folder}/{entry['file']}"
        assert entry["size"] > 0 and len(entry["etag"]) >= 16
    workflow = _fs().cat_file(f"{prefix}/workflow.yaml").decode()
    assert f"regions: s3://{BUCKET}/sample/regions/prefectures.geojson" in workflow


def test_the_catalog_on_the_bucket_lists_the_four_products(demo_bucket_run):
    from fluxscape.catalog.api import open_catalog

    prefix, _ = demo_bucket_run
    cat = open_catalog(f"s3://{prefix}/catalog")
    assert {e.id for e in cat.entries()} == {f"demo.{p}" for p in PRODUCTS}
    assert _fs().exists(f"{prefix}/reports/flux/regional_totals.csv")


def test_no_credential_in_any_object_local_file_or_log(demo_bucket_run):
    from fluxscape.pipeline import remote

    prefix, folder = demo_bucket_run
    objects = _objects(prefix)
    assert len(objects) > 50
    for value in (SECRET, "fluxscape-test-key"):
        assert [k for k, v in objects.items() if value.encode() in v] == [], value
        leaks = [
            str(p)
            for root in (remote.cache_dir(), folder)
            for p in root.rglob("*")
            if p.is_file() and value.encode() in p.read_bytes()
        ]
        assert leaks == [], value
    assert (folder / "stdout.txt").stat().st_size > 0  # the scan saw the run's output
