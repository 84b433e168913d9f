"""Bottom-up against top-down (#16): the topdown reader (units by hand, 0-360 longitudes, bad
units), the comparison math (hand-computed), and the budget product on the sample world
(the injected top-down difference recovered within 5 %; the report's plots)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import REPO, run_cli

from fluxscape.errors import ReaderError, WorkflowError
from fluxscape.ml.budget import budget_table, compare
from fluxscape.readers.registry import detect, inspect_file
from fluxscape.readers.topdown import open_topdown
from fluxscape.sample import topdown_writer
from fluxscape.sample.world import PRESETS, World

MOL = 1e-6  # mol m-2 s-1
BY_HAND = 1e-6 * 12.011 * 86400  # = 1.0377504 gC m-2 d-1


def _ct_file(path: Path, units: str = "mol m-2 s-1", lon=None, lat=None, extra=None) -> Path:
    """A small CarbonTracker-like file: 2 months, values MOL x (1 + cell index)."""
    lon = np.array([178.5, 179.5, 180.5, 181.5]) if lon is None else np.asarray(lon)
    lat = np.array([10.5, 11.5]) if lat is None else np.asarray(lat)
    n = 2 * lat.size * lon.size
    values = (MOL * (1 + np.arange(n))).reshape(2, lat.size, lon.size)
    ds = xr.Dataset(
        {"bio_flux_opt": (("time", "latitude", "longitude"), values, {"units": units})}
        | (extra or {}),
        coords={
            "time": pd.to_datetime(["2021-01-15", "2021-02-15"]),
            "latitude": lat,
            "longitude": lon,
        },
    )
    ds.to_netcdf(path, engine="netcdf4")
    return path


def test_reader_converts_mol_per_second_to_gc_per_day_by_hand(tmp_path):
    path = _ct_file(tmp_path / "CT2022.flux1x1.nc")
    assert detect(path).name == "topdown"
    ds = open_topdown(path)
    assert ds["land"].attrs["units"] == "g m-2 d-1"
    assert BY_HAND == pytest.approx(1.0377504)
    # first month, south row, the cell at 178.5 E (index 0 of the file): 1 x MOL
    assert float(ds["land"].isel(time=0).sel(lat=10.5, lon=178.5)) == pytest.approx(BY_HAND)
    assert float(ds["land"].isel(time=1).sel(lat=11.5, lon=178.5)) == pytest.approx(13 * BY_HAND)
    assert list(pd.DatetimeIndex(ds["time"].values).strftime("%Y-%m-%d")) == [
        "2021-01-01",
        "2021-02-01",
    ]  # month starts
    summary = inspect_file(path).to_json()
    assert summary["reader"] == "topdown" and summary["details"]["land_variable"] == "bio_flux_opt"
    info = json.loads(run_cli("inspect", path, "--json").stdout)[0]
    assert info["reader"] == "topdown" and info["variables"] == ["land"]
    assert info["bbox"] == [-179.5, 10.5, 179.5, 11.5]
    assert info["details"]["file_units"] == {"bio_flux_opt": "mol m-2 s-1"}


def test_meteorology_is_not_taken_for_top_down(tmp_path):
    from fluxscape.sample.meteo_writer import write_meteo

    (path, *_) = write_meteo(World(PRESETS["demo"]), tmp_path)
    from fluxscape.readers.topdown import SPEC

    assert detect(path).name == "cf_meteo"
    with pytest.raises(ReaderError, match="no top-down land flux variable"):
        SPEC.sniff(path)


def test_reader_wraps_0_360_longitudes(tmp_path):
    path = _ct_file(tmp_path / "ct.nc")
    ds = open_topdown(path)
    np.testing.assert_allclose(ds["lon"].values, [-179.5, -178.5, 178.5, 179.5])
    # 180.5 E (file index 2) is -179.5 and keeps its value: 3 x MOL in the first cell
    assert float(ds["land"].isel(time=0).sel(lat=10.5, lon=-179.5)) == pytest.approx(3 * BY_HAND)
    assert float(ds["land"].isel(time=0).sel(lat=10.5, lon=179.5)) == pytest.approx(2 * BY_HAND)


def test_reader_refuses_unknown_units_in_one_line_naming_the_file(tmp_path):
    path = _ct_file(tmp_path / "bad.nc", units="kg m-2 yr-1")
    with pytest.raises(ReaderError) as err:
        open_topdown(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "bio_flux_opt" in msg
    assert "kg m-2 yr-1" in msg


def test_reader_variable_map_and_stated_relative_error(tmp_path):
    sd = (("time", "latitude", "longitude"), np.full((2, 2, 4), 2e-7), {"units": "mol m-2 s-1"})
    fire = (("time", "latitude", "longitude"), np.full((2, 2, 4), 1.0), {"units": "gC m-2 d-1"})
    path = _ct_file(tmp_path / "ct.nc", extra={"unc": sd, "fire_flux_imp": fire})
    ds = open_topdown(path, {"land": "bio_flux_opt", "land_sd": "unc", "fire": "fire_flux_imp"})
    assert float(ds["land_sd"].max()) == pytest.approx(0.2 * BY_HAND)
    assert float(ds["fire"].min()) == 1.0
    rel = open_topdown(path, {"land": "bio_flux_opt"}, relative_error=0.25)
    np.testing.assert_allclose(rel["land_sd"].values, 0.25 * np.abs(rel["land"].values))
    assert "fire" in open_topdown(path)  # the default map uses fire_flux_imp when present
    with pytest.raises(ReaderError, match="no variable 'nope' for land"):
        open_topdown(path, {"land": "nope"})


def test_variable_map_only_on_topdown_inputs(tmp_path):
    from fluxscape.pipeline.config import parse_workflow

    text = (REPO / "workflows" / "budget.yaml").read_text()
    bad = text.replace(
        'paths: ["meteo/era5_daily_*.nc"]',
        'paths: ["meteo/era5_daily_*.nc"]\n    variables: {land: t2m}',
    )
    assert bad != text
    with pytest.raises(WorkflowError, match="only the topdown reader"):
        parse_workflow(bad, "budget.yaml")


def _totals(region, month, total, sd, variable="nee", days=31):
    return {
        "region": region,
        "variable": variable,
        "period_type": "month",
        "period": month,
        "total_TgC": total,
        "sd_TgC": sd,
        "area_km2": 1.0,
        "days": days,
        "valid_fraction": 1.0,
    }


def test_comparison_math_by_hand():
    bu = pd.DataFrame([_totals("A", "2021-01", 1.0, 0.3), _totals("A", "2021-02", 1.0, 0.3)])
    td = pd.DataFrame(
        [
            _totals("A", "2021-01", 1.5, 0.4, "land"),
            _totals("A", "2021-02", 2.5, 0.4, "land"),
            _totals("A", "2021-03", 9.0, 0.4, "land"),  # no bottom-up: left out
        ]
    )
    out = compare(bu, td, k=2.0)
    assert list(out["month"]) == ["2021-01", "2021-02"]
    np.testing.assert_allclose(out["diff_TgC"], [0.5, 1.5])
    np.testing.assert_allclose(out["combined_sd_TgC"], [0.5, 0.5])  # sqrt(0.09 + 0.16)
    np.testing.assert_allclose(out["z"], [1.0, 3.0])
    assert list(out["within"]) == [True, False]  # 0.5 <= 2 x 0.5 < 1.5
    assert list(compare(bu, td, k=3.0)["within"]) == [True, True]


def test_comparison_with_bottom_up_fire_by_hand():
    """With bottom-up fire the compared totals are NEE + fire against land + top-down fire;
    each part stays in its own column and the fire's sd adds in quadrature."""
    bu = pd.DataFrame(
        [
            _totals("A", "2021-01", 1.0, 0.3),
            _totals("A", "2021-02", 1.0, 0.3),
            _totals("A", "2021-01", 0.4, 0.4, "fire"),  # no fire row in February: 0
        ]
    )
    td = pd.DataFrame(
        [
            _totals("A", "2021-01", 1.5, 0.4, "land"),
            _totals("A", "2021-02", 2.5, 0.4, "land"),
            _totals("A", "2021-01", 0.3, np.nan, "fire"),
        ]
    )
    out = compare(bu, td, k=2.0)
    assert out["fire_included"].all()
    np.testing.assert_allclose(out["bottomup_nee_TgC"], [1.0, 1.0])
    np.testing.assert_allclose(out["bottomup_fire_TgC"], [0.4, np.nan])
    np.testing.assert_allclose(out["bottomup_TgC"], [1.4, 1.0])
    np.testing.assert_allclose(out["bottomup_sd_TgC"], [0.5, 0.3])  # sqrt(0.09 + 0.16)
    np.testing.assert_allclose(out["topdown_land_TgC"], [1.5, 2.5])
    np.testing.assert_allclose(out["topdown_TgC"], [1.8, 2.5])
    np.testing.assert_allclose(out["diff_TgC"], [0.4, 1.5])
    # the same bottom-up without its fire rows: NEE against land, top-down fire reported only
    plain = compare(bu[bu["variable"] == "nee"], td, k=2.0)
    assert not plain["fire_included"].any()
    np.testing.assert_allclose(plain["bottomup_TgC"], plain["bottomup_nee_TgC"])
    np.testing.assert_allclose(plain["topdown_TgC"], [1.5, 2.5])
    np.testing.assert_allclose(plain["topdown_fire_TgC"], [0.3, np.nan])
    assert plain["bottomup_fire_TgC"].isna().all()


def _disturbance(**variables) -> xr.Dataset:
    """A 1-year, 2 x 3 pixel disturbance store on a 0.01 degree lon/lat grid."""
    coords = {"year": [2021], "y": [36.005, 35.995], "x": [138.005, 138.015, 138.025]}
    return xr.Dataset(
        {k: (("year", "y", "x"), np.asarray(v)[None]) for k, v in variables.items()},
        coords=coords,
    )


def test_fire_carbon_spreads_each_burn_over_its_month():
    """Burned pixels release the stated carbon (gC m-2) in the month of their burn day:
    MCD64A1 dates when the store has the reference, else breaks of low severity or more."""
    from fluxscape.errors import FluxscapeError
    from fluxscape.ml.budget import fire_carbon

    months = pd.date_range("2021-01-01", periods=12, freq="MS")
    mcd = _disturbance(
        mcd64_burned=[[1, 0, 1], [0, 0, 255]],
        mcd64_date=[[40.0, np.nan, 365.0], [np.nan, np.nan, np.nan]],  # Feb 9, Dec 31
    )
    field = fire_carbon(mcd, months, 1000.0)
    assert field.dims == ("time", "y", "x") and field.sizes["time"] == 12
    assert field.values[1, 0, 0] == pytest.approx(1000.0 / 28)  # February
    assert field.values[11, 0, 2] == pytest.approx(1000.0 / 31)  # December
    assert (field.sum("time").values > 0).sum() == 2
    # a month's fire field times its days gives back the carbon of each burn
    days = np.asarray((months + pd.DateOffset(months=1) - months).days)
    total = (field.values * days[:, None, None]).sum()
    assert total == pytest.approx(2000.0)
    breaks = _disturbance(
        disturbed=[[1, 1, 0], [0, 0, 0]],
        burn_severity=[[6, 3, 0], [0, 0, 0]],  # moderate-high; unburned
        date=[[200.0, 150.0, np.nan], [np.nan] * 3],
    )
    field = fire_carbon(breaks, months, 500.0)
    assert field.values[6, 0, 0] == pytest.approx(500.0 / 31)  # day 200: July 19
    assert float(field.sum()) == pytest.approx(500.0 / 31)  # the unburned break adds nothing
    with pytest.raises(FluxscapeError, match="reference .*burn_severity"):
        fire_carbon(_disturbance(disturbed=[[1, 0, 0], [0, 0, 0]]), months, 500.0)


def test_budget_table_cell_areas_by_hand():
    """A uniform 1 gC m-2 d-1 top-down field and a polygon that is one 1-degree cell at the
    equator: 31 days x the cell's area (~111.32 km x 110.57 km) / 1e12 TgC."""
    lat = np.array([-0.5, 0.5, 1.5])
    lon = np.array([10.5, 11.5, 12.5])
    time = pd.to_datetime(["2021-01-01"])
    ones = np.ones((1, 3, 3))
    td = xr.Dataset(
        {"land": (("time", "lat", "lon"), ones), "land_sd": (("time", "lat", "lon"), 0.1 * ones)},
        coords={"time": time, "lat": lat, "lon": lon},
    )
    x = np.arange(11.005, 12.0, 0.01)
    y = np.arange(0.005, 1.0, 0.01)[::-1]
    flux = xr.Dataset(
        {
            "nee": (("time", "y", "x"), np.full((1, y.size, x.size), 0.5)),
            "nee_sd": (("time", "y", "x"), np.full((1, y.size, x.size), 0.2)),
        },
        coords={"time": time, "y": y, "x": x},
    )
    square = {
        "type": "Feature",
        "properties": {"name": "cell"},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[11, 0], [12, 0], [12, 1], [11, 1], [11, 0]]],
        },
    }
    out = budget_table(flux, td, [square], flux_period_end="2021-02-01")
    area = 111.32e3 * 110.57e3
    row = out.iloc[0]
    assert row["topdown_TgC"] == pytest.approx(31 * area / 1e12, rel=5e-3)
    assert row["topdown_sd_TgC"] == pytest.approx(0.1 * 31 * area / 1e12, rel=5e-3)
    assert row["bottomup_TgC"] == pytest.approx(0.5 * 31 * area / 1e12, rel=5e-3)
    assert row["diff_TgC"] == pytest.approx(0.5 * 31 * area / 1e12, rel=5e-3)
    assert row["combined_sd_TgC"] == pytest.approx(np.hypot(0.1, 0.2) * 31 * area / 1e12, rel=5e-3)
    assert not row["within"]  # 0.5 > 2 x 0.224
    # a bottom-up fire field of 0.25 gC m-2 d-1 (sd 50 %) joins NEE on the bottom-up side
    fire = xr.full_like(flux["nee"], 0.25)
    burnt = budget_table(flux, td, [square], flux_period_end="2021-02-01", fire=fire).iloc[0]
    unit = 31 * area / 1e12
    assert burnt["fire_included"] and burnt["bottomup_fire_TgC"] == pytest.approx(
        0.25 * unit, rel=5e-3
    )
    assert burnt["bottomup_TgC"] == pytest.approx(0.75 * unit, rel=5e-3)
    assert burnt["bottomup_sd_TgC"] == pytest.approx(np.hypot(0.2, 0.125) * unit, rel=5e-3)
    assert burnt["topdown_TgC"] == pytest.approx(unit, rel=5e-3)  # the file gives no fire


# --- the sample world ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def budget_run(demo_out, sample_dir, tmp_path_factory) -> tuple[Path, Path]:
    """The budget recipe run with --resume on a copy of the demo output (only the budget
    product runs); returns (OUT, the folder of the top-down file's truth table). A demo output
    from before the top-down source gets the file written beside the copy."""
    tmp = tmp_path_factory.mktemp("budget")
    out = tmp / "out"
    shutil.copytree(demo_out, out, symlinks=True, ignore=shutil.ignore_patterns("sample"))
    truth = sample_dir / "truth"
    topdown = sample_dir / "topdown" / topdown_writer.FILE_NAME
    if not topdown.exists():
        truth = tmp / "truth"
        truth.mkdir()
        topdown = topdown_writer.write_topdown(
            World(PRESETS["demo"], seed=42),
            tmp / "topdown",
            truth,
            sample_dir / "regions" / "prefectures.geojson",
        )
    text = (REPO / "workflows" / "budget.yaml").read_text()
    recipe = tmp / "budget.yaml"
    recipe.write_text(text.replace('["topdown/CT-sample.flux1x1.monthly.nc"]', f'["{topdown}"]'))
    proc = run_cli("run", recipe, "--data-dir", sample_dir, "--out", out, "--resume")
    # the demo's products are kept (same settings): only the budget runs
    assert "flux: 0 of 16 tiles run" in proc.stdout and "budget: 16 of 16 tiles run" in proc.stdout
    return out, truth


def test_sample_world_budget_recovers_the_injected_difference(budget_run):
    """What is asserted and why it is honest: the top-down file is the world's true NEE as
    1-degree monthly cell means plus a known offset (truth/topdown_budget.csv: injected_TgC per
    region and month). The budget's difference top-down - bottom-up then holds three parts:
    the injection, the coarse grid's representation error (coarse_TgC - truth_TgC, computed by
    the writer on the 0.01 degree grid, independently of the reader, the unit conversion and
    the 1-degree cell weights under test) and the bottom-up model's error (truth_TgC -
    bottomup_TgC). Removing the two known parts must leave the injection within 5 %."""
    out, truth = budget_run
    table = pd.read_csv(out / "reports" / "budget" / "budget.csv")
    known = pd.read_csv(truth / topdown_writer.TRUTH_NAME)
    m = table.merge(known, on=["region", "month"], validate="one_to_one")
    assert len(m) == 3 * 24  # three regions, 24 months
    recovered = m["diff_TgC"] - (m["coarse_TgC"] - m["bottomup_TgC"])
    np.testing.assert_allclose(recovered, m["injected_TgC"], rtol=0.05)
    # the bottom-up side is the flux product's own regional NEE totals
    totals = pd.read_csv(out / "reports" / "flux" / "regional_totals.csv")
    nee = totals[(totals["variable"] == "nee") & (totals["period_type"] == "month")]
    both = table.merge(nee, left_on=["region", "month"], right_on=["region", "period"])
    np.testing.assert_allclose(
        both["bottomup_TgC"], both["total_TgC"], rtol=1e-5, atol=1e-9
    )  # CSV: 6 digits
    np.testing.assert_allclose(
        both["bottomup_sd_TgC"], both["sd_TgC"], rtol=1e-5, atol=1e-9
    )  # CSV: 6 digits
    # the stated top-down error: 0.4 gC m-2 d-1 over the polygon, fully correlated
    np.testing.assert_allclose(
        table["topdown_sd_TgC"],
        m["injected_TgC"] * topdown_writer.STATED_SD / topdown_writer.INJECTED_OFFSET,
        rtol=0.01,
    )
    np.testing.assert_array_equal(
        table["within"], table["diff_TgC"].abs() <= 2 * table["combined_sd_TgC"]
    )
    store = xr.open_zarr(out / "products" / "budget.zarr")
    assert store.sizes["time"] == 24 and store["topdown_land"].attrs["units"] == "g m-2 d-1"
    assert np.isfinite(store["topdown_land"].values).all()


def test_report_plots_each_region_with_both_series_and_bands(budget_run):
    from matplotlib.collections import PolyCollection

    from fluxscape.pipeline.report import budget_figure

    out, _ = budget_run
    page = (out / "report.html").read_text()
    assert "bottom-up against top-down" in page
    for region in ("East", "Lakeside", "West"):
        assert f'alt="budget {region}"' in page
    table = pd.read_csv(out / "reports" / "budget" / "budget.csv")
    fig = budget_figure(table, "West")
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.lines if not line.get_label().startswith("_")]
    assert labels == ["bottom-up NEE (flux product)", "top-down land flux (inversion)"]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    assert all(len(line.get_xdata()) == 24 for line in ax.lines[:2])


def test_demo_preset_writes_the_top_down_file_and_its_truth(tmp_path, monkeypatch):
    """The ``topdown`` source of a preset (the demo's) writes the file, the regions it needs
    and truth/topdown_budget.csv; injected = offset x polygon area x days."""
    from dataclasses import replace

    from fluxscape.sample import generate

    assert "topdown" in PRESETS["demo"].sources
    only = replace(PRESETS["demo"], name="topdown-only", sources=("topdown",))
    monkeypatch.setitem(PRESETS, "topdown-only", only)
    summary = generate.write_sample_world(tmp_path, preset="topdown-only")
    assert summary["topdown_files"] == 1
    path = tmp_path / "topdown" / topdown_writer.FILE_NAME
    raw = xr.open_dataset(path)
    assert raw["bio_flux_opt"].attrs["units"] == "mol m-2 s-1"
    assert raw.sizes["time"] == 24 and float(raw["longitude"].max()) < 360
    assert detect(path).name == "topdown"
    assert inspect_file(path).variables == ["land", "land_sd"]  # bio_flux_opt_sd found
    known = pd.read_csv(tmp_path / "truth" / topdown_writer.TRUTH_NAME)
    assert sorted(known["region"].unique()) == ["East", "Lakeside", "West"]
    jan = known[known["month"] == "2021-01"].set_index("region")
    feb = known[known["month"] == "2021-02"].set_index("region")
    np.testing.assert_allclose(jan["injected_TgC"] / feb["injected_TgC"], 31 / 28)
    # West is ~half of the 1 x 1 degree region (~100 km x 111 km at 36 N): 0.5 x days x area
    assert jan.loc["West", "injected_TgC"] == pytest.approx(
        0.5 * 31 * 0.5 * 90.2e3 * 111.0e3 / 1e12, rel=0.03
    )


def test_budget_needs_a_stated_top_down_uncertainty():
    from fluxscape.pipeline.config import parse_workflow

    text = (REPO / "workflows" / "budget.yaml").read_text()
    mapped = "variables: {land: bio_flux_opt, land_sd: bio_flux_opt_sd}"
    assert mapped in text
    with pytest.raises(WorkflowError, match=r"products\.budget\.topdown: .* no uncertainty"):
        parse_workflow(text.replace(mapped, "variables: {land: bio_flux_opt}"), "budget.yaml")
    stated = text.replace(mapped, "relative_error: 0.3")
    assert parse_workflow(stated, "budget.yaml").inputs["inversion"].relative_error == 0.3


def test_bad_top_down_units_fail_before_any_product_runs(tmp_path, sample_dir):
    """The step's check opens the top-down file: one line naming the file, nothing built."""
    bad = _ct_file(tmp_path / "CT-bad.nc", units="kg m-2 yr-1")
    text = (REPO / "workflows" / "budget.yaml").read_text()
    recipe = tmp_path / "budget.yaml"
    mapped = "variables: {land: bio_flux_opt, land_sd: bio_flux_opt_sd}"
    recipe.write_text(
        text.replace('["topdown/CT-sample.flux1x1.monthly.nc"]', f'["{bad}"]').replace(
            mapped, "relative_error: 0.3"
        )
    )
    out = tmp_path / "out"
    proc = run_cli("run", recipe, "--data-dir", sample_dir, "--out", out, check=False)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if "kg m-2 yr-1" in line]
    assert len(lines) == 1 and str(bad) in lines[0] and "products.budget.topdown" in lines[0]
    assert not (out / "products" / "vi.zarr").exists()


def test_budget_fire_names_a_disturbance_product_that_runs_first():
    """``fire`` is a typed product reference: a disturbance product runs before the budget;
    a product of another kind is refused naming the key."""
    from fluxscape.pipeline.config import parse_workflow, run_order

    text = (REPO / "workflows" / "budget.yaml").read_text()
    disturbance = (
        "  disturbance:\n    kind: disturbance\n    source: vi\n    variable: ndvi\n"
        "    history: [2021-01-01, 2021-12-31]\n    monitor: [2022-01-01, 2022-12-31]\n"
        "    burn_severity: true\n"
    )
    head, tail = text.split("  budget:\n", 1)
    fired = head + "  budget:\n" + tail.replace("    k: 2", "    fire: disturbance\n    k: 2", 1)
    wf = parse_workflow(fired.replace("products:\n", "products:\n" + disturbance, 1), "b.yaml")
    assert wf.products["budget"].fire == "disturbance"
    assert wf.products["budget"].fire_consumption == 1000.0
    order = run_order(wf.products)
    assert order.index("disturbance") < order.index("budget")
    with pytest.raises(WorkflowError, match=r"products\.budget\.fire"):
        parse_workflow(fired.replace("fire: disturbance", "fire: phenology"), "b.yaml")
