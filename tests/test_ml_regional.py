"""Regional totals over polygons: pixel areas, partial pixels, known totals in TgC."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
from pyproj import Geod
from shapely.geometry import Polygon, mapping

from fluxscape.errors import FluxscapeError
from fluxscape.ml import regional
from fluxscape.ml.regional import (
    cell_area_m2,
    load_polygons,
    pixel_weights,
    regional_totals,
    regional_totals_dataset,
    write_totals,
)

GEOD = Geod(ellps="WGS84")
# A quadrilateral with slanted edges (every edge cuts pixels) in central Japan.
QUAD = Polygon([(138.03, 35.52), (139.47, 35.81), (139.22, 36.93), (138.26, 36.48)])


def geodesic_area_m2(poly: Polygon) -> float:
    """Area of a lon/lat polygon whose edges are straight in degrees (densified)."""
    dense = shapely.segmentize(poly, 0.001)
    return abs(GEOD.geometry_area_perimeter(dense)[0])


def fc(*named) -> dict:
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"name": n}, "geometry": mapping(g)} for n, g in named
        ],
    }


def field(values, times, res=0.05, bbox=(137.5, 35.0, 140.0, 37.5), name="gpp") -> xr.DataArray:
    x = np.arange(bbox[0] + res / 2, bbox[2], res)
    y = np.arange(bbox[3] - res / 2, bbox[1], -res)
    data = np.broadcast_to(
        np.asarray(values, float)[:, None, None], (len(times), len(y), len(x))
    ).copy()
    return xr.DataArray(
        data, dims=("time", "y", "x"), coords={"time": times, "y": y, "x": x}, name=name
    )


def test_cell_area_matches_densified_geodesic_and_earth_surface():
    densified = shapely.segmentize(shapely.box(138.0, 35.0, 139.0, 36.0), 0.0005)
    geod = abs(GEOD.geometry_area_perimeter(densified)[0])
    assert cell_area_m2(35.0, 36.0, 1.0) == pytest.approx(geod, rel=1e-6)
    lat = np.linspace(-90, 90, 181)
    total = cell_area_m2(lat[:-1], lat[1:], 360.0).sum()
    assert total / 1e6 == pytest.approx(510_065_621.7, rel=1e-8)  # WGS84 surface, km2


def test_pixel_weights_cover_polygon_area_including_partial_pixels():
    x = np.arange(137.525, 140.0, 0.05)
    y = np.arange(37.475, 35.0, -0.05)
    w = pixel_weights(x, y, QUAD)
    truth = geodesic_area_m2(QUAD)
    assert w.sum() == pytest.approx(truth, rel=1e-4)
    partial = (w > 0) & (w < cell_area_m2(y - 0.025, y + 0.025, 0.05)[:, None] * 0.999)
    assert partial.sum() > 50  # the slanted edges cut many pixels


def test_known_annual_and_monthly_totals_within_half_percent():
    times = pd.date_range("2021-01-01", "2021-12-01", freq="MS")
    rate = np.linspace(1.0, 6.0, 12)  # gC m-2 d-1, one value per month
    f = field(rate, times)
    sd = f * 0.1
    out = regional_totals(f, fc(("quad", QUAD)), sd=sd)
    area = geodesic_area_m2(QUAD)
    truth_month = rate * times.days_in_month.to_numpy() * area / 1e12
    months = out[out.period_type == "month"]
    np.testing.assert_allclose(months["total_TgC"], truth_month, rtol=0.005)
    year = out[out.period_type == "year"].iloc[0]
    assert year["period"] == "2021" and year["days"] == 365
    assert year["total_TgC"] == pytest.approx(truth_month.sum(), rel=0.005)
    assert year["sd_TgC"] == pytest.approx(0.1 * truth_month.sum(), rel=0.005)
    assert year["valid_fraction"] == pytest.approx(1.0)
    assert year["area_km2"] == pytest.approx(area / 1e6, rel=1e-4)


def test_sixteen_day_steps_split_across_months_and_nan_pixels_counted():
    times = pd.Timestamp(2021, 1, 1) + pd.to_timedelta(16 * np.arange(23), unit="D")
    f = field(np.full(23, 2.0), times)
    f[:, :, : f.sizes["x"] // 2] = np.nan  # west half missing
    out = regional_totals(f, fc(("quad", QUAD)))
    months = out[out.period_type == "month"]
    assert months["days"].tolist() == list(
        pd.date_range("2021-01", periods=12, freq="MS").days_in_month
    )
    west = QUAD.intersection(shapely.box(137.5, 35.0, 138.75, 37.5))
    east_area = geodesic_area_m2(QUAD) - geodesic_area_m2(west)
    year = out[out.period_type == "year"].iloc[0]
    assert year["total_TgC"] == pytest.approx(2.0 * 365 * east_area / 1e12, rel=0.005)
    assert year["valid_fraction"] == pytest.approx(east_area / geodesic_area_m2(QUAD), rel=0.005)


def test_polygon_outside_gives_zero_and_file_input(tmp_path):
    times = pd.date_range("2021-01-01", "2021-02-01", freq="MS")
    ds = xr.Dataset({"gpp": field([3.0, 3.0], times), "nee": field([-1.0, -1.0], times)})
    ds["gpp_sd"] = ds["gpp"] * 0.2
    far = shapely.box(10.0, 50.0, 11.0, 51.0)
    path = tmp_path / "regions.geojson"
    path.write_text(json.dumps(fc(("far", far), ("quad", QUAD))))
    out = regional_totals_dataset(ds, path)
    assert set(out["variable"]) == {"gpp", "nee"}
    far_rows = out[out.region == "far"]
    assert (far_rows["total_TgC"] == 0).all() and (far_rows["area_km2"] == 0).all()
    quad_nee = out[(out.region == "quad") & (out.variable == "nee") & (out.period_type == "year")]
    assert quad_nee["total_TgC"].iloc[0] < 0 and np.isnan(quad_nee["sd_TgC"].iloc[0])
    md = write_totals(out, tmp_path / "totals.csv")
    back = pd.read_csv(tmp_path / "totals.csv")
    np.testing.assert_allclose(back["total_TgC"], out["total_TgC"], rtol=1e-5)
    assert md.count("\n") == len(out) + 2 and "| quad | gpp | 2021 |" in md


def test_bad_polygons_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with pytest.raises(FluxscapeError, match="bad.geojson"):
        load_polygons(bad)
    with pytest.raises(FluxscapeError, match="no property 'pref'"):
        load_polygons(fc(("a", QUAD)), name_property="pref")


def test_block_by_block_sums_equal_whole_field_and_read_one_block_at_a_time(monkeypatch):
    times = pd.Timestamp(2021, 1, 1) + pd.to_timedelta(16 * np.arange(23), unit="D")
    rng = np.random.default_rng(3)
    f = field(np.full(23, 2.0), times) * rng.uniform(0.5, 1.5, (23, 1, 1))
    f = f * xr.DataArray(rng.uniform(0.0, 2.0, f.shape[1:]), dims=("y", "x"))
    f[3, 10:20, 5:9] = np.nan
    sd = 0.1 * f
    whole = regional_totals(f, fc(("quad", QUAD)), sd=sd)
    # a dask field chunked 7 x 9 pixels (many blocks, ragged edges, one-pixel strips)
    chunked = regional_totals(f.chunk({"y": 7, "x": 9}), fc(("quad", QUAD)), sd=sd.chunk())
    pd.testing.assert_frame_equal(whole, chunked, rtol=1e-9)
    # numpy fields are cut into BLOCK-square blocks; each read covers one block only
    seen: list[tuple[int, int]] = []
    original = xr.DataArray.isel

    def spy(self, *args, **kw):
        out = original(self, *args, **kw)
        if {"y", "x"} <= set(kw):
            seen.append((out.sizes["y"], out.sizes["x"]))
        return out

    monkeypatch.setattr(regional, "BLOCK", 8)
    monkeypatch.setattr(xr.DataArray, "isel", spy)
    small = regional_totals(f, fc(("quad", QUAD)), sd=sd)
    pd.testing.assert_frame_equal(whole, small, rtol=1e-9)
    assert seen and max(max(s) for s in seen) <= 8


@pytest.mark.parametrize("crs, res", [("EPSG:32654", 1000.0), ("EPSG:6933", 1000.0)])
def test_totals_on_a_projected_grid_match_the_polygons_true_area(crs, res):
    """A flux of 1 g m-2 d-1 over a 0.5° x 0.5° box in January, on UTM 54N and on an
    equal-area grid: the total is the box's area on the ellipsoid x 31 days, within the grid's
    scale error and the pixels' staircase along the transformed box (0.5 %); before, the
    lon/lat polygon never met a grid in metres and the total was 0."""
    from odc.geo.geobox import GeoBox
    from odc.geo.xr import xr_coords

    box = Polygon([(138.2, 35.6), (138.7, 35.6), (138.7, 36.1), (138.2, 36.1)])
    gbox = GeoBox.from_bbox((137.9, 35.3, 139.0, 36.4), "EPSG:4326", resolution=0.01)
    gbox = gbox.to_crs(crs, resolution=res)
    coords = {k: v for k, v in xr_coords(gbox, crs_coord_name="spatial_ref").items()}
    times = pd.DatetimeIndex(["2021-01-01"])
    field = xr.DataArray(
        np.ones((1, *gbox.shape.yx)), dims=("time", "y", "x"), coords={"time": times, **coords}
    )
    regions = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "box"}, "geometry": mapping(box)}
    ]}  # fmt: skip
    out = regional_totals(field, regions, period_end="2021-02-01")
    year = out[out["period_type"] == "year"].iloc[0]
    lons = np.r_[np.linspace(138.2, 138.7, 200), np.linspace(138.7, 138.2, 200)]
    lats = np.r_[np.full(200, 35.6), np.full(200, 36.1)]
    area = abs(Geod(ellps="WGS84").polygon_area_perimeter(lons, lats)[0])  # parallels
    assert year["area_km2"] == pytest.approx(area / 1e6, rel=5e-3)
    assert year["total_TgC"] == pytest.approx(area * 31 / 1e12, rel=5e-3)
