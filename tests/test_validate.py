"""Issue #20: per-product digests (``--resume`` rebuilds only what changed), ``fluxscape
validate`` (a dry run printing the plan) and site lists in the layouts users have."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import xarray as xr
from conftest import run_cli

from fluxscape.errors import FluxscapeError, ReaderError
from fluxscape.pipeline import config as cfg
from fluxscape.readers.fluxnet import read_site_list

DEMO = Path(__file__).parents[1] / "workflows" / "demo.yaml"


def _demo(sample_dir, **product_changes) -> cfg.Workflow:
    wf, base = cfg.load_workflow(DEMO)
    wf = cfg.resolve_workflow(wf, base, data_dir=sample_dir)
    products = dict(wf.products)
    for name, changes in product_changes.items():
        products[name] = products[name].model_copy(update=changes)
    return wf.model_copy(update={"products": products})


def test_a_flux_setting_changes_only_the_flux_digest(sample_dir):
    base = _demo(sample_dir)
    changed = _demo(sample_dir, flux={"sites": str(sample_dir / "towers" / "SitesList.csv")})
    digests = {n: cfg.product_hash(base, n) for n in base.products}
    assert {n for n in base.products if cfg.product_hash(changed, n) != digests[n]} == {"flux"}


def test_the_inference_runtime_changes_no_digest(sample_dir):
    """Compiled and reference inference give the same values (tests/test_ml_compiled.py):
    switching keeps the store on --resume."""
    base = _demo(sample_dir)
    changed = _demo(sample_dir, flux={"inference": "reference"})
    assert changed.products["flux"].inference == "reference"
    assert cfg.product_hash(changed, "flux") == cfg.product_hash(base, "flux")


def test_a_vi_setting_changes_vi_and_every_product_made_from_it(sample_dir):
    base = _demo(sample_dir)
    changed = _demo(sample_dir, vi={"max_pixel_reliability": 0})
    differ = {n for n in base.products if cfg.product_hash(changed, n) != cfg.product_hash(base, n)}
    assert differ == {"vi", "phenology", "flux"}


def test_dask_output_and_access_settings_change_no_digest(sample_dir):
    base = _demo(sample_dir)
    other = base.model_copy(
        update={
            "dask": base.dask.model_copy(update={"workers": 7}),
            "output": base.output.model_copy(update={"dir": "/elsewhere"}),
            "access": "partners",
            "description": "other words",
        }
    )
    assert all(cfg.product_hash(other, n) == cfg.product_hash(base, n) for n in base.products)


TWO_PRODUCTS = """\
name: two
region: {{bbox: [138.0, 35.5, 138.5, 36.0]}}
tile_size: 25
period: {{start: 2021-01-01, end: 2021-12-31}}
data_dir: {data}
inputs:
  modis: {{reader: modis_hdf4, paths: ["modis/MOD13A2.A2021*.hdf"]}}
  co2: {{reader: gosat_nies, paths: ["gosat/nies/GOSATTFTS2021*_02C01S*.h5"]}}
products:
  vi: {{kind: vi, input: modis, variables: [ndvi]}}
  xco2: {{kind: gosat_l3, inputs: [co2], variables: [xco2], resolution: {res}}}
dask: {{workers: 1}}
"""


def test_resume_after_changing_one_product_rebuilds_only_that_product(tmp_path, sample_dir):
    wf_file, out = tmp_path / "two.yaml", tmp_path / "out"
    wf_file.write_text(TWO_PRODUCTS.format(data=sample_dir, res=0.25))
    run_cli("run", wf_file, "--out", out)
    vi_version = (out / "products" / "vi.zarr").resolve()
    wf_file.write_text(TWO_PRODUCTS.format(data=sample_dir, res=0.5))
    plan = run_cli("validate", wf_file, "--out", out, "--json")
    actions = {p["name"]: p["resume"] for p in json.loads(plan.stdout)["products"]}
    assert actions == {"vi": "keep", "xco2": "rebuild"}
    proc = run_cli("run", wf_file, "--out", out, "--resume")
    assert "xco2: rebuilding: its settings" in proc.stderr
    assert "vi: 0 of 4 tiles run" in proc.stdout
    assert (out / "products" / "vi.zarr").resolve() == vi_version  # the same version, kept
    assert xr.open_zarr(out / "products" / "xco2.zarr").sizes["x"] == 1  # 0.5 degree cells


def test_validate_prints_the_plan_of_the_demo_without_writing(tmp_path, sample_dir):
    out = tmp_path / "out"
    proc = run_cli("validate", DEMO, "--data-dir", sample_dir, "--out", out)
    assert f"{DEMO}: valid" in proc.stdout
    for line in (
        "- vi (vi): 16 tile(s) on 100 x 100 pixels, EPSG:4326; reads input modis_vi; 46 file(s)",
        "- phenology (phenology): 16 tile(s)",
        "- flux (flux): 16 tile(s)",
        "--resume would build it: no store yet",
    ):
        assert line in proc.stdout
    assert not out.exists()


def test_validate_refuses_a_site_list_without_coordinates_naming_its_columns(tmp_path, sample_dir):
    sites = tmp_path / "sites.csv"
    sites.write_text("SITE,NAME,IGBP\nJP-S01,a,GRA\n")
    wf_file = tmp_path / "demo.yaml"
    text = DEMO.read_text().replace(
        "    towers: towers ", f"    sites: {sites}\n    towers: towers "
    )
    wf_file.write_text(text)
    proc = run_cli(
        "validate", wf_file, "--data-dir", sample_dir, "--out", tmp_path / "o", check=False
    )
    assert proc.returncode == 1
    assert str(sites) in proc.stderr and "columns found: SITE, NAME, IGBP" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_names_an_input_whose_files_do_not_read(tmp_path, sample_dir):
    bad = tmp_path / "modis"
    bad.mkdir()
    (bad / "MOD13A2.A2021001.h29v05.061.2021018034215.hdf").write_bytes(b"not hdf" * 100)
    text = TWO_PRODUCTS.format(data=sample_dir, res=0.25).replace(
        '"modis/MOD13A2.A2021*.hdf"', f'"{bad}/*.hdf"'
    )
    wf_file = tmp_path / "two.yaml"
    wf_file.write_text(text)
    proc = run_cli("validate", wf_file, "--out", tmp_path / "o", check=False)
    assert proc.returncode == 1
    assert "inputs.modis: none of its 1 file(s) could be read" in proc.stderr


# --- site lists --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "SITE_ID,LAT,LON,IGBP\nJP-S01,35.82,138.69,GRA\n",
        "site,lat,lon\nJP-S01,35.82,138.69\n",
        "\ufeffSiteCode,Latitude,Longitude\r\nJP-S01,35.82,138.69\r\n",
        "ID,site,lat,lon,IGBPname\n3,JP-S01,35.82,138.69,GRA\n",
    ],
    ids=["badm", "plain", "fluxnet-minimal", "phenofit-stations"],
)
def test_site_lists_in_common_layouts(tmp_path, text):
    path = tmp_path / "sites.csv"
    path.write_text(text, encoding="utf-8")
    sites = read_site_list(path)
    assert sites.iloc[0][["site_id", "lat", "lon"]].tolist() == ["JP-S01", 35.82, 138.69]
    assert list(sites.columns) == ["site_id", "name", "lat", "lon", "igbp"]


def test_site_list_as_geojson_points(tmp_path):
    path = tmp_path / "sites.geojson"
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [138.69, 35.82]},
        "properties": {"site": "JP-S01"},
    }
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    sites = read_site_list(path)
    assert sites.iloc[0][["site_id", "lat", "lon"]].tolist() == ["JP-S01", 35.82, 138.69]
    feature["geometry"] = {"type": "Polygon", "coordinates": []}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    with pytest.raises(ReaderError, match="feature 0 is a Polygon"):
        read_site_list(path)


def test_real_sites_list_drops_a_site_with_an_impossible_longitude(realdata_dir, caplog):
    sites = read_site_list(realdata_dir / "fluxnet2020_warmwinter" / "SitesList.csv")
    assert "IE-JtC" not in set(sites["site_id"])  # longitude -6499806.0 in the file
    assert sites["lon"].between(-180, 180).all() and len(sites) > 400
    assert "IE-JtC left out" in caplog.text


# --- regions in the grid's own units ------------------------------------------------------------

SINUSOIDAL = "+proj=sinu +R=6371007.181 +nadgrids=@null +wktext +units=m +no_defs"
MODIS_1KM = 926.625433055833


def _region(**kw):
    from fluxscape.pipeline.schema import Region

    return Region(**kw)


def test_a_bbox_in_the_grids_units_makes_exactly_that_window():
    """A 240 x 240 window of the MODIS 1 km sinusoidal grid (tile h29v05), given in metres."""
    from fluxscape.pipeline.grid import region_geobox

    west, north = -20015109.354 + 29 * 1111950.5197665, 10007554.677 - 5 * 1111950.5197665
    bbox = (west, north - 240 * MODIS_1KM, west + 240 * MODIS_1KM, north)
    region = _region(bbox=bbox, bbox_crs=SINUSOIDAL, crs=SINUSOIDAL, resolution=MODIS_1KM)
    box = region_geobox(region)
    assert box.shape.yx == (240, 240)
    assert abs(box.affine.c - west) < 0.01 and abs(box.affine.f - north) < 0.01  # metres
    w, s, e, n = region.lonlat_bbox
    assert 30 < s < n < 40 and 125 < w < e < 160


def test_a_lonlat_box_on_a_projected_grid_covers_it_and_degrees_are_range_checked():
    from fluxscape.pipeline.grid import region_geobox

    utm = _region(bbox=(138.0, 35.5, 139.0, 36.5), crs="EPSG:32654", resolution=1000)
    ny, nx = region_geobox(utm).shape.yx
    assert 110 <= ny <= 116 and 88 <= nx <= 100  # a box around 1 x 1 degree: ~111 x ~90 km
    with pytest.raises(ValueError, match="needs bbox_crs"):
        _region(bbox=(200000.0, 3900000.0, 300000.0, 4000000.0), crs="EPSG:32654", resolution=1000)
    metres = _region(
        bbox=(200000.0, 3900000.0, 300000.0, 4000000.0),
        bbox_crs="EPSG:32654",
        crs="EPSG:32654",
        resolution=1000,
    )
    assert region_geobox(metres).shape.yx == (100, 100)


def test_a_region_polygon_runs_only_the_tiles_that_meet_it(tmp_path):
    from fluxscape.pipeline.grid import target_grid

    poly = tmp_path / "area.geojson"
    ring = [[138.0, 35.5], [138.24, 35.5], [138.24, 35.74], [138.0, 35.74], [138.0, 35.5]]
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}}
    poly.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    whole = target_grid(_region(bbox=(138.0, 35.5, 139.0, 36.5)), 25)
    part = target_grid(_region(bbox=(138.0, 35.5, 139.0, 36.5), polygon=str(poly)), 25)
    assert len(whole.tiles) == 16 and part.geobox == whole.geobox
    assert [t.id for t in part.tiles] == ["3_0"]  # the south-west tile only
    far = tmp_path / "far.geojson"
    far.write_text(poly.read_text().replace("138.", "10.").replace("35.", "50."))
    with pytest.raises(FluxscapeError, match="does not meet the region's grid"):
        target_grid(_region(bbox=(138.0, 35.5, 139.0, 36.5), polygon=str(far)), 25)
