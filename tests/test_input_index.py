"""The input index of large archives: listings and name rules, the cache in OUT/.fluxscape/
(reuse without opening a file, incremental update), content hashes only on request."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from fluxscape.pipeline import archive
from fluxscape.pipeline.inputs import index_input, input_record
from fluxscape.readers import ahi_hsd, modis_hdf4, registry, sgli_l2

# --- name rules per reader, against known geometry ----------------------------------------


def test_modis_name_rule_is_the_sinusoidal_tile():
    # h28v05: 30-40 N; x from 100 to 110 degrees of the equator -> 115.47..143.59 E at 40 N
    w, s, e, n = modis_hdf4.name_bbox("MOD13A2.A2021113.h28v05.061.2021130034215.hdf")
    assert (round(s, 6), round(n, 6)) == (30.0, 40.0)
    assert w == pytest.approx(100 / 0.8660254, abs=1e-3)  # x0 / cos(30 N)
    assert e == pytest.approx(110 / 0.7660444, abs=1e-3)  # x1 / cos(40 N)
    # a polar tile spans every longitude on its side of the meridian, clipped at 180
    assert modis_hdf4.name_bbox("MOD13A2.A2021113.h17v00.061.2021130034215.hdf")[0] == -180.0
    assert modis_hdf4.name_bbox("not-a-modis-name.hdf") is None


def test_modis_name_rule_holds_the_header_footprint(realdata_dir):
    files = sorted((realdata_dir / "modis_hdf4").glob("M*D*.h??v??.*.hdf"))[:3]
    assert files
    for path in files:
        hw, hs, he, hn = modis_hdf4.granule_info(path).bbox
        w, s, e, n = modis_hdf4.name_bbox(path.name)
        assert w - 1e-6 <= hw and hs >= s - 1e-6 and he <= e + 1e-6 and hn <= n + 1e-6, path


def test_ahi_name_rule_is_the_segment_latitude_band():
    def band(k: int) -> tuple[float, float]:
        box = ahi_hsd.name_bbox(f"HS_H09_20240101_0000_B03_FLDK_R05_S{k:02d}10.DAT.bz2")
        assert box[0] == -180.0 and box[2] == 180.0  # the disk spans the date line
        return box[1], box[3]

    bands = [band(k) for k in range(1, 11)]
    # north to south, symmetric about the equator, the equator between segments 5 and 6
    assert all(a[0] > b[0] and a[1] > b[1] for a, b in zip(bands, bands[1:], strict=False))
    assert bands[4][0] == pytest.approx(-0.1) and bands[5][1] == pytest.approx(0.1)
    assert bands[0][1] > 80 and bands[9][0] < -80  # the disc's limb at about 81 degrees
    # Tokyo (35.7 N on the sub-satellite meridian) is seen on line ~956 of 5500: segment 2
    assert bands[1][0] < 35.7 < bands[1][1] and bands[0][0] > 35.7 and bands[3][1] < 35.7
    # a Japan-area or regional scan moves: its name places it nowhere
    assert ahi_hsd.name_bbox("HS_H08_20210326_0000_B04_R301_R10_S0101.DAT.bz2") is None


def test_sgli_name_rule_is_the_eqa_tile(sample_dir):
    path = sorted((sample_dir / "sgli").glob("GC1SG1_*_T0529_L2SG_VGI_K_*.h5"))[0]
    w, s, e, n = sgli_l2.name_bbox(path.name)
    assert (s, n) == (30.0, 40.0)
    hw, hs, he, hn = sgli_l2.SPEC.granule_info(path).bbox
    assert w <= hw and s <= hs and he <= e and hn <= n
    # T0529: 10-degree columns from 180 W at the equator -> 110..120, wider towards the pole
    assert w == pytest.approx(110 / 0.8660254, abs=0.01) and e == pytest.approx(
        120 / 0.766, abs=0.1
    )


def test_bbox_meets_across_the_date_line():
    assert archive.bbox_meets((170, 0, -170, 10), (175, 5, 178, 6))
    assert archive.bbox_meets((170, 0, -170, 10), (-175, 5, -172, 6))
    assert not archive.bbox_meets((170, 0, -170, 10), (0, 5, 10, 6))
    assert not archive.bbox_meets((100, 0, 110, 10), (100, 11, 110, 20))


# --- the index: name rule, cache, incremental update ---------------------------------------


@pytest.fixture
def counted(monkeypatch):
    """The modis_hdf4 source with its granule_info counting the files it opens."""
    opened: list[str] = []
    spec = registry.get_reader("modis_hdf4")

    def granule_info(path):
        opened.append(str(path))
        return spec.granule_info(path)

    monkeypatch.setitem(registry._READERS, "modis_hdf4", replace(spec, granule_info=granule_info))
    return opened


@pytest.fixture
def archive_dir(tmp_path, sample_dir) -> Path:
    """Four MODIS tiles of the sample world (h29v05, Japan) in a folder of their own."""
    folder = tmp_path / "archive"
    folder.mkdir()
    for path in sorted((sample_dir / "modis").glob("MOD13A2.*.hdf"))[:4]:
        shutil.copy2(path, folder / path.name)
    return folder


JAPAN = (138.0, 34.0, 142.0, 38.0)


def test_names_outside_the_region_are_not_opened(archive_dir, counted):
    index = index_input("vi", "modis_hdf4", [str(archive_dir / "*.hdf")], region=(-10, 40, 0, 45))
    assert (index.outside, index.files, index.granules, counted) == (4, [], [], [])
    index = index_input("vi", "modis_hdf4", [str(archive_dir / "*.hdf")], region=JAPAN)
    assert index.outside == 0 and len(index.granules) == 4 and len(counted) == 4


def test_unchanged_archive_reuses_the_cached_index(archive_dir, tmp_path, counted):
    paths, cache = [str(archive_dir / "*.hdf")], tmp_path / "out" / ".fluxscape" / "index"
    first = index_input("vi", "modis_hdf4", paths, region=JAPAN, cache_dir=cache)
    assert len(counted) == 4 and first.read == 4 and (cache / "vi.pkl").is_file()
    counted.clear()
    again = index_input("vi", "modis_hdf4", paths, region=JAPAN, cache_dir=cache)
    assert counted == [] and again.read == 0
    assert again.granules == first.granules and again.files == first.files
    assert [g.stamps for g in again.granules] == [g.stamps for g in first.granules]
    # --fresh reads every header again
    index_input("vi", "modis_hdf4", paths, region=JAPAN, cache_dir=cache, reuse_cache=False)
    assert len(counted) == 4


def test_changed_archive_reads_only_new_and_changed_files(archive_dir, tmp_path, sample_dir):
    paths, cache = [str(archive_dir / "*.hdf")], tmp_path / "cache"
    index_input("vi", "modis_hdf4", paths, region=JAPAN, cache_dir=cache)
    extra = sorted((sample_dir / "modis").glob("MOD13A2.*.hdf"))[4]
    shutil.copy2(extra, archive_dir / extra.name)
    changed = sorted(archive_dir.glob("*.hdf"))[0]
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    gone = sorted(archive_dir.glob("*.hdf"))[1]
    gone.unlink()
    opened: list[str] = []
    spec = registry.get_reader("modis_hdf4")
    registry._READERS["modis_hdf4"] = replace(
        spec, granule_info=lambda p: opened.append(Path(p).name) or spec.granule_info(p)
    )
    try:
        index = index_input("vi", "modis_hdf4", paths, region=JAPAN, cache_dir=cache)
    finally:
        registry._READERS["modis_hdf4"] = spec
    assert sorted(opened) == sorted([extra.name, changed.name]) and index.read == 2
    assert sorted(Path(g.path).name for g in index.granules) == sorted(
        p.name for p in archive_dir.glob("*.hdf")
    )
    assert next(g for g in index.granules if g.path == str(changed)).stamps[0][2] == (
        changed.stat().st_mtime_ns
    )


def test_a_synthetic_listing_goes_through_the_same_index(tmp_path, counted):
    # names only (the bench's archive): files outside are never opened, those inside are
    names = [
        (str(tmp_path / f"MOD13A2.A2021001.h{h:02d}v{v:02d}.061.2021018034215.hdf"), 10, 1)
        for h in range(36)
        for v in range(18)
    ]
    index = index_input("vi", "modis_hdf4", [], region=JAPAN, listing=names)
    assert index.outside + len(index.files) == len(names)
    assert sorted(Path(p).name[17:23] for p in index.files) == ["h28v05", "h29v05", "h30v05"]
    assert sorted(counted) == sorted(index.files) and len(index.skipped) == 3  # no such file


# --- provenance ---------------------------------------------------------------------------


def test_content_hash_only_on_request(archive_dir, tmp_path):
    paths = [str(archive_dir / "*.hdf")]
    plain = index_input("vi", "modis_hdf4", paths, cache_dir=tmp_path / "c")
    assert plain.hashes == {}
    path = plain.granules[0].path
    record = input_record(path, plain.stamps()[path])
    assert "sha256" not in record
    assert record["size"] == os.path.getsize(path) and record["modified"].endswith("Z")
    # asking for hashes later reads the files again (the cache held no hash)
    hashed = index_input("vi", "modis_hdf4", paths, cache_dir=tmp_path / "c", content_hash=True)
    assert hashed.read == 4
    assert hashed.hashes[path] == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert (
        input_record(path, hashed.stamps()[path], hashed.hashes[path])["sha256"]
        == (hashed.hashes[path])
    )


def test_content_hash_is_a_workflow_key():
    from fluxscape.pipeline.schema import Provenance

    assert Provenance().content_hash is False
    assert Provenance.model_validate({"content_hash": True}).content_hash is True
    with pytest.raises(ValueError):
        Provenance.model_validate({"sha": True})


def test_name_rules_agree_with_the_readers_name_parsers(sample_dir):
    # the rules split strings for speed; they must read the same tile as the readers' regexes
    for path in sorted((sample_dir / "modis").glob("*.hdf"))[:5]:
        meta = modis_hdf4.parse_filename(path)
        assert modis_hdf4.name_bbox(path.name) == modis_hdf4.tile_lonlat_bbox(meta["h"], meta["v"])
    for path in sorted((sample_dir / "sgli").glob("GC1SG1_*.h5"))[:20]:
        meta = sgli_l2.parse_l2_filename(path)
        if meta is not None:
            assert sgli_l2.name_bbox(path.name) == sgli_l2.tile_bbox(
                meta["vtile"], meta["htile"], meta["n"]
            )
    name = "HS_H09_20240101_0000_B03_FLDK_R05_S0410.DAT"
    meta = ahi_hsd.parse_filename(name)
    south, north = ahi_hsd.segment_lat_band(meta["segment"], meta["total_segments"])
    assert ahi_hsd.name_bbox(name) == (-180.0, south, 180.0, north)
    assert ahi_hsd.name_bbox(name.replace(".DAT", ".nc")) is None


def test_many_headers_go_through_the_mapper_in_batches(archive_dir, monkeypatch):
    import fluxscape.pipeline.inputs as inputs

    monkeypatch.setattr(inputs, "PARALLEL_MIN", 2)
    monkeypatch.setattr(inputs, "batches", lambda items: archive.batches(items, 3))
    seen: list[int] = []

    def mapper(fn, work):
        seen.extend(len(b) for b in work)
        return map(fn, work)  # what a worker runs: read_headers on one batch

    paths = [str(archive_dir / "*.hdf")]
    mapped = index_input("vi", "modis_hdf4", paths, mapper=mapper)
    assert seen == [3, 1]
    assert mapped.granules == index_input("vi", "modis_hdf4", paths).granules
