"""The map page in headless Chromium (issue #14): an offline Natural Earth basemap, a diverging
colour map centred on 0 for signed variables, a legend with long name and units, a series
chart with date axes and units, the clicked value in the popup and a season selector.

FLUXSCAPE_DOCS_IMAGES=1 also copies the screenshot to docs/images/map.png (the docs' image)."""

from __future__ import annotations

import html
import io
import os
import re
import shutil

import httpx
import numpy as np
import pytest
import xarray as xr
from conftest import REPO, headless, served
from PIL import Image
from pyproj import CRS, Transformer

from fluxscape.catalog.mapstyle import colour_scale
from fluxscape.catalog.publish import publish_store
from fluxscape.catalog.serve import create_app
from fluxscape.colours import is_signed

POINT = (138.4392, 35.9628)  # lon, lat inside the demo products
#: Every request outside 127.0.0.1 fails (so an online basemap or CDN would show as an error).
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


@pytest.fixture(scope="module")
def server(demo_out, tmp_path_factory):
    """The demo's vi, phenology and flux products served on a free loopback port."""
    import uvicorn

    cat = tmp_path_factory.mktemp("mapcat") / "catalog"
    for name in ("vi", "phenology", "flux"):
        publish_store(demo_out / "products" / f"{name}.zarr", cat, "demo", name)
    app = create_app(cat, {})
    with served(
        lambda port: uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    ) as port:
        yield f"http://127.0.0.1:{port}"


def page(server: str, tmp_path, fragment: str) -> tuple[str, dict, list[str]]:
    """The page's DOM after its scripts ran, #status's data attributes and console lines."""
    proc = headless(f"{server}/web/#{fragment}", tmp_path, OFFLINE, "--dump-dom")
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    status = re.search(r'<div id="status" ([^>]*)>', proc.stdout).group(1)
    attrs = dict(re.findall(r'data-([\w-]+)="([^"]*)"', status))
    return proc.stdout, attrs, console


def test_signed_variables_get_a_diverging_scale_centred_on_zero():
    nee = colour_scale({"long_name": "net ecosystem exchange of CO2"}, np.linspace(-3, 1, 50))
    assert nee["signed"] and nee["colormap"] == "brbg_r"
    assert nee["min"] == -nee["max"] and nee["max"] > 2.5
    ndvi = {"long_name": "normalized difference vegetation index", "units": "1"}
    assert not is_signed(ndvi, -0.05, 0.85)  # a few water pixels do not make NDVI signed
    assert colour_scale(ndvi, np.linspace(0.1, 0.9, 50))["colormap"] == "viridis"
    assert is_signed({}, -2.0, 3.0) and not is_signed({}, 0.0, 3.0)


def test_stats_give_long_name_units_and_legend_colours(server):
    nee = httpx.get(f"{server}/stats/demo.flux?variable=nee").json()
    assert nee["signed"] and nee["colormap"] == "brbg_r" and nee["min"] == -nee["max"]
    assert nee["long_name"].startswith("net ecosystem exchange") and nee["units"] == "g m-2 d-1"
    assert len(nee["colours"]) == 11 and nee["colours"][5] in ("#f5f4f4", "#f5f5f5")
    gpp = httpx.get(f"{server}/stats/demo.flux?variable=gpp").json()
    assert not gpp["signed"] and gpp["colormap"] == "viridis"


def test_map_page_shows_offline_basemap_axes_legend_and_clicked_value(server, demo_out, tmp_path):
    fragment = f"product=demo.flux&variable=nee&step=2021-07&point={POINT[0]},{POINT[1]}"
    dom, status, console = page(server, tmp_path, fragment)
    assert console == []
    assert status["ready"] == "1" and status["errors"] == "0"
    # the Natural Earth basemap came from this server, and nothing from elsewhere
    assert status["basemap"] == "1" and int(status["basemap-features"]) >= 3
    assert status["foreign"] == "0"
    assert int(status["tiles"]) >= 1
    # legend: long name and units, diverging colour map centred on 0
    legend = re.search(r'<div id="legend" ([^>]*)>(.*?)</div></div>', dom, re.S)
    assert 'data-colormap="brbg_r"' in legend.group(1) and 'data-signed="true"' in legend.group(1)
    text = html.unescape(re.sub(r"<[^>]+>", " ", legend.group(2)))
    assert "net ecosystem exchange of CO2" in text and "g m-2 d-1" in text
    assert re.search(r"<span>0</span>", legend.group(2))
    # the series chart has date ticks on x and the variable with its units on y
    xticks = re.findall(r'<text class="xtick"[^>]*>([^<]+)</text>', dom)
    assert len(xticks) >= 3 and any(re.fullmatch(r"[A-Z][a-z]{2} 202[12]", t) for t in xticks)
    assert re.findall(r'<text class="ytick"[^>]*>([^<]+)</text>', dom)
    assert re.search(r'<text class="ylabel"[^>]*>nee \(g m-2 d-1\)</text>', dom)
    assert re.search(r'<text class="xlabel"[^>]*>date</text>', dom)
    # the popup shows the clicked pixel's value at the map's time step, with units
    value = re.search(r'<b class="value" data-value="([^"]*)">([^<]+)</b> ([^<]+)<br>', dom)
    step = re.search(r'<div id="stepvalue">([^<]+)</div>', dom).group(1)
    flux = xr.open_zarr(demo_out / "products" / "flux.zarr")
    want = float(flux.nee.sel(x=POINT[0], y=POINT[1], method="nearest").sel(time=step).values)
    assert float(value.group(1)) == pytest.approx(want, rel=1e-6)
    assert value.group(3) == "g m-2 d-1"

    shot = tmp_path / "map.png"
    proc = headless(f"{server}/web/#{fragment}", tmp_path, OFFLINE, f"--screenshot={shot}")
    assert proc.returncode == 0
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    sea = np.all(np.abs(rgb - [0xCF, 0xDF, 0xEC]) <= 3, axis=-1)
    land = np.all(np.abs(rgb - [0xF3, 0xF0, 0xE8]) <= 3, axis=-1)
    assert sea.mean() > 0.02 and land.mean() > 0.02  # sea and land drawn: coastlines in view
    if os.environ.get("FLUXSCAPE_DOCS_IMAGES") == "1":
        shutil.copy(shot, REPO / "docs" / "images" / "map.png")


@pytest.mark.parametrize("season", ["1", "2"])
def test_phenology_season_selector_chooses_the_season_of_map_and_series(
    server, demo_out, tmp_path, season
):
    lon, lat = 138.085, 35.925  # a double-cropped pixel: two seasons both years
    fragment = f"product=demo.phenology&variable=sos&season={season}&point={lon},{lat}"
    dom, status, console = page(server, tmp_path, fragment)
    assert console == [] and status["ready"] == "1" and status["errors"] == "0"
    select = re.search(r'<select id="dim-season" data-dim="season">(.*?)</select>', dom, re.S)
    assert select, "no season selector"
    assert re.findall(r'<option value="([^"]+)"', select.group(1)) == ["1", "2"]
    # the series holds the chosen season's start of season, one value per year
    sos = xr.open_zarr(demo_out / "products" / "phenology.zarr").sos
    want = sos.sel(x=lon, y=lat, method="nearest").sel(season=int(season)).values
    assert np.isfinite(want).all() and len(want) == 2
    chart = re.search(r'<svg class="chart"[^>]*data-points="(\d+)"', dom)
    assert chart and int(chart.group(1)) == 2
    yticks = [float(t) for t in re.findall(r'<text class="ytick"[^>]*>([^<]+)</text>', dom)]
    assert min(yticks) <= want.min() and want.max() <= max(yticks)
    assert max(yticks) - min(yticks) < 60  # not both seasons (about 80 and 200) on one axis
    xticks = re.findall(r'<text class="xtick"[^>]*>([^<]+)</text>', dom)
    assert "2021" in xticks and "2022" in xticks
    assert re.search(r'<text class="xlabel"[^>]*>year</text>', dom)
    assert re.search(r'<text class="ylabel"[^>]*>sos \(day of year\)</text>', dom)
    # the popup: the value of the year on the slider, in the chosen season
    value = float(re.search(r'<b class="value" data-value="([^"]+)"', dom).group(1))
    year = int(re.search(r'<div id="stepvalue">([^<]+)</div>', dom).group(1))
    at = sos.sel(x=lon, y=lat, method="nearest").sel(season=int(season), year=year)
    assert value == pytest.approx(float(at), rel=1e-6)


@pytest.fixture(scope="module")
def projected_server(tmp_path_factory):
    """A product on a UTM zone 54N grid (1 km, over Ibaraki and Tochigi) served alone."""
    import uvicorn

    folder = tmp_path_factory.mktemp("utm")
    x = np.arange(380_500.0, 460_000.0, 1000.0)
    y = np.arange(4_039_500.0, 3_960_000.0, -1000.0)
    wave = np.sin(x[None, :] / 9000) * np.cos(y[:, None] / 7000)
    attrs = {"units": "gC m-2 d-1", "long_name": "net ecosystem exchange"}
    ds = xr.Dataset(
        {
            "nee": (
                ("time", "y", "x"),
                np.stack([wave, 2 * wave]),
                attrs | {"grid_mapping": "spatial_ref"},
            )
        },
        coords={
            "time": np.array(["2021-06-01", "2021-07-01"], dtype="datetime64[ns]"),
            "y": y,
            "x": x,
            "spatial_ref": ((), 0, {"crs_wkt": CRS.from_epsg(32654).to_wkt()}),
        },
    )
    ds.to_zarr(folder / "utm.zarr", consolidated=True, zarr_format=2)
    publish_store(folder / "utm.zarr", folder / "catalog", "utm", "flux")
    app = create_app(folder / "catalog", {})
    with served(
        lambda port: uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    ) as port:
        yield f"http://127.0.0.1:{port}", ds


def test_projected_store_is_drawn_on_the_basemap_and_clicked(projected_server, tmp_path):
    server, ds = projected_server
    lon, lat = 140.0, 35.9
    dom, status, console = page(server, tmp_path, f"step=2021-07&point={lon},{lat}")
    assert console == [] and status["ready"] == "1" and status["errors"] == "0"
    assert status["basemap"] == "1" and status["foreign"] == "0" and int(status["tiles"]) >= 1
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32654", always_xy=True).transform(lon, lat)
    want = float(ds.nee.sel(time="2021-07-01").sel(x=x, y=y, method="nearest"))
    value = float(re.search(r'<b class="value" data-value="([^"]+)"', dom).group(1))
    assert value == pytest.approx(want, rel=1e-6)
    # the Web Mercator tile over the point holds coloured (opaque) pixels of the product
    n = 2**8
    tx = int((lon + 180) / 360 * n)
    ty = int((1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n)
    r = httpx.get(
        f"{server}/tiler/tiles/WebMercatorQuad/8/{tx}/{ty}.png",
        params={
            "collection": "utm.flux",
            "variable": "nee",
            "rescale": "-2,2",
            "colormap_name": "brbg_r",
            "sel": "time=2021-07-01T00:00:00Z",
        },
    )
    assert r.status_code == 200
    alpha = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))[..., 3]
    assert (alpha > 0).mean() > 0.05
