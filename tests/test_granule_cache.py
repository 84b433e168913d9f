"""The per-process block cache of input files and MODIS's read-once path (issue #18)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from conftest import run_cli, small_workflow
from odc.geo.geobox import GeoBox
from test_execution import assert_same_store

from fluxscape.readers import granule_cache, modis_hdf4
from fluxscape.readers.granule_cache import ByteLRU

ROI = (slice(455, 480), slice(228, 256))  # straddles two blocks


def tile_at(west: float, south: float) -> GeoBox:
    """A 25 x 25 pixel, 0.01 degree tile of the sample region."""
    return GeoBox.from_bbox((west, south, west + 0.25, south + 0.25), "EPSG:4326", resolution=0.01)


@pytest.fixture
def fresh_cache(monkeypatch):
    """An empty block cache and metadata cache for the test, and a count of file opens."""
    monkeypatch.setattr(modis_hdf4, "BLOCKS", ByteLRU(64 * granule_cache.MIB))
    monkeypatch.setattr(modis_hdf4, "_META", {})
    opens: list[str] = []
    real_open = modis_hdf4._open_sd
    monkeypatch.setattr(modis_hdf4, "_open_sd", lambda p: opens.append(str(p)) or real_open(p))
    return opens


def test_byte_lru_is_bounded_and_evicts_least_recently_used():
    cache = ByteLRU(3000)
    for k in "abc":
        cache.put(k, np.zeros(125, "float64"))  # 1000 bytes each
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("d", np.zeros(125, "float64"))
    assert cache.nbytes <= 3000 and len(cache) == 3 and cache.evictions == 1
    assert cache.get("b") is None and cache.get("a") is not None
    cache.put("huge", np.zeros(1000, "float64"))  # larger than the bound: not kept
    assert cache.get("huge") is None and cache.nbytes <= 3000


def test_a_modis_file_is_opened_once_per_tile_read_and_not_again_from_the_cache(
    sample_dir, fresh_cache
):
    path = sorted((sample_dir / "modis").glob("MOD13A2.*.hdf"))[0]
    granule = modis_hdf4.granule_info(path)
    modis_hdf4._META.clear()  # granule_info parsed the metadata: start from nothing
    fresh_cache.clear()
    layers = {"ndvi", "evi", "red", "nir"}
    first, second = tile_at(138.0, 36.0), tile_at(138.0, 36.05)  # same 240-pixel block
    out1 = modis_hdf4._read(granule, first, layers, {}, modis_hdf4._prepare(granule, first, {}))
    assert fresh_cache == [str(path)]  # metadata and every layer through one handle
    out2 = modis_hdf4._read(granule, second, layers, {}, modis_hdf4._prepare(granule, second, {}))
    assert fresh_cache == [str(path)]  # the neighbouring tile's window is in cached blocks
    assert modis_hdf4.BLOCKS.hits > 0
    assert np.isfinite(out1["ndvi"]).any() and np.isfinite(out2["ndvi"]).any()


def test_cached_reads_equal_uncached_reads(sample_dir, fresh_cache, monkeypatch):
    path = sorted((sample_dir / "modis").glob("MOD13A2.*.hdf"))[3]
    names = ["NDVI", "VI_Quality", "composite_day_of_the_year"]
    cached = [modis_hdf4.open_modis_tile(path, names, roi=ROI) for _ in range(2)]
    assert len(fresh_cache) == 1  # the second read came from the cache
    assert modis_hdf4.BLOCKS.hits == 3 * len(names)  # two blocks and the attributes each
    monkeypatch.setattr(modis_hdf4, "BLOCKS", ByteLRU(0))  # disabled
    plain = modis_hdf4.open_modis_tile(path, names, roi=ROI)
    for ds in cached:
        assert ds.sizes == {"y": 25, "x": 28}
        for n in names:
            np.testing.assert_array_equal(ds[n].values, plain[n].values)
            assert ds[n].dtype == plain[n].dtype


def test_a_changed_file_is_read_again(tmp_path, sample_dir, fresh_cache):
    a, b = sorted((sample_dir / "modis").glob("MOD13A2.*.hdf"))[10:12]
    path = tmp_path / a.name
    shutil.copy(a, path)
    before = modis_hdf4.open_modis_tile(path, ["NDVI"], roi=ROI).NDVI.values
    shutil.copy(b, path)
    os.utime(path, ns=(1, 1))  # another version, whatever the size
    after = modis_hdf4.open_modis_tile(path, ["NDVI"], roi=ROI).NDVI.values
    expected = modis_hdf4.open_modis_tile(b, ["NDVI"], roi=ROI).NDVI.values
    assert not np.array_equal(before, expected, equal_nan=True)
    np.testing.assert_array_equal(after, expected)


def test_small_run_without_the_cache_gives_the_same_store(tmp_path, sample_dir, small_reference):
    wf = small_workflow(tmp_path, sample_dir)
    env = dict(os.environ) | {"FLUXSCAPE_GRANULE_CACHE_MIB": "0"}
    run_cli("run", wf, "--out", tmp_path / "out", env=env)
    assert_same_store(
        tmp_path / "out" / "products" / "vi.zarr", small_reference / "products" / "vi.zarr"
    )
