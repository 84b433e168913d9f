"""OUT/report.html of the demo run: self-contained, every image decodes in a real browser,
no console errors; the flux section carries the validation table and the tower plots."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, headless
from PIL import Image


def test_report_is_self_contained_and_complete(demo_out: Path):
    html = (demo_out / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched
    for product in ("vi", "phenology", "gosat_l3", "flux"):
        assert f"Product <code>{product}</code>" in html
    assert "Models of <code>flux</code>" in html and "across_site" in html
    assert "gpp at the towers" in html  # observed vs predicted time series
    assert "Runs into this folder" in html and "peak memory" in html


def test_report_renders_in_headless_chromium(demo_out: Path, tmp_path):
    url = (demo_out / "report.html").as_uri()
    proc = headless(url, tmp_path, "--dump-dom")
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    body = re.search(r"<body ([^>]*)>", proc.stdout).group(1)
    counts = dict(re.findall(r'data-(images(?:-loaded)?)="(\d+)"', body))
    assert int(counts["images"]) >= 20
    assert counts["images-loaded"] == counts["images"]  # every embedded PNG decoded
    shot = tmp_path / "report.png"
    assert (
        headless(url, tmp_path, f"--screenshot={shot}", "--window-size=1100,1400").returncode == 0
    )
    rgb = np.asarray(Image.open(shot).convert("RGB"))
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50  # maps drawn, not a blank page
    assert (REPO / "docs" / "images" / "report.png").is_file()  # the kept screenshot


def test_colour_rules_centre_signed_variables_on_zero():
    from fluxscape.colours import DIVERGING, SEQUENTIAL, colour_range, label

    nee = {"long_name": "net ecosystem exchange of CO2 (positive: release)"}
    assert colour_range(nee, -2.0, 5.0) == (DIVERGING, -5.0, 5.0)  # source and sink
    assert colour_range({}, -3.0, 2.5) == (DIVERGING, -3.0, 3.0)  # both signs in the data
    assert colour_range({"long_name": "ndvi"}, -0.05, 0.9) == (SEQUENTIAL, -0.05, 0.9)  # water
    assert colour_range({}, 0.1, 0.9) == (SEQUENTIAL, 0.1, 0.9)
    # a spread of a signed quantity is never negative: sequential, whatever names it
    nee_sd = {"long_name": "net ecosystem exchange, as carbon: ensemble standard deviation"}
    assert colour_range(nee_sd, 0.05, 1.2) == (SEQUENTIAL, 0.05, 1.2)
    assert colour_range({"long_name": "1-sigma uncertainty of xco2"}, 0.4, 2.0)[0] == SEQUENTIAL
    assert label("ndvi", {"long_name": "normalized difference vegetation index", "units": "1"}) == (
        "normalized difference vegetation index"
    )
    assert label("gpp", {"long_name": "GPP", "units": "g m-2 d-1"}) == "GPP (g m-2 d-1)"


def test_report_tables_print_areas_whole_with_separators():
    from fluxscape.pipeline.report import _fmt

    assert _fmt(5034.2) == "5,034" and _fmt(1234567.0) == "1,234,567"
    assert _fmt(0.8123) == "0.812" and _fmt(float("nan")) == "—"


def test_signed_quicklook_is_diverging_and_true_to_shape(tmp_path):
    """A net exchange from -1 to 1 west to east is drawn teal (uptake) to brown (release),
    white at 0 (viridis has no white), and a degree of longitude at 60°N is half as wide as
    a degree of latitude on the map."""
    import xarray as xr
    from odc.geo.geobox import GeoBox

    from fluxscape.pipeline.quicklook import write_quicklooks
    from fluxscape.pipeline.store import VariableSpec, create_store, finalize_store, write_tile

    gb = GeoBox.from_bbox((10.0, 59.0, 12.0, 61.0), "epsg:4326", resolution=0.02)
    store = tmp_path / "s.zarr"
    spec = VariableSpec("nee", "float32", {"long_name": "net ecosystem exchange", "units": "1"})
    create_store(store, gb, {"year": np.array([2021])}, [spec], 100, {})
    x = np.linspace(-1, 1, 100, dtype=np.float32)
    field = np.broadcast_to(x, (1, 100, 100))
    write_tile(
        store, xr.Dataset({"nee": (("year", "y", "x"), field)}), slice(0, 100), slice(0, 100)
    )
    finalize_store(store, {})
    [png] = write_quicklooks(store, tmp_path / "q", "p")
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    row = rgb[rgb.shape[0] // 2, : rgb.shape[1] * 2 // 3]
    drawn = np.flatnonzero(row.max(axis=1) - row.min(axis=1) > 40)  # coloured: the map
    west, east = row[drawn[0] + 4], row[drawn[-1] - 4]
    middle = row[(drawn[0] + drawn[-1]) // 2]
    assert (middle > 220).all(), middle  # 0 is white
    assert west[1] > west[0] and east[0] > east[2], (west, east)  # teal west, brown east
    # the map's box: 2° of longitude drawn half as wide as 2° of latitude (cos 60° = 0.5)
    inside = (np.abs(rgb - 255).sum(axis=2) > 60)[:, : rgb.shape[1] * 2 // 3]
    cols, rows = np.flatnonzero(inside.any(axis=0)), np.flatnonzero(inside.any(axis=1))
    assert (cols[-1] - cols[0]) / (rows[-1] - rows[0]) < 0.75


def test_a_reused_quicklook_figure_draws_what_a_fresh_one_draws(tmp_path):
    """Quicklooks share one figure per thread and grid: a map drawn after another (another
    colour map, a longer title and colour-bar label wrapped on several lines) is byte for byte
    the map drawn on a fresh figure: one-line texts after longer ones give the smaller frame
    back."""
    import xarray as xr
    from odc.geo.geobox import GeoBox

    from fluxscape.pipeline import quicklook
    from fluxscape.pipeline.store import VariableSpec, create_store, finalize_store, write_tile

    gb = GeoBox.from_bbox((138.0, 35.5, 138.5, 36.0), "epsg:4326", resolution=0.01)
    store = tmp_path / "s.zarr"
    long_name = "a rather long description of a signed quantity " * 3
    specs = [
        VariableSpec("aa", "float32", {"long_name": long_name, "units": "1"}),
        VariableSpec("bb", "float32", {"long_name": "short", "units": "K"}),
    ]
    create_store(store, gb, {"year": np.array([2021])}, specs, 50, {})
    ramp = np.broadcast_to(np.linspace(-1, 1, 50, dtype=np.float32), (1, 50, 50))
    data = {"aa": (("year", "y", "x"), ramp), "bb": (("year", "y", "x"), ramp + 300)}
    write_tile(store, xr.Dataset(data), slice(0, 50), slice(0, 50))
    finalize_store(store, {})
    quicklook._FIGURES.__dict__.clear()  # a fresh figure for this thread
    [first] = quicklook.write_quicklooks(store, tmp_path / "fresh", "p", ["bb"])
    both = quicklook.write_quicklooks(store, tmp_path / "reused", "p")  # aa, then bb
    assert [p.name for p in both] == ["aa_2021.png", "bb_2021.png"]
    assert both[1].read_bytes() == first.read_bytes()
    tall, short = (Image.open(p).size for p in both)
    # two title lines and a three-line bar label, then one line each again
    assert tall[1] > short[1] and tall[0] > short[0]


def test_set_margins_places_subplots_in_inches():
    """Margins and gaps given in inches hold whatever the figure's size."""
    from matplotlib.figure import Figure

    from fluxscape.figlayout import set_margins

    for size in ((4.0, 3.0), (11.0, 8.8)):
        fig = Figure(figsize=size, dpi=100)
        axes = fig.subplots(2, 3)
        set_margins(fig, left=0.5, right=0.2, bottom=0.4, top=0.6, wgap=0.3, hgap=0.25)
        w, h = size
        first, right_of_it = axes[0, 0].get_position(), axes[0, 1].get_position()
        below = axes[1, 0].get_position()
        assert first.x0 * w == pytest.approx(0.5) and (1 - first.y1) * h == pytest.approx(0.6)
        assert (right_of_it.x0 - first.x1) * w == pytest.approx(0.3)
        assert (first.y0 - below.y1) * h == pytest.approx(0.25)
        assert below.y0 * h == pytest.approx(0.4)
        assert (1 - axes[1, 2].get_position().x1) * w == pytest.approx(0.2)
