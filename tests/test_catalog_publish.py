"""One catalog, many runs: publishing under a lock, atomic replace, the index, access levels."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import xarray as xr
import yaml
from conftest import run_cli

from fluxscape.access import most_restrictive, readable_levels
from fluxscape.catalog import index, itemindex, open_catalog
from fluxscape.catalog.publish import publish_store, unpublish
from fluxscape.catalog.serve import create_app
from fluxscape.pipeline import config as cfg


def test_runs_share_a_catalog_and_rerun_replaces_only_its_entry(demo_out, tmp_path):
    cat = tmp_path / "shared"
    vi = demo_out / "products" / "vi.zarr"
    publish_store(vi, cat, "alpha", "vi", run_id="alpha-1")
    publish_store(demo_out / "products" / "gosat_l3.zarr", cat, "beta", "gosat_l3", run_id="b-1")
    publish_store(vi, cat, "alpha", "vi", run_id="alpha-2", access="partners")
    c = open_catalog(cat)
    assert [(e.id, e.run_id, e.access) for e in c.entries()] == [
        ("alpha.vi", "alpha-2", "partners"),
        ("beta.gosat_l3", "b-1", "public"),
    ]
    coll = c.collection("alpha.vi")
    assert coll["fluxscape:workflow"] == "alpha" and coll["fluxscape:run_id"] == "alpha-2"
    assert coll["fluxscape:models"] == [] and "fluxscape:access" in coll
    root = json.loads((cat / "catalog.json").read_text())
    assert [lk["href"] for lk in root["links"] if lk["rel"] == "child"] == [
        "./alpha.vi/collection.json",
        "./beta.gosat_l3/collection.json",
    ]
    assert [e.id for e in c.search(run="beta")] == ["beta.gosat_l3"]
    assert [e.id for e in c.search(run="alpha-2")] == ["alpha.vi"]
    assert [e.id for e in c.search(access=["public"])] == ["beta.gosat_l3"]
    table = c.table(bbox=(138.2, 35.8, 138.4, 36.0), time="2021-04-01/2021-10-31")
    assert list(table["id"]) == ["alpha.vi", "beta.gosat_l3"] and "geometry" not in table
    assert list(c.table(product="vi")["access"]) == ["partners"]
    unpublish(cat, "beta", "gosat_l3")
    assert [e.id for e in open_catalog(cat).entries()] == ["alpha.vi"]
    assert len(json.loads((cat / "catalog.json").read_text())["links"]) == 3
    assert not (cat / "beta.gosat_l3" / "items").exists()
    assert {r["collection"] for r in itemindex.read_rows(cat)} == {"alpha.vi"}


def test_items_per_step_are_replaced_on_republication_and_others_kept(demo_out, tmp_path):
    cat = tmp_path / "items"
    vi, gosat = demo_out / "products" / "vi.zarr", demo_out / "products" / "gosat_l3.zarr"
    publish_store(vi, cat, "alpha", "vi", run_id="alpha-1")
    publish_store(gosat, cat, "beta", "gosat_l3", run_id="beta-1")
    publish_store(vi, cat, "alpha", "vi", run_id="alpha-2", access="partners")
    rows = itemindex.read_rows(cat)
    n_vi = xr.open_zarr(vi).sizes["time"]
    alpha = [r for r in rows if r["collection"] == "alpha.vi"]
    assert len(alpha) == n_vi and {r["run_id"] for r in alpha} == {"alpha-2"}
    assert {r["access"] for r in alpha} == {"partners"}
    assert {r["run_id"] for r in rows if r["collection"] == "beta.gosat_l3"} == {"beta-1"}
    files = sorted((cat / "alpha.vi" / "items").glob("*.json"))
    assert len(files) == n_vi and not list(cat.glob("*/.items-*"))
    item = json.loads(files[0].read_text())
    assert item["properties"]["fluxscape:run_id"] == "alpha-2"
    assert (files[0].parent / item["assets"]["zarr"]["href"]).resolve() == vi.resolve()
    coll = json.loads((cat / "alpha.vi" / "collection.json").read_text())
    item_links = [lk["href"] for lk in coll["links"] if lk["rel"] == "item"]
    assert item_links == [f"./items/{f.name}" for f in files]
    assert (cat / coll["links"][2]["href"].removeprefix("../")).exists()  # the licence text
    (cat / itemindex.ITEMS_NAME).unlink()
    assert open_catalog(cat).item_table().num_rows == len(rows)  # rebuilt from the JSON files


def test_index_matches_a_rebuild_from_the_json(demo_out, tmp_path):
    cat = tmp_path / "c"
    for name in ("vi", "phenology", "gosat_l3"):
        publish_store(demo_out / "products" / f"{name}.zarr", cat, "demo", name)
    incremental = index.read_rows(cat)
    (cat / index.INDEX_NAME).unlink()
    assert open_catalog(cat).search(variable="sos")[0].id == "demo.phenology"
    assert index.read_rows(cat) == incremental  # built from the JSON when opened
    (cat / index.INDEX_NAME).unlink()
    create_app(cat)  # the server opens it the same way
    assert index.read_rows(cat) == incremental
    assert "3 product(s) indexed" in run_cli("catalog", "reindex", cat).stdout
    assert index.read_rows(cat) == incremental
    row = incremental[0]
    assert row["id"] == "demo.gosat_l3" and "products/" in row["store"]
    assert (cat / row["store"]).resolve() == (demo_out / "products" / "gosat_l3.zarr").resolve()


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fluxscape.catalog.publish import publish_store
    store, cat, run, n = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    for i in range(n):
        publish_store(store, cat, run, "vi", run_id=f"{run}-{i}",
                      access="partners" if i % 2 else "public")
    """
)


def test_concurrent_writers_and_a_reader_never_see_half_a_product(demo_out, tmp_path):
    cat = tmp_path / "busy"
    vi = demo_out / "products" / "vi.zarr"
    publish_store(vi, cat, "alpha", "vi", run_id="alpha-start")
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(vi), str(cat), run, "12"])
        for run in ("alpha", "beta")
    ]
    reads, seen_runs = 0, set()
    while any(w.poll() is None for w in writers) or reads < 5:
        c = open_catalog(cat)
        entries = {e.id: e for e in c.entries()}
        assert "alpha.vi" in entries  # published once, then only ever replaced
        for e in entries.values():
            coll = c.collection(e.id)  # complete JSON, or json.loads would fail
            assert coll["id"] == e.id and coll["fluxscape:run_id"].startswith(e.run)
            assert coll["fluxscape:access"] in ("public", "partners")
            assert e.store.joinpath(".zmetadata").exists()
            seen_runs.add(coll["fluxscape:run_id"])
        root = json.loads((cat / "catalog.json").read_text())
        assert {lk["href"] for lk in root["links"] if lk["rel"] == "child"} >= {
            "./alpha.vi/collection.json"
        }
        per_run = {}
        for row in itemindex.read_rows(cat):  # a whole item index: every Item of each run
            per_run.setdefault(row["collection"], set()).add(row["run_id"])
            json.loads(row["item"])
        assert all(len(runs) == 1 for runs in per_run.values()), per_run
        reads += 1
        time.sleep(0.01)
    assert [w.returncode for w in writers] == [0, 0]
    final = {e.id: e.run_id for e in open_catalog(cat).entries()}
    assert final == {"alpha.vi": "alpha-11", "beta.vi": "beta-11"}
    assert len(seen_runs) > 2  # the reader really ran while the writers replaced entries
    assert not list(cat.glob("**/*.tmp")) and not list(cat.glob(".index-*"))


def test_access_levels_order_and_inheritance():
    assert most_restrictive("public", "partners") == "partners"
    assert most_restrictive("restricted", None, "public") == "restricted"
    assert most_restrictive() == "public"
    assert readable_levels("partners") == ["public", "partners"]
    with pytest.raises(ValueError, match="secret"):
        most_restrictive("secret")


def _workflow(**access) -> cfg.Workflow:
    from conftest import REPO

    raw = yaml.safe_load((REPO / "workflows" / "demo.yaml").read_text())
    if "workflow" in access:
        raw["access"] = access["workflow"]
    for name, level in access.get("inputs", {}).items():
        raw["inputs"][name]["access"] = level
    return cfg.parse_workflow(yaml.safe_dump(raw), "test.yaml")


def test_product_access_is_the_most_restrictive_of_what_it_was_made_from(tmp_path):
    wf = _workflow(inputs={"modis_vi": "partners", "gosat_ch4": "restricted"})
    assert cfg.product_access(wf, "vi") == "partners"
    assert cfg.product_access(wf, "phenology") == "partners"  # derived from vi
    assert cfg.product_access(wf, "gosat_l3") == "restricted"
    public = _workflow()
    assert {n: cfg.product_access(public, n) for n in public.products} == dict.fromkeys(
        public.products, "public"
    )
    # a flux map trained on partner-only towers is partner-only; its predictors stay public
    towers = _workflow(inputs={"towers": "partners"})
    assert cfg.product_access(towers, "flux") == "partners"
    assert cfg.product_access(towers, "vi") == "public"
    floor = _workflow(workflow="partners")
    assert cfg.product_access(floor, "gosat_l3") == "partners"
    # who may read a product does not change what it holds: same digest, no recompute
    assert cfg.workflow_hash(wf) == cfg.workflow_hash(public)


def test_product_inputs_follow_the_products_it_reads(demo_out):
    """The inputs behind each demo product (its store's ``source`` names their readers)."""
    import xarray as xr

    wf = _workflow()
    assert cfg.product_inputs(wf, "vi") == ["modis_vi"]
    assert cfg.product_inputs(wf, "phenology") == ["modis_vi"]  # through its source vi
    assert "modis_vi" in cfg.product_inputs(wf, "flux") and "towers" in cfg.product_inputs(
        wf, "flux"
    )
    assert "modis_vi" not in cfg.product_inputs(wf, "gosat_l3")
    for name, readers in {"phenology": "modis_hdf4", "gosat_l3": "gosat_nies"}.items():
        ds = xr.open_zarr(demo_out / "products" / f"{name}.zarr")
        assert ds.attrs["source"] == readers


def test_unknown_access_level_names_the_key(tmp_path):
    from fluxscape.errors import WorkflowError

    with pytest.raises(WorkflowError, match=r"inputs\.modis_vi\.access"):
        _workflow(inputs={"modis_vi": "secret"})


def test_run_publishes_into_a_shared_catalog_with_inherited_access(demo_out, tmp_path):
    raw = yaml.safe_load((demo_out / "workflow.yaml").read_text())
    raw["inputs"]["modis_vi"]["access"] = "partners"
    wf_file = tmp_path / "partner.yaml"
    wf_file.write_text(yaml.safe_dump(raw))
    shared = tmp_path / "shared-catalog"
    resolved = demo_out / "workflow.yaml"
    before = resolved.read_text()
    try:  # the stores are complete: this only publishes
        run_cli("run", wf_file, "--resume", "--catalog", shared)
    finally:
        resolved.write_text(before)  # the run rewrote the demo's resolved workflow
    entries = {e.id: e for e in open_catalog(shared).entries()}
    assert {k: e.access for k, e in entries.items()} == {
        "demo.flux": "partners",
        "demo.gosat_l3": "public",
        "demo.phenology": "partners",
        "demo.vi": "partners",
    }
    assert all(e.run_id.startswith("demo-") for e in entries.values())
    proc = run_cli("catalog", "search", shared, "--run", "demo", "--variable", "sos")
    assert "demo.phenology" in proc.stdout and "partners" in proc.stdout


def test_catalog_files_on_disk_validate_offline(demo_out):
    from stac_pydantic import Catalog, Collection, Item

    cat = demo_out / "catalog"
    root = json.loads((cat / "catalog.json").read_text())
    Catalog.model_validate(root)
    children = [lk["href"] for lk in root["links"] if lk["rel"] == "child"]
    assert len(children) == 4
    for href in children:
        coll = json.loads((cat / href).read_text())
        Collection.model_validate(coll)
        assert coll["fluxscape:access"] == "public" and coll["fluxscape:run_id"].startswith("demo-")
        assert "cube:dimensions" in coll and coll["assets"]["zarr"]["roles"] == ["data"]
        assert coll["license"] == "other" and any(lk["rel"] == "license" for lk in coll["links"])
        item_links = [lk["href"] for lk in coll["links"] if lk["rel"] == "item"]
        assert item_links
        for link in item_links[:3]:
            item = json.loads((cat / Path(href).parent / link).read_text())
            Item.model_validate(item)
            assert item["collection"] == coll["id"] and "proj:transform" in item["properties"]
            assert all("raster:bands" in a for k, a in item["assets"].items() if k != "zarr")


def test_reindex_gives_a_catalog_published_before_items_its_items(demo_out, tmp_path):
    import shutil

    from fluxscape.catalog.publish import publication_problem

    cat = tmp_path / "old"
    vi = demo_out / "products" / "vi.zarr"
    publish_store(vi, cat, "demo", "vi")
    # as an older release left it: no Items, no item index, licence "proprietary"
    shutil.rmtree(cat / "demo.vi" / "items")
    (cat / itemindex.ITEMS_NAME).unlink()
    coll_path = cat / "demo.vi" / "collection.json"
    coll = json.loads(coll_path.read_text())
    coll["links"] = [lk for lk in coll["links"] if lk["rel"] in ("root", "parent")]
    coll["license"] = "proprietary"
    coll_path.write_text(json.dumps(coll))
    assert open_catalog(cat).item_table().num_rows == 0
    assert "no item" in publication_problem(vi, cat, "demo", "vi")
    proc = run_cli("catalog", "reindex", cat)
    assert "1 product(s) indexed" in proc.stdout
    n_steps = xr.open_zarr(vi).sizes["time"]
    assert (
        len(itemindex.read_rows(cat)) == n_steps == len(list((cat / "demo.vi" / "items").iterdir()))
    )
    coll = json.loads(coll_path.read_text())
    assert coll["license"] == "other" and coll["fluxscape:run_id"].startswith("demo-")
    assert publication_problem(vi, cat, "demo", "vi") is None


def test_an_spdx_licence_of_the_workflow_reaches_the_collection(demo_out, tmp_path):
    """``output.license`` is the stores' CF ``license`` attribute and the STAC licence; a text
    that is no SPDX identifier is refused with the workflow's other checks."""
    import shutil

    import zarr
    from pydantic import ValidationError

    from fluxscape.catalog.publish import publish_store
    from fluxscape.pipeline.schema import Output

    store = tmp_path / "products" / "gosat_l3.zarr"
    shutil.copytree((demo_out / "products" / "gosat_l3.zarr").resolve(), store)
    group = zarr.open_group(str(store), mode="r+", zarr_format=2)
    group.attrs["license"] = Output(license="CC-BY-4.0").license
    zarr.consolidate_metadata(str(store), zarr_format=2)
    publish_store(store, tmp_path / "catalog", "demo", "gosat_l3")
    coll = json.loads((tmp_path / "catalog" / "demo.gosat_l3" / "collection.json").read_text())
    assert coll["license"] == "CC-BY-4.0"
    assert not any(lk["rel"] == "license" for lk in coll["links"])
    with pytest.raises(ValidationError, match="license"):
        Output(license="free for all")
