"""COSORE soil-chamber datasets (continuous soil respiration, CO2 and CH4).

Format: Bond-Lamberty et al. (2020), "COSORE: A community database for continuous soil
respiration and other soil-atmosphere greenhouse gas flux data", Global Change Biology
26:7268, doi:10.1111/gcb.15353; fields as in ``inst/extdata/CSR_COLUMN_UNITS.csv`` of
github.com/bpbond/cosore.

A dataset is a **folder** (``d<YYYYMMDD>_<NAME>``, the name COSORE gives a dataset) holding:

* ``DESCRIPTION.txt``: ``KEY: value`` lines (``#`` comments), COSORE's own layout; or
  ``description.csv``: the release's table (one row, or one per dataset with ``CSR_DATASET``).
  Required: ``CSR_SITE_NAME``, ``CSR_LONGITUDE``, ``CSR_LATITUDE``, ``CSR_ELEVATION``,
  ``CSR_TIMEZONE`` (tz database name), ``CSR_IGBP``, ``CSR_INSTRUMENT``, ``CSR_MSMT_LENGTH`` (s).
* ``PORTS.txt`` (comma separated, ``#`` comments, blanks around fields allowed) or
  ``ports.csv``: ``CSR_PORT`` (0 = all ports), ``CSR_MSMT_VAR`` (``Rs``, ``Rh``, ``Reco``,
  ``NEE``), ``CSR_TREATMENT`` (``None`` = control), optional ``CSR_AREA`` (cm2),
  ``CSR_OPAQUE``, ``CSR_PLANTS_REMOVED``, ``CSR_LONGITUDE``/``CSR_LATITUDE`` per chamber.
* ``data_<dataset>.csv`` (the release's name), ``data.csv`` or ``data/data.csv``: one row per
  chamber measurement: ``CSR_TIMESTAMP_BEGIN``, ``CSR_TIMESTAMP_END`` (``YYYY-MM-DD HH:MM:SS``,
  **local time of the dataset**, ``CSR_TIMEZONE``), ``CSR_PORT``, ``CSR_FLUX_CO2``
  (umol m-2 s-1, positive = to the atmosphere), optional ``CSR_FLUX_CH4`` (nmol m-2 s-1),
  ``CSR_FLUX_SE_*``, ``CSR_R2_*``, ``CSR_Tx`` (soil temperature at x cm, degC), ``CSR_SMx``
  (volumetric soil moisture at x cm, m3 m-3), ``CSR_TAIR``, ``CSR_PRECIP``, ``CSR_ERROR``.
  Empty fields and ``NA`` are missing.

Sign convention. COSORE fluxes are positive to the atmosphere. COSORE has no field saying
otherwise; this reader honours one optional description key, ``CSR_FLUX_SIGN`` (a fluxscape
extension), for tables converted from other networks' layouts: absent or
``positive to atmosphere`` is COSORE's convention; any value saying uptake/to the surface is
positive (``positive to surface``, ``uptake positive``, ``negative to atmosphere``) is an
error, since silently negating a whole dataset hides mistakes.

What goes wrong, and what happens (the one-line errors are :class:`ReaderError` naming the
file and the problem):

=====================================================  ===========================================
problem                                                 result
=====================================================  ===========================================
no description / ports / data table in the folder       error naming the folder and files looked for
missing required column (data, ports) or key (desc.)    error naming the file and the column(s)
unparsable timestamp (any row)                          error naming the file, line, column, value
unknown time zone in ``CSR_TIMEZONE``                   error naming the file and the value
``CSR_FLUX_SIGN`` says positive = uptake                error naming the file and the field
``CSR_FLUX_SIGN`` not understood                        error naming the file and the value
all CO2 and CH4 fluxes NA                               error (``read_cosore``); a warning in
                                                        ``fluxscape inspect``
all CH4 fluxes NA (CO2 valid)                           warning; CH4 dropped
rows whose ``CSR_PORT`` is not in the ports table       warning; those rows dropped
a row without any flux value                            dropped, counted (``dropped_na``)
=====================================================  ===========================================

Quality control (:class:`QCOptions`), per gas (a bad CO2 value leaves the row's CH4 alone):
``CSR_ERROR`` true drops the row; fit R2 below ``min_r2_co2`` (default 0.9) or
``min_r2_ch4`` (default None: CH4 fits of small uptake fluxes have low R2 by nature) drops
that gas's value; values outside the physical limits (CO2 -1 to 50 umol m-2 s-1, CH4 -100 to
5000 nmol m-2 s-1) are dropped; ports whose treatment is not ``None`` (control) are left out
unless ``treatments`` names them (or is ``"all"``). The counts of each are in
:attr:`CosoreDataset.qc`.

Times: ``time_begin``/``time_end`` are UTC (tz-naive ``datetime64``); ``local_time`` is the
measurement's midpoint on the dataset's local clock (``CSR_TIMEZONE``), what daily aggregation
(:mod:`fluxscape.products.soil_chamber`) groups by. Ambiguous local times (the repeated hour
when daylight saving ends) are taken as standard time; nonexistent ones (the skipped hour) are
shifted forward.

Importing this module registers the ``cosore`` reader (a folder reader) with
:mod:`fluxscape.readers.registry`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.errors import ReaderError
from fluxscape.readers.registry import FileSummary, ReaderSpec, register

log = logging.getLogger(__name__)

__all__ = [
    "DESCRIPTION_REQUIRED",
    "DATA_REQUIRED",
    "PORTS_REQUIRED",
    "CosoreDataset",
    "QCOptions",
    "find_tables",
    "open_cosore",
    "read_cosore",
]

SPEC_REFERENCE = "Bond-Lamberty et al. 2020, Glob Change Biol 26:7268, doi:10.1111/gcb.15353"

DESCRIPTION_REQUIRED = (
    "CSR_SITE_NAME",
    "CSR_LONGITUDE",
    "CSR_LATITUDE",
    "CSR_ELEVATION",
    "CSR_TIMEZONE",
    "CSR_IGBP",
    "CSR_INSTRUMENT",
    "CSR_MSMT_LENGTH",
)
PORTS_REQUIRED = ("CSR_PORT", "CSR_MSMT_VAR", "CSR_TREATMENT")
DATA_REQUIRED = ("CSR_TIMESTAMP_BEGIN", "CSR_TIMESTAMP_END", "CSR_PORT", "CSR_FLUX_CO2")
DATASET_NAME_PATTERN = r"d\d{8}_[A-Za-z0-9_\-]+"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
CONTROL = "None"
GASES = ("CO2", "CH4")
#: Units of the flux of each gas in COSORE.
FLUX_UNITS = {"CO2": "umol m-2 s-1", "CH4": "nmol m-2 s-1"}
_NA = ["", "NA", "NaN", "nan", "-9999"]
_SIGN_OK = re.compile(r"^\s*(positive\s*(=|to)?\s*(to\s+)?(the\s+)?atmosphere|emission\s+positive)")
_SIGN_FLIPPED = re.compile(r"(surface|uptake|negative\s*(=|to)?\s*(to\s+)?(the\s+)?atmosphere)")


@dataclass(frozen=True)
class QCOptions:
    """Quality control of chamber fluxes (see the module docstring).

    - ``min_r2_co2``/``min_r2_ch4``: least fit R2 (fraction) kept; None keeps any R2;
    - ``co2_limits`` (umol m-2 s-1) and ``ch4_limits`` (nmol m-2 s-1): physical bounds, inclusive;
    - ``drop_errors``: drop rows with ``CSR_ERROR`` true;
    - ``treatments``: the port treatments kept: ``("None",)`` (default) keeps control ports
      only, ``("None", "Trenching")`` adds trenched ports, ``"all"`` keeps every port.
    """

    min_r2_co2: float | None = 0.9
    min_r2_ch4: float | None = None
    co2_limits: tuple[float, float] = (-1.0, 50.0)
    ch4_limits: tuple[float, float] = (-100.0, 5000.0)
    drop_errors: bool = True
    treatments: tuple[str, ...] | str = (CONTROL,)


@dataclass
class CosoreDataset:
    """One COSORE dataset after QC.

    - ``description``: the description table as ``{key: value}`` (values as text, with
      ``CSR_LONGITUDE``, ``CSR_LATITUDE``, ``CSR_ELEVATION``, ``CSR_MSMT_LENGTH`` as floats);
    - ``ports``: one row per port: ``port`` (int), ``msmt_var``, ``treatment``, ``area_cm2``,
      ``opaque``, ``plants_removed``, ``lon``, ``lat`` (the site's where not given), ``control``;
    - ``data``: one row per kept measurement: ``time_begin``, ``time_end`` (UTC),
      ``local_time`` (midpoint, local clock), ``port``, ``flux_co2`` (umol m-2 s-1),
      ``flux_ch4`` (nmol m-2 s-1, when present), ``se_*``, ``r2_*``, ``t<x>`` (degC at x cm),
      ``sm<x>`` (m3 m-3 at x cm), ``tair``, ``precip`` (mm), those present; NaN = no value
      (dropped by QC or missing);
    - ``qc``: counts: ``rows`` read, ``dropped_na`` (no flux at all), ``dropped_error``,
      ``dropped_r2_co2``, ``dropped_limits_co2`` (and CH4), ``dropped_treatment``,
      ``dropped_unknown_port``, ``kept``;
    - ``warnings``: what was dropped with a warning, one line each.
    """

    name: str
    folder: Path
    description: dict
    ports: pd.DataFrame
    data: pd.DataFrame
    qc: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def timezone(self) -> str:
        return str(self.description["CSR_TIMEZONE"])

    @property
    def gases(self) -> list[str]:
        return [g for g in GASES if f"flux_{g.lower()}" in self.data]

    def to_xarray(self) -> xr.Dataset:
        """The data table as an xarray Dataset with an ``obs`` dimension; ports, site and QC
        counts in attributes and port coordinates (``msmt_var``, ``treatment`` per obs)."""
        data = self.data.reset_index(drop=True)
        ds = xr.Dataset.from_dataframe(data.rename_axis("obs"))
        meta = self.ports.set_index("port")
        ds = ds.assign_coords(
            msmt_var=("obs", meta["msmt_var"].reindex(data["port"]).to_numpy()),
            treatment=("obs", meta["treatment"].reindex(data["port"]).to_numpy()),
        )
        for gas in self.gases:
            var = f"flux_{gas.lower()}"
            ds[var].attrs.update(
                units=FLUX_UNITS[gas],
                long_name=f"soil-surface {gas} flux, positive to the atmosphere",
            )
        for name in ds.data_vars:
            if re.fullmatch(r"t\d+(\.\d+)?|tair", str(name)):
                ds[name].attrs["units"] = "degC"
            elif re.fullmatch(r"sm\d+(\.\d+)?", str(name)):
                ds[name].attrs["units"] = "m3 m-3"
        d = self.description
        ds.attrs.update(
            dataset=self.name,
            site_name=str(d["CSR_SITE_NAME"]),
            longitude=float(d["CSR_LONGITUDE"]),
            latitude=float(d["CSR_LATITUDE"]),
            elevation=float(d["CSR_ELEVATION"]),
            timezone=self.timezone,
            igbp=str(d["CSR_IGBP"]),
            instrument=str(d["CSR_INSTRUMENT"]),
            msmt_length_s=float(d["CSR_MSMT_LENGTH"]),
            time_convention="time_begin/time_end UTC; local_time midpoint on CSR_TIMEZONE clock",
            source=SPEC_REFERENCE,
            **{f"qc_{k}": int(v) for k, v in self.qc.items()},
        )
        return ds


# --- finding the tables ----------------------------------------------------------------------


def find_tables(folder: str | Path) -> dict[str, Path]:
    """The description, ports and data files of a dataset folder: ``{"description": path,
    "ports": path, "data": path}``; ReaderError naming the folder and the files looked for."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReaderError(f"{folder}: not a folder (a COSORE dataset is a folder of tables)")
    candidates = {
        "description": ["DESCRIPTION.txt", "description.csv"],
        "ports": ["PORTS.txt", "ports.csv"],
        "data": [f"data_{folder.name}.csv", "data.csv", "data/data.csv"],
    }
    found, missing = {}, []
    for table, names in candidates.items():
        hit = next((folder / n for n in names if (folder / n).is_file()), None)
        if hit is None:
            missing.append(f"{table} ({' or '.join(names)})")
        else:
            found[table] = hit
    if missing:
        raise ReaderError(f"{folder}: not a COSORE dataset: no {'; no '.join(missing)}")
    return found


def _sniff(path: Path) -> bool:
    """True for a folder with COSORE description, ports and data tables whose data header
    has ``CSR_TIMESTAMP_BEGIN``; ReaderError saying what is missing otherwise."""
    tables = find_tables(path)
    header = _header(tables["data"])
    if "CSR_TIMESTAMP_BEGIN" not in header:
        raise ReaderError(
            f"{tables['data']}: not a COSORE data table (no CSR_TIMESTAMP_BEGIN column in "
            f"the header: {', '.join(header[:5])[:200]})"
        )
    return True


def _header(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            line = fh.readline(1 << 16)
    except OSError as exc:
        raise ReaderError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    return [c.strip().strip('"') for c in line.rstrip("\r\n").split(",")]


# --- the three tables ------------------------------------------------------------------------


def _read_description(path: Path, dataset: str) -> dict:
    if path.suffix.lower() == ".txt":
        desc = {}
        for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
            if not line.strip() or line.lstrip().startswith("#") or ":" not in line:
                continue
            key, value = line.split(":", 1)
            desc[key.strip()] = value.strip()
    else:
        table = _read_csv(path)
        if "CSR_DATASET" in table and len(table) > 1:
            table = table[table["CSR_DATASET"].astype(str) == dataset]
        if len(table) != 1:
            raise ReaderError(
                f"{path}: expected one description row for {dataset}, found {len(table)}"
            )
        desc = {k: ("" if pd.isna(v) else str(v)) for k, v in table.iloc[0].items()}
    missing = [k for k in DESCRIPTION_REQUIRED if not str(desc.get(k, "")).strip()]
    if missing:
        raise ReaderError(f"{path}: missing required description field(s) [{', '.join(missing)}]")
    for key in ("CSR_LONGITUDE", "CSR_LATITUDE", "CSR_ELEVATION", "CSR_MSMT_LENGTH"):
        try:
            desc[key] = float(desc[key])
        except ValueError:
            raise ReaderError(f"{path}: {key} is {desc[key]!r}, not a number") from None
    if not (-180 <= desc["CSR_LONGITUDE"] <= 180 and -90 <= desc["CSR_LATITUDE"] <= 90):
        raise ReaderError(
            f"{path}: CSR_LONGITUDE/CSR_LATITUDE {desc['CSR_LONGITUDE']}, "
            f"{desc['CSR_LATITUDE']} out of range (decimal degrees)"
        )
    try:
        ZoneInfo(str(desc["CSR_TIMEZONE"]))
    except (ZoneInfoNotFoundError, ValueError):
        raise ReaderError(
            f"{path}: CSR_TIMEZONE {desc['CSR_TIMEZONE']!r} is not a tz database name "
            "(e.g. Asia/Tokyo, Etc/GMT+5)"
        ) from None
    sign = str(desc.get("CSR_FLUX_SIGN", "")).strip()
    if sign and _SIGN_FLIPPED.search(sign.lower()):
        raise ReaderError(
            f"{path}: CSR_FLUX_SIGN is {sign!r}: fluxes are not in COSORE's convention "
            "(positive = to the atmosphere); negate the flux columns and drop the field"
        )
    if sign and not _SIGN_OK.match(sign.lower()):
        raise ReaderError(
            f"{path}: CSR_FLUX_SIGN is {sign!r}, not understood (expected 'positive to "
            "atmosphere', COSORE's convention)"
        )
    desc.setdefault("CSR_DATASET", dataset)
    return desc


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(
            path,
            comment="#",
            skipinitialspace=True,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReaderError(f"{path}: not a readable CSV table ({first})") from None
    table.columns = [str(c).strip() for c in table.columns]
    table = table.loc[:, [c for c in table.columns if c and not c.startswith("Unnamed")]]
    return table.apply(lambda s: s.str.strip())


def _missing_columns(path: Path, table: pd.DataFrame, required, what: str) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ReaderError(
            f"{path}: missing required column(s) [{', '.join(missing)}] in the {what} table"
        )


def _logical(values: pd.Series) -> np.ndarray:
    return values.str.upper().isin(["TRUE", "T", "1", "YES"]).to_numpy()


def _numeric(path: Path, values: pd.Series, column: str) -> np.ndarray:
    out = pd.to_numeric(values.where(~values.isin(_NA)), errors="coerce")
    bad = out.isna() & ~values.isin(_NA)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ReaderError(f"{path}: {column} on line {i + 2} is {values.iloc[i]!r}, not a number")
    return out.to_numpy(float)


def _read_ports(path: Path, desc: dict, dataset: str) -> pd.DataFrame:
    table = _read_csv(path)
    if "CSR_DATASET" in table:
        table = table[table["CSR_DATASET"].astype(str) == dataset]
    _missing_columns(path, table, PORTS_REQUIRED, "ports")
    ports = pd.DataFrame({"port": _numeric(path, table["CSR_PORT"], "CSR_PORT")})
    if ports["port"].isna().any():
        raise ReaderError(f"{path}: CSR_PORT is empty on some rows")
    ports["port"] = ports["port"].astype(int)
    ports["msmt_var"] = table["CSR_MSMT_VAR"].to_numpy()
    treatment = table["CSR_TREATMENT"].replace({"": CONTROL, "NA": CONTROL})
    ports["treatment"] = treatment.to_numpy()
    optional = {"CSR_AREA": "area_cm2", "CSR_LONGITUDE": "lon", "CSR_LATITUDE": "lat"}
    for column, name in optional.items():
        ports[name] = _numeric(path, table[column], column) if column in table else np.nan
    ports["lon"] = ports["lon"].fillna(desc["CSR_LONGITUDE"])
    ports["lat"] = ports["lat"].fillna(desc["CSR_LATITUDE"])
    for column, name in {"CSR_OPAQUE": "opaque", "CSR_PLANTS_REMOVED": "plants_removed"}.items():
        ports[name] = _logical(table[column]) if column in table else False
    ports["control"] = ports["treatment"] == CONTROL
    if ports["port"].duplicated().any():
        dup = sorted(set(ports["port"][ports["port"].duplicated()]))
        raise ReaderError(f"{path}: CSR_PORT {dup} listed more than once")
    return ports.reset_index(drop=True)


def _parse_times(path: Path, raw: pd.Series, column: str, tz: str) -> pd.Series:
    """Local ``YYYY-MM-DD HH:MM:SS`` text (``HH:MM`` accepted) → tz-aware local times."""
    values = raw.str.replace("T", " ", regex=False)
    parsed = pd.to_datetime(values, format=TIMESTAMP_FORMAT, errors="coerce")
    short = parsed.isna()
    if short.any():
        parsed[short] = pd.to_datetime(values[short], format="%Y-%m-%d %H:%M", errors="coerce")
    bad = parsed.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ReaderError(
            f"{path}: unparsable {column} on line {i + 2}: {raw.iloc[i]!r} "
            f"(expected YYYY-MM-DD HH:MM:SS, local time {tz}); {int(bad.sum())} bad row(s)"
        )
    return parsed.dt.tz_localize(
        tz, ambiguous=np.zeros(len(parsed), bool), nonexistent="shift_forward"
    )


def _read_data(path: Path, desc: dict) -> pd.DataFrame:
    table = _read_csv(path)
    _missing_columns(path, table, DATA_REQUIRED, "data")
    tz = str(desc["CSR_TIMEZONE"])
    begin = _parse_times(path, table["CSR_TIMESTAMP_BEGIN"], "CSR_TIMESTAMP_BEGIN", tz)
    end = _parse_times(path, table["CSR_TIMESTAMP_END"], "CSR_TIMESTAMP_END", tz)
    if (end < begin).any():
        i = int(np.flatnonzero((end < begin).to_numpy())[0])
        raise ReaderError(f"{path}: CSR_TIMESTAMP_END before CSR_TIMESTAMP_BEGIN on line {i + 2}")
    mid = begin + (end - begin) / 2
    out = pd.DataFrame(
        {
            "time_begin": begin.dt.tz_convert("UTC").dt.tz_localize(None),
            "time_end": end.dt.tz_convert("UTC").dt.tz_localize(None),
            "local_time": mid.dt.tz_localize(None),
        }
    )
    port = _numeric(path, table["CSR_PORT"], "CSR_PORT")
    if np.isnan(port).any():
        i = int(np.flatnonzero(np.isnan(port))[0])
        raise ReaderError(f"{path}: CSR_PORT is empty on line {i + 2}")
    out["port"] = port.astype(int)
    names = {"CSR_TAIR": "tair", "CSR_PRECIP": "precip"}
    for gas in GASES:
        g = gas.lower()
        names.update(
            {
                f"CSR_FLUX_{gas}": f"flux_{g}",
                f"CSR_FLUX_SE_{gas}": f"se_{g}",
                f"CSR_R2_{gas}": f"r2_{g}",
            }
        )
    for column in table.columns:
        m = re.fullmatch(r"CSR_(T|SM)(\d+(?:\.\d+)?)", column)
        if m:
            names[column] = f"{m.group(1).lower()}{m.group(2)}"
    for column, name in names.items():
        if column in table:
            out[name] = _numeric(path, table[column], column)
    out["error"] = _logical(table["CSR_ERROR"]) if "CSR_ERROR" in table else False
    return out


# --- quality control -------------------------------------------------------------------------


def _apply_qc(data: pd.DataFrame, ports: pd.DataFrame, qc: QCOptions, path: Path):
    counts = {"rows": len(data)}
    flux_columns = [f"flux_{g.lower()}" for g in GASES if f"flux_{g.lower()}" in data]
    counts["dropped_na"] = int(data[flux_columns].isna().all(axis=1).sum())
    warnings = []
    has_all = (ports["port"] == 0).any()
    unknown = ~data["port"].isin(ports["port"]) if not has_all else np.zeros(len(data), bool)
    counts["dropped_unknown_port"] = int(np.sum(unknown))
    if counts["dropped_unknown_port"]:
        bad = sorted(set(data.loc[unknown, "port"]))
        warnings.append(
            f"{path}: {counts['dropped_unknown_port']} row(s) of port(s) {bad} not in the "
            "ports table dropped"
        )
    data = data[~unknown]
    if qc.treatments != "all":
        keep_ports = ports.loc[ports["treatment"].isin(list(qc.treatments)), "port"]
        kept = data["port"].isin(keep_ports) | (has_all and (keep_ports == 0).any())
        counts["dropped_treatment"] = int((~kept).sum())
        data = data[kept]
    else:
        counts["dropped_treatment"] = 0
    errors = data["error"].to_numpy(bool) if qc.drop_errors else np.zeros(len(data), bool)
    counts["dropped_error"] = int(errors.sum())
    data = data[~errors].copy()
    limits = {"CO2": qc.co2_limits, "CH4": qc.ch4_limits}
    min_r2 = {"CO2": qc.min_r2_co2, "CH4": qc.min_r2_ch4}
    for gas in GASES:
        g = gas.lower()
        flux = f"flux_{g}"
        if flux not in data:
            continue
        low_r2 = np.zeros(len(data), bool)
        if min_r2[gas] is not None and f"r2_{g}" in data:
            low_r2 = (data[f"r2_{g}"] < min_r2[gas]).to_numpy() & data[flux].notna().to_numpy()
        lo, hi = limits[gas]
        outside = ((data[flux] < lo) | (data[flux] > hi)).to_numpy() & ~low_r2
        counts[f"dropped_r2_{g}"] = int(low_r2.sum())
        counts[f"dropped_limits_{g}"] = int(outside.sum())
        data.loc[low_r2 | outside, flux] = np.nan
    fluxes = [f"flux_{g.lower()}" for g in GASES if f"flux_{g.lower()}" in data]
    data = data[data[fluxes].notna().any(axis=1)]
    counts["kept"] = len(data)
    return data.drop(columns="error").reset_index(drop=True), counts, warnings


# --- public entry points ---------------------------------------------------------------------


def _load(folder: Path, qc: QCOptions, allow_empty: bool) -> CosoreDataset:
    tables = find_tables(folder)
    name = folder.name
    desc = _read_description(tables["description"], name)
    ports = _read_ports(tables["ports"], desc, name)
    if ports.empty:
        raise ReaderError(f"{tables['ports']}: no ports listed for {name}")
    data = _read_data(tables["data"], desc)
    path = tables["data"]
    warnings = []
    valid = {
        g: int(data[f"flux_{g.lower()}"].notna().sum())
        for g in GASES
        if f"flux_{g.lower()}" in data
    }
    if not any(valid.values()):
        message = (
            f"{path}: no valid flux: {' and '.join(f'CSR_FLUX_{g}' for g in valid)} "
            f"NA on all {len(data)} row(s)"
        )
        if not allow_empty:
            raise ReaderError(message)
        warnings.append(message)
    for gas, n in valid.items():
        if n == 0 and any(valid.values()):
            warnings.append(f"{path}: CSR_FLUX_{gas} is NA on all {len(data)} row(s); dropped")
            data = data.drop(columns=[c for c in data if c.endswith(f"_{gas.lower()}")])
    data, counts, qc_warnings = _apply_qc(data, ports, qc, path)
    warnings += qc_warnings
    for w in warnings:
        log.warning("%s", w)
    return CosoreDataset(name, folder, desc, ports, data, counts, warnings)


def read_cosore(folder: str | Path, qc: QCOptions | None = None) -> CosoreDataset:
    """Read one COSORE dataset folder with quality control ``qc`` (default
    :class:`QCOptions`: control ports, no error flag, CO2 R2 >= 0.9, physical limits).

    Returns a :class:`CosoreDataset` (site description, ports, per-measurement table in
    UTC and local time, QC counts). Raises ReaderError (one line naming the file and the
    problem) for the errors listed in the module docstring; logs a warning for rows dropped.
    """
    return _load(Path(folder), qc or QCOptions(), allow_empty=False)


def open_cosore(folder: str | Path) -> xr.Dataset:
    """The dataset as xarray (``obs`` dimension), with the default QC; see
    :meth:`CosoreDataset.to_xarray`."""
    return read_cosore(folder).to_xarray()


def _summarize(path: Path) -> FileSummary:
    """Site, lon/lat, ports, variables and time span of a dataset folder (default QC)."""
    ds = _load(Path(path), QCOptions(), allow_empty=True)
    d = ds.description
    lon, lat = float(d["CSR_LONGITUDE"]), float(d["CSR_LATITUDE"])
    data = ds.data
    span = None
    if len(data):
        span = [
            pd.Timestamp(data["time_begin"].min()).isoformat() + "Z",
            pd.Timestamp(data["time_end"].max()).isoformat() + "Z",
        ]
    ports = [f"{p.port}:{p.msmt_var}:{p.treatment}" for p in ds.ports.itertuples(index=False)]
    variables = [
        c for c in data.columns if c not in ("time_begin", "time_end", "local_time", "port")
    ]
    details = {
        "dataset": ds.name,
        "site_name": str(d["CSR_SITE_NAME"]),
        "igbp": str(d["CSR_IGBP"]),
        "timezone": ds.timezone,
        "instrument": str(d["CSR_INSTRUMENT"]),
        "ports": ports,
        "qc": ds.qc,
        "valid_values": {
            f"flux_{g.lower()}": int(data[f"flux_{g.lower()}"].notna().sum()) for g in ds.gases
        },
    }
    if ds.warnings:
        # inspect prints "warning: FOLDER: ...": name the table inside the folder
        details["warnings"] = [w.replace(f"{Path(path)}/", "") for w in ds.warnings]
    return FileSummary(
        path=str(path),
        reader="cosore",
        variables=variables,
        bbox=[lon, lat, lon, lat],
        time=span,
        details=details,
    )


SPEC = register(
    ReaderSpec(
        name="cosore",
        patterns=(DATASET_NAME_PATTERN,),
        sniff=_sniff,
        open=open_cosore,
        summarize=_summarize,
        capabilities=frozenset({"soil_chamber_flux"}),
        description=(
            "COSORE soil-chamber dataset folder (d<YYYYMMDD>_<NAME>/ with DESCRIPTION.txt, "
            "PORTS.txt and data_<dataset>.csv): CO2 umol m-2 s-1, CH4 nmol m-2 s-1"
        ),
        folder=True,
    )
)
