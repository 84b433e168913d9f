"""GOSAT TANSO-FTS SWIR L2 soundings: NIES HDF5 and NASA ACOS Lite NetCDF4.

Both layouts come back as one *point table*, so the pipeline treats them alike: an
``xarray.Dataset`` with dimension ``obs`` (one row per sounding), coordinates ``lat``, ``lon``
(degrees, EPSG:4326, NaN where the file has fill), ``time`` (``datetime64[ns]``, UTC) and
``sounding_id``, and data variables with common names:

* ``xco2`` (ppm) and/or ``xch4`` (ppb), float64, NaN for fill — the bias-corrected value where
  the file has one (NIES ``XCO2BiasCorrected``; ACOS Lite ``xco2`` is bias-corrected already);
* ``xco2_uncertainty`` / ``xch4_uncertainty`` (same units) when the file carries one;
* ``xco2_raw`` (ppm): the value before bias correction, when the file has both;
* ``quality_flag`` (int32): the file's own screening flag, **0 = passed / good in both
  layouts**, other values = screened out, -1 where the flag itself is fill;
* ``quality_pass`` (int8): 1 where the flag is 0 *and* the gas value and geolocation are
  finite, else 0 — the one mask a product needs.

Dataset attributes: ``source_file``, ``product`` (NIES ``02C01S`` / ``02C02S``; ACOS
``ACOS_L2_Lite_FP``), ``retrieval_version`` (NIES ``02.90`` from ``V0290`` in the name; ACOS
build such as ``B9213A``), ``reader``, ``time_standard`` (``UTC``) and
``missing_value_in_source``.

**NIES GOSAT FTS SWIR L2** (products 02C01S = CO2, 02C02S = CH4; one HDF5 file per day).
Product description: https://data2.gosat.nies.go.jp/doc/documents/GOSAT_ProductDescription_21_FTSSWIRL2_V3.10_ja.pdf
Layout read here (checked against public h5py/R scripts that read real files; see the notes
on hedged details below):

* ``/Data/geolocation/latitude``, ``longitude`` (float32, degrees);
* ``/Data/mixingRatio/XCO2`` (ppm) or ``XCH4`` (ppb); optional ``XCO2BiasCorrected`` and
  ``XCO2BiasCorrectedError`` (V02.9x; also seen in V02.4x) and the same for ``XCH4``;
* ``/Data/retrievalQuality/totalPostScreeningResult`` (0 = passed the post-screening);
* ``/scanAttribute/time``: fixed-length byte strings ``"YYYY-MM-DD hh:mm:ss.sss"`` (UTC);
  ``/scanAttribute/scanID``;
* ``/Global/metadata/satelliteName``, ``sensorName``, ``operationLevel`` (string arrays);
* dataset attributes ``unit`` and ``longName`` as one-element string arrays; missing = -9999.0.

File names: ``GOSATTFTS{YYYYMMDD}[hh]_02C0{1|2}SV{vvvv}R{revision}.h5``, e.g.
``GOSATTFTS20181124_02C01SV0280R181124GU000.h5`` (seen in public code) and
``GOSATTFTS2021010100_02C01SV0290R21021900000GU000.h5``; the part after ``R`` is not fixed.

**ACOS GOSAT Lite** (GES DISC ``ACOS_L2_Lite_FP``; one NetCDF4 file per day), e.g.
``acos_LtCO2_200608_v210210_B9213A_201026001634s.nc4``: root variables on dimension
``sounding_id``: ``sounding_id`` (int64), ``latitude``, ``longitude``, ``time`` (seconds since
1970-01-01 00:00:00 UTC), ``xco2`` (ppm), ``xco2_uncertainty``, ``xco2_quality_flag`` (int8,
0 = good), ``solar_zenith_angle``, ``sensor_zenith_angle``, ``xco2_apriori``, n x 4 vertices,
n x 20 averaging kernel / pressure weights; groups ``Sounding/``, ``Retrieval/`` (``xco2_raw``),
``Meteorology/``, ... . Fill is -999999.0.

Hedged (not checked against a real file): the CH4 dataset name ``XCH4`` and its unit; whether
bias-corrected CH4 exists; the integer type of ``totalPostScreeningResult``; the form of
``scanID``; the fixed 7 + 3 layout of NIES time strings (the reader accepts any
``YYYY-MM-DD[ T]hh:mm:ss[.fff]``); the ACOS group contents. Units are taken from the ``unit`` /
``units`` attribute when present (ppm, ppb, mol mol-1 are converted), else the spec's unit.

Importing this module registers the readers ``gosat_nies`` and ``gosat_acos``.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.errors import ReaderError
from fluxscape.readers.magic import require
from fluxscape.readers.ontile import Granule
from fluxscape.readers.registry import FileSummary, ReaderSpec, register

__all__ = [
    "ACOS_FILL",
    "ACOS_NAME_PATTERN",
    "GAS_UNITS",
    "NIES_FILL",
    "NIES_NAME_PATTERN",
    "NIES_PRODUCTS",
    "open_gosat_acos",
    "open_gosat_nies",
    "parse_acos_name",
    "parse_nies_name",
]

NIES_SPEC_URL = "https://data2.gosat.nies.go.jp/doc/documents/GOSAT_ProductDescription_21_FTSSWIRL2_V3.10_ja.pdf"
ACOS_SPEC_URL = "https://disc.gsfc.nasa.gov/datasets/ACOS_L2_Lite_FP_9r/summary"

#: Units of the normalised gas variables.
GAS_UNITS = {"xco2": "ppm", "xch4": "ppb"}
_LONG_NAMES = {
    "xco2": "column-averaged dry-air mole fraction of CO2",
    "xch4": "column-averaged dry-air mole fraction of CH4",
}
_TO_MOL_PER_MOL = {
    "ppm": 1e-6,
    "ppmv": 1e-6,
    "ppb": 1e-9,
    "ppbv": 1e-9,
    "mol mol-1": 1.0,
    "mol/mol": 1.0,
    "1": 1.0,
}

#: NIES product code -> normalised gas variable.
NIES_PRODUCTS = {"02C01S": "xco2", "02C02S": "xch4"}
#: Missing value in NIES files.
NIES_FILL = -9999.0
#: Full match on the base name; the part after ``R`` (revision / processing id) varies.
NIES_NAME_PATTERN = (
    r"GOSATTFTS(?P<date>\d{8})(?P<hour>\d{2})?_(?P<product>02C0[12]S)"
    r"V(?P<version>\d{4})R(?P<revision>[0-9A-Za-z]*)\.h5"
)
_NIES_NAME_RE = re.compile(NIES_NAME_PATTERN)
_NIES_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?")

#: Missing value in ACOS Lite files.
ACOS_FILL = -999999.0
#: Full match on the base name (v9: ``..._v210210_B9213A_201026001634s.nc4``; v11:
#: ``..._B11000Ar_<production>s.nc4``); a trailing ``_subsetted`` and the like is accepted.
ACOS_NAME_PATTERN = (
    r"acos_LtCO2_(?P<date>\d{6})_(?:v(?P<vdate>\d{6})_)?(?P<build>B[0-9A-Za-z]+)"
    r"_(?P<production>\d{12})s(?:_[0-9A-Za-z]+)*\.nc4?"
)
_ACOS_NAME_RE = re.compile(ACOS_NAME_PATTERN)
_ACOS_REQUIRED = ("latitude", "longitude", "time", "xco2", "xco2_quality_flag")
_ACOS_AUX = {  # optional per-sounding root variables kept in the table: name -> units
    "solar_zenith_angle": "degree",
    "sensor_zenith_angle": "degree",
    "xco2_apriori": "ppm",
}
_TIME_UNITS_RE = re.compile(r"\s*(seconds|minutes|hours|days)\s+since\s+(.+)", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------------


def parse_nies_name(path: str | Path) -> dict | None:
    """Observation date, product code, gas and retrieval version from a NIES file name.

    ``GOSATTFTS20181124_02C01SV0280R181124GU000.h5`` gives ``{"date": datetime(2018, 11, 24),
    "product": "02C01S", "gas": "xco2", "version": "02.80", "revision": "181124GU000"}``;
    None when the name does not follow the convention.
    """
    m = _NIES_NAME_RE.fullmatch(Path(path).name)
    if m is None:
        return None
    try:
        date = datetime.strptime(m["date"], "%Y%m%d")
    except ValueError:
        return None
    v = m["version"]
    return {
        "date": date,
        "product": m["product"],
        "gas": NIES_PRODUCTS[m["product"]],
        "version": f"{v[:2]}.{v[2:]}",
        "revision": m["revision"],
    }


def parse_acos_name(path: str | Path) -> dict | None:
    """Observation date, build and production time from an ACOS Lite file name.

    ``acos_LtCO2_200608_v210210_B9213A_201026001634s.nc4`` gives ``{"date":
    datetime(2020, 6, 8), "build": "B9213A", "version_date": "210210", "production":
    "201026001634"}``; None when the name does not follow the convention.
    """
    m = _ACOS_NAME_RE.fullmatch(Path(path).name)
    if m is None:
        return None
    try:
        date = datetime.strptime(m["date"], "%y%m%d")
    except ValueError:
        return None
    return {
        "date": date,
        "build": m["build"],
        "version_date": m["vdate"],
        "production": m["production"],
    }


# --------------------------------------------------------------------------------------------
# Shared decoding
# --------------------------------------------------------------------------------------------


def _decode_fill(values: np.ndarray, fill: float) -> np.ndarray:
    """float64 copy with ``fill`` as NaN."""
    out = np.array(values, dtype="float64")
    out[out == fill] = np.nan
    return out


def _geolocation(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitude/longitude with values outside [-90, 90] / [-180, 360] set to NaN."""
    lat = np.where(np.abs(lat) <= 90, lat, np.nan)
    lon = np.where((lon >= -180) & (lon <= 360), lon, np.nan)
    lon = np.where(lon > 180, lon - 360, lon)
    return lat, lon


def _flag(values: np.ndarray, fill: float) -> np.ndarray:
    """Integer flag (int32) with fill / non-finite as -1."""
    raw = np.asarray(values)
    if raw.dtype.kind == "f":
        bad = ~np.isfinite(raw) | (raw == fill)
        out = np.where(bad, -1, raw).astype("int32")
    else:
        out = raw.astype("int32")
        out[raw == fill] = -1
    return out


def _unit_factor(path: Path, name: str, unit: str | None, target: str) -> float:
    """Factor that converts values in ``unit`` to ``target`` (1 when the unit is absent)."""
    if unit is None or not unit.strip():
        return 1.0
    key = unit.strip()
    if key not in _TO_MOL_PER_MOL:
        raise ReaderError(
            f"{path}: {name} has unit {unit!r}; expected one of {', '.join(_TO_MOL_PER_MOL)}"
        )
    return _TO_MOL_PER_MOL[key] / _TO_MOL_PER_MOL[target]


def _point_table(
    path: Path,
    *,
    lat: np.ndarray,
    lon: np.ndarray,
    time: np.ndarray,
    sounding_id: np.ndarray,
    gases: dict[str, tuple[np.ndarray, dict]],
    flag: np.ndarray,
    flag_attrs: dict,
    attrs: dict,
) -> xr.Dataset:
    """The common sounding table (see the module docstring) from decoded 1-D arrays."""
    n = lat.size
    columns = [
        ("longitude", lon),
        ("time", time),
        ("sounding id", sounding_id),
        ("quality flag", flag),
    ] + [(k, v[0]) for k, v in gases.items()]
    for name, arr in columns:
        if arr.shape != (n,):
            raise ReaderError(f"{path}: {name} has shape {arr.shape}, latitude has {n} soundings")
    lat, lon = _geolocation(lat, lon)
    ok = (flag == 0) & np.isfinite(lat) & np.isfinite(lon)
    for name in GAS_UNITS:
        if name in gases:
            ok &= np.isfinite(gases[name][0])
    data_vars = {name: ("obs", values, a) for name, (values, a) in gases.items()}
    data_vars["quality_flag"] = ("obs", flag, flag_attrs)
    data_vars["quality_pass"] = (
        "obs",
        ok.astype("int8"),
        {
            "long_name": "sounding passed the file's quality screening (1) or not (0)",
            "flag_values": [0, 1],
            "flag_meanings": "screened_out passed",
            "comment": "1 where quality_flag == 0 and the gas value and geolocation are finite",
        },
    )
    coords = {
        "lat": ("obs", lat, {"units": "degrees_north", "standard_name": "latitude"}),
        "lon": ("obs", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        "time": ("obs", time, {"standard_name": "time", "time_zone": "UTC"}),
        "sounding_id": ("obs", sounding_id, {"long_name": "sounding identifier in the file"}),
    }
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update({"source_file": str(path), "time_standard": "UTC", **attrs})
    return ds


def _gas_attrs(gas: str, source: str, **extra) -> dict:
    """CF-style attributes of a normalised gas variable read from ``source``."""
    return {
        "units": GAS_UNITS[gas],
        "long_name": _LONG_NAMES[gas],
        "source_variable": source,
        **extra,
    }


def _check_gas(path: Path, present: list[str], gas: str | None) -> None:
    if gas is not None and gas not in present:
        raise ReaderError(
            f"{path}: no {gas} in this file; it holds {', '.join(present) or 'no gas'}"
        )


# --------------------------------------------------------------------------------------------
# NIES HDF5
# --------------------------------------------------------------------------------------------


def _h5_string(value) -> str:
    """The first string of an HDF5 attribute or dataset value (string array, bytes or str)."""
    strings = _decode_strings(value)
    return strings[0] if strings.size else ""


def _h5_dataset(f: h5py.File, path: Path, name: str) -> h5py.Dataset:
    try:
        obj = f[name]
    except KeyError as exc:
        raise ReaderError(
            f"{path}: no dataset /{name} (not a NIES GOSAT FTS SWIR L2 file?)"
        ) from exc
    if not isinstance(obj, h5py.Dataset):
        raise ReaderError(f"{path}: /{name} is a group, expected a dataset")
    return obj


def _h5_read(f: h5py.File, path: Path, name: str) -> np.ndarray:
    ds = _h5_dataset(f, path, name)
    try:
        return ds[()]
    except (OSError, ValueError, TypeError) as exc:
        raise ReaderError(f"{path}: cannot read /{name} ({exc})") from exc


def _nies_unit(ds: h5py.Dataset) -> str | None:
    return _h5_string(ds.attrs["unit"]) if "unit" in ds.attrs else None


def _decode_strings(raw: np.ndarray) -> np.ndarray:
    """Python strings from fixed-length bytes, variable-length strings or a char matrix."""
    arr = np.asarray(raw)
    if arr.ndim == 2 and arr.dtype.kind in "Su" and arr.dtype.itemsize == 1:  # n x 23 chars
        arr = arr.view(f"S{arr.shape[1]}").reshape(arr.shape[0])
    arr = arr.reshape(-1)
    return np.array(
        [
            (
                v.decode("utf-8", errors="replace") if isinstance(v, bytes | np.bytes_) else str(v)
            ).strip("\x00 ")
            for v in arr
        ],
        dtype=object,
    )


def parse_nies_times(path: Path, raw: np.ndarray) -> np.ndarray:
    """``datetime64[ns]`` (UTC) from NIES ``/scanAttribute/time`` strings.

    Accepts ``YYYY-MM-DD hh:mm:ss.sss`` (and a ``T`` separator, any number of decimals);
    raises ReaderError naming the file, the first bad value and its index otherwise.
    """
    text = _decode_strings(raw)
    good = np.array([bool(_NIES_TIME_RE.fullmatch(t)) for t in text], dtype=bool)
    times = pd.to_datetime(
        pd.Series(np.where(good, text, None), dtype=object), format="ISO8601", errors="coerce"
    )
    bad = ~good | times.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ReaderError(
            f"{path}: unparseable /scanAttribute/time value {text[i]!r} at sounding {i} "
            f"({int(bad.sum())} of {bad.size} bad; expected 'YYYY-MM-DD hh:mm:ss.sss' UTC)"
        )
    return times.to_numpy(dtype="datetime64[ns]")


def _open_h5(path: Path) -> h5py.File:
    if not path.is_file():
        raise ReaderError(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        reason = str(exc).split("(", 1)[-1].rstrip(")") if "(" in str(exc) else str(exc)
        raise ReaderError(f"{path}: not a readable HDF5 file ({reason})") from exc


def _nies_metadata(f: h5py.File) -> dict:
    """``/Global/metadata`` strings (datasets or attributes), empty when absent."""
    out = {}
    group = f.get("Global/metadata")
    if isinstance(group, h5py.Group):
        for key in ("satelliteName", "sensorName", "operationLevel"):
            try:
                if key in group:
                    out[key] = _h5_string(group[key][()])
                elif key in group.attrs:
                    out[key] = _h5_string(group.attrs[key])
            except (OSError, ValueError, TypeError):
                continue
    return out


def open_gosat_nies(path: str | Path, gas: str | None = None) -> xr.Dataset:
    """Read one NIES GOSAT FTS SWIR L2 HDF5 file (02C01S CO2 or 02C02S CH4) as a point table.

    Parameters
    ----------
    path:
        A ``GOSATTFTS*_02C0[12]S*.h5`` file (any name works when the content has the layout).
    gas:
        ``"xco2"`` or ``"xch4"`` to insist on one gas (ReaderError when the file holds the
        other); None reads what the file holds.

    Returns
    -------
    xarray.Dataset
        Dimension ``obs``; see the module docstring for coordinates and variables. ``xco2``
        (ppm) is ``XCO2BiasCorrected`` when present (``bias_corrected=1``; the uncorrected
        ``XCO2`` is then ``xco2_raw`` and ``XCO2BiasCorrectedError`` is ``xco2_uncertainty``),
        else ``XCO2`` (``bias_corrected=0``); likewise ``xch4`` (ppb). -9999 -> NaN.

    Raises
    ------
    ReaderError
        Not HDF5, truncated, a required dataset missing (``/Data/mixingRatio``, geolocation,
        ``/scanAttribute/time``, ``totalPostScreeningResult``), unparseable time strings,
        unknown units, a file name that names the other gas, or ``gas`` not in the file.
    """
    path = Path(path)
    if gas is not None and gas not in GAS_UNITS:
        raise ReaderError(f"{path}: unknown gas {gas!r}; expected one of {', '.join(GAS_UNITS)}")
    info = parse_nies_name(path)
    f = _open_h5(path)
    try:
        mixing = f.get("Data/mixingRatio")
        if not isinstance(mixing, h5py.Group):
            raise ReaderError(
                f"{path}: no /Data/mixingRatio group (not a NIES GOSAT FTS SWIR L2 XCO2/XCH4 file)"
            )
        present = [g for g in GAS_UNITS if g.upper() in mixing]
        if not present:
            raise ReaderError(
                f"{path}: /Data/mixingRatio has no XCO2 or XCH4 dataset "
                f"(it has {', '.join(sorted(mixing)) or 'nothing'})"
            )
        if info is not None and info["gas"] not in present:
            raise ReaderError(
                f"{path}: file name says product {info['product']} ({info['gas']}) but "
                f"/Data/mixingRatio holds {', '.join(g.upper() for g in present)}"
            )
        _check_gas(path, present, gas)
        lat = _decode_fill(_h5_read(f, path, "Data/geolocation/latitude"), NIES_FILL)
        lon = _decode_fill(_h5_read(f, path, "Data/geolocation/longitude"), NIES_FILL)
        time = parse_nies_times(path, _h5_read(f, path, "scanAttribute/time"))
        flag = _flag(_h5_read(f, path, "Data/retrievalQuality/totalPostScreeningResult"), NIES_FILL)
        gases: dict[str, tuple[np.ndarray, dict]] = {}
        for name in [gas] if gas else present:
            gases.update(_nies_gas(f, path, name))
        if "scanAttribute/scanID" in f:
            sounding_id = _decode_strings(_h5_read(f, path, "scanAttribute/scanID")).astype(str)
        else:
            sounding_id = np.array([str(i) for i in range(lat.size)])
        meta = _nies_metadata(f)
    except (OSError, RuntimeError) as exc:  # HDF5 errors deep in a damaged file
        raise ReaderError(f"{path}: damaged HDF5 file ({exc})") from exc
    finally:
        f.close()
    product = (
        info["product"] if info else next(k for k, v in NIES_PRODUCTS.items() if v == present[0])
    )
    return _point_table(
        path,
        lat=lat,
        lon=lon,
        time=time,
        sounding_id=sounding_id,
        gases=gases,
        flag=flag,
        flag_attrs={
            "long_name": "NIES total post-screening result",
            "source_variable": "/Data/retrievalQuality/totalPostScreeningResult",
            "comment": "0 = passed the post-screening; other values = screened out; "
            "-1 = flag missing in the file",
        },
        attrs={
            "reader": "gosat_nies",
            "product": product,
            "retrieval_version": info["version"] if info else "unknown",
            "platform": meta.get("satelliteName", "GOSAT"),
            "sensor": meta.get("sensorName", "TANSO-FTS"),
            "processing_level": meta.get("operationLevel", "L2"),
            "missing_value_in_source": NIES_FILL,
            "format_reference": NIES_SPEC_URL,
        },
    )


def _nies_gas(f: h5py.File, path: Path, gas: str) -> dict[str, tuple[np.ndarray, dict]]:
    """``gas``, its uncertainty and raw value from ``/Data/mixingRatio`` (target units)."""
    base = f"Data/mixingRatio/{gas.upper()}"
    corrected = f"{base}BiasCorrected"
    target = GAS_UNITS[gas]

    def read(name: str) -> np.ndarray:
        factor = _unit_factor(path, f"/{name}", _nies_unit(_h5_dataset(f, path, name)), target)
        return _decode_fill(_h5_read(f, path, name), NIES_FILL) * factor

    raw = read(base)
    out: dict[str, tuple[np.ndarray, dict]] = {}
    if corrected in f:
        out[gas] = (read(corrected), _gas_attrs(gas, f"/{corrected}", bias_corrected=1))
        out[f"{gas}_raw"] = (raw, _gas_attrs(gas, f"/{base}", bias_corrected=0))
        if f"{corrected}Error" in f:
            out[f"{gas}_uncertainty"] = (
                read(f"{corrected}Error"),
                _gas_attrs(gas, f"/{corrected}Error", long_name=f"1-sigma error of {gas}"),
            )
    else:
        out[gas] = (raw, _gas_attrs(gas, f"/{base}", bias_corrected=0))
    return out


def _sniff_nies(path: Path) -> bool:
    """HDF5 with ``/Data/geolocation`` and ``/scanAttribute`` groups; ReaderError saying what
    is missing otherwise."""
    path = Path(path)
    require(path, "hdf5", "HDF5", "GOSAT NIES L2 files are HDF5")
    with _open_h5(path) as f:
        if not isinstance(f.get("Data"), h5py.Group):
            raise ReaderError(
                f"{path}: has no /Data group (GOSAT NIES L2 files hold /Data/mixingRatio/..., "
                "/Data/geolocation/... and /scanAttribute/...)"
            )
        for group in ("Data/geolocation", "scanAttribute"):
            if not isinstance(f.get(group), h5py.Group):
                raise ReaderError(
                    f"{path}: has no /{group} group (GOSAT NIES L2 files hold /{group}/...)"
                )
    return True


# --------------------------------------------------------------------------------------------
# ACOS Lite NetCDF4
# --------------------------------------------------------------------------------------------


def _nc_values(path: Path, var: netCDF4.Variable, fill: float) -> np.ndarray:
    """float64 values with _FillValue / missing_value / ``fill`` as NaN."""
    try:
        data = var[...]
    except (OSError, RuntimeError, IndexError, ValueError) as exc:
        raise ReaderError(f"{path}: cannot read {var.name!r} ({exc})") from exc
    out = np.ma.filled(np.ma.asarray(data).astype("float64"), np.nan)
    out[out == fill] = np.nan
    return out


def _acos_times(path: Path, var: netCDF4.Variable) -> np.ndarray:
    """``datetime64[ns]`` UTC from ``time`` (``<unit> since <date>``; default seconds since
    1970-01-01). ReaderError on fill or non-finite values or unknown units."""
    seconds = _nc_values(path, var, ACOS_FILL)
    units = str(getattr(var, "units", "seconds since 1970-01-01 00:00:00"))
    m = _TIME_UNITS_RE.fullmatch(units)
    try:
        epoch = pd.Timestamp(m[2].strip()) if m else None
    except ValueError:
        epoch = None
    if epoch is None:
        raise ReaderError(f"{path}: time has units {units!r}; expected '<unit> since <date>'")
    if epoch.tzinfo is not None:
        epoch = epoch.tz_convert("UTC").tz_localize(None)
    if not np.isfinite(seconds).all():
        i = int(np.flatnonzero(~np.isfinite(seconds))[0])
        raise ReaderError(
            f"{path}: time is missing (fill) at sounding {i} "
            f"({int((~np.isfinite(seconds)).sum())} of {seconds.size})"
        )
    scale = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}[m[1].lower()]
    offset = np.round(seconds * scale * 1000).astype("int64").astype("timedelta64[ms]")
    return (np.datetime64(epoch.to_datetime64(), "ms") + offset).astype("datetime64[ns]")


def _open_nc(path: Path) -> netCDF4.Dataset:
    if not path.is_file():
        raise ReaderError(f"{path}: no such file")
    try:
        return netCDF4.Dataset(path, "r")
    except OSError as exc:
        raise ReaderError(f"{path}: not a readable NetCDF file ({exc})") from exc


def _nc_variable(nc: netCDF4.Dataset, path: Path, name: str) -> netCDF4.Variable:
    if name not in nc.variables:
        raise ReaderError(
            f"{path}: no variable {name!r} (not an ACOS GOSAT Lite XCO2 file?); root has "
            f"{', '.join(sorted(nc.variables)) or 'no variables'}"
        )
    return nc.variables[name]


def open_gosat_acos(path: str | Path, gas: str | None = None) -> xr.Dataset:
    """Read one NASA ACOS GOSAT Lite NetCDF4 file as a point table.

    Parameters
    ----------
    path:
        An ``acos_LtCO2_YYMMDD_..._B*.nc4`` file (any name works when the content has the
        layout).
    gas:
        ``"xco2"`` or None; ``"xch4"`` raises ReaderError (ACOS Lite carries XCO2 only).

    Returns
    -------
    xarray.Dataset
        Dimension ``obs``; see the module docstring. ``xco2`` and ``xco2_uncertainty`` in
        ppm (Lite ``xco2`` is bias-corrected; ``Retrieval/xco2_raw`` becomes ``xco2_raw``),
        ``quality_flag`` from ``xco2_quality_flag`` (0 = good), ``sounding_id`` int64, plus
        ``solar_zenith_angle``, ``sensor_zenith_angle`` (degrees) and ``xco2_apriori`` (ppm)
        when present. -999999 -> NaN.

    Raises
    ------
    ReaderError
        Not NetCDF/HDF5, truncated, a required variable missing (``xco2``, ``latitude``,
        ``longitude``, ``time``, ``xco2_quality_flag``), times missing or in unknown units,
        unknown xco2 units, or ``gas`` other than xco2.
    """
    path = Path(path)
    if gas is not None and gas not in GAS_UNITS:
        raise ReaderError(f"{path}: unknown gas {gas!r}; expected one of {', '.join(GAS_UNITS)}")
    info = parse_acos_name(path)
    nc = _open_nc(path)
    try:
        _check_gas(path, ["xco2"] if "xco2" in nc.variables else [], gas)
        for name in _ACOS_REQUIRED:
            _nc_variable(nc, path, name)
        v = nc.variables
        factor = _unit_factor(path, "xco2", getattr(v["xco2"], "units", None), "ppm")
        gases: dict[str, tuple[np.ndarray, dict]] = {
            "xco2": (
                _nc_values(path, v["xco2"], ACOS_FILL) * factor,
                _gas_attrs("xco2", "xco2", bias_corrected=1),
            )
        }
        if "xco2_uncertainty" in v:
            unc = v["xco2_uncertainty"]
            gases["xco2_uncertainty"] = (
                _nc_values(path, unc, ACOS_FILL)
                * _unit_factor(path, "xco2_uncertainty", getattr(unc, "units", None), "ppm"),
                _gas_attrs("xco2", "xco2_uncertainty", long_name="1-sigma uncertainty of xco2"),
            )
        retrieval = nc.groups.get("Retrieval")
        if retrieval is not None and "xco2_raw" in retrieval.variables:
            raw = retrieval.variables["xco2_raw"]
            gases["xco2_raw"] = (
                _nc_values(path, raw, ACOS_FILL)
                * _unit_factor(path, "Retrieval/xco2_raw", getattr(raw, "units", None), "ppm"),
                _gas_attrs("xco2", "Retrieval/xco2_raw", bias_corrected=0),
            )
        lat = _nc_values(path, v["latitude"], ACOS_FILL)
        lon = _nc_values(path, v["longitude"], ACOS_FILL)
        time = _acos_times(path, v["time"])
        flag = _flag(_nc_values(path, v["xco2_quality_flag"], ACOS_FILL), ACOS_FILL)
        if "sounding_id" in v:
            sounding_id = np.ma.filled(np.ma.asarray(v["sounding_id"][...]), -1).astype("int64")
        else:
            sounding_id = np.arange(lat.size, dtype="int64")
        aux = {
            name: _nc_values(path, v[name], ACOS_FILL)
            for name in _ACOS_AUX
            if name in v and v[name].dimensions == ("sounding_id",)
        }
        build = info["build"] if info else str(getattr(nc, "BuildId", "unknown"))
    except (OSError, RuntimeError) as exc:  # HDF5/netCDF errors deep in a damaged file
        raise ReaderError(f"{path}: damaged NetCDF file ({exc})") from exc
    finally:
        nc.close()
    ds = _point_table(
        path,
        lat=lat,
        lon=lon,
        time=time,
        sounding_id=sounding_id,
        gases=gases,
        flag=flag,
        flag_attrs={
            "long_name": "ACOS xco2 quality flag",
            "source_variable": "xco2_quality_flag",
            "comment": "0 = good; 1 = bad; -1 = flag missing in the file",
        },
        attrs={
            "reader": "gosat_acos",
            "product": "ACOS_L2_Lite_FP",
            "retrieval_version": build,
            "platform": "GOSAT",
            "sensor": "TANSO-FTS",
            "processing_level": "L2",
            "missing_value_in_source": ACOS_FILL,
            "format_reference": ACOS_SPEC_URL,
        },
    )
    for name, values in aux.items():
        if values.shape == (ds.sizes["obs"],):
            ds[name] = ("obs", values, {"units": _ACOS_AUX[name], "source_variable": name})
    return ds


def _sniff_acos(path: Path) -> bool:
    """NetCDF4/HDF5 with root variables ``sounding_id`` and ``xco2`` or ``xco2_quality_flag``;
    ReaderError saying what is missing otherwise."""
    path = Path(path)
    require(path, "hdf5", "NetCDF-4/HDF5", "ACOS Lite files are NetCDF-4")
    with _open_h5(path) as f:
        missing = [v for v in ("sounding_id", "xco2") if v not in f]
        if "xco2" in missing and "xco2_quality_flag" in f:
            missing.remove("xco2")
        if missing:
            raise ReaderError(
                f"{path}: has no root variable {' or '.join(missing)} (ACOS Lite files hold "
                "sounding_id, xco2, xco2_quality_flag, latitude, longitude, time)"
            )
    return True


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def _summary(path: Path, ds: xr.Dataset) -> FileSummary:
    """Reader, gas variables, bbox of the located soundings and their time span."""
    lat, lon = ds["lat"].values, ds["lon"].values
    located = np.isfinite(lat) & np.isfinite(lon)
    bbox = None
    if located.any():
        bbox = [
            round(float(v), 6)
            for v in (
                lon[located].min(),
                lat[located].min(),
                lon[located].max(),
                lat[located].max(),
            )
        ]
    gases = [str(v) for v in ds.data_vars if str(v) in GAS_UNITS]
    counts = {g: int((np.isfinite(ds[g].values) & located).sum()) for g in gases}
    warnings = []
    if not ds.sizes["obs"]:
        warnings.append("no valid data: the file holds no sounding")
    elif not any(counts.values()):
        warnings.append(f"no valid data: every {', '.join(gases) or 'gas'} value is missing")
    times = ds["time"].values
    span = None
    if times.size:
        span = [f"{np.datetime_as_string(t, unit='ms')}Z" for t in (times.min(), times.max())]
    return FileSummary(
        path=str(path),
        reader=ds.attrs["reader"],
        variables=[str(v) for v in ds.data_vars],
        bbox=bbox,
        time=span,
        details={
            "product": ds.attrs["product"],
            "retrieval_version": ds.attrs["retrieval_version"],
            "n_soundings": int(ds.sizes["obs"]),
            "n_quality_pass": int(ds["quality_pass"].sum()),
            "valid_values": counts,
        }
        | ({"warnings": warnings} if warnings else {}),
    )


# --------------------------------------------------------------------------------------------
# Sources: soundings as point tables
# --------------------------------------------------------------------------------------------


def _granule_from_name(path: str | Path, meta: dict | None, gases: frozenset[str]) -> Granule:
    """A day of soundings: the date from the file name (headers are not needed to place the
    file in time); the bbox is the globe, soundings are placed when read."""
    if meta is None:
        raise ReaderError(f"{path}: file name carries no observation date")
    return Granule(
        str(path), meta["date"], (-180.0, -90.0, 180.0, 90.0), None, (str(path),), layers=gases
    )


def _nies_granule(path: str | Path) -> Granule:
    meta = parse_nies_name(path)
    return _granule_from_name(path, meta, frozenset({meta["gas"]}) if meta else frozenset())


def _acos_granule(path: str | Path) -> Granule:
    return _granule_from_name(path, parse_acos_name(path), frozenset({"xco2"}))


NIES_SPEC = register(
    ReaderSpec(
        name="gosat_nies",
        patterns=(NIES_NAME_PATTERN, r"GOSATTFTS\w*_02C0[12]S\w*\.h5"),
        sniff=_sniff_nies,
        open=open_gosat_nies,
        summarize=lambda p: _summary(Path(p), open_gosat_nies(p)),
        description="NIES GOSAT TANSO-FTS SWIR L2 HDF5 (02C01S XCO2, 02C02S XCH4), -9999 = missing",
        capabilities=frozenset({"xco2", "xch4"}),
        granule_info=_nies_granule,
        quality="quality flag of the retrieval (quality_pass)",
    )
)
ACOS_SPEC = register(
    ReaderSpec(
        name="gosat_acos",
        patterns=(ACOS_NAME_PATTERN, r"acos_LtCO2_\d{6}_\w*\.nc4?"),
        sniff=_sniff_acos,
        open=open_gosat_acos,
        summarize=lambda p: _summary(Path(p), open_gosat_acos(p)),
        description="NASA ACOS GOSAT Lite NetCDF4 (acos_LtCO2_*.nc4) XCO2, -999999 = missing",
        capabilities=frozenset({"xco2"}),
        granule_info=_acos_granule,
        quality="xco2_quality_flag (quality_pass)",
    )
)
