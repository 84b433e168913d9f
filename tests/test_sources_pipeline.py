"""Every raster source is usable as a workflow input: SGLI L2 and L1B, AHI HSD and P-Tree are
resampled onto the target grid, composited, and recover the sample world's NDVI; an AHI run
opens only the HSD segments over its region; unreadable inputs are skipped and recorded."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import run_cli

from fluxscape.readers.ahi_hsd import open_hsd
from fluxscape.sample.world import PRESETS, World

REGION = "[138.3, 35.8, 138.7, 36.2]"
WORKFLOW = """\
name: sources
region: {{bbox: {region}, resolution: 0.01}}
tile_size: {tile}
period: {{start: 2021-06-01, end: 2021-07-31, step: 16D}}
data_dir: {data}
inputs:
  vgi: {{reader: sgli_l2, paths: ["sgli/GC1SG1_2021*_T*_L2SG_VGI_K_*.h5"]}}
  l1b: {{reader: sgli_l1b, paths: ["sgli/GC1SG1_2021*_1BSG_VNR*.h5"]}}
  hsd: {{reader: ahi_hsd, paths: ["ahi/hsd/2021/0[67]/*/0230/HS_*.DAT.bz2"]}}
  ptree: {{reader: ahi_ptree, paths: ["ahi/ptree/20210[67]/*/*/NC_*.nc"]}}
products:
  vi_sgli: {{kind: vi, input: vgi, variables: [ndvi, evi]}}
  vi_sgli_l1b: {{kind: vi, input: l1b, variables: [ndvi, evi2, grvi]}}
  vi_ahi: {{kind: vi, input: hsd, variables: [ndvi, evi2, nbr, ndwi], hours: [2, 3]}}
  vi_ahi_ptree: {{kind: vi, input: ptree, variables: [ndvi, nbr], hours: [2, 3]}}
  vi_ahi_median: {{kind: vi, input: ptree, variables: [ndvi], hours: [2, 3], composite: median}}
output: {{dir: out}}
"""


def _write(folder: Path, data: Path, region: str = REGION, tile: int = 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sources.yaml"
    path.write_text(WORKFLOW.format(region=region, tile=tile, data=data))
    return path


@pytest.fixture(scope="session")
def sources_run(tmp_path_factory, sample_dir) -> Path:
    folder = tmp_path_factory.mktemp("sources")
    run_cli("run", _write(folder, sample_dir), "--out", folder / "out")
    return folder / "out"


def ndvi_errors(store: Path) -> tuple[np.ndarray, float]:
    """NDVI minus the world's true NDVI at each composite's observation day, and the
    fraction of pixel-periods with a value."""
    world = World(PRESETS["demo"], seed=42)
    ds = xr.open_zarr(store).load()
    lon, lat = np.meshgrid(ds.x.values, ds.y.values)
    errors = []
    for t in range(ds.sizes["time"]):
        nd, doy = ds.ndvi.isel(time=t).values, ds.doy.isel(time=t).values
        year = pd.Timestamp(ds.time.values[t]).year
        for d in np.unique(doy[np.isfinite(nd)]):
            sel = np.isfinite(nd) & (doy == d)
            date = pd.Timestamp(year, 1, 1) + pd.Timedelta(days=int(d) - 1)
            errors.append(nd[sel] - world.ndvi(lon[sel], lat[sel], [date])[..., 0])
    return np.concatenate(errors), float(np.isfinite(ds.ndvi.values).mean())


@pytest.mark.parametrize(
    ("product", "median_max", "valid_min"),
    [
        ("vi_sgli", 0.02, 0.9),  # delivered NDVI, 2-day revisit
        ("vi_sgli_l1b", 0.02, 0.3),  # TOA reflectance, one scene a month
        ("vi_ahi", 0.01, 0.8),  # near-noon HSD, every 4th day, rainy season
        ("vi_ahi_ptree", 0.01, 0.8),
        ("vi_ahi_median", 0.01, 0.8),  # the same observations, QA-weighted median
    ],
)
def test_each_source_recovers_true_ndvi_on_target_grid(sources_run, product, median_max, valid_min):
    errors, valid = ndvi_errors(sources_run / "products" / f"{product}.zarr")
    assert valid >= valid_min
    assert np.median(np.abs(errors)) < median_max
    assert abs(np.median(errors)) < median_max


def test_sources_are_catalogued_with_their_reader(sources_run):
    for product in ("vi_sgli", "vi_sgli_l1b", "vi_ahi", "vi_ahi_ptree"):
        coll = json.loads(
            (sources_run / "catalog" / f"sources.{product}" / "collection.json").read_text()
        )
        assert coll["fluxscape:product"] == product and "ndvi" in coll["fluxscape:variables"]
    ds = xr.open_zarr(sources_run / "products" / "vi_ahi.zarr")
    assert "ahi_hsd" in ds.attrs["summary"]


def test_ahi_run_opens_only_segments_over_the_region(tmp_path, sample_dir):
    region = "[138.4, 36.2, 138.5, 36.3]"
    wf = _write(tmp_path, sample_dir, region=region, tile=10)
    run_cli("run", wf, "--out", tmp_path / "out")
    manifest = [
        json.loads(line)
        for line in (tmp_path / "out" / ".fluxscape" / "vi_ahi.manifest.jsonl")
        .read_text()
        .splitlines()
    ]
    opened = {Path(f).name for entry in manifest if "tile" in entry for f in entry["opened"]}
    assert opened
    segment = re.compile(r"_S(\d\d)(\d\d)\.DAT")
    opened_segments = {int(segment.search(n)[1]) for n in opened}
    one_obs = sorted((sample_dir / "ahi" / "hsd" / "2021" / "06").glob("*/0230"))[0]
    files = sorted(one_obs.glob("HS_*_B03_*.DAT.bz2"))
    total = int(segment.search(files[0].name)[2])
    full = open_hsd(files, bands=["B03"], resolution=2000, solar_angles=False)
    lat = full["lat"].values
    rows_per_segment = lat.shape[0] // total
    needed = {
        s + 1
        for s in range(total)
        if np.any(
            (lat[s * rows_per_segment : (s + 1) * rows_per_segment] > 36.2)
            & (lat[s * rows_per_segment : (s + 1) * rows_per_segment] < 36.3)
        )
    }
    assert needed <= opened_segments
    assert len(opened_segments) < total  # the other segments were never opened


def test_unreadable_sgli_and_ahi_files_are_skipped_and_recorded(tmp_path, sample_dir):
    data = tmp_path / "data"
    shutil.copytree(
        sample_dir / "sgli",
        data / "sgli",
        symlinks=True,
        ignore=shutil.ignore_patterns("*L2SG_[LR]*", "*1BSG*"),
    )
    bad_vgi = data / "sgli" / "GC1SG1_20210602D01D_T0529_L2SG_VGI_K_3000.h5"
    bad_vgi.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    # an observation inside the first 16-day period of the workflow (starts 10 June)
    hsd = [
        d
        for d in sorted((sample_dir / "ahi" / "hsd" / "2021" / "06").glob("*/0230"))
        if int(d.parent.name) >= 12
    ][0]
    dest = data / "ahi" / "hsd" / "2021" / "06" / hsd.parent.name / "0230"
    shutil.copytree(hsd, dest)
    victim = sorted(dest.glob("*_B03_*S02*.DAT.bz2"))[0]
    victim.write_bytes(victim.read_bytes()[:200])
    wf = _write(tmp_path, data, region="[138.4, 35.9, 138.6, 36.1]")
    text = wf.read_text().replace("  l1b:", "  #l1b:").replace("  ptree:", "  #ptree:")
    text = text.replace("  vi_sgli_l1b:", "  #vi_sgli_l1b:").replace(
        "  vi_ahi_ptree:", "  #vi_ahi_ptree:"
    )
    text = text.replace("  vi_ahi_median:", "  #vi_ahi_median:")
    wf.write_text(text)
    proc = run_cli("run", wf, "--out", tmp_path / "out", check=False)
    assert bad_vgi.name in proc.stderr and victim.name in proc.stderr
    sgli = xr.open_zarr(tmp_path / "out" / "products" / "vi_sgli.zarr")
    assert [Path(s["file"]).name for s in sgli.attrs["skipped_inputs"]] == [bad_vgi.name]
    assert np.isfinite(sgli.ndvi.values).any()
    # the only AHI scene lost a segment: its product read nothing, which fails the run instead
    # of publishing an empty store
    assert proc.returncode == 1
    assert "products.vi_ahi: its tiles read no usable observation" in proc.stderr
    assert not (tmp_path / "out" / "products" / "vi_ahi.zarr").exists()


def test_unreadable_gosat_file_is_skipped_and_recorded(tmp_path, sample_dir):
    data = tmp_path / "data" / "gosat" / "nies"
    data.mkdir(parents=True)
    for f in sorted((sample_dir / "gosat" / "nies").glob("GOSATTFTS2021*_02C01S*.h5"))[:20]:
        (data / f.name).symlink_to(f)
    victim = sorted(data.iterdir())[5]
    victim.unlink()
    victim.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    wf = tmp_path / "gosat.yaml"
    wf.write_text(f"""\
name: gosat
region: {{bbox: [138.0, 35.5, 139.0, 36.5], resolution: 0.01}}
tile_size: 25
period: {{start: 2021-01-01, end: 2021-03-31, step: 16D}}
data_dir: {tmp_path / "data"}
inputs:
  co2: {{reader: gosat_nies, paths: ["gosat/nies/*.h5"]}}
products:
  gosat_l3: {{kind: gosat_l3, inputs: [co2], variables: [xco2], resolution: 0.25}}
output: {{dir: out}}
""")
    proc = run_cli("run", wf, "--out", tmp_path / "out")
    assert victim.name in proc.stderr
    ds = xr.open_zarr(tmp_path / "out" / "products" / "gosat_l3.zarr")
    assert [Path(s["file"]).name for s in ds.attrs["skipped_inputs"]] == [victim.name]
    assert int(ds.xco2_count.sum()) > 0
