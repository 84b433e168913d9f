"""Sample-world GOSAT TANSO-FTS SWIR L2 soundings in the two real layouts.

:func:`write_gosat` writes, for every overpass day of the world's years:

* ``gosat/nies/GOSATTFTS{YYYYMMDD}_02C01SV0290R{YYMMDD}GU000.h5`` (XCO2) and the matching
  ``_02C02SV0290...`` file (XCH4): the NIES L2 HDF5 layout read by
  :func:`fluxscape.readers.gosat.open_gosat_nies`;
* ``gosat/acos/acos_LtCO2_{YYMMDD}_v{YYMMDD}_B9213A_{YYMMDDhhmmss}s.nc4``: the ACOS Lite
  NetCDF4 layout read by :func:`fluxscape.readers.gosat.open_gosat_acos`.

Sampling (a denser version of GOSAT's): overpasses every third day (3-day repeat) at about
04:00 UTC (13:00 local), one sounding every 4 s along a descending (north-to-south) track;
sounding centres are points of a fixed 0.1 degree lattice over the region (GOSAT's pointing
mirror revisits the same grid points) with 0.015 degree pointing jitter; 30-80 soundings per
overpass day per square degree of region, so that every 0.25 degree cell gets soundings every
month.

Values: ``World.xco2`` / ``World.xch4`` at the sounding's place and day (the truth; no per-
sounding truth file is written) plus Gaussian retrieval noise of :data:`NOISE_SD` (1.5 ppm,
10 ppb). About :data:`CLOUDY_FRACTION` (25 %) of soundings are cloud-contaminated: they fail
screening (NIES ``totalPostScreeningResult`` = 1, ACOS ``xco2_quality_flag`` = 1) and carry a
low bias (:data:`CLOUD_BIAS`, clouds shorten the light path) with doubled noise, so that a
pipeline ignoring the flag is wrong by about a quarter of that bias. A tenth of the cloudy
soundings did not converge: NIES files carry -9999 for them, ACOS Lite files leave them out
(Lite files hold converged retrievals only). The same soundings appear in all three files;
noise is drawn independently per file.

NIES XCO2 files carry ``XCO2`` = bias-corrected value + :data:`NIES_XCO2_RAW_OFFSET` and
``XCO2BiasCorrected`` / ``XCO2BiasCorrectedError``; CH4 files carry ``XCH4`` only. ACOS files
carry the bias-corrected ``xco2`` at the root and ``Retrieval/xco2_raw`` =
``xco2`` + :data:`ACOS_XCO2_RAW_OFFSET`. The offsets are synthetic, not real bias models.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pandas as pd

from fluxscape.readers.gosat import ACOS_FILL, NIES_FILL
from fluxscape.sample.world import World

__all__ = [
    "CLOUDY_FRACTION",
    "CLOUD_BIAS",
    "NOISE_SD",
    "Soundings",
    "overpass_days",
    "plan_soundings",
    "write_acos_lite",
    "write_gosat",
    "write_nies_l2",
]

#: Retrieval noise (1 sigma) of clear-sky soundings: ppm for xco2, ppb for xch4.
NOISE_SD = {"xco2": 1.5, "xch4": 10.0}
#: Mean and spread of the low bias of cloud-contaminated soundings (same units).
CLOUD_BIAS = {"xco2": (-5.0, 2.0), "xch4": (-40.0, 15.0)}
#: Fraction of soundings that are cloud-contaminated and fail screening.
CLOUDY_FRACTION = 0.25
#: Fraction of cloudy soundings whose retrieval did not converge (fill values).
UNCONVERGED_FRACTION = 0.10
#: Uncorrected minus bias-corrected XCO2 (ppm) in the synthetic NIES and ACOS files.
NIES_XCO2_RAW_OFFSET = 1.2
ACOS_XCO2_RAW_OFFSET = -0.6
#: Repeat cycle (days), overpass hour (UTC) and time between soundings (s).
REPEAT_DAYS = 3
OVERPASS_UTC = timedelta(hours=4)
SOUNDING_INTERVAL_S = 4.0
#: Lattice spacing of sounding points and pointing jitter (degrees).
LATTICE_DEG = 0.1
JITTER_DEG = 0.015
#: Soundings per overpass day per square degree of region.
SOUNDINGS_PER_DAY = (30, 80)
NIES_VERSION = "0290"
ACOS_BUILD = "B9213A"
N_LEVELS = 20


@dataclass(frozen=True)
class Soundings:
    """One overpass day: sounding centres (degrees), UTC times (``datetime64[ms]``), whether
    each is cloud-contaminated (fails screening) and whether its retrieval failed (fill)."""

    lon: np.ndarray
    lat: np.ndarray
    time: np.ndarray
    cloudy: np.ndarray
    unconverged: np.ndarray

    @property
    def size(self) -> int:
        return int(self.lon.size)


def overpass_days(years) -> pd.DatetimeIndex:
    """Overpass days of ``years``: every third day, on a cycle anchored at 2000-01-02."""
    days = pd.date_range(f"{min(years)}-01-01", f"{max(years)}-12-31", freq="D")
    anchor = pd.Timestamp("2000-01-02")
    return days[((days - anchor).days % REPEAT_DAYS) == 0]


def _lattice(bbox) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres of a LATTICE_DEG lattice over bbox [W, S, E, N]."""
    w, s, e, n = bbox
    lon = np.arange(w + LATTICE_DEG / 2, e, LATTICE_DEG)
    lat = np.arange(s + LATTICE_DEG / 2, n, LATTICE_DEG)
    glon, glat = np.meshgrid(lon, lat)
    return glon.ravel(), glat.ravel()


def plan_soundings(bbox, day: pd.Timestamp, rng: np.random.Generator) -> Soundings:
    """Sounding places, times and cloud screening for one overpass day over bbox."""
    w, s, e, n = bbox
    plon, plat = _lattice(bbox)
    area = max(1.0, (e - w) * (n - s))
    count = min(plon.size, int(round(rng.integers(*SOUNDINGS_PER_DAY, endpoint=True) * area)))
    pick = rng.choice(plon.size, size=count, replace=False)
    lon = plon[pick] + rng.uniform(-JITTER_DEG, JITTER_DEG, count)
    lat = plat[pick] + rng.uniform(-JITTER_DEG, JITTER_DEG, count)
    order = np.argsort(-lat)  # descending pass: north first
    lon, lat = lon[order], lat[order]
    start = np.datetime64(day.normalize() + OVERPASS_UTC, "ms")
    offsets_ms = np.round(
        (np.arange(count) * SOUNDING_INTERVAL_S + rng.uniform(0, 0.5, count)) * 1000
    ).astype("int64")
    time = start + offsets_ms.astype("timedelta64[ms]")
    cloudy = rng.random(count) < CLOUDY_FRACTION
    unconverged = cloudy & (rng.random(count) < UNCONVERGED_FRACTION)
    return Soundings(lon, lat, time, cloudy, unconverged)


def _retrieve(
    truth: np.ndarray, snd: Soundings, gas: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Retrieved values and reported 1-sigma uncertainties (NaN where unconverged)."""
    sd = NOISE_SD[gas]
    bias_mean, bias_sd = CLOUD_BIAS[gas]
    noise = rng.normal(0, sd, snd.size) * np.where(snd.cloudy, 2.0, 1.0)
    bias = np.where(snd.cloudy, rng.normal(bias_mean, bias_sd, snd.size), 0.0)
    value = truth + noise + bias
    uncertainty = sd * rng.uniform(0.8, 1.2, snd.size) * np.where(snd.cloudy, 1.5, 1.0)
    value[snd.unconverged] = np.nan
    uncertainty[snd.unconverged] = np.nan
    return value, uncertainty


def _strings(values: list[str]) -> np.ndarray:
    width = max((len(v) for v in values), default=1)
    return np.array([v.encode("ascii") for v in values], dtype=f"S{max(width, 1)}")


def _nies_dataset(group: h5py.Group, name: str, values, unit: str, long_name: str):
    ds = group.create_dataset(name, data=values)
    ds.attrs["unit"] = _strings([unit])
    ds.attrs["longName"] = _strings([long_name])
    return ds


def _filled(values: np.ndarray, fill: float, dtype="float32") -> np.ndarray:
    return np.where(np.isfinite(values), values, fill).astype(dtype)


def write_nies_l2(
    path: Path,
    snd: Soundings,
    gas: str,
    value: np.ndarray,
    uncertainty: np.ndarray | None = None,
    raw_offset: float = 0.0,
    bias_corrected: bool = True,
) -> Path:
    """One NIES GOSAT FTS SWIR L2 HDF5 file (``gas`` "xco2" -> 02C01S, "xch4" -> 02C02S).

    ``value`` is the bias-corrected mole fraction (ppm / ppb; NaN -> -9999). The file's
    ``X{GAS}`` is ``value + raw_offset``; with ``bias_corrected`` it also holds
    ``X{GAS}BiasCorrected`` (= ``value``) and ``X{GAS}BiasCorrectedError`` (= ``uncertainty``).
    ``totalPostScreeningResult`` is 1 for cloudy or unconverged soundings, else 0.
    """
    stem = gas.upper()
    unit = {"xco2": "ppm", "xch4": "ppb"}[gas]
    n = snd.size
    times = [t.replace("T", " ") for t in np.datetime_as_string(snd.time, unit="ms")]
    scan_ids = [t.replace("-", "").replace(" ", "").replace(":", "")[:14] for t in times]
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        geo = f.create_group("Data/geolocation")
        _nies_dataset(geo, "latitude", _filled(snd.lat, NIES_FILL), "deg", "latitude")
        _nies_dataset(geo, "longitude", _filled(snd.lon, NIES_FILL), "deg", "longitude")
        _nies_dataset(geo, "landFraction", np.full(n, 100.0, "float32"), "%", "land fraction")
        mix = f.create_group("Data/mixingRatio")
        _nies_dataset(
            mix,
            stem,
            _filled(value + raw_offset, NIES_FILL),
            unit,
            f"column-averaged dry air mole fraction of {stem[1:]}",
        )
        if bias_corrected:
            _nies_dataset(
                mix,
                f"{stem}BiasCorrected",
                _filled(value, NIES_FILL),
                unit,
                f"bias-corrected {stem}",
            )
            err = uncertainty if uncertainty is not None else np.full(n, np.nan)
            _nies_dataset(
                mix,
                f"{stem}BiasCorrectedError",
                _filled(err, NIES_FILL),
                unit,
                f"error of bias-corrected {stem}",
            )
        qual = f.create_group("Data/retrievalQuality")
        failed = snd.cloudy | snd.unconverged | ~np.isfinite(value)
        _nies_dataset(
            qual,
            "totalPostScreeningResult",
            failed.astype("int8"),
            "none",
            "total post-screening result (0: passed)",
        )
        chi2 = np.where(snd.unconverged, np.nan, np.where(failed, 2.5, 1.1))
        _nies_dataset(qual, "chi2", _filled(chi2, NIES_FILL), "none", "chi square")
        scan = f.create_group("scanAttribute")
        _nies_dataset(scan, "time", _strings(times), "none", "observation time (UTC)")
        _nies_dataset(scan, "scanID", _strings(scan_ids), "none", "scan ID")
        _nies_dataset(scan, "numScan", np.array([n], "int32"), "none", "number of scans")
        meta = f.create_group("Global/metadata")
        for key, text in (
            ("satelliteName", "GOSAT"),
            ("sensorName", "TANSO-FTS"),
            ("operationLevel", "L2"),
        ):
            meta.create_dataset(key, data=_strings([text]))
    return path


def write_acos_lite(
    path: Path,
    snd: Soundings,
    xco2: np.ndarray,
    uncertainty: np.ndarray,
    apriori: np.ndarray,
    rng: np.random.Generator,
) -> Path:
    """One ACOS GOSAT Lite NetCDF4 file holding the converged soundings of ``snd``.

    ``xco2`` / ``uncertainty`` / ``apriori`` in ppm (NaN -> -999999); ``xco2_quality_flag``
    is 1 for cloudy soundings, else 0; ``time`` is seconds since 1970-01-01 UTC.
    """
    keep = ~snd.unconverged
    lon, lat, t = snd.lon[keep], snd.lat[keep], snd.time[keep]
    xco2, uncertainty, apriori = xco2[keep], uncertainty[keep], apriori[keep]
    cloudy = snd.cloudy[keep]
    n = int(keep.sum())
    seconds = (t - np.datetime64("1970-01-01T00:00:00", "ms")).astype("int64") / 1000.0
    stamps = pd.DatetimeIndex(t)
    ids = np.array(
        [int(s.strftime("%Y%m%d%H%M%S")) * 100 + i % 100 for i, s in enumerate(stamps)],
        dtype="int64",
    )
    doy = stamps.dayofyear.to_numpy()
    declination = 23.44 * np.sin(2 * np.pi * (doy - 81) / 365)
    sza = np.abs(lat - declination) + rng.uniform(0, 2, n)
    levels = np.linspace(0.1, 1.0, N_LEVELS)  # sigma levels, top to surface
    psurf = 1013.25 - 0.12 * rng.uniform(0, 1500, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("sounding_id", n)
        nc.createDimension("vertices", 4)
        nc.createDimension("levels", N_LEVELS)
        nc.createDimension("epoch_dimension", 7)
        nc.title = "ACOS GOSAT Lite XCO2 (fluxscape sample world)"
        nc.BuildId = ACOS_BUILD

        def var(name, values, dtype="f4", dims=("sounding_id",), units=None, group=nc, **kw):
            fill = ACOS_FILL if dtype in ("f4", "f8") else None
            v = group.createVariable(name, dtype, dims, fill_value=fill)
            if units is not None:
                v.units = units
            for key, value in kw.items():
                setattr(v, key, value)
            v[...] = _filled(np.asarray(values, float), ACOS_FILL, dtype) if fill else values
            return v

        var("sounding_id", ids, "i8", long_name="sounding id (YYYYMMDDhhmmss + index)")
        var("latitude", lat, units="degrees_north", long_name="latitude")
        var("longitude", lon, units="degrees_east", long_name="longitude")
        var(
            "time",
            seconds,
            "f8",
            units="seconds since 1970-01-01 00:00:00",
            long_name="sounding time (UTC)",
        )
        date = np.stack(
            [
                stamps.year,
                stamps.month,
                stamps.day,
                stamps.hour,
                stamps.minute,
                stamps.second,
                stamps.microsecond // 1000,
            ],
            axis=1,
        ).astype("i2")
        var(
            "date",
            date,
            "i2",
            ("sounding_id", "epoch_dimension"),
            long_name="year, month, day, hour, minute, second, millisecond (UTC)",
        )
        var("xco2", xco2, units="ppm", long_name="bias-corrected XCO2")
        var("xco2_uncertainty", uncertainty, units="ppm", long_name="XCO2 posterior error")
        var(
            "xco2_quality_flag",
            cloudy.astype("i1"),
            "i1",
            long_name="XCO2 quality flag",
            comment="0 = good, 1 = bad",
        )
        var("solar_zenith_angle", sza, units="degrees")
        var("sensor_zenith_angle", rng.uniform(0, 12, n), units="degrees")
        offsets = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.045
        var(
            "vertex_latitude",
            lat[:, None] + offsets[None, :, 1],
            dims=("sounding_id", "vertices"),
            units="degrees_north",
        )
        var(
            "vertex_longitude",
            lon[:, None] + offsets[None, :, 0],
            dims=("sounding_id", "vertices"),
            units="degrees_east",
        )
        var("xco2_apriori", apriori, units="ppm")
        var(
            "pressure_levels",
            psurf[:, None] * levels[None, :],
            dims=("sounding_id", "levels"),
            units="hPa",
        )
        weight = np.full((n, N_LEVELS), 1.0 / N_LEVELS)
        var("pressure_weight", weight, dims=("sounding_id", "levels"), units="1")
        kernel = np.broadcast_to(0.75 + 0.3 * levels, (n, N_LEVELS))
        var("xco2_averaging_kernel", kernel, dims=("sounding_id", "levels"), units="1")
        var(
            "co2_profile_apriori",
            np.repeat(apriori[:, None], N_LEVELS, axis=1),
            dims=("sounding_id", "levels"),
            units="ppm",
        )
        sounding = nc.createGroup("Sounding")
        var("land_fraction", np.full(n, 100.0), units="%", group=sounding)
        var(
            "gain",
            np.full(n, ord("H"), "i1"),
            "i1",
            group=sounding,
            comment="ASCII code of the TANSO-FTS gain setting (H or M)",
        )
        retrieval = nc.createGroup("Retrieval")
        var(
            "xco2_raw",
            xco2 + ACOS_XCO2_RAW_OFFSET,
            units="ppm",
            group=retrieval,
            long_name="XCO2 before bias correction",
        )
        var("psurf", psurf, units="hPa", group=retrieval)
        var(
            "aod_total",
            np.where(cloudy, 0.4, 0.08) * rng.uniform(0.5, 1.5, n),
            units="1",
            group=retrieval,
        )
        meteorology = nc.createGroup("Meteorology")
        var("psurf_apriori", psurf + rng.normal(0, 1.5, n), units="hPa", group=meteorology)
        preprocessors = nc.createGroup("Preprocessors")
        var(
            "co2_ratio",
            np.where(cloudy, 1.03, 1.0) + rng.normal(0, 0.003, n),
            units="1",
            group=preprocessors,
        )
    return path


def write_gosat(world: World, out_dir: str | Path, rng: np.random.Generator) -> list[Path]:
    """Write GOSAT L2 files for every overpass day of the world's years.

    Returns the written paths: per day one NIES XCO2 HDF5 (``out_dir/gosat/nies/``), one
    NIES XCH4 HDF5 (same folder) and one ACOS Lite NetCDF4 (``out_dir/gosat/acos/``).
    """
    out = Path(out_dir) / "gosat"
    nies_dir, acos_dir = out / "nies", out / "acos"
    bbox = world.preset.bbox
    paths: list[Path] = []
    for day in overpass_days(world.preset.years):
        snd = plan_soundings(bbox, day, rng)
        co2 = world.xco2(snd.lon, snd.lat, [day])[..., 0]
        ch4 = world.xch4(snd.lon, snd.lat, [day])[..., 0]
        processed = day + timedelta(days=40)
        for gas, truth, product in (("xco2", co2, "02C01S"), ("xch4", ch4, "02C02S")):
            value, unc = _retrieve(truth, snd, gas, rng)
            name = f"GOSATTFTS{day:%Y%m%d}_{product}V{NIES_VERSION}R{processed:%y%m%d}GU000.h5"
            if gas == "xco2":
                paths.append(
                    write_nies_l2(
                        nies_dir / name, snd, gas, value, unc, raw_offset=NIES_XCO2_RAW_OFFSET
                    )
                )
            else:
                paths.append(write_nies_l2(nies_dir / name, snd, gas, value, bias_corrected=False))
        value, unc = _retrieve(co2, snd, "xco2", rng)
        apriori = co2 - 2.0 + rng.normal(0, 0.5, snd.size)
        produced = day + timedelta(days=300, hours=1, minutes=16, seconds=34)
        name = (
            f"acos_LtCO2_{day:%y%m%d}_v{produced:%y%m%d}_{ACOS_BUILD}_{produced:%y%m%d%H%M%S}s.nc4"
        )
        paths.append(write_acos_lite(acos_dir / name, snd, value, unc, apriori, rng))
    return paths
