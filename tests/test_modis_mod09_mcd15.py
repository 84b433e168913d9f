"""MOD09A1 surface reflectance and MCD15A2H LAI/FPAR: the product modules' QA bit rules on
hand-made words, the real LP DAAC files, and the sample world's files through the reader."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import missing_realdata
from pyhdf.SD import SD, SDC
from pyproj import Transformer

from fluxscape.readers import detect, inspect_file
from fluxscape.readers import modis_mcd15a2h as m15
from fluxscape.readers import modis_mod09a1 as m09
from fluxscape.readers.modis_hdf4 import SINUSOIDAL_PROJ, open_modis_tile, read_grids
from fluxscape.sample import generate
from fluxscape.sample.world import PRESETS, World

REAL_MOD09A1 = "MOD09A1.A2017193.h18v04.006.2017202035302.hdf"
REAL_MCD15A2H = "MCD15A2H.A2016201.h18v05.006.2016215124658.hdf"


@pytest.fixture(scope="module")
def modis_real(realdata_dir: Path) -> Path:
    folder = realdata_dir / "modis_hdf4"
    if not folder.is_dir():
        missing_realdata(f"MODIS HDF4 files not found under {folder}")
    return folder


# --- MOD09A1 bit rules ------------------------------------------------------------------------


def _state(cloud=0, shadow=0, lw=1, aerosol=1, cirrus=0, icloud=0, snow35=0, adj=0, isnow=0):
    return (
        cloud
        | shadow << 2
        | lw << 3
        | aerosol << 6
        | cirrus << 8
        | icloud << 10
        | snow35 << 12
        | adj << 13
        | isnow << 15
    )


def _qc(modland=0, band1=0, band2=0, band5=0):
    return modland | band1 << 2 | band2 << 6 | band5 << 18 | 1 << 30


MOD09_CASES = [
    # (description, qc, state, reliability, usable at max_reliability 1, at 0)
    ("ideal and clear", _qc(), _state(), 0, True, True),
    ("clear, average aerosol", _qc(), _state(aerosol=2), 0, True, True),
    ("dead detector on band 5 only", _qc(band5=0b1000), _state(), 0, True, True),
    ("less than ideal", _qc(modland=1), _state(), 1, True, False),
    ("band 2 noisy detector", _qc(band2=0b0111), _state(), 1, True, False),
    ("cloud state not set, assumed clear", _qc(), _state(cloud=3), 1, True, False),
    ("mixed clouds", _qc(), _state(cloud=2), 1, False, False),
    ("cloud shadow", _qc(), _state(shadow=1), 1, False, False),
    ("adjacent to cloud", _qc(), _state(adj=1), 1, False, False),
    ("high aerosol", _qc(), _state(aerosol=3), 1, False, False),
    ("high cirrus", _qc(), _state(cirrus=3), 1, False, False),
    ("small cirrus", _qc(), _state(cirrus=1), 0, True, True),
    ("MOD35 snow", _qc(), _state(snow35=1), 2, False, False),
    ("internal snow", _qc(), _state(isnow=1), 2, False, False),
    ("cloudy", _qc(), _state(cloud=1), 3, False, False),
    ("internal cloud flag", _qc(), _state(icloud=1), 3, False, False),
    ("not produced, cloud", _qc(modland=2), _state(), 3, False, False),
    ("cloudy over snow", _qc(), _state(cloud=1, snow35=1), 3, False, False),
    ("not produced, other", _qc(modland=3), _state(), -1, False, False),
    ("qc fill", 0xFFFFFFFF, _state(), -1, False, False),
    ("state fill", _qc(), 0xFFFF, -1, False, False),
]


@pytest.mark.parametrize(
    "qc, state, rel, usable1, usable0",
    [c[1:] for c in MOD09_CASES],
    ids=[c[0] for c in MOD09_CASES],
)
def test_mod09_quality_rules_on_hand_made_words(qc, state, rel, usable1, usable0):
    qc_arr, state_arr = np.array([qc], np.uint32), np.array([state], np.uint16)
    r, u = m09.quality(qc_arr, state_arr)
    assert r.dtype == np.int8 and u.dtype == bool
    assert (int(r[0]), bool(u[0])) == (rel, usable1)
    assert bool(m09.quality(qc_arr, state_arr, max_reliability=0)[1][0]) == usable0
    # snow and clouds fail the usability rules whatever max_reliability says
    if rel in (2, 3):
        assert not m09.quality(qc_arr, state_arr, max_reliability=3)[1][0]


def test_mod09_quality_broadcasts_and_decodes_all_fields():
    qc = np.array([[_qc(), _qc(modland=3)]], np.uint32)
    state = np.array([[_state(cloud=1)], [_state()]], np.uint16)
    r, u = m09.quality(qc, state)
    assert r.shape == (2, 2)
    np.testing.assert_array_equal(r, [[3, -1], [0, -1]])
    f = m09.state_flags(_state(cloud=2, shadow=1, lw=5, aerosol=3, cirrus=2, adj=1))
    assert (f["cloud"], f["land_water"], f["aerosol"], f["cirrus"]) == (2, 5, 3, 2)
    assert f["shadow"] and f["adjacent_cloud"] and not f["internal_snow"]
    q = m09.qc_flags(np.uint32(0x40000000 | (0b1001 << 26) | 0b01))
    assert (q["modland"], q["band7"], q["band1"]) == (1, 0b1001, 0)
    assert q["atmospheric_correction"] and not q["adjacency_correction"]


def test_mod09_tables():
    assert m09.PRODUCTS == ("MOD09A1", "MYD09A1")
    assert m09.SDS["red"] == "sur_refl_b01" and m09.SDS["nir"] == "sur_refl_b02"
    assert m09.SDS["swir12"] == "sur_refl_b05" and m09.SDS["swir22"] == "sur_refl_b07"
    assert m09.SDS["doy"] == "sur_refl_day_of_year"
    assert m09.QA_SDS == ("sur_refl_qc_500m", "sur_refl_state_500m")


# --- MCD15A2H bit rules -----------------------------------------------------------------------


def _fqc(scf=0, cloud=0, dead=0, sensor=0):
    return (1 if scf >= 2 else 0) | sensor << 1 | dead << 2 | cloud << 3 | scf << 5


MCD15_CASES = [
    # (description, qc, lai DN, reliability, usable at max_reliability 1, at 0)
    ("main algorithm, clear", _fqc(), 35, 0, True, True),
    ("main algorithm, Aqua", _fqc(sensor=1), 35, 0, True, True),
    ("main with saturation", _fqc(scf=1), 65, 0, True, True),
    ("backup, geometry", _fqc(scf=2), 30, 1, True, False),
    ("backup, other", _fqc(scf=3), 30, 1, True, False),
    ("mixed clouds", _fqc(cloud=2), 30, 1, True, False),
    ("cloud state not defined", _fqc(cloud=3), 30, 1, True, False),
    ("dead detector", _fqc(dead=1), 30, 1, True, False),
    ("significant clouds", _fqc(cloud=1), 30, 3, False, False),
    ("not produced", _fqc(scf=4, cloud=3, dead=1), 255, -1, False, False),
    ("water fill class", _fqc(), 254, -1, False, False),
    ("barren fill class", _fqc(), 253, -1, False, False),
    ("unclassified fill class", _fqc(), 249, -1, False, False),
    ("QC fill", 255, 30, -1, False, False),
]


@pytest.mark.parametrize(
    "qc, lai_dn, rel, usable1, usable0",
    [c[1:] for c in MCD15_CASES],
    ids=[c[0] for c in MCD15_CASES],
)
def test_mcd15_quality_rules_on_hand_made_words(qc, lai_dn, rel, usable1, usable0):
    qc_arr = np.array([qc], np.uint8)
    dn = np.array([lai_dn], np.uint8)
    decoded = np.where(dn <= 100, dn * 0.1, np.nan).astype(np.float32)
    for lai in (dn, decoded):  # stored DNs or decoded values give the same answer
        r, u = m15.quality(qc_arr, lai)
        assert (int(r[0]), bool(u[0])) == (rel, usable1)
        assert bool(m15.quality(qc_arr, lai, max_reliability=0)[1][0]) == usable0


def test_mcd15_extra_qc_snow_is_reliability_2():
    qc = np.array([_fqc(), _fqc(), _fqc(cloud=1)], np.uint8)
    lai = np.array([1.0, 1.0, 1.0], np.float32)
    extra = np.array([0b10000000, 0b10000100, 0b00100100], np.uint8)  # -, snow, snow+cloud
    r, u = m15.quality(qc, lai, extra=extra)
    np.testing.assert_array_equal(r, [0, 2, 3])
    np.testing.assert_array_equal(u, [True, False, False])
    assert m15.quality(qc, lai, max_reliability=2, extra=extra)[1].tolist() == [True, True, False]
    f = m15.extra_flags(np.uint8(0b11000111))
    assert f["land_sea"] == 3 and f["snow"] and f["shadow"] and f["biome_1_4"]


def test_mcd15_tables():
    assert m15.PRODUCTS == ("MCD15A2H", "MOD15A2H", "MYD15A2H")
    assert m15.SDS == {"lai": "Lai_500m", "fpar": "Fpar_500m"}
    assert m15.QA_SDS == ("FparLai_QC",)


# --- real files -------------------------------------------------------------------------------


def test_real_mod09a1_quality_and_standard_layers(modis_real):
    ds = open_modis_tile(modis_real / REAL_MOD09A1)
    s = m09.standard_layers(ds)
    assert set(m09.SDS) | {"reliability", "usable"} <= set(s.data_vars)
    assert s.reliability.dtype == np.int8
    usable = s.usable.values
    # a summer Alpine scene, a few cloud and shadow pixels: most, not all, usable
    assert 0.6 < usable.mean() < 0.98
    assert (s.reliability.values == 3).any()
    for band in ("red", "nir", "swir16"):
        assert np.isfinite(s[band].values[usable]).all()
    ndvi = m09.ndvi(s.red.values, s.nir.values)[usable]
    assert 0.3 < np.median(ndvi) < 0.95
    cloudy = s.reliability.values == 3
    assert np.nanmean(s.blue.values[cloudy]) > np.nanmean(s.blue.values[usable])


def test_real_mcd15a2h_quality_and_standard_layers(modis_real):
    ds = open_modis_tile(
        modis_real / REAL_MCD15A2H, ["Lai_500m", "Fpar_500m", "FparLai_QC", "FparExtra_QC"]
    )
    s = m15.standard_layers(ds)
    rel, usable = s.reliability.values, s.usable.values
    assert not np.isnan(s.lai.values[usable]).any()  # no fill class counted as usable
    assert not np.isnan(s.fpar.values[usable]).any()
    assert ((rel == -1) == np.isnan(s.lai.values)).all()
    # h18v05 in July: mostly sea and Sahara (fill classes); the land left is nearly all clear
    assert 0.1 < usable.mean() < 0.4
    assert usable[rel >= 0].mean() > 0.9
    strict = m15.quality(ds.FparLai_QC.values, ds.Lai_500m.values, max_reliability=0)[1]
    assert strict.sum() < usable.sum() and not (strict & ~usable).any()
    lai = s.lai.values[usable]
    assert 0 <= lai.min() and lai.max() <= 10 and 0.1 < np.median(lai) < 3


@pytest.mark.parametrize("name", [REAL_MOD09A1, REAL_MCD15A2H])
def test_real_product_names_are_in_the_modules(modis_real, name):
    product = inspect_file(modis_real / name).details["product"]
    assert product in m09.PRODUCTS + m15.PRODUCTS
    grid = read_grids(modis_real / name)[0].name
    assert grid.startswith(m09.GRID) or grid == m15.GRID


# --- the sample world's files ---------------------------------------------------------------

#: One 8-day composite in green-up (a wide NDVI range across the land covers).
SAMPLE_START = datetime(2021, 5, 9)


@pytest.fixture(scope="module")
def sample_rs(tmp_path_factory) -> dict:
    """One MOD09A1 and one MCD15A2H tile of the ``demo-rs`` world (composite of 9 May 2021),
    written by the sample-data writers over a 0.4 degree part of the demo region (the writing
    time is mostly the fill of the 2400 x 2400 tiles), with the world and the data window."""
    part = (138.2, 35.7, 138.6, 36.1)
    world = World(dataclasses.replace(PRESETS["demo-rs"], bbox=part, n_disturbances=0))
    out = tmp_path_factory.mktemp("rs")
    rng = np.random.default_rng(7)
    sr = generate.write_modis_reflectance(world, out / "reflectance", rng, [SAMPLE_START])
    lai = generate.write_modis_lai(world, out / "lai", rng, [SAMPLE_START])
    (td,) = generate._region_tiles(world.preset.bbox, generate.MODIS_500M)
    return {"world": world, "sr": sr, "lai": lai, "window": td.window}


def _lonlat(ds, rows, cols):
    tr = Transformer.from_crs(SINUSOIDAL_PROJ, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(ds.x.values[cols], ds.y.values[rows])
    return np.asarray(lon), np.asarray(lat)


def test_demo_rs_preset_writes_reflectance_and_lai_beside_the_demo_sources():
    demo, rs = PRESETS["demo"], PRESETS["demo-rs"]
    assert "modis_sr" not in demo.sources and "modis_lai" not in demo.sources
    assert set(rs.sources) == set(demo.sources) | {"modis_sr", "modis_lai"}
    assert (rs.bbox, rs.years, rs.n_towers) == (demo.bbox, demo.years, demo.n_towers)


@pytest.mark.parametrize(
    "kind, real", [("sr", REAL_MOD09A1), ("lai", REAL_MCD15A2H)], ids=["MOD09A1", "MCD15A2H"]
)
def test_sample_files_carry_the_real_files_sds_and_attributes(sample_rs, modis_real, kind, real):
    keys = ("_FillValue", "valid_range", "scale_factor", "add_offset", "units", "long_name")

    def table(path):
        sd = SD(str(path), SDC.READ)
        try:
            out = {}
            for name in sd.datasets():
                sds = sd.select(name)
                attrs = sds.attributes()
                out[name] = (sds.info()[3], {k: attrs.get(k) for k in keys})
            return out
        finally:
            sd.end()

    (path,) = sample_rs[kind]
    assert table(path) == table(modis_real / real)
    grid = read_grids(path)[0]
    assert grid.name == (m09.GRID if kind == "sr" else m15.GRID)
    assert (grid.ydim, grid.xdim) == (2400, 2400)
    assert detect(path).name == "modis_hdf4"
    s = inspect_file(path)
    assert s.time == ["2021-05-09", "2021-05-16"]
    w, so, e, n = s.bbox
    assert so == pytest.approx(30.0) and n == pytest.approx(40.0) and w < 138 < 139 < e


def test_sample_mod09a1_ndvi_reproduces_the_world_truth(sample_rs):
    """NDVI from b01/b02 of the usable pixels against the world's NDVI on each pixel's
    observation day (``sur_refl_day_of_year``). Measured: R2 0.995, RMSE 0.014 (seed 42,
    rng 7); floors with a margin."""
    (path,) = sample_rs["sr"]
    ds = open_modis_tile(path, [*m09.SDS.values(), *m09.QA_SDS], roi=sample_rs["window"])
    s = m09.standard_layers(ds)
    usable = s.usable.values
    assert 0.5 < usable.mean() < 0.9  # spring: about a quarter cloudy or next to cloud
    for band in m09.SDS:
        assert not np.isnan(s[band].values[usable]).any()
    rows, cols = np.nonzero(usable)
    lon, lat = _lonlat(ds, rows, cols)
    doy = s.doy.values[rows, cols].astype(int)
    assert 129 <= doy.min() and doy.max() <= 136
    dates = (np.datetime64("2021-01-01") + (doy - 1)).astype("datetime64[D]")
    truth = generate._at(sample_rs["world"].ndvi, lon, lat, dates)
    ndvi = m09.ndvi(s.red.values, s.nir.values)[rows, cols]
    r2 = 1 - np.sum((ndvi - truth) ** 2) / np.sum((truth - truth.mean()) ** 2)
    rmse = float(np.sqrt(np.mean((ndvi - truth) ** 2)))
    assert r2 > 0.96 and rmse < 0.025
    assert abs(np.mean(ndvi - truth)) < 0.005
    # clouds are flagged where the world is cloudy: bright in blue, never usable
    cloudy = s.reliability.values == 3
    assert 0.05 < cloudy.mean() < 0.5 and not (cloudy & usable).any()
    assert np.nanmean(s.blue.values[cloudy]) > 3 * np.nanmean(s.blue.values[usable])


def test_sample_mcd15a2h_lai_in_range_and_follows_the_truth(sample_rs):
    """LAI/FPAR of the usable pixels against the world's NDVI in the composite's middle.
    Measured: correlation of LAI with truth NDVI 0.96, of FPAR 0.98; floors with a margin."""
    (path,) = sample_rs["lai"]
    full = open_modis_tile(path, ["Lai_500m"])
    assert np.isnan(full.Lai_500m.values).mean() > 0.9  # fill outside the region
    ds = open_modis_tile(path, roi=sample_rs["window"])
    s = m15.standard_layers(ds)
    rel, usable = s.reliability.values, s.usable.values
    assert 0.5 < usable.mean() < 0.95
    assert ((rel == -1) == np.isnan(s.lai.values)).all()
    assert 0 < (rel == -1).mean() < 0.1  # some cloudy pixels not retrieved: fill, not zero
    lai, fpar = s.lai.values[usable], s.fpar.values[usable]
    assert not np.isnan(lai).any() and not np.isnan(fpar).any()
    assert 0 <= lai.min() and lai.max() <= 10 and 0 <= fpar.min() and fpar.max() <= 1
    rows, cols = np.nonzero(usable)
    lon, lat = _lonlat(ds, rows, cols)
    truth = sample_rs["world"].ndvi(lon, lat, [np.datetime64("2021-05-12")])[..., 0]
    assert np.corrcoef(lai, truth)[0, 1] > 0.9
    assert np.corrcoef(fpar, truth)[0, 1] > 0.9
    # the FparLai_QC words: main algorithm on most usable pixels, backup on a few
    scf = m15.qc_flags(ds.FparLai_QC.values)["scf"]
    assert (scf[usable] <= 1).mean() > 0.8 and (scf[usable] >= 2).any()
