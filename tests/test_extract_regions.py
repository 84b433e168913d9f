"""Extraction over polygons (exact fractional, area-true pixel weights; any vector format),
FLUXNET site lists, and the hints for swapped coordinates and unknown variables (issue #14)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
from conftest import run_cli
from pyproj import CRS, Geod

from fluxscape.catalog import open_catalog
from fluxscape.catalog.publish import publish_store
from fluxscape.errors import FluxscapeError

RES = 0.1  # degrees
X = np.round(np.arange(10.0 + RES / 2, 12.0, RES), 10)  # pixel centres, 20 columns
Y = np.round(np.arange(47.0 - RES / 2, 45.0, -RES), 10)  # north-up, 20 rows
TIMES = pd.to_datetime(["2021-06-01", "2021-07-01"])
GEOD = Geod(ellps="WGS84")

# Two rectangles whose edges cut pixels at known fractions, and a triangle.
RECT_A = (10.23, 45.37, 10.81, 45.92)
RECT_B = (11.05, 46.44, 11.66, 46.98)
TRIANGLE = [(10.12, 46.05), (11.47, 46.05), (10.12, 46.93), (10.12, 46.05)]


def field(t: int) -> np.ndarray:
    """The synthetic (y, x) field at time step t: linear in lon and lat, plus t."""
    return 3.0 + 2.0 * X[None, :] - 0.5 * Y[:, None] + t


def regions_geojson(path: Path) -> Path:
    rect = [shapely.box(*RECT_A), shapely.box(*RECT_B)]
    features = [
        {"type": "Feature", "properties": {"name": n, "code": c}, "geometry": g.__geo_interface__}
        for n, c, g in zip(
            ["lake", "ridge", "valley"],
            [11, 12, 13],
            [*rect, shapely.Polygon(TRIANGLE)],
            strict=True,
        )
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """A catalog with one lon/lat product (10-12 E, 45-47 N, 0.1 degree) holding the linear
    field ``f`` at two time steps."""
    folder = tmp_path_factory.mktemp("synthetic")
    data = np.stack([field(t) for t in range(len(TIMES))])
    ds = xr.Dataset(
        {"f": (("time", "y", "x"), data, {"units": "K", "grid_mapping": "spatial_ref"})},
        coords={
            "time": TIMES,
            "y": Y,
            "x": X,
            "spatial_ref": ((), 0, {"crs_wkt": CRS.from_epsg(4326).to_wkt()}),
        },
    )
    ds.to_zarr(folder / "f.zarr", consolidated=True, zarr_format=2)
    publish_store(folder / "f.zarr", folder / "catalog", "syn", "field")
    return folder / "catalog"


def cell_area(lat: float) -> float:
    """Area (m2) of the 0.1 degree cell centred on ``lat`` (geodesic polygon, pyproj)."""
    lons = [0.0, RES, RES, 0.0]
    lats = [lat - RES / 2, lat - RES / 2, lat + RES / 2, lat + RES / 2]
    return abs(GEOD.polygon_area_perimeter(lons, lats)[0])


def overlap(lo: float, hi: float, centre: float) -> float:
    """Share of the pixel centred on ``centre`` (width RES) within [lo, hi]."""
    return max(0.0, min(hi, centre + RES / 2) - max(lo, centre - RES / 2)) / RES


def hand_mean(fractions: np.ndarray, t: int) -> float:
    """sum(fraction x cell area x value) / sum(fraction x cell area)."""
    weights = fractions * np.array([cell_area(lat) for lat in Y])[:, None]
    return float((weights * field(t)).sum() / weights.sum())


def rect_fractions(rect) -> np.ndarray:
    w, s, e, n = rect
    return np.outer([overlap(s, n, y) for y in Y], [overlap(w, e, x) for x in X])


def triangle_fractions() -> np.ndarray:
    tri = shapely.Polygon(TRIANGLE)
    return np.array(
        [
            [
                shapely.box(x - RES / 2, y - RES / 2, x + RES / 2, y + RES / 2)
                .intersection(tri)
                .area
                / RES**2
                for x in X
            ]
            for y in Y
        ]
    )


def expected_means() -> dict[str, list[float]]:
    fractions = {
        "lake": rect_fractions(RECT_A),
        "ridge": rect_fractions(RECT_B),
        "valley": triangle_fractions(),
    }
    return {k: [hand_mean(f, t) for t in range(len(TIMES))] for k, f in fractions.items()}


def test_three_polygon_features_give_three_area_weighted_means_within_1e6(synthetic, tmp_path):
    regions = regions_geojson(tmp_path / "regions.geojson")
    out = tmp_path / "means.parquet"  # full precision (the CSV keeps 6 digits)
    run_cli(
        "catalog", "extract", synthetic, "--variable", "f", "--polygon", regions,
        "--time", "2021-06-01/2021-06-30", "-o", out,
    )  # fmt: skip
    df = pd.read_parquet(out)
    assert list(df.columns) == [
        "product", "region", "time", "variable", "value", "n_pixels", "area_km2", "valid_km2"
    ]  # fmt: skip
    assert df["region"].tolist() == ["lake", "ridge", "valley"]  # one row per feature
    want = expected_means()
    for _, row in df.iterrows():
        assert row["value"] == pytest.approx(want[row["region"]][0], abs=1e-6)
    # the weights are area-true: cells shrink northwards, so the mean of a field falling
    # northwards (-0.5 per degree) is above the unweighted one
    flat = rect_fractions(RECT_A)
    unweighted = float((flat * field(0)).sum() / flat.sum())
    assert df.loc[0, "value"] > unweighted + 1e-5
    # the covered area is the rectangle's area on the ellipsoid
    w, s, e, n = RECT_A
    area = abs(GEOD.polygon_area_perimeter([w, e, e, w], [s, s, n, n])[0]) / 1e6
    assert df.loc[0, "area_km2"] == pytest.approx(area, rel=1e-4)
    assert df.loc[0, "n_pixels"] == 7 * 7  # 10.23-10.81 spans 7 columns, 45.37-45.92 7 rows


def test_geopackage_and_reprojected_shapefile_give_the_geojson_means(synthetic, tmp_path):
    frame = gpd.read_file(regions_geojson(tmp_path / "regions.geojson"))
    gpkg = tmp_path / "regions.gpkg"
    frame.to_file(gpkg, driver="GPKG")
    shp = tmp_path / "regions.shp"
    frame.to_crs("EPSG:3857").to_file(shp)  # Web Mercator: read back to lon/lat
    want = expected_means()
    cat = open_catalog(synthetic)
    for path in (gpkg, shp):
        df = cat.extract("f", polygon=path)
        assert df["region"].tolist() == ["lake", "lake", "ridge", "ridge", "valley", "valley"]
        got = df.groupby("region")["value"].apply(list).to_dict()
        for name, values in want.items():
            np.testing.assert_allclose(got[name], values, atol=1e-6, err_msg=f"{path} {name}")


def test_name_property_names_the_rows_and_a_missing_one_lists_the_properties(synthetic, tmp_path):
    cat = open_catalog(synthetic)
    regions = regions_geojson(tmp_path / "regions.geojson")
    df = cat.extract("f", polygon=regions, name_property="code", time="2021-07-01/2021-07-31")
    assert df["region"].tolist() == ["11", "12", "13"]
    with pytest.raises(FluxscapeError, match=r"regions.geojson: no property 'nom'.*name, code"):
        cat.extract("f", polygon=regions, name_property="nom")


@pytest.mark.parametrize("suffix", [".gpkg", ".shp", ".geojson"])
def test_unreadable_vector_file_is_one_line_naming_the_file(synthetic, tmp_path, suffix):
    bad = tmp_path / f"broken{suffix}"
    bad.write_bytes(b"\x89\xff\xfe not a vector file \x00\x81" * 20)
    proc = run_cli(
        "catalog", "extract", synthetic, "--variable", "f", "--polygon", bad, check=False
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "UnicodeDecodeError" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"broken{suffix}" in lines[0]


def test_line_features_are_refused_naming_the_feature(synthetic, tmp_path):
    line = tmp_path / "line.geojson"
    line.write_text(json.dumps({"type": "LineString", "coordinates": [[10, 46], [11, 46]]}))
    with pytest.raises(FluxscapeError, match="line.geojson: feature 1 is a LineString"):
        open_catalog(synthetic).extract("f", polygon=line)


def test_projected_store_weights_pixels_by_fraction_of_equal_cells(tmp_path):
    """A UTM zone 32N store (1 km pixels): a lon/lat polygon is transformed to the store's
    CRS; all pixels have the same area, so the weights are the covered fractions."""
    crs = CRS.from_epsg(32632)
    wkt = crs.to_wkt()
    x = np.arange(600_500.0, 640_000.0, 1000.0)
    y = np.arange(5_139_500.0, 5_100_000.0, -1000.0)
    values = (0.001 * x[None, :] + 0.002 * y[:, None])[None]
    ds = xr.Dataset(
        {"g": (("time", "y", "x"), values, {"units": "1", "grid_mapping": "spatial_ref"})},
        coords={"time": TIMES[:1], "y": y, "x": x, "spatial_ref": ((), 0, {"crs_wkt": wkt})},
    )
    ds.to_zarr(tmp_path / "g.zarr", consolidated=True, zarr_format=2)
    publish_store(tmp_path / "g.zarr", tmp_path / "catalog", "utm", "g")
    # a rectangle drawn in UTM metres (edges cut pixels), given to extract in lon/lat
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    w, s, e, n = 612_250.0, 5_111_700.0, 627_400.0, 5_124_300.0
    ring = shapely.segmentize(shapely.box(w, s, e, n), 100.0)
    lonlat = shapely.transform(ring, lambda xy: np.column_stack(to_lonlat.transform(*xy.T)))
    df = open_catalog(tmp_path / "catalog").extract("g", polygon=lonlat.__geo_interface__)
    fx = np.array([max(0.0, min(e, c + 500) - max(w, c - 500)) / 1000 for c in x])
    fy = np.array([max(0.0, min(n, c + 500) - max(s, c - 500)) / 1000 for c in y])
    frac = np.outer(fy, fx)
    want = float((frac * values[0]).sum() / frac.sum())
    assert df["value"].iloc[0] == pytest.approx(want, rel=1e-6)
    assert df["area_km2"].iloc[0] == pytest.approx((e - w) * (n - s) / 1e6, rel=1e-4)


def test_fluxnet_sites_list_is_accepted_by_sites(demo_out, tmp_path):
    """The demo's towers/SitesList.csv (FLUXNET layout: SiteCode, SiteName, Latitude,
    Longitude, IGBPCode) gives each tower's nearest pixel."""
    listing = demo_out / "sample" / "towers" / "SitesList.csv"
    assert listing.read_text(encoding="utf-8-sig").startswith("SiteCode,SiteName,Latitude")
    out = tmp_path / "towers.parquet"
    run_cli(
        "catalog", "extract", demo_out / "catalog", "--variable", "ndvi", "--product", "vi",
        "--sites", listing, "--time", "2021-07-01/2021-07-31", "-o", out,
    )  # fmt: skip
    df = pd.read_parquet(out)
    towers = pd.read_csv(listing, encoding="utf-8-sig")
    assert set(df["site"]) == set(towers["SiteCode"])
    store = xr.open_zarr(demo_out / "products" / "vi.zarr")
    first = towers.iloc[0]
    px = store.ndvi.sel(x=first.Longitude, y=first.Latitude, method="nearest")
    got = df[df.site == first.SiteCode]
    want = px.sel(time=slice("2021-07-01", "2021-07-31")).values.astype(float)
    np.testing.assert_array_equal(got["value"].to_numpy(), want)


def test_real_fluxnet_sites_list_picks_the_towers_inside(synthetic, realdata_dir):
    listing = realdata_dir / "fluxnet2020_warmwinter" / "SitesList.csv"
    df = open_catalog(synthetic).extract("f", sites=listing, time="2021-06-01/2021-06-30")
    assert {"IT-Ren", "IT-Lav", "IT-MBo"} <= set(df["site"])  # Alpine towers in 10-12 E
    assert df["site"].is_unique


@pytest.mark.parametrize(
    "place",
    [
        {"point": (46.2, 11.3)},
        {"bbox": (45.5, 10.5, 46.5, 11.5)},
    ],
)
def test_swapped_lat_lon_that_would_match_gets_a_hint(synthetic, place):
    with pytest.raises(FluxscapeError, match="syn.field: are latitude and longitude swapped"):
        open_catalog(synthetic).extract("f", **place)


def test_latitude_beyond_90_gets_a_swap_hint_on_the_command_line(demo_out):
    proc = run_cli(
        "catalog", "extract", demo_out / "catalog", "--variable", "ndvi",
        "--point", "35.96,138.44", check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "latitude 138.44 is outside -90..90" in proc.stderr
    assert "latitude and longitude swapped?" in proc.stderr


def test_unknown_variable_lists_the_catalog_variables(synthetic, demo_out):
    with pytest.raises(FluxscapeError, match=r"no variable 'ndiv'.*variables: .*evi, .*ndvi"):
        open_catalog(demo_out / "catalog").extract("ndiv", point=(138.44, 35.96))
    with pytest.raises(FluxscapeError, match=r"no variable 'sos' in product demo.vi; .*ndvi"):
        open_catalog(demo_out / "catalog").extract("sos", point=(138.44, 35.96), product="vi")
    with pytest.raises(FluxscapeError, match=r"variables: f$"):
        open_catalog(synthetic).extract("F", point=(11.0, 46.0))
