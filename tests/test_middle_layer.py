"""The middle layer's contracts (issue #13): typed references, one index loop assigning
granules to tiles by footprint, failure semantics (a bug fails the run, unreadable inputs are
skipped up to a share, files without data are not counted as used), checks before the first
product, and sources asked only for the layers a product needs."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from conftest import run_cli
from odc.geo.geom import box

from fluxscape.cli import cli
from fluxscape.errors import FluxscapeError
from fluxscape.pipeline import config as cfg
from fluxscape.pipeline.grid import target_grid
from fluxscape.pipeline.inputs import granules_per_tile
from fluxscape.pipeline.schema import Region
from fluxscape.readers import qa
from fluxscape.readers.ontile import Granule

REFS = """\
name: refs
region: {bbox: [138.0, 36.0, 138.5, 36.5]}
period: {start: 2021-01-01, end: 2021-12-31}
access: public
inputs:
  nearest: {reader: modis_hdf4, paths: ["other/*.hdf"], access: restricted}
  modis_vi: {reader: modis_hdf4, paths: ["modis/*.hdf"]}
products:
  vi: {kind: vi, input: modis_vi, resampling: nearest}
  pheno2: {kind: phenology, source: vi, method: whittaker}
  whittaker: {kind: phenology, source: vi}
"""


def test_access_and_run_order_come_from_typed_references_only():
    """An input named like a setting value (``nearest``) does not leak its access level into
    a product using that setting; a product named like a method (``whittaker``) does not
    reorder the products using that method."""
    wf = cfg.parse_workflow(REFS)
    assert cfg.product_inputs(wf, "vi") == ["modis_vi"]
    assert cfg.product_access(wf, "vi") == "public"
    assert cfg.product_access(wf, "whittaker") == "public"
    assert cfg.run_order(wf.products) == ["vi", "pheno2", "whittaker"]


def test_a_restricted_input_makes_its_products_restricted_through_references():
    wf = cfg.parse_workflow(
        REFS.replace(
            "modis_vi: {reader: modis_hdf4, paths",
            "modis_vi: {reader: modis_hdf4, access: restricted, paths",
        )
    )
    assert cfg.product_access(wf, "vi") == "restricted"
    assert cfg.product_access(wf, "whittaker") == "restricted"  # through source: vi


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "whittaker: {kind: phenology, source: pheno2}",
            r"whittaker\.source: 'pheno2' is not a vi",
        ),
        ("whittaker: {kind: phenology, source: nearest}", r"whittaker\.source: 'nearest' is not"),
        (
            "whittaker: {kind: lst, input: modis_vi, baseline: [2021, 2021]}",
            None,  # modis_hdf4 may give lst (MOD11): accepted at validation
        ),
        (
            "whittaker: {kind: gosat_l3, inputs: [modis_vi]}",
            r"whittaker\.inputs: input 'modis_vi' \(reader modis_hdf4\) gives no xco2 or xch4",
        ),
    ],
)
def test_references_are_checked_by_kind_and_capability(change, message):
    text = REFS.replace("whittaker: {kind: phenology, source: vi}", change)
    if message is None:
        cfg.parse_workflow(text)
        return
    with pytest.raises(FluxscapeError, match=message):
        cfg.parse_workflow(text)


def test_granules_are_assigned_to_tiles_by_footprint():
    grid = target_grid(Region(bbox=(138.0, 36.0, 138.5, 36.5)), 25)  # 2 x 2 tiles
    when = datetime(2021, 6, 1)

    def granule(bbox):
        return Granule("f.hdf", when, bbox, "k", footprint=box(*bbox, crs="EPSG:4326"))

    west = granule((137.0, 35.0, 138.1, 37.0))  # the two western tiles
    north_east = granule((138.3, 36.3, 139.0, 37.0))
    far = granule((100.0, 10.0, 101.0, 11.0))
    per_tile = granules_per_tile([west, north_east, far], grid.tiling, grid.tiles)
    ids = {tid: [g.bbox for g in gs] for tid, gs in per_tile.items()}
    assert ids == {
        "0_0": [west.bbox],
        "0_1": [north_east.bbox],
        "1_0": [west.bbox],
        "1_1": [],
    }


def _small(folder: Path, data_dir: Path, products: str = "", processes: bool = True) -> Path:
    """A 0.5 x 0.5 degree, 4-tile, one-year vi workflow on ``data_dir``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = f"""\
name: small
region: {{bbox: [138.0, 36.0, 138.5, 36.5], resolution: 0.01}}
tile_size: 25
period: {{start: 2021-01-01, end: 2021-12-31, step: 16D}}
data_dir: {data_dir}
inputs:
  modis_vi: {{reader: modis_hdf4, paths: ["modis/MOD13A2.A2021*.hdf"]}}
products:
  vi: {{kind: vi, input: modis_vi, variables: [ndvi, evi]}}
{products}output: {{dir: out}}
dask: {{workers: 1, processes: {str(processes).lower()}}}
"""
    path = folder / "small.yaml"
    path.write_text(text)
    return path


def _modis_copy(sample_dir: Path, dest: Path) -> Path:
    (dest / "modis").mkdir(parents=True)
    for f in (sample_dir / "modis").glob("MOD13A2.A2021*.hdf"):
        (dest / "modis" / f.name).symlink_to(f)
    return dest


def test_a_bug_in_a_decoder_fails_the_run_with_its_traceback(tmp_path, sample_dir, monkeypatch):
    """A TypeError inside the MOD13 QA decoder is a bug, not a skipped input: exit 1, one
    line on the terminal, the traceback in OUT/.fluxscape/run.log, and no store or catalog
    entry (the tiles run in threads here, so the patched function reaches them)."""

    def broken(*args, **kwargs):
        raise TypeError("injected bug in the QA decoder")

    monkeypatch.setattr(qa, "modis_vi_usable", broken)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["run", str(_small(tmp_path, sample_dir, processes=False)), "--out", str(out)]
    )
    assert result.exit_code == 1, result.output
    assert "TypeError: injected bug in the QA decoder" in result.output
    assert "Traceback" not in result.output  # one line on the terminal
    log = (out / ".fluxscape" / "run.log").read_text()
    assert "Traceback" in log and "_mod13_quality" in log and "injected bug" in log
    assert not (out / "products" / "vi.zarr").exists()
    catalog = out / "catalog" / "catalog.json"
    assert not catalog.exists() or "small.vi" not in catalog.read_text()


def _fill_ndvi(path: Path) -> None:
    """Overwrite a MOD13A2 copy's NDVI with its fill value (pyhdf, in place)."""
    from pyhdf.SD import SD, SDC

    sd = SD(str(path), SDC.WRITE)
    try:
        for name in ("1 km 16 days NDVI", "1 km 16 days EVI"):
            sds = sd.select(name)
            fill = sds.attributes()["_FillValue"]
            sds[:, :] = np.full(sds.info()[2], fill, np.int16)
            sds.endaccess()
    finally:
        sd.end()


def test_a_file_without_valid_data_warns_and_is_not_counted_as_used(tmp_path, sample_dir):
    data = _modis_copy(sample_dir, tmp_path / "data")
    source = sorted((sample_dir / "modis").glob("MOD13A2.A2021177*.hdf"))[0]
    empty = data / "modis" / source.name.replace(".061.2021", ".061.2022")
    shutil.copy(source, empty)
    _fill_ndvi(empty)
    proc = run_cli("run", _small(tmp_path, data), "--out", tmp_path / "out")
    assert f"input {empty} gave no usable value" in proc.stderr
    ds = xr.open_zarr(tmp_path / "out" / "products" / "vi.zarr")
    used = {Path(i["path"]).name for i in ds.attrs["inputs"]}
    assert empty.name not in used and source.name in used
    assert ds.attrs["inputs_without_data"] == [str(empty)]
    assert len(used) == len(list((data / "modis").glob("*.hdf"))) - 1


def test_too_many_skipped_inputs_fail_unless_partial_is_allowed(tmp_path, sample_dir):
    data = _modis_copy(sample_dir, tmp_path / "data")
    good = len(list((data / "modis").glob("*.hdf")))
    for i in range(good + 2):  # more than half of the input is garbage
        (data / "modis" / f"MOD13A2.A2021{1 + 8 * i:03d}.h29v05.061.2099000000000.hdf").write_text(
            "<html>not found</html>"
        )
    wf = _small(tmp_path, data)
    proc = run_cli("run", wf, "--out", tmp_path / "out", check=False)
    assert proc.returncode == 1
    assert "were skipped, more than max_skipped_share 0.5" in proc.stderr
    assert "--allow-partial" in proc.stderr
    assert not (tmp_path / "out" / "products" / "vi.zarr").exists()
    run_cli("run", wf, "--out", tmp_path / "out", "--resume", "--allow-partial")
    ds = xr.open_zarr(tmp_path / "out" / "products" / "vi.zarr")
    assert ds.attrs["partial"] is True and len(ds.attrs["skipped_inputs"]) == good + 2
    collection = json.loads(
        (tmp_path / "out" / "catalog" / "small.vi" / "collection.json").read_text()
    )
    assert collection["fluxscape:partial"] is True


def test_inputs_and_site_lists_are_checked_before_the_first_product_runs(tmp_path, sample_dir):
    """A flux product's site list that holds none of its towers (here a BADM-style list of
    another site) stops the run before the vi product it needs is built."""
    bad = tmp_path / "sites.csv"
    bad.write_text("SITE_ID,LAT,LON,IGBP\nJP-Xxx,36.1,138.2,DBF\n")
    flux = f"""\
  flux:
    kind: flux
    source: vi
    towers: towers
    sites: {bad}
    methods: [rf]
"""
    wf = _small(tmp_path, sample_dir, products=flux)
    text = wf.read_text().replace(
        "products:", '  towers: {reader: fluxnet, paths: ["towers/*_DD_*.csv"]}\nproducts:'
    )
    wf.write_text(text)
    proc = run_cli("run", wf, "--out", tmp_path / "out", check=False)
    assert proc.returncode == 1
    assert "sites" in proc.stderr and str(bad) in proc.stderr
    assert not (tmp_path / "out" / "products").exists()
    assert not (tmp_path / "out" / ".fluxscape" / "building").exists()


def test_an_input_of_only_unreadable_files_is_an_error_before_any_product(tmp_path):
    (tmp_path / "modis").mkdir()
    for i in range(3):
        (
            tmp_path / "modis" / f"MOD13A2.A2021{1 + 16 * i:03d}.h29v05.061.2021000000000.hdf"
        ).write_bytes(b"")
    wf = _small(tmp_path, tmp_path)
    with pytest.raises(
        FluxscapeError, match=r"inputs\.modis_vi: none of its 3 file\(s\) could be read"
    ):
        from fluxscape.pipeline.run import run_workflow

        run_workflow(wf, out=tmp_path / "out")
    assert not (tmp_path / "out" / "products").exists()


AHI_NDVI = """\
name: ahi_nir
region: {{bbox: [138.3, 35.8, 138.5, 36.0], resolution: 0.01}}
tile_size: 20
period: {{start: 2021-01-01, end: 2021-12-31, step: 16D}}
data_dir: {data}
inputs:
  hsd: {{reader: ahi_hsd, paths: ["hsd/2021/*/*/0230/HS_*.DAT.bz2"]}}
products:
  vi: {{kind: vi, input: hsd, variables: [ndvi], hours: [2, 3]}}
  phenology: {{kind: phenology, source: vi, seasons: 1}}
output: {{dir: out}}
"""


def test_ahi_scenes_with_only_b03_b04_b13_give_ndvi_and_phenology(tmp_path, sample_dir):
    """A Himawari download made for NDVI (bands 3, 4 and 13 only): every clear scene gives
    NDVI (the read asks for red and nir, not the SWIR bands), the composites follow the
    world's NDVI, and phenology is found on the pixels the world gives one season."""
    src = sample_dir / "ahi" / "hsd"
    kept = 0
    for f in src.glob("2021/*/*/0230/HS_*.DAT.bz2"):
        day = np.datetime64(f"2021-{f.parts[-4]}-{f.parts[-3]}").astype("datetime64[D]")
        if (day - np.datetime64("2021-01-01")).astype(int) % 8:
            continue  # every 8th day (the sample world has scenes every 4th): a shorter test
        if any(f"_{band}_" in f.name for band in ("B03", "B04", "B13")):
            dest = tmp_path / "hsd" / f.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(f)
            kept += 1
    assert kept and not list((tmp_path / "hsd").rglob("*_B05_*"))
    wf = tmp_path / "ahi.yaml"
    wf.write_text(AHI_NDVI.format(data=tmp_path))
    run_cli("run", wf, "--out", tmp_path / "out")
    vi = xr.open_zarr(tmp_path / "out" / "products" / "vi.zarr").load()
    assert vi.attrs["skipped_inputs"] == []
    used = {Path(i["path"]).name for i in vi.attrs["inputs"]}
    assert used and all(("_B03_" in n or "_B04_" in n or "_B13_" in n) for n in used)
    clear = vi.qa.values == 0
    assert clear.mean() > 0.5 and np.isfinite(vi.ndvi.values[clear]).all()
    from fluxscape.sample.world import PRESETS, World

    world = World(PRESETS["demo"], seed=42)
    lon, lat = np.meshgrid(vi.x.values, vi.y.values)
    err = []
    for t in range(vi.sizes["time"]):
        nd, doy = vi.ndvi.values[t], vi.doy.values[t]
        year = int(str(vi.time.values[t])[:4])
        for d in np.unique(doy[np.isfinite(nd)]):
            sel = np.isfinite(nd) & (doy == d)
            when = np.datetime64(f"{year}-01-01") + np.timedelta64(int(d) - 1, "D")
            err.append(nd[sel] - world.ndvi(lon[sel], lat[sel], [when])[..., 0])
    assert np.median(np.abs(np.concatenate(err))) < 0.01
    pheno = xr.open_zarr(tmp_path / "out" / "products" / "phenology.zarr").load()
    assert np.isfinite(pheno.sos.sel(year=2021, season=1).values).mean() > 0.9
    # the default method (double_logistic) stores the dates' standard deviations (days)
    sd = pheno.sos_sd.sel(year=2021, season=1).values
    dated = np.isfinite(pheno.sos.sel(year=2021, season=1).values)
    assert pheno.sos_sd.attrs["units"] == "day" and pheno.eos_sd.attrs["units"] == "day"
    assert np.isfinite(sd[dated]).mean() > 0.95 and (sd[np.isfinite(sd)] > 0).all()
