"""MCD64A1 burned area: the sample writer's files, and the disturbance product's reference
(indexing with clear errors, reading onto a tile). The recipe-level checks against the world's
fires are in tests/test_recipes.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from odc.geo.geobox import GeoBox
from pyhdf.SD import SD, SDC

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.config import parse_workflow
from fluxscape.pipeline.inputs import TileInputs, index_input
from fluxscape.pipeline.steps import burned_area
from fluxscape.pipeline.steps.base import StepContext
from fluxscape.readers.modis_hdf4 import open_modis_tile, read_grids
from fluxscape.readers.registry import detect
from fluxscape.sample.generate import write_modis_burned_area
from fluxscape.sample.world import PRESETS, World

YEAR = 2022


@pytest.fixture(scope="module")
def world() -> World:
    return World(dataclasses.replace(PRESETS["disturbance"], years=(YEAR,)), seed=42)


@pytest.fixture(scope="module")
def mcd64_dir(tmp_path_factory, world) -> Path:
    folder = tmp_path_factory.mktemp("mcd64")
    write_modis_burned_area(world, folder, np.random.default_rng(0))
    return folder


def test_writer_follows_the_mcd64a1_layout(mcd64_dir):
    files = sorted(mcd64_dir.glob("MCD64A1.A2022*.h*v*.061.*.hdf"))
    assert [f.name[8:16] for f in files[:3]] == ["A2022001", "A2022032", "A2022060"]
    assert len(files) == 12
    sd = SD(str(files[6]), SDC.READ)
    try:
        info = sd.datasets()
        assert set(info) == {"Burn Date", "Burn Date Uncertainty", "QA", "First Day", "Last Day"}
        assert info["Burn Date"][0] == (f"YDim:{burned_area_grid()}", f"XDim:{burned_area_grid()}")
        assert info["Burn Date"][1] == (2400, 2400) and info["Burn Date"][2] == SDC.INT16
        assert sd.select("Burn Date").attributes()["_FillValue"] == -1
    finally:
        sd.end()
    assert read_grids(files[6])[0].name == burned_area_grid()
    assert detect(str(files[6])).name == "modis_hdf4"


def burned_area_grid() -> str:
    return "MOD_Grid_Monthly_500m_DB_BA"


def test_reader_gives_the_burn_days_of_the_worlds_fires(mcd64_dir, world):
    """All the year's burn dates, read back with the reader, sit 0-3 days after the true day
    of a fire at that pixel and fall in their file's month."""
    fires = [e for e in world.events()["disturbances"] if e["kind"] == "fire"]
    found = 0
    for path in sorted(mcd64_dir.glob("MCD64A1.*.hdf")):
        ds = open_modis_tile(path, ["Burn_Date"])
        bd = ds["Burn_Date"].values
        rows, cols = np.nonzero(bd > 0)
        if not rows.size:
            continue
        month = int(str(ds.time.values)[5:7])
        days = np.datetime64(f"{YEAR}-01-01") + bd[rows, cols].astype(int) - 1
        assert (days.astype("datetime64[M]").astype(int) % 12 + 1 == month).all()
        from pyproj import Transformer

        from fluxscape.readers.modis_hdf4 import SINUSOIDAL_PROJ

        tr = Transformer.from_crs(SINUSOIDAL_PROJ, "EPSG:4326", always_xy=True)
        lon, lat = tr.transform(ds.x.values[cols], ds.y.values[rows])
        truth = world.disturbance(np.asarray(lon), np.asarray(lat))
        assert (truth["kind"] == 2).all()
        lag = bd[rows, cols] - truth["date"]
        assert lag.min() >= 0 and lag.max() <= 3
        found += rows.size
    assert found > 50 and len(fires) >= 2


def _context(tmp_path: Path, reference_paths: list[str], reader: str = "modis_hdf4"):
    text = f"""
name: t
region: {{bbox: [138.6, 35.0, 139.0, 35.4]}}
period: {{start: 2017-01-01, end: 2022-12-31}}
inputs:
  modis_vi: {{reader: modis_hdf4, paths: ["{tmp_path}/none*.hdf"]}}
  burned_area: {{reader: {reader}, paths: {reference_paths}}}
products:
  vi: {{kind: vi, input: modis_vi}}
  disturbance:
    kind: disturbance
    source: vi
    history: [2017-01-01, 2021-12-31]
    monitor: [2022-01-01, 2022-12-31]
    reference: burned_area
"""
    wf = parse_workflow(text)
    p = wf.products["disturbance"]
    index = {"burned_area": index_input("burned_area", reader, reference_paths)}
    return StepContext(wf, "disturbance", p, None, tmp_path / "d.zarr", tmp_path, index)


def test_index_keeps_mcd64a1_months_and_skips_other_files_with_the_reason(tmp_path, mcd64_dir):
    files = sorted(mcd64_dir.glob("MCD64A1.*.hdf"))
    bad = tmp_path / "MCD64A1.A2022305.h29v05.061.2022999000000.hdf"
    bad.write_bytes(files[0].read_bytes()[:2000])  # truncated download
    other = tmp_path / "MOD13A2.A2022001.h29v05.061.2022018034215.hdf"
    other.write_bytes(files[0].read_bytes())  # an HDF-EOS tile of another product
    ctx = _context(tmp_path, [str(mcd64_dir / "*.hdf"), str(bad), str(other)])
    granules, ignored = burned_area.reference_granules(ctx, np.array([YEAR]))
    assert len(granules) == 12
    skipped = {Path(s.path).name: s.reason for s in ctx.inputs["burned_area"].skipped}
    assert set(skipped) == {bad.name} and skipped[bad.name]
    reasons = {Path(s.path).name: s.reason for s in ignored}
    assert set(reasons) == {other.name}
    assert "a MOD13A2 file gives" in reasons[other.name] and "ndvi" in reasons[other.name]
    # months of other years are not the monitored ones
    with pytest.raises(FluxscapeError, match=r"products\.disturbance\.reference: .*2021"):
        burned_area.reference_granules(ctx, np.array([2021]))


def test_reference_of_another_reader_is_refused_naming_the_key(tmp_path):
    """The reference must give burn dates: a tower input is refused when the workflow is
    validated, naming the key and the sources that give them."""
    with pytest.raises(
        FluxscapeError,
        match=r"products\.disturbance\.reference: input 'burned_area' \(reader fluxnet\) "
        r"gives no burn_date.*modis_hdf4",
    ):
        _context(tmp_path, [str(tmp_path / "*.csv")], reader="fluxnet")


def test_unknown_reference_input_is_a_workflow_error(tmp_path):
    from fluxscape.errors import WorkflowError

    text = _context(tmp_path, ["x"]).workflow.model_dump_json()
    import json

    import yaml

    doc = json.loads(text)
    doc["products"]["disturbance"]["reference"] = "burned"
    with pytest.raises(WorkflowError, match=r"products\.disturbance\.reference: 'burned'"):
        parse_workflow(yaml.safe_dump(doc))


def test_reference_tile_stores_the_year_and_counts_missing_months_as_unmapped(
    tmp_path, mcd64_dir, world
):
    """On a 0.01 degree tile over a fire: burned where the world burned (away from the edge),
    first burn date 0-3 days after the truth; leaving out the fire's month loses the burn and
    counts that month unmapped everywhere."""
    fire = next(e for e in world.events()["disturbances"] if e["kind"] == "fire")
    ctx = _context(tmp_path, [str(mcd64_dir / "*.hdf")])
    granules, _ = burned_area.reference_granules(ctx, np.array([YEAR]))
    tile = GeoBox.from_bbox(
        (fire["lon"] - 0.06, fire["lat"] - 0.06, fire["lon"] + 0.06, fire["lat"] + 0.06),
        "EPSG:4326",
        resolution=0.01,
    )
    ref = burned_area.reference_tile(
        "modis_hdf4", tuple(granules), tile, np.array([YEAR]), TileInputs()
    )
    lon, lat = np.meshgrid(tile.coords["longitude"].values, tile.coords["latitude"].values)
    truth = world.disturbance(lon, lat)
    inner = (truth["kind"] == 2) & (truth["edge_distance"] > 0.01)
    burned = ref.mcd64_burned.values[0]
    assert inner.sum() > 5 and (burned[inner] == 1).all()
    lag = ref.mcd64_date.values[0][inner] - truth["date"][inner]
    assert lag.min() >= 0 and lag.max() <= 3
    month = np.datetime64(fire["date"], "M")
    kept = tuple(g for g in granules if np.datetime64(g.start, "M") != month)
    without = burned_area.reference_tile("modis_hdf4", kept, tile, np.array([YEAR]), TileInputs())
    assert (without.mcd64_unmapped.values[0] >= 1).all()
    days = np.where(inner, ref.mcd64_date.values[0], 1).astype(int)
    burn_month = (np.datetime64(f"{YEAR}-01-01") + days - 1).astype("datetime64[M]")
    burnt_in_month = inner & (burn_month == month)
    assert burnt_in_month.sum() > 5
    assert (without.mcd64_burned.values[0][burnt_in_month] == 0).all()
