"""Inputs read outside the granule index on object storage (issue #17), against moto's S3
server on 127.0.0.1: tower tables and their site list, meteorology, and the ``sites`` and
``regions`` files resolve to URLs under a URL ``data_dir``, read through the same staged
copies as the granules (:func:`fluxscape.pipeline.remote.local`) and give what the local
files give; a missing object is an error naming its URL. Fast: no pipeline run (the run on
these inputs is in test_remote_output.py, the demo recipe in test_remote_demo.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import small_workflow
from test_remote import BUCKET, s3  # noqa: F401  (the moto server fixture)
from test_remote_output import TOWERS

from fluxscape.errors import WorkflowError
from fluxscape.pipeline import remote
from fluxscape.pipeline.config import load_workflow, resolve_workflow

DATA = f"s3://{BUCKET}/sample"
FLUX = """\
  flux:
    kind: flux
    source: vi
    predictors: [ndvi]
    towers: towers
    meteo: meteo
    meteo_variables: [ta, vpd]
    targets: [gpp]
    methods: [rf]
    cv: loso
    sites: {sites}
    regions: {regions}
"""


def _resolved(tmp_path: Path, data_dir, sites="towers/SitesList.csv", regions=None):
    """The small workflow plus towers, meteorology and a flux product naming ``sites`` and
    ``regions`` (relative to ``data_dir``), resolved."""
    regions = regions or "regions/prefectures.geojson"
    path = small_workflow(tmp_path, data_dir)
    text = path.read_text().replace("products:\n", TOWERS + "products:\n")
    text = text.replace("output:\n", FLUX.format(sites=sites, regions=regions) + "output:\n")
    path.write_text(text)
    wf, base = load_workflow(path)
    return resolve_workflow(wf, base)


def test_towers_meteo_sites_and_regions_resolve_to_urls_under_a_url_data_dir(
    s3,  # noqa: F811
    tmp_path,
):
    wf = _resolved(tmp_path, DATA)
    assert wf.inputs["towers"].paths == [f"{DATA}/towers/FLX_*_FLUXNET2015_FULLSET_DD_*.csv"]
    assert wf.inputs["meteo"].paths == [f"{DATA}/meteo/era5_daily_*.nc"]
    flux = wf.products["flux"]
    assert flux.sites == f"{DATA}/towers/SitesList.csv"
    assert flux.regions == f"{DATA}/regions/prefectures.geojson"


@pytest.mark.parametrize("key", ["sites", "regions"])
def test_a_missing_sites_or_regions_object_is_an_error_naming_the_url(
    s3,  # noqa: F811
    tmp_path,
    key,
):
    wrong = {key: "regions/no-such.geojson"}
    with pytest.raises(WorkflowError) as err:
        _resolved(tmp_path, DATA, **wrong)
    assert str(err.value) == f"products.flux.{key}: {DATA}/regions/no-such.geojson: no such object"


def test_meteorology_from_the_bucket_equals_the_local_files(s3, sample_dir):  # noqa: F811
    from fluxscape.pipeline.inputs import expand_paths
    from fluxscape.pipeline.predictors import meteo_periods

    urls = expand_paths([f"{DATA}/meteo/era5_daily_*.nc"])
    files = sorted(str(p) for p in (sample_dir / "meteo").glob("era5_daily_*.nc"))
    assert [Path(u).name for u in urls] == [Path(f).name for f in files]
    times = pd.date_range("2021-01-01", periods=4, freq="16D")
    ends = times + pd.Timedelta(days=16)
    args = (times, ends, ["ta", "sw_in", "vpd"], (138.0, 35.5, 138.5, 36.0), "cf_meteo")
    there, here = meteo_periods(urls, *args), meteo_periods(files, *args)
    assert float(abs(here["ta"]).max()) > 0
    assert there.identical(here)


def test_the_site_list_is_found_beside_tower_objects_and_read(s3, sample_dir):  # noqa: F811
    from fluxscape.pipeline.steps import flux
    from fluxscape.sitelist import read_site_list

    url = remote.expand(f"{DATA}/towers/FLX_*.csv")[0]
    found = flux._site_list_beside(url)
    assert found == f"{DATA}/towers/SitesList.csv"
    assert remote.find_up(url, "no-such-list.csv") is None
    there = read_site_list(remote.local(found))
    here = read_site_list(sample_dir / "towers" / "SitesList.csv")
    pd.testing.assert_frame_equal(there, here)
    assert len(here) >= 5


def test_tower_tables_from_the_bucket_give_the_local_targets_and_a_gone_one_is_skipped(
    s3,  # noqa: F811
    sample_dir,
    tmp_path,
):
    from fluxscape.pipeline.steps import flux

    wf = _resolved(tmp_path, DATA)
    ctx = SimpleNamespace(product=wf.products["flux"], name="flux")
    urls = remote.expand(wf.inputs["towers"].paths[0])[:3]
    files = [str(sample_dir / "towers" / Path(u).name) for u in urls]
    times = pd.date_range("2021-01-01", periods=23, freq="16D")
    ends = times + pd.Timedelta(days=16)
    gone = f"{DATA}/towers/FLX_JP-S99_FLUXNET2015_FULLSET_DD_2021-2022_1-4.csv"
    there, skipped = flux._tower_targets(ctx, [*urls, gone], times, ends)
    here, none = flux._tower_targets(ctx, files, times, ends)
    assert none == []
    pd.testing.assert_frame_equal(there, here)
    assert there["gpp"].notna().sum() > 20
    assert [(s.path, s.reason) for s in skipped] == [(gone, "no such object")]


def test_gosat_soundings_from_the_bucket_bin_as_the_local_files(s3, sample_dir):  # noqa: F811
    """The gosat_l3 tile task opens sounding objects through their staged copies (it opens
    files itself, not through the read loop of raster granules)."""
    import s3fs

    from fluxscape.pipeline.grid import target_grid
    from fluxscape.pipeline.schema import Region
    from fluxscape.pipeline.steps.gosat_l3 import GosatTask, run_gosat_tile

    files = sorted((sample_dir / "gosat" / "nies").glob("GOSATTFTS202101*_02C01S*.h5"))[:4]
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    for f in files:
        fs.put_file(str(f), f"{BUCKET}/sample/gosat/nies/{f.name}")
    urls = [f"{DATA}/gosat/nies/{f.name}" for f in files]
    region = Region(bbox=[138.0, 35.5, 139.0, 36.5], crs="EPSG:4326", resolution=0.25)
    tile = target_grid(region, 25).tiles[0]
    times = (pd.Timestamp("2021-01-01").to_datetime64(),)

    def run(paths):
        task = GosatTask(tile, times, tuple(("gosat_nies", str(p)) for p in paths), ("xco2",))
        return run_gosat_tile(task)

    there, here = run(urls), run(files)
    assert there.inputs.skipped == [] and sorted(there.inputs.opened) == urls
    assert float(here.data["xco2_count"].sum()) > 0
    assert there.data.identical(here.data)
