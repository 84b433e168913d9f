"""FLUXNET2015 / ONEFlux FULLSET and SUBSET eddy-covariance CSV reader.

Format specification:
https://fluxnet.org/data/fluxnet2015-dataset/fullset-data-product/ and Pastorello et al. (2020),
"The FLUXNET2015 dataset and the ONEFlux processing pipeline for eddy covariance data",
Sci Data 7:225, https://doi.org/10.1038/s41597-020-0534-3.

File names handled (matched on the base name)::

    FLX_{SITE}_FLUXNET2015_{FULLSET|SUBSET|ERAI}_{RES}_{Y1}-{Y2}_{ver}-{codever}.csv
    AMF_{SITE}_FLUXNET_{FULLSET|SUBSET}_{RES}_{Y1}-{Y2}_{ver}-{codever}.csv
    JPF_{SITE}_FLUXNET_{FLUXMET|...}_{RES}_{Y1}-{Y2}_v{x.y}_r{n}.csv

with ``RES`` one of HH (half-hourly), HR (hourly), DD, WW, MM, YY. Content layout:

* one header line, comma separated, then one row per time step;
* HH/HR and WW: ``TIMESTAMP_START`` and ``TIMESTAMP_END`` (``YYYYMMDDHHMM``, local standard
  time without daylight saving; ``YYYYMMDD`` for WW); DD: ``TIMESTAMP`` ``YYYYMMDD``;
  MM: ``TIMESTAMP`` ``YYYYMM``; YY: ``TIMESTAMP`` ``YYYY``;
* missing values are ``-9999``;
* carbon fluxes (NEE/GPP/RECO) are umolCO2 m-2 s-1 in HH/HR files, gC m-2 d-1 in DD/WW/MM files
  (WW and MM are means of daily values) and gC m-2 y-1 in YY files;
* ``*_QC`` columns are flags 0 (measured), 1 (good gap fill), 2 (medium), 3 (poor) in HH/HR files
  and, in aggregated files, the fraction (0-1) of measured or good-quality gap-filled half-hours.

Importing this module registers the ``fluxnet`` reader with :mod:`fluxscape.readers.registry`.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.errors import ReaderError
from fluxscape.readers.magic import require
from fluxscape.readers.registry import FileSummary, ReaderSpec, register
from fluxscape.sitelist import read_site_list

log = logging.getLogger(__name__)

__all__ = [
    "FLUXNET_NAME_PATTERN",
    "RESOLUTIONS",
    "find_site_list",
    "good_quality",
    "parse_fluxnet_name",
    "read_fluxnet",
    "read_site_list",
]

SPEC_URL = "https://fluxnet.org/data/fluxnet2015-dataset/fullset-data-product/"
SPEC_REFERENCE = "Pastorello et al. 2020, Sci Data 7:225, doi:10.1038/s41597-020-0534-3"

#: Temporal resolutions of ONEFlux output files.
RESOLUTIONS: tuple[str, ...] = ("HH", "HR", "DD", "WW", "MM", "YY")
_AGGREGATED = ("DD", "WW", "MM", "YY")

#: Regular expression (full match on the base name) for ONEFlux-style file names.
FLUXNET_NAME_PATTERN = (
    r"(?P<prefix>[A-Z]{2,5})_(?P<site>[A-Za-z0-9]{2}-[A-Za-z0-9]{3})"
    r"_FLUXNET(?P<release>\d{4})?_(?P<product>[A-Z0-9]+)"
    r"_(?P<res>HH|HR|DD|WW|MM|YY)_(?P<y1>\d{4})-(?P<y2>\d{4})"
    r"_(?P<version>[A-Za-z0-9.\-]+(?:_[A-Za-z0-9.\-]+)*)\.(?:csv|CSV)"
)
_NAME_RE = re.compile(FLUXNET_NAME_PATTERN)
_SITE_RE = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2}-[A-Za-z0-9]{3})(?![A-Za-z0-9])")

_MISSING = -9999.0
_TS_COLUMNS = ("TIMESTAMP", "TIMESTAMP_START", "TIMESTAMP_END")
# Column holding the time coordinate, and the strptime format, per resolution.
_TIME_FORMAT: dict[str, tuple[str, str]] = {
    "HH": ("TIMESTAMP_START", "%Y%m%d%H%M"),
    "HR": ("TIMESTAMP_START", "%Y%m%d%H%M"),
    "DD": ("TIMESTAMP", "%Y%m%d"),
    "WW": ("TIMESTAMP_START", "%Y%m%d"),
    "MM": ("TIMESTAMP", "%Y%m"),
    "YY": ("TIMESTAMP", "%Y"),
}
_HEADER_BYTES = 1 << 16
_SITE_LIST_NAME = "SitesList.csv"


# --------------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------------


def parse_fluxnet_name(path: str | Path) -> dict | None:
    """Site, product, resolution and years from a ONEFlux-style file name.

    Returns a dict with keys ``prefix`` (FLX/AMF/JPF...), ``site_id`` (e.g. "BE-Lcr"),
    ``release`` ("2015" for FLUXNET2015, else None), ``product`` (FULLSET, SUBSET, FLUXMET,
    ERAI...), ``resolution`` (HH, HR, DD, WW, MM or YY), ``first_year`` and ``last_year`` (int)
    and ``version`` (e.g. "1-4", "beta-3", "v1.3_r1"); None when the name does not fit.
    """
    m = _NAME_RE.fullmatch(Path(path).name)
    if m is None:
        return None
    return {
        "prefix": m["prefix"],
        "site_id": m["site"],
        "release": m["release"],
        "product": m["product"],
        "resolution": m["res"],
        "first_year": int(m["y1"]),
        "last_year": int(m["y2"]),
        "version": m["version"],
    }


# --------------------------------------------------------------------------------------------
# Header and content checks
# --------------------------------------------------------------------------------------------


def _read_header(path: Path) -> list[str]:
    """Column names from the first line (BOM and quotes stripped); ReaderError if unreadable."""
    try:
        with open(path, "rb") as fh:
            raw = fh.readline(_HEADER_BYTES)
    except OSError as exc:
        raise ReaderError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    if not raw.strip():
        raise ReaderError(f"{path}: empty file (no header line), not a FLUXNET CSV")
    if b"\x00" in raw:
        raise ReaderError(f"{path}: binary content, not a FLUXNET CSV text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReaderError(f"{path}: header is not UTF-8 text, not a FLUXNET CSV") from exc
    return [c.strip().strip('"').strip() for c in text.rstrip("\r\n").split(",")]


def _sniff(path: Path) -> bool:
    """True when the file is text whose first line is a CSV header with a TIMESTAMP or
    TIMESTAMP_START column; ReaderError saying what the file is otherwise."""
    path = Path(path)
    require(path, "text", "a CSV text file", "FLUXNET files are comma-separated text")
    header = _read_header(path)
    if "TIMESTAMP" not in header and "TIMESTAMP_START" not in header:
        shown = ", ".join(header[:5]) + (", ..." if len(header) > 5 else "")
        raise ReaderError(
            f"{path}: not a FLUXNET CSV: missing columns [TIMESTAMP or TIMESTAMP_START] "
            f"(the first line has {len(header)} field(s): {shown[:200]})"
        )
    return True


def _last_line(path: Path) -> str:
    """The last non-empty line of the file (reads at most the final 256 KiB)."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - (1 << 18)))
        tail = fh.read()
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    return lines[-1].decode("utf-8", errors="replace") if lines else ""


def _resolution_from_content(path: Path, header: list[str]) -> str:
    """HH/HR/WW (TIMESTAMP_START) or DD/MM/YY (TIMESTAMP) from the timestamp length."""
    col = "TIMESTAMP_START" if "TIMESTAMP_START" in header else "TIMESTAMP"
    try:
        first = pd.read_csv(
            path, usecols=[col], dtype=str, nrows=3, encoding="utf-8-sig", encoding_errors="replace"
        )[col]
    except Exception as exc:  # pandas raises many types on garbage
        raise ReaderError(f"{path}: cannot read {col} column ({exc})") from exc
    values = [str(v).strip() for v in first.dropna()]
    if not values:
        raise ReaderError(f"{path}: no data rows below the header")
    n = len(values[0])
    if col == "TIMESTAMP_START":
        if n == 12:
            if len(values) >= 2:
                try:
                    t0, t1 = (pd.to_datetime(v, format="%Y%m%d%H%M") for v in values[:2])
                except ValueError as exc:
                    raise ReaderError(f"{path}: unparseable {col} {values[0]!r}") from exc
                if t1 - t0 == pd.Timedelta(hours=1):
                    return "HR"
            return "HH"
        if n == 8:
            return "WW"
    else:
        by_length = {8: "DD", 6: "MM", 4: "YY"}
        if n in by_length:
            return by_length[n]
    raise ReaderError(
        f"{path}: cannot tell the time resolution from {col} value {values[0]!r} "
        "(expected YYYYMMDDHHMM, YYYYMMDD, YYYYMM or YYYY)"
    )


def _parse_times(path: Path, raw: pd.Series, column: str, fmt: str, resolution: str) -> np.ndarray:
    """datetime64[ns] values from a timestamp column with an explicit format."""
    text = raw.astype("string").str.strip()
    times = pd.to_datetime(text, format=fmt, errors="coerce")
    bad = times.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = text.iloc[row]
        raise ReaderError(
            f"{path}: unparseable {column} value {value!r} in data row {row + 1} "
            f"(expected {fmt} for {resolution} files)"
        )
    return times.to_numpy(dtype="datetime64[ns]")


# --------------------------------------------------------------------------------------------
# Units and attributes
# --------------------------------------------------------------------------------------------

_CARBON_UNITS = {
    "HH": "umolCO2 m-2 s-1",
    "HR": "umolCO2 m-2 s-1",
    "DD": "gC m-2 d-1",
    "WW": "gC m-2 d-1",
    "MM": "gC m-2 d-1",
    "YY": "gC m-2 y-1",
}
_PRECIP_UNITS = {
    "HH": "mm",
    "HR": "mm",
    "DD": "mm d-1",
    "WW": "mm d-1",
    "MM": "mm d-1",
    "YY": "mm y-1",
}
_LONG_NAMES = {
    "TA": "air temperature",
    "SW_IN": "incoming shortwave radiation",
    "SW_IN_POT": "potential (top-of-atmosphere) incoming shortwave radiation",
    "LW_IN": "incoming longwave radiation",
    "VPD": "vapour pressure deficit",
    "PA": "atmospheric pressure",
    "P": "precipitation",
    "WS": "wind speed",
    "USTAR": "friction velocity",
    "NETRAD": "net radiation",
    "G": "soil heat flux",
    "LE": "latent heat flux",
    "H": "sensible heat flux",
    "NEE": "net ecosystem exchange of CO2",
    "GPP": "gross primary production",
    "RECO": "ecosystem respiration",
}


def _qc_long_name(resolution: str) -> str:
    if resolution in ("HH", "HR"):
        return (
            "quality flag: 0 = measured, 1 = good-quality gap fill, 2 = medium, 3 = poor "
            "(for consolidated meteorology, 2 = downscaled from reanalysis)"
        )
    return (
        "fraction (0-1) of half-hours in the aggregation period that are measured "
        "or good-quality gap-filled"
    )


def _units_for(name: str, resolution: str) -> str | None:
    """CF-style unit string for a FLUXNET column name, or None when unknown."""
    if name.endswith("_QC"):
        return "1"
    if re.fullmatch(r"(NEE|GPP|RECO)(_.*)?", name) and not name.endswith("_N"):
        return _CARBON_UNITS[resolution]
    if re.fullmatch(r"FCH4(_.*)?", name) and not name.endswith("_N"):
        # FLUXNET-CH4 (Delwiche et al. 2021, ESSD 13:3607) keeps nmolCH4 m-2 s-1 at every
        # resolution (daily values are means of the half-hourly fluxes)
        return "nmolCH4 m-2 s-1"
    rules = (
        (r"(TA|TS)(_.*)?", "degC"),
        (r"(SW_IN|SW_OUT|SW_DIF|LW_IN|LW_OUT|NETRAD)(_.*)?", "W m-2"),
        (r"(LE|H|G)(_.*)?", "W m-2"),
        (r"PPFD(_.*)?", "umol m-2 s-1"),
        (r"VPD(_.*)?", "hPa"),
        (r"PA(_.*)?", "kPa"),
        (r"P(_F|_ERA)?(_.*)?", None),  # handled below: resolution-dependent
        (r"(WS|USTAR)(_.*)?", "m s-1"),
        (r"CO2(_.*)?", "umolCO2 mol-1"),
        (r"SWC(_.*)?", "%"),
    )
    for pattern, units in rules:
        if re.fullmatch(pattern, name):
            return units if units is not None else _PRECIP_UNITS[resolution]
    return None


def _long_name_for(name: str) -> str | None:
    base = name
    for suffix in ("_F_MDS", "_F", "_ERA"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    if base in _LONG_NAMES:
        return _LONG_NAMES[base]
    m = re.fullmatch(r"(NEE|GPP|RECO)_(?:(NT|DT)_)?(VUT|CUT)_REF", name)
    if m:
        text = _LONG_NAMES[m[1]]
        if m[2]:
            text += " (night-time partitioning)" if m[2] == "NT" else " (daytime partitioning)"
        method = "variable" if m[3] == "VUT" else "constant"
        return f"{text}, {method} u* threshold, reference"
    return None


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _to_column(values: pd.Series) -> np.ndarray:
    """float64 with -9999 as NaN when the column is numeric, else an array of str."""
    if pd.api.types.is_numeric_dtype(values):
        arr = values.to_numpy(dtype="float64", na_value=np.nan, copy=True)
    else:
        as_num = pd.to_numeric(values, errors="coerce")
        if int(as_num.notna().sum()) == int(values.notna().sum()):
            arr = as_num.to_numpy(dtype="float64", na_value=np.nan, copy=True)
        else:  # genuinely textual: keep as strings, missing as ""
            return values.astype("string").fillna("").to_numpy(dtype=str)
    arr[arr == _MISSING] = np.nan
    return arr


def _site_from_name(path: Path, info: dict | None) -> str:
    if info is not None:
        return info["site_id"]
    m = _SITE_RE.search(path.name)
    return m.group(1) if m else "unknown"


def read_fluxnet(path: str | Path, columns: list[str] | None = None) -> xr.Dataset:
    """Read one FLUXNET2015/ONEFlux CSV into an xarray Dataset with dims ``("time",)``.

    Parameters
    ----------
    path:
        A ``FLX_/AMF_/JPF_..._{HH|HR|DD|WW|MM|YY}_...csv`` file (any name works when the header
        has TIMESTAMP or TIMESTAMP_START; the resolution is then taken from the timestamps).
    columns:
        Data columns to read (timestamp columns are always read); None reads all of them.
        A requested column that is not in the file raises ReaderError naming file and column.

    Returns
    -------
    xarray.Dataset
        One float64 variable per numeric column (``-9999`` -> NaN; textual columns are kept as
        strings), coordinate ``time`` (datetime64[ns], local standard time: TIMESTAMP_START for
        HH/HR/WW, the day for DD, the first day of the month for MM, 1 January for YY), a
        ``time_end`` coordinate for HH/HR/WW (from TIMESTAMP_END), scalar coordinate ``site``.
        Attributes: ``site_id``, ``resolution``, ``source_file``, ``product``; variables carry
        ``units`` (carbon fluxes umolCO2 m-2 s-1 for HH/HR, gC m-2 d-1 for DD/WW/MM,
        gC m-2 y-1 for YY; TA degC; radiation and LE/H/G W m-2; VPD hPa; PA kPa; P mm per
        step for HH/HR, mm d-1 for DD/WW/MM, mm y-1 for YY; QC "1") and, where known,
        ``long_name`` (QC semantics per resolution).

    Raises
    ------
    ReaderError
        Not a FLUXNET CSV (no TIMESTAMP column, empty, binary, truncated or unparseable
        timestamps), or a requested column is missing. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ReaderError(f"{path}: no such file")
    header = _read_header(path)
    if "TIMESTAMP" not in header and "TIMESTAMP_START" not in header:
        raise ReaderError(
            f"{path}: no TIMESTAMP or TIMESTAMP_START column in the header, not a FLUXNET CSV"
        )
    if len(set(header)) != len(header):
        dupes = sorted({c for c in header if header.count(c) > 1})
        raise ReaderError(f"{path}: duplicate column names in header: {', '.join(dupes)}")

    info = parse_fluxnet_name(path)
    if info is not None:
        resolution = info["resolution"]
        needed = _TIME_FORMAT[resolution][0]
        if needed not in header:
            raise ReaderError(
                f"{path}: file name says {resolution} but the header has no {needed} column"
            )
    else:
        resolution = _resolution_from_content(path, header)
    time_col, fmt = _TIME_FORMAT[resolution]

    ts_cols = [c for c in _TS_COLUMNS if c in header]
    if columns is None:
        data_cols = [c for c in header if c not in _TS_COLUMNS and c != ""]
    else:
        missing = [c for c in columns if c not in header]
        if missing:
            raise ReaderError(
                f"{path}: requested column(s) not in file: {', '.join(missing)} "
                f"({len(header)} columns present)"
            )
        data_cols = [c for c in dict.fromkeys(columns) if c not in _TS_COLUMNS]

    last = _last_line(path)
    if last.count(",") != len(header) - 1:
        raise ReaderError(
            f"{path}: truncated or malformed: last line has {last.count(',') + 1} fields, "
            f"header has {len(header)}"
        )

    wanted = set(ts_cols) | set(data_cols)
    try:
        df = pd.read_csv(
            path,
            usecols=lambda c: c.strip().strip('"') in wanted,
            dtype={c: str for c in ts_cols},
            na_values=["-9999", "-9999.0", "-9999.00"],
            keep_default_na=True,
            encoding="utf-8-sig",
            encoding_errors="replace",
            skipinitialspace=True,
            low_memory=False,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReaderError(f"{path}: cannot parse as FLUXNET CSV ({msg})") from exc
    df.columns = [c.strip().strip('"') for c in df.columns]
    if len(df) == 0:
        raise ReaderError(f"{path}: header only, no data rows")

    time = _parse_times(path, df[time_col], time_col, fmt, resolution)
    coords: dict = {"time": ("time", time)}
    if resolution in ("HH", "HR", "WW") and "TIMESTAMP_END" in df.columns:
        coords["time_end"] = (
            "time",
            _parse_times(path, df["TIMESTAMP_END"], "TIMESTAMP_END", fmt, resolution),
        )
    site = _site_from_name(path, info)
    coords["site"] = site

    data_vars = {}
    qc_long = _qc_long_name(resolution)
    for name in data_cols:
        attrs: dict = {}
        units = _units_for(name, resolution)
        if units is not None:
            attrs["units"] = units
        if name.endswith("_QC"):
            attrs["long_name"] = qc_long
        else:
            long_name = _long_name_for(name)
            if long_name:
                attrs["long_name"] = long_name
        data_vars[name] = xr.Variable(("time",), _to_column(df[name]), attrs)

    ds = xr.Dataset(data_vars, coords=coords)
    ds["time"].attrs.update(
        {
            "long_name": "start of averaging period"
            if resolution in ("HH", "HR", "WW")
            else "period (day, first day of month or 1 January)",
            "time_zone": "local standard time (no daylight saving)",
        }
    )
    if "time_end" in ds.coords:
        ds["time_end"].attrs.update({"long_name": "end of averaging period"})
    ds["site"].attrs["long_name"] = "FLUXNET site id"
    ds.attrs.update(
        {
            "site_id": site,
            "resolution": resolution,
            "source_file": str(path),
            "product": info["product"] if info else "unknown",
            "missing_value_in_source": int(_MISSING),
            "format_reference": f"{SPEC_URL}; {SPEC_REFERENCE}",
        }
    )
    return ds


# --------------------------------------------------------------------------------------------
# Quality selection
# --------------------------------------------------------------------------------------------

_CARBON_RE = re.compile(
    r"(?P<flux>NEE|GPP|RECO)_(?:(?P<part>NT|DT|SR)_)?(?P<ut>VUT|CUT)_(?P<rest>[A-Z0-9_]+)"
)


def _qc_candidates(variable: str) -> list[str]:
    """QC column names to try for ``variable``, best first."""
    out = [f"{variable}_QC"]
    m = _CARBON_RE.fullmatch(variable)
    if m:
        rest = m["rest"]
        nee = f"NEE_{m['ut']}_{rest}"
        out.append(f"{nee}_QC")
        parts = rest.split("_")
        for i in range(len(parts) - 1, 0, -1):
            out.append(f"NEE_{m['ut']}_{'_'.join(parts[:i])}_QC")
        out.append(f"NEE_{m['ut']}_REF_QC")
    elif re.fullmatch(r"(LE|H)_CORR(_.*)?", variable):
        out.append(f"{variable.split('_')[0]}_F_MDS_QC")
    parts = variable.split("_")
    for i in range(len(parts) - 1, 0, -1):
        out.append(f"{'_'.join(parts[:i])}_QC")
    return list(dict.fromkeys(out))


def good_quality(ds: xr.Dataset, variable: str, min_qc: float = 0.8) -> xr.DataArray:
    """Boolean mask (dims ``("time",)``) of good-quality, finite values of ``variable``.

    Aggregated files (DD/WW/MM/YY): the QC partner is the fraction (0-1) of measured or
    good-quality gap-filled half-hours; good means QC >= ``min_qc`` and the value finite.
    Half-hourly/hourly files (HH/HR): good means QC flag <= 1 (measured or good gap fill) and
    the value finite; ``min_qc`` is not used.

    The partner is ``<variable>_QC``; for partitioned carbon fluxes without their own QC
    (e.g. GPP_NT_VUT_REF, RECO_DT_VUT_REF) it is the NEE QC of the same u* method and version
    (``NEE_VUT_REF_QC``); otherwise trailing name parts are dropped (e.g. TA_F_MDS_NIGHT_SD ->
    TA_F_MDS_NIGHT_QC). Raises ReaderError when the variable or every candidate QC is absent.
    """
    source = ds.attrs.get("source_file", "<dataset>")
    if variable not in ds.data_vars:
        raise ReaderError(f"{source}: variable {variable!r} not in dataset")
    resolution = ds.attrs.get("resolution")
    if resolution not in RESOLUTIONS:
        raise ReaderError(f"{source}: dataset has no valid 'resolution' attribute ({resolution!r})")
    candidates = _qc_candidates(variable)
    qc_name = next((c for c in candidates if c in ds.data_vars and c != variable), None)
    if qc_name is None:
        raise ReaderError(
            f"{source}: no QC column for {variable!r}; tried {', '.join(candidates)} "
            "(read them too when using columns=...)"
        )
    if not np.issubdtype(ds[variable].dtype, np.number):
        raise ReaderError(f"{source}: variable {variable!r} is not numeric")
    qc = ds[qc_name]
    value_ok = np.isfinite(ds[variable])
    if resolution in _AGGREGATED:
        mask = (qc >= min_qc) & value_ok
        rule = f"{qc_name} >= {min_qc} and value finite"
    else:
        mask = (qc <= 1) & value_ok
        rule = f"{qc_name} <= 1 (measured or good gap fill) and value finite"
    mask = mask.fillna(False).astype(bool)
    mask.name = f"{variable}_good"
    mask.attrs = {"long_name": f"good-quality mask for {variable}", "rule": rule}
    return mask


# --------------------------------------------------------------------------------------------
# Site list (parsed by fluxscape.sitelist)
# --------------------------------------------------------------------------------------------


def find_site_list(path: str | Path) -> Path | None:
    """``SitesList.csv`` in the folder of ``path`` or up to two parent folders, else None."""
    folder = Path(path).resolve().parent
    for _ in range(3):
        candidate = folder / _SITE_LIST_NAME
        if candidate.is_file():
            return candidate
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


@functools.lru_cache(maxsize=16)
def _cached_site_list(path: str, mtime_ns: int) -> pd.DataFrame:
    return read_site_list(path)


def _site_record(path: Path, site: str) -> dict | None:
    site_list = find_site_list(path)
    if site_list is None:
        return None
    try:
        sites = _cached_site_list(str(site_list), site_list.stat().st_mtime_ns)
    except ReaderError:
        return None
    rows = sites[sites["site_id"] == site]
    if rows.empty:
        return None
    return rows.iloc[0].to_dict()


# --------------------------------------------------------------------------------------------
# Registry hooks
# --------------------------------------------------------------------------------------------


def _iso(t: np.datetime64, resolution: str) -> str:
    ts = pd.Timestamp(t)
    return ts.strftime("%Y-%m-%d") if resolution in _AGGREGATED else ts.isoformat()


#: Carbon-flux columns the flux product trains on (:mod:`fluxscape.ml.targets`): NEE with the
#: night-time (NT) or the daytime (DT) partitioning of GPP and RECO.
FLUX_TARGET_COLUMNS: dict[str, tuple[str, ...]] = {
    "NT": ("NEE_VUT_REF", "GPP_NT_VUT_REF", "RECO_NT_VUT_REF"),
    "DT": ("NEE_VUT_REF", "GPP_DT_VUT_REF", "RECO_DT_VUT_REF"),
}
#: Flux columns whose valid values ``inspect`` counts (FCH4 from FLUXNET-CH4 files).
FLUX_COLUMNS: tuple[str, ...] = (
    "NEE_VUT_REF",
    "GPP_NT_VUT_REF",
    "RECO_NT_VUT_REF",
    "GPP_DT_VUT_REF",
    "RECO_DT_VUT_REF",
    "FCH4_F_ANNOPTLM",
)
#: Products that carry the carbon fluxes (ERAI, FLUXMET and other files do not).
_FLUX_PRODUCTS = ("FULLSET", "SUBSET")


def missing_flux_columns(header: list[str]) -> list[str]:
    """The flux-target columns (:data:`FLUX_TARGET_COLUMNS`) a header lacks: [] when NEE and
    one complete partitioning (NT or DT) are there, else every missing one of both sets."""
    missing = {k: [c for c in cols if c not in header] for k, cols in FLUX_TARGET_COLUMNS.items()}
    if not all(missing.values()):
        return []
    return list(dict.fromkeys(missing["NT"] + missing["DT"]))


def _summarize(path: Path) -> FileSummary:
    """Variables, site point bbox (from SitesList.csv) and time span of a FLUXNET CSV.

    ``details["valid_values"]`` counts the non-missing values of each flux column present
    (:data:`FLUX_COLUMNS`; of every numeric data column when there is none) and
    ``details["warnings"]`` says when one of them has no valid value. A FULLSET or SUBSET
    file without NEE and a GPP/RECO partitioning is a ReaderError naming the missing columns.
    """
    path = Path(path)
    header = _read_header(path)
    info = parse_fluxnet_name(path)
    if info is not None and info["product"] in _FLUX_PRODUCTS:
        missing = missing_flux_columns(header)
        if missing:
            raise ReaderError(
                f"{path}: {info['product']} file without the flux columns the flux product "
                f"needs: missing columns [{', '.join(missing)}] (it needs NEE_VUT_REF with "
                "GPP_NT_VUT_REF and RECO_NT_VUT_REF, or with GPP_DT_VUT_REF and RECO_DT_VUT_REF)"
            )
    fluxes = [c for c in FLUX_COLUMNS if c in header]
    ds = read_fluxnet(path, columns=fluxes or None)
    site = ds.attrs["site_id"]
    resolution = ds.attrs["resolution"]
    variables = [c for c in header if c not in _TS_COLUMNS and c != ""]
    record = _site_record(path, site)
    bbox = None
    details: dict = {"site": site, "resolution": resolution, "product": ds.attrs["product"]}
    if record is not None and np.isfinite(record["lat"]) and np.isfinite(record["lon"]):
        lon, lat = float(record["lon"]), float(record["lat"])
        bbox = [lon, lat, lon, lat]
        details.update({"site_name": record["name"], "igbp": record["igbp"]})
    times = ds["time"].values
    span = [_iso(times[0], resolution), _iso(times[-1], resolution)]
    details["n_times"] = int(times.size)
    counted = fluxes or [
        str(v)
        for v in ds.data_vars
        if ds[v].dtype.kind == "f" and not str(v).endswith("_QC") and ds[v].ndim == 1
    ]
    counts = {c: int(np.isfinite(ds[c].values).sum()) for c in counted}
    details["valid_values"] = counts
    warnings = []
    if counts and not any(counts.values()):
        warnings.append(
            f"no valid data: {', '.join(counts)} are all {_MISSING:.0f} (missing)"
            if len(counts) <= 8
            else f"no valid data: all {len(counts)} data columns are all {_MISSING:.0f} (missing)"
        )
    else:
        warnings += [
            f"no valid data in {c}: all {_MISSING:.0f} (missing)" for c in fluxes if counts[c] == 0
        ]
    if warnings:
        details["warnings"] = warnings
    return FileSummary(
        path=str(path),
        reader="fluxnet",
        variables=variables,
        bbox=bbox,
        time=span,
        details=details,
    )


SPEC = register(
    ReaderSpec(
        name="fluxnet",
        patterns=(FLUXNET_NAME_PATTERN,),
        sniff=_sniff,
        open=read_fluxnet,
        summarize=_summarize,
        capabilities=frozenset({"tower_flux"}),
        description=(
            "FLUXNET2015/ONEFlux FULLSET/SUBSET eddy-covariance CSV (FLX_/AMF_/JPF_ "
            "..._{HH|HR|DD|WW|MM|YY}_...csv), -9999 = missing"
        ),
    )
)
