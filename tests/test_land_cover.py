"""MCD12Q1 land cover: the sample writer against the world's classes, the classes read through
the source onto grid pixels (what the one feature builder gives towers and tiles), its one-hot
features and the config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO
from odc.geo.geobox import GeoBox
from pyproj import Transformer

from fluxscape.errors import FluxscapeError, WorkflowError
from fluxscape.pipeline import predictors as pred
from fluxscape.pipeline.config import parse_workflow
from fluxscape.pipeline.features import land_cover_codes, latest_per_grid, tower_pixels
from fluxscape.pipeline.inputs import TileInputs, index_input, select
from fluxscape.pipeline.steps.base import StepContext
from fluxscape.pipeline.steps.flux import _land_cover_granules
from fluxscape.readers.modis_hdf4 import SINUSOIDAL_PROJ, open_modis_tile
from fluxscape.readers.ontile import tile_lonlat
from fluxscape.sample.generate import PFT_CODES, write_modis_landcover
from fluxscape.sample.world import LAND_COVER, LC_NAMES, PRESETS, World

WORLD = World(PRESETS["demo"])
IGBP = np.array([LAND_COVER[n]["code"] for n in LC_NAMES])
PFT = np.array([PFT_CODES[n] for n in LC_NAMES])


@pytest.fixture(scope="module")
def lc_files(tmp_path_factory) -> list[Path]:
    return write_modis_landcover(WORLD, tmp_path_factory.mktemp("landcover"))


def test_one_file_per_year_and_tile_named_like_lp_daac(lc_files):
    names = sorted(p.name for p in lc_files)
    assert len(names) == len(PRESETS["demo"].years)  # the demo region lies in h29v05
    assert names[0].startswith("MCD12Q1.A2021001.h29v05.061.") and names[0].endswith(".hdf")


def test_written_tile_decodes_to_the_world_classes_at_pixel_centres(lc_files):
    ds = open_modis_tile(lc_files[-1])
    assert ds.attrs["product"] == "MCD12Q1" and ds.attrs["grid_name"] == "MCD12Q1"
    lc1 = ds["LC_Type1"].values
    rows, cols = np.nonzero(np.isfinite(lc1))
    rows, cols = rows[::7], cols[::7]
    to_lonlat = Transformer.from_crs(SINUSOIDAL_PROJ, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(ds["x"].values[cols], ds["y"].values[rows])
    truth = WORLD.land_cover(np.asarray(lon), np.asarray(lat))
    assert rows.size > 10_000
    assert np.mean(lc1[rows, cols] == IGBP[truth]) > 0.99
    assert np.mean(ds["LC_Type5"].values[rows, cols] == PFT[truth]) > 0.99
    assert set(np.unique(ds["LW"].values[rows, cols])) == {2}  # land
    assert int(ds["QC"].values[0, 0]) == 255  # fill outside the region, kept as a raw DN


def _granules(paths) -> tuple:
    index = index_input("landcover", "modis_hdf4", [str(p) for p in paths])
    usable, _ = select(index, lambda have: frozenset({"land_cover"}) & have or None)
    return latest_per_grid(usable)


DEMO_GRID = GeoBox.from_bbox((138.0, 35.5, 139.0, 36.5), "EPSG:4326", resolution=0.01)


@pytest.mark.parametrize("layer,codes", [("LC_Type1", IGBP), ("LC_Type5", PFT)])
def test_class_of_the_tower_pixels_is_the_world_class(lc_files, layer, codes):
    """Through the source (read_onto_tile): the class of the grid pixel holding each tower."""
    sites = WORLD.towers()
    rows, cols, inside = tower_pixels(DEMO_GRID, sites["lon"].values, sites["lat"].values)
    assert inside.all()
    granules = _granules(lc_files)
    got = [
        land_cover_codes("modis_hdf4", granules, layer, DEMO_GRID[r : r + 1, c : c + 1])[0, 0]
        for r, c in zip(rows, cols, strict=True)
    ]
    want = codes[WORLD.land_cover(sites["lon"].values, sites["lat"].values)]
    assert np.asarray(got).tolist() == want.tolist()


def test_codes_on_a_block_keep_its_shape_and_mark_uncovered_pixels(lc_files):
    granules = _granules(lc_files)
    block = DEMO_GRID[10:17, 20:29]
    record = TileInputs()
    got = land_cover_codes("modis_hdf4", granules, "LC_Type1", block, record)
    assert got.shape == (7, 9) and got.dtype == np.int16
    lon, lat = tile_lonlat(block)
    assert np.mean(got == IGBP[WORLD.land_cover(lon, lat)]) > 0.95  # 1 km grid vs 500 m pixels
    assert record.used == {str(lc_files[-1])}  # the latest year only
    far = GeoBox.from_bbox((10.0, 50.0, 10.02, 50.02), "EPSG:4326", resolution=0.01)
    assert land_cover_codes("modis_hdf4", granules, "LC_Type1", far).tolist() == [[-1, -1]] * 2


def test_latest_year_per_native_grid_and_other_products_ignored(lc_files, tmp_path):
    granules = _granules(lc_files)
    assert len(granules) == 1 and ".A2022001." in granules[0].path
    doc = _demo_doc()
    doc["data_dir"] = str(tmp_path)
    doc["inputs"]["landcover"]["paths"] = ["nothing/MCD12Q1.A*.hdf"]
    wf = parse_workflow(yaml.safe_dump(doc))
    ctx = StepContext(wf, "flux", wf.products["flux"], None, tmp_path, tmp_path)
    with pytest.raises(FluxscapeError, match=r"products\.flux\.land_cover: no land-cover granule"):
        _land_cover_granules(ctx)


def test_one_hot_features_for_the_tower_classes():
    feats = pred.land_cover_features(np.array([[4, 12], [-1, 10]]), [4, 10])
    assert list(feats) == ["lc_4", "lc_10"]
    assert feats["lc_4"].tolist() == [[1, 0], [0, 0]]
    assert feats["lc_10"].tolist() == [[0, 0], [0, 1]]  # class 12 absent at towers: all zero


def _demo_doc() -> dict:
    return yaml.safe_load((REPO / "workflows" / "demo.yaml").read_text())


def test_demo_workflow_uses_the_land_cover_input():
    for recipe in ("demo.yaml", "gpp-upscaling.yaml"):
        doc = yaml.safe_load((REPO / "workflows" / recipe).read_text())
        assert doc["products"]["flux"]["land_cover"] == "landcover", recipe
        assert doc["inputs"]["landcover"]["reader"] == "modis_hdf4"


def test_land_cover_with_the_wrong_reader_names_the_key():
    doc = _demo_doc()
    doc["inputs"]["landcover"]["reader"] = "cf_meteo"
    with pytest.raises(WorkflowError, match=r"products\.flux\.land_cover: .*modis_hdf4"):
        parse_workflow(yaml.safe_dump(doc))


def test_land_cover_naming_no_input_names_the_key():
    doc = _demo_doc()
    doc["products"]["flux"]["land_cover"] = "lc"
    with pytest.raises(WorkflowError, match=r"products\.flux\.land_cover: 'lc' is not one"):
        parse_workflow(yaml.safe_dump(doc))


def test_unknown_land_cover_layer_is_refused():
    doc = _demo_doc()
    doc["products"]["flux"]["land_cover_layer"] = "LC_Type3"
    with pytest.raises(WorkflowError, match="land_cover_layer"):
        parse_workflow(yaml.safe_dump(doc))


def test_demo_rewrites_a_sample_world_that_lacks_a_source_of_its_preset(tmp_path):
    """`fluxscape demo` reuses OUT/sample only when it holds every source the preset writes
    today: a sample from before land cover was added (no ``sources`` in world.json, or a
    shorter list) is written again."""
    import json

    from fluxscape.cli import _sample_is_current
    from fluxscape.sample.world import PRESETS

    world = tmp_path / "truth" / "world.json"
    world.parent.mkdir(parents=True)
    current = list(PRESETS["demo"].sources)
    assert "landcover" in current and "landcover" in PRESETS["demo-4x"].sources
    for sources, expected in ((None, False), (current[:-1], False), (current, True)):
        info = {"preset": "demo", "seed": 42} | ({"sources": sources} if sources else {})
        world.write_text(json.dumps(info))
        assert _sample_is_current(tmp_path, "demo", 42) is expected
    assert not _sample_is_current(tmp_path, "demo", 7)
