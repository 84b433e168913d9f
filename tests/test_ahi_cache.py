"""Himawari P-Tree reads through the per-process granule cache (issue #18): each file opened at
most once per tile read and not again by the next tile, the same values with the cache on and
off, a changed file read again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxscape.pipeline.grid import target_grid
from fluxscape.pipeline.inputs import TileInputs, index_input
from fluxscape.pipeline.schema import Region
from fluxscape.pipeline.steps.lst import mean_lst_on_tile
from fluxscape.readers import ahi_ptree, granule_cache
from fluxscape.readers.granule_cache import ByteLRU
from fluxscape.sample.ahi_writer import write_ahi
from fluxscape.sample.world import PRESETS, World

DAYS = ["2021-07-01", "2021-07-03", "2021-07-05", "2021-07-09"]


@pytest.fixture(scope="module")
def ptree_files(tmp_path_factory) -> list[str]:
    """Four 02:30 UTC P-Tree files of the demo world (67 x 67 pixels at 0.02 degree)."""
    out = tmp_path_factory.mktemp("ptree")
    world = World(PRESETS["demo"], seed=42)
    paths = write_ahi(world, out, np.random.default_rng(1), days=DAYS, hsd_times=[])
    return sorted(str(p) for p in paths if p.name.startswith("NC_"))


@pytest.fixture(scope="module")
def tiles():
    """Two neighbouring 25 x 25 pixel tiles of the demo region at 0.01 degree."""
    grid = target_grid(Region(bbox=PRESETS["demo"].bbox), 25)
    return grid.tiles[0].geobox, grid.tiles[1].geobox


@pytest.fixture
def opens(monkeypatch) -> list[str]:
    """An empty block and header cache for the test, and the files ``_open_nc`` opens."""
    monkeypatch.setattr(ahi_ptree, "BLOCKS", ByteLRU(64 * granule_cache.MIB))
    monkeypatch.setattr(ahi_ptree, "_META", {})
    seen: list[str] = []
    real = ahi_ptree._open_nc
    monkeypatch.setattr(ahi_ptree, "_open_nc", lambda p: seen.append(str(p)) or real(p))
    return seen


def lst_of(files: list[str], tile, record: TileInputs | None = None):
    """Mean LST and counts of the files on the tile, one 8-day period per file's week."""
    granules = index_input("ahi", "ahi_ptree", files).granules
    times = pd.DatetimeIndex(pd.date_range("2021-07-01", periods=2, freq="8D"))
    return mean_lst_on_tile("ahi_ptree", granules, tile, times, "8D", 0, record or TileInputs())


def test_a_tile_read_opens_each_file_once_and_the_next_tile_none(ptree_files, tiles, opens):
    granules = index_input("ahi", "ahi_ptree", ptree_files).granules
    assert sorted(opens) == ptree_files  # indexing: one open per file for its header
    ahi_ptree._META.clear()  # a worker process: headers not parsed yet
    opens.clear()
    times = pd.DatetimeIndex(["2021-07-01", "2021-07-09"])
    first = mean_lst_on_tile("ahi_ptree", granules, tiles[0], times, "8D", 0, TileInputs())
    assert sorted(opens) == ptree_files  # header and data of each file through one handle
    opens.clear()
    second = mean_lst_on_tile("ahi_ptree", granules, tiles[1], times, "8D", 0, TileInputs())
    assert opens == []  # the neighbouring tile's windows are in cached blocks
    assert ahi_ptree.BLOCKS.hits > 0
    assert (first[1] > 0).any() and (second[1] > 0).any()


def test_cache_on_and_off_give_identical_lst(ptree_files, tiles, opens, monkeypatch):
    cached = [lst_of(ptree_files, t) for t in (*tiles, tiles[0])]  # the last one from cache
    monkeypatch.setattr(ahi_ptree, "BLOCKS", ByteLRU(0))  # FLUXSCAPE_GRANULE_CACHE_MIB=0
    monkeypatch.setattr(ahi_ptree, "_META", {})
    plain = [lst_of(ptree_files, t) for t in (*tiles, tiles[0])]
    for (lst_a, n_a), (lst_b, n_b) in zip(cached, plain, strict=True):
        np.testing.assert_array_equal(lst_a, lst_b)
        np.testing.assert_array_equal(n_a, n_b)
    assert np.isfinite(cached[0][0]).any()


def test_cached_values_equal_xarray_decoding_of_the_file(ptree_files, opens):
    """The CF decoding (fill -> NaN, scale/offset) is xarray's, also over a cached window."""
    path = ptree_files[1]
    names = ["albedo_03", "SOZ", "tbb_13", "Hour"]
    bbox = (138.2, 35.7, 138.6, 36.1)
    for _ in range(2):  # read, then from the cache
        meta, rows, cols, arrays = ahi_ptree.read_window(path, names, bbox)
    assert len(opens) == 1
    with xr.open_dataset(path, decode_times=False, mask_and_scale=True) as ref:
        for name in names:
            expected = ref[name].values[rows, cols]
            assert arrays[name].dtype == expected.dtype
            np.testing.assert_array_equal(arrays[name], expected)
        np.testing.assert_allclose(meta.lon[cols], ref.longitude.values[cols], atol=1e-4)
        np.testing.assert_allclose(meta.lat[rows], ref.latitude.values[rows], atol=1e-4)


def test_a_changed_file_is_read_again(ptree_files, tmp_path, opens):
    a, b = Path(ptree_files[0]), Path(ptree_files[2])
    path = tmp_path / a.name
    shutil.copy(a, path)
    before = ahi_ptree.open_ptree(path, ["tbb_13"])
    shutil.copy(b, path)
    os.utime(path, ns=(1, 1))  # another version, whatever the size
    after = ahi_ptree.open_ptree(path, ["tbb_13"])
    assert len(opens) == 2  # the new version is opened, not served from the cache
    expected = ahi_ptree.open_ptree(b, ["tbb_13"])
    assert not np.array_equal(before.tbb_13.values, expected.tbb_13.values, equal_nan=True)
    np.testing.assert_array_equal(after.tbb_13.values, expected.tbb_13.values)
    assert after.attrs["observation_start_time"] == expected.attrs["observation_start_time"]


# --- HSD scenes: decoded segments kept per process -------------------------------------------


@pytest.fixture(scope="module")
def hsd_files(tmp_path_factory) -> list[str]:
    """One 02:30 UTC HSD observation of the demo world (all bands, the region's segments)."""
    out = tmp_path_factory.mktemp("hsd")
    world = World(PRESETS["demo"], seed=42)
    paths = write_ahi(
        world,
        out,
        np.random.default_rng(2),
        days=["2021-07-03"],
        hsd_times=["02:30"],
        ptree_times=[],
    )
    return sorted(str(p) for p in paths if p.name.startswith("HS_"))


def test_hsd_tiles_meeting_the_same_segments_decode_them_once(hsd_files, tiles, monkeypatch):
    from fluxscape.pipeline.inputs import read_onto_tile
    from fluxscape.readers import ahi_hsd

    granules = index_input("hsd", "ahi_hsd", hsd_files).granules
    assert len(granules) == 1
    calls: list[int] = []
    real = ahi_hsd.open_hsd
    monkeypatch.setattr(ahi_hsd, "open_hsd", lambda *a, **k: calls.append(1) or real(*a, **k))

    def read(tile) -> dict:
        layers = {"red", "nir"}
        return next(read_onto_tile("ahi_hsd", granules, tile, layers, {}, TileInputs()))[1]

    monkeypatch.setattr(ahi_hsd, "BLOCKS", ByteLRU(64 * granule_cache.MIB))
    first = read(tiles[0])
    assert len(calls) == 1
    again = read(tiles[0])
    assert len(calls) == 1  # from the cache
    monkeypatch.setattr(ahi_hsd, "BLOCKS", ByteLRU(0))  # FLUXSCAPE_GRANULE_CACHE_MIB=0
    plain = read(tiles[0])
    assert len(calls) == 2
    for name in ("red", "nir", "usable"):
        np.testing.assert_array_equal(first[name], plain[name])
        np.testing.assert_array_equal(again[name], plain[name])
    assert np.isfinite(first["nir"]).any()


def test_the_cache_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("FLUXSCAPE_GRANULE_CACHE_MIB", "0")
    assert granule_cache._configured_bytes() == 0  # off: every read goes to the file
    monkeypatch.setenv("FLUXSCAPE_GRANULE_CACHE_MIB", "1.5")
    assert granule_cache._configured_bytes() == int(1.5 * granule_cache.MIB)
    monkeypatch.delenv("FLUXSCAPE_GRANULE_CACHE_MIB")
    assert granule_cache._configured_bytes() == granule_cache.DEFAULT_MIB * granule_cache.MIB
    assert ahi_ptree.BLOCKS is granule_cache.BLOCKS  # one budget for every source
