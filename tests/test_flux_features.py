"""One feature builder for the flux models: a tower's training features are the features of
the tile pixel that holds it (every feature, every period), with and without a pixel window;
towers off the region grid are dropped with a warning.

Runs on the demo's sample world and its vi and phenology stores (no flux run needed): the
training side is the driver's own code (``tower_pixels`` and ``_tower_predictors``), the map
side the feature builder on the demo's 25 x 25 tiles, as a tile task calls it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import REPO

from fluxscape.errors import FluxscapeError
from fluxscape.ml.timesteps import period_bounds
from fluxscape.pipeline import config as cfg
from fluxscape.pipeline.features import block_features, tower_pixels
from fluxscape.pipeline.grid import target_grid
from fluxscape.pipeline.steps import flux
from fluxscape.pipeline.steps.base import StepContext
from fluxscape.readers.fluxnet import read_site_list
from fluxscape.sample.world import LAND_COVER

N_TOWERS = 3


@pytest.fixture(scope="module")
def out_dir(demo_out: Path, tmp_path_factory) -> Path:
    """An output folder whose vi and phenology stores are the demo's (linked, read-only)."""
    out = tmp_path_factory.mktemp("features")
    (out / "products").mkdir()
    (out / ".fluxscape").mkdir()
    for name in ("vi", "phenology"):
        (out / "products" / f"{name}.zarr").symlink_to(demo_out / "products" / f"{name}.zarr")
        manifest = demo_out / ".fluxscape" / f"{name}.manifest.jsonl"
        shutil.copy(manifest, out / ".fluxscape" / manifest.name)
    return out


def _context(demo_out: Path, out_dir: Path, bbox=None, **product) -> StepContext:
    wf, base = cfg.load_workflow(REPO / "workflows" / "demo.yaml")
    wf = cfg.resolve_workflow(wf, base, out=out_dir, data_dir=demo_out / "sample")
    if bbox is not None:
        wf = wf.model_copy(update={"region": wf.region.model_copy(update={"bbox": bbox})})
    p = wf.products["flux"].model_copy(update=product)
    grid = target_grid(wf.region, wf.tile_size)
    return StepContext(wf, "flux", p, grid, out_dir / "flux.zarr", out_dir)


def _sites(ctx: StepContext) -> pd.DataFrame:
    return read_site_list(Path(ctx.workflow.data_dir) / "towers" / "SitesList.csv").set_index(
        "site_id"
    )


@pytest.mark.parametrize("window", [1, 3])
def test_tower_features_are_the_features_of_its_tile_pixel(demo_out, out_dir, window):
    ctx = _context(demo_out, out_dir, phenology="phenology", window=window)
    towers = flux.tower_pixels(ctx, _sites(ctx)).iloc[:N_TOWERS]
    source = ctx.product_store("vi")
    with xr.open_zarr(source, consolidated=True) as ds:
        times = pd.DatetimeIndex(ds["time"].values)
    ends = period_bounds(times)[1]
    granules = flux._land_cover_granules(ctx)
    # every class of the world, not only those at these towers: absent ones are all zero
    classes = tuple(sorted(v["code"] for v in LAND_COVER.values()))
    features = flux.feature_names(ctx.product, classes)
    lc = {"land_cover_granules": granules, "land_cover_classes": classes}
    spec = flux._feature_spec(ctx, source, times, ends, features, **lc)
    assert spec.window == window and spec.phenology and spec.meteo_files
    assert features[-len(classes) - 4 :][:4] == [
        "days_since_sos",
        "season_fraction",
        "doy_sin",
        "doy_cos",
    ]
    training = flux._tower_predictors(ctx, spec, towers)  # what the driver trains on
    assert list(training.columns) == features
    for site, t in towers.iterrows():
        r, c = int(t["row"]), int(t["col"])
        tile = next(
            tile
            for tile in ctx.grid.tiles
            if tile.rows.start <= r < tile.rows.stop and tile.cols.start <= c < tile.cols.stop
        )
        at_tower = training.xs(site, level="site")
        assert np.isfinite(at_tower.to_numpy()).all(), site
        onehot = at_tower[[f"lc_{k}" for k in classes]].to_numpy()
        assert onehot.sum(axis=1).tolist() == [1.0] * len(times)
        # the tower's tile, and blocks with the tower pixel on their edge (the halo matters)
        blocks = [(tile.rows, tile.cols), (slice(r, r + 4), slice(c - 3, c + 1))]
        for rows, cols in blocks:
            on_map = block_features(spec, rows, cols, ctx.grid.geobox[rows, cols])
            pixel = on_map.isel(y=r - rows.start, x=c - cols.start)
            for name in features:
                got, want = pixel[name].to_numpy(), at_tower[name].to_numpy()
                msg = f"{site} {name} window={window} block {rows} {cols}"
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9, err_msg=msg)
                if name in [*ctx.product.predictors, "days_since_sos", "season_fraction"]:
                    assert np.array_equal(got, want, equal_nan=True), msg  # exactly


def test_window_mean_at_the_region_edge_is_the_same_in_any_block(demo_out, out_dir):
    """The halo is clipped to the region: the corner pixel's 3 x 3 mean (over the 4 pixels on
    the grid) is the same from a 1 x 1 block and from the corner tile."""
    ctx = _context(demo_out, out_dir, window=3, land_cover=None, meteo=None)
    source = ctx.product_store("vi")
    with xr.open_zarr(source, consolidated=True) as ds:
        times = pd.DatetimeIndex(ds["time"].values)
        raw = ds["ndvi"].isel(y=slice(0, 2), x=slice(0, 2)).values.astype("float64")
    spec = flux._feature_spec(
        ctx, source, times, period_bounds(times)[1], flux.feature_names(ctx.product)
    )
    tile = ctx.grid.tiles[0]
    corner = block_features(spec, slice(0, 1), slice(0, 1), ctx.grid.geobox[0:1, 0:1])
    on_map = block_features(spec, tile.rows, tile.cols, tile.geobox).isel(
        y=slice(0, 1), x=slice(0, 1)
    )
    for name in spec.features:
        assert np.array_equal(corner[name].to_numpy(), on_map[name].to_numpy(), equal_nan=True)
    count = np.isfinite(raw).reshape(len(times), -1).sum(axis=1)
    mean = np.nansum(raw.reshape(len(times), -1), axis=1) / np.maximum(count, 1)
    ok = count > 0
    assert np.allclose(corner["ndvi"].to_numpy()[ok, 0, 0], mean[ok])  # filled where no value


def test_towers_outside_the_region_are_dropped_with_a_warning(demo_out, out_dir, caplog):
    ctx = _context(demo_out, out_dir)
    sites = _sites(ctx)
    far = sites.iloc[:1].rename(index=lambda s: "XX-Far").assign(lon=10.0, lat=50.0)
    with caplog.at_level(logging.WARNING, logger="fluxscape"):
        got = flux.tower_pixels(ctx, pd.concat([sites, far]))
    assert got.loc["XX-Far", "reason"] == flux.OUTSIDE
    assert (got.drop("XX-Far")["reason"] == "").all()
    assert np.isnan(got.loc["XX-Far", "pixel_x"])
    assert any("XX-Far" in r.getMessage() and "outside" in r.getMessage() for r in caplog.records)
    # the pixel holding each tower: its centre within half a pixel of the tower
    inside = got.drop("XX-Far")
    assert (np.abs(inside["pixel_x"] - inside["lon"]) <= 0.005 + 1e-9).all()
    assert (np.abs(inside["pixel_y"] - inside["lat"]) <= 0.005 + 1e-9).all()
    rows, cols, ok = tower_pixels(ctx.grid.geobox, inside["lon"], inside["lat"])
    assert ok.all() and rows.tolist() == inside["row"].tolist()
    # its distance to the pixel centre: at most half a 0.01-degree pixel's diagonal (~790 m)
    assert (inside["distance_m"] > 0).all() and (inside["distance_m"] < 790).all()
    assert np.isnan(got.loc["XX-Far", "distance_m"])


def test_fewer_than_two_towers_on_the_grid_is_an_error_naming_the_others(demo_out, out_dir):
    sites = _sites(_context(demo_out, out_dir))
    lon, lat = sites.iloc[0][["lon", "lat"]]
    bbox = [lon - 0.02, lat - 0.02, lon + 0.02, lat + 0.02]
    ctx = _context(demo_out, out_dir, bbox=bbox, land_cover=None)
    others = sorted(sites.index[1:].tolist())
    with pytest.raises(FluxscapeError, match=r"1 tower\(s\) with data on the region grid") as err:
        flux.plan(ctx)
    assert "outside the region grid" in str(err.value) and others[0] in str(err.value)


def test_meteorology_beyond_the_files_extent_is_nan_not_an_error():
    """A tile of a projected grid drawn around a lon/lat region can lie beyond the
    meteorology files (the corners): its meteorology is NaN, so its pixels are not predicted."""
    from fluxscape.pipeline.predictors import meteo_at

    times = pd.date_range("2021-01-01", periods=3)
    cut = xr.Dataset(
        {"ta": (("time", "lat", "lon"), np.zeros((3, 1, 0)))},
        coords={"time": times, "lat": [36.0], "lon": np.array([], float)},
    )
    lon = xr.DataArray(np.full((2, 4), 139.5), dims=("y", "x"))
    lat = xr.DataArray(np.full((2, 4), 36.0), dims=("y", "x"))
    got = meteo_at(cut, lon, lat)["ta"].transpose("time", "y", "x")
    assert got.shape == (3, 2, 4) and bool(got.isnull().all())


def test_sites_outside_use_nearest_keeps_a_far_tower_on_the_edge_pixel(demo_out, out_dir, caplog):
    ctx = _context(demo_out, out_dir, sites_outside="use_nearest")
    sites = _sites(ctx)
    far = sites.iloc[:1].rename(index=lambda s: "XX-East").assign(lon=139.7, lat=36.0)
    with caplog.at_level(logging.WARNING, logger="fluxscape"):
        got = flux.tower_pixels(ctx, pd.concat([sites, far]))
    east = got.loc["XX-East"]
    assert east["reason"] == "" and east["col"] == ctx.grid.geobox.shape.x - 1  # east edge
    assert 55_000 < east["distance_m"] < 70_000  # 0.7 degrees east of the edge at 36 N
    assert any("use_nearest" in r.getMessage() for r in caplog.records)


def test_lst_and_elevation_features_are_the_same_at_the_sites_and_on_the_map(
    demo_out, out_dir, tmp_path
):
    """The ``lst`` feature (an 8-day lst store averaged per 16-day product period, gaps filled
    in time) and the ``elevation`` feature (a DEM, bilinear at pixel centres) come from the one
    builder: a tower's training value is its pixel's on any block, and equals the value
    computed by hand."""
    from dataclasses import replace

    from fluxscape.pipeline.predictors import static_at
    from fluxscape.pipeline.store import VariableSpec, create_store, finalize_store, write_tile
    from fluxscape.sample.dem_writer import write_dem
    from fluxscape.sample.world import PRESETS, World

    ctx = _context(demo_out, out_dir, lst="lst")
    box = ctx.grid.geobox
    ny, nx = box.shape.yx
    steps = pd.DatetimeIndex(
        [d for y in (2021, 2022) for d in pd.date_range(f"{y}-01-01", f"{y}-12-31", freq="8D")]
    )
    rows = np.arange(ny)[:, None]
    cols = np.arange(nx)[None, :]
    lst = 280.0 + np.arange(len(steps))[:, None, None] + 0.01 * rows + 0.001 * cols
    lst[3] = np.nan  # a step without observations
    store = out_dir / "products" / "lst.zarr"
    spec_var = VariableSpec("lst", "float32", {"units": "K"})
    bounds = np.stack([steps.values, (steps + pd.Timedelta(days=8)).values], axis=1)
    create_store(store, box, {"time": steps.values}, [spec_var], ctx.workflow.tile_size, {}, bounds)
    data = xr.Dataset({"lst": (("time", "y", "x"), lst.astype("float32"))})
    write_tile(store, data, slice(0, ny), slice(0, nx))
    finalize_store(store, {})
    (out_dir / ".fluxscape" / "lst.manifest.jsonl").write_text('{"complete": true}\n')

    with xr.open_zarr(ctx.product_store("vi"), consolidated=True) as ds:
        times = pd.DatetimeIndex(ds["time"].values)
    ends = period_bounds(times)[1]
    features = flux.feature_names(ctx.product)
    assert "lst" in features and "elevation" not in features
    spec = flux._feature_spec(ctx, ctx.product_store("vi"), times, ends, features)
    (dem,) = write_dem(World(PRESETS["demo"]), tmp_path / "dem")
    spec = replace(
        spec,
        elevation_files=(str(dem),),
        elevation_reader="cf_elevation",
        features=(*features, "elevation"),
    )
    towers = flux.tower_pixels(ctx, _sites(ctx)).iloc[:2]
    training = flux._tower_predictors(ctx, spec, towers)
    for site, t in towers.iterrows():
        r, c = int(t["row"]), int(t["col"])
        at_tower = training.xs(site, level="site")
        block = (slice(max(r - 2, 0), r + 3), slice(max(c - 1, 0), c + 4))
        on_map = block_features(spec, *block, box[block[0], block[1]])
        pixel = on_map.isel(y=r - block[0].start, x=c - block[1].start)
        for name in ("lst", "elevation"):
            np.testing.assert_allclose(pixel[name].values, at_tower[name].values, rtol=1e-12)
        # by hand: the 8-day steps starting in each 16-day period, float32 as stored
        stored = lst[:, r, c].astype("float32").astype(float)
        for i, (start, end) in enumerate(zip(times[:4], ends[:4], strict=True)):
            inside = (steps >= start) & (steps < end) & np.isfinite(stored)
            assert at_tower["lst"].iloc[i] == pytest.approx(stored[inside].mean()), (site, i)
        lon, lat = t["lon"], t["lat"]
        x, y = box.affine * (c + 0.5, r + 0.5)
        assert at_tower["elevation"].iloc[0] == pytest.approx(
            float(static_at([str(dem)], "cf_elevation", "elevation", x, y)), abs=1e-9
        )
        assert abs(at_tower["elevation"].iloc[0] - World(PRESETS["demo"]).elevation(lon, lat)) < 60
        assert np.ptp(at_tower["elevation"].to_numpy()) == 0  # static
