"""Top-down (atmospheric inversion) surface fluxes: monthly lon/lat grids in CF NetCDF.

CarbonTracker's monthly 1 x 1 degree files name their variables ``bio_flux_opt`` (optimised
land biosphere), ``ocn_flux_opt``, ``fire_flux_imp`` (imposed fire) and a fossil variable, in
mol CO2 m-2 s-1; CAMS, GCP/RECCAP and GOSAT Level 4 grids are similar with other names. A
variable map chooses them (role -> file variable): ``land`` (required), ``land_sd`` (its
1-sigma uncertainty, optional) and ``fire`` (optional); the default map is CarbonTracker's
(:data:`DEFAULT_VARIABLES`). Without ``land_sd`` a stated ``relative_error`` (0-1) gives
``land_sd = relative_error * |land|``.

Output of :func:`open_topdown`: ``land`` (and ``land_sd``, ``fire`` when given) in
gC m-2 d-1 on dims (time, lat, lon), time = month (period) starts, lat ascending, lon in
[-180, 180) ascending (0-360 longitudes are wrapped). Units are converted from the units
attribute (:data:`UNIT_FACTORS`: mol m-2 s-1 x 12.011 x 86400, umol m-2 s-1, kgC m-2 s-1,
gC m-2 d-1); any other units are refused with a one-line ReaderError naming the file.

Sign convention: positive = carbon to the atmosphere (a source), like NEE; inversions use
the same convention, so values are not flipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.errors import ReaderError
from fluxscape.readers.magic import require
from fluxscape.readers.registry import FileSummary, ReaderSpec, register

#: Role -> file variable of CarbonTracker monthly flux files (the default map).
DEFAULT_VARIABLES: dict[str, str] = {"land": "bio_flux_opt", "fire": "fire_flux_imp"}
#: Roles a variable map may name.
ROLES = ("land", "land_sd", "fire")
#: Variable names that mark a file as top-down fluxes when sniffing (CarbonTracker, CAMS,
#: GCP-style land flux names).
KNOWN_LAND = ("bio_flux_opt", "flux_apos_bio", "land_flux_only_fossil_cement_adjusted", "fco2nat")
#: g of carbon per mol.
G_C_PER_MOL = 12.011
SECONDS_PER_DAY = 86400.0
#: Normalised units (spaces, ``^``, ``**`` and ``CO2``/``C`` labels removed) -> factor to
#: gC m-2 d-1.
UNIT_FACTORS: dict[str, float] = {
    "molm-2s-1": G_C_PER_MOL * SECONDS_PER_DAY,
    "mol/m2/s": G_C_PER_MOL * SECONDS_PER_DAY,
    "molm-2s": G_C_PER_MOL * SECONDS_PER_DAY,
    "umolm-2s-1": G_C_PER_MOL * SECONDS_PER_DAY * 1e-6,
    "µmolm-2s-1": G_C_PER_MOL * SECONDS_PER_DAY * 1e-6,
    "kgm-2s-1": 1000.0 * SECONDS_PER_DAY,
    "gm-2d-1": 1.0,
    "gm-2day-1": 1.0,
}
_TIME_NAMES = ("time", "date", "valid_time")
_LAT_NAMES = ("latitude", "lat")
_LON_NAMES = ("longitude", "lon")
ATTRS = {
    "land": "land biosphere flux (positive: to the atmosphere), as carbon",
    "land_sd": "land biosphere flux uncertainty (1 sigma), as carbon",
    "fire": "fire emissions (positive: to the atmosphere), as carbon",
}


def _units_key(units: str) -> str:
    u = str(units).replace("**", "").replace("^", "").replace(" ", "").replace("CO2", "")
    return re.sub(r"(?<=[gl])C(?=[m/])", "", u)  # gC m-2 d-1, kgC, molC


def unit_factor(path: Path | str, name: str, units: str) -> float:
    """Factor turning values of ``units`` into gC m-2 d-1; ReaderError (one line, naming the
    file and variable) for units it does not know."""
    key = _units_key(units)
    if key not in UNIT_FACTORS:
        raise ReaderError(
            f"{path}: variable {name} has units {units!r}, not a known flux unit "
            "(mol m-2 s-1, umol m-2 s-1, kgC m-2 s-1 or gC m-2 d-1)"
        )
    return UNIT_FACTORS[key]


def _coord(ds: xr.Dataset, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in ds.variables), None)


def open_topdown(
    path: str | Path,
    variables: dict[str, str] | None = None,
    relative_error: float | None = None,
) -> xr.Dataset:
    """Open one top-down flux file as ``land`` / ``land_sd`` / ``fire`` (gC m-2 d-1) on
    (time, lat, lon): lat ascending, lon wrapped to [-180, 180) ascending.

    ``variables``: role -> file variable (roles :data:`ROLES`; default
    :data:`DEFAULT_VARIABLES`, whose ``fire`` is used only when present). ``relative_error``:
    ``land_sd`` as this share of ``|land|`` when the map names no ``land_sd``. Raises
    ReaderError naming the file when it is unreadable, lacks coordinates or the ``land``
    variable, or has units it does not know."""
    path = Path(path)
    mapping = dict(DEFAULT_VARIABLES if variables is None else variables)
    unknown = sorted(set(mapping) - set(ROLES))
    if unknown or "land" not in mapping:
        raise ReaderError(f"{path}: variable map roles must be {ROLES} with 'land' (got {mapping})")
    try:
        raw = xr.open_dataset(path, engine="netcdf4", cache=False)
    except (OSError, ValueError) as exc:
        raise ReaderError(f"{path}: cannot open as NetCDF ({exc})") from exc
    with raw:
        t, la, lo = (_coord(raw, n) for n in (_TIME_NAMES, _LAT_NAMES, _LON_NAMES))
        if None in (t, la, lo):
            raise ReaderError(f"{path}: no time/latitude/longitude coordinates (not a flux grid)")
        optional = {"fire"} if variables is None else set()
        out = {}
        for role, name in mapping.items():
            if name not in raw.data_vars:
                if role in optional:
                    continue
                raise ReaderError(
                    f"{path}: no variable {name!r} for {role} "
                    f"(variables: {', '.join(map(str, raw.data_vars))[:200]})"
                )
            var = raw[name]
            factor = unit_factor(path, name, var.attrs.get("units", ""))
            var = var.rename({t: "time", la: "lat", lo: "lon"})
            extra = [d for d in var.dims if d not in ("time", "lat", "lon")]
            if extra:
                raise ReaderError(f"{path}: variable {name} has extra dimensions {extra}")
            out[role] = (var.transpose("time", "lat", "lon").astype("float64") * factor).load()
    if "land_sd" not in out and relative_error is not None:
        out["land_sd"] = abs(out["land"]) * float(relative_error)
    ds = xr.Dataset({k: v.drop_attrs() for k, v in out.items()})
    lon = ((ds["lon"].values + 180.0) % 360.0) - 180.0
    ds = ds.assign_coords(lon=lon).sortby("lon").sortby("lat")
    for name in ds.data_vars:
        ds[name].attrs = {"units": "g m-2 d-1", "long_name": ATTRS[str(name)]}
    ds["time"] = pd.DatetimeIndex(ds["time"].values).to_period("M").to_timestamp()
    ds.attrs = {
        "source_file": path.name,
        "variables": ", ".join(f"{k}={v}" for k, v in mapping.items()),
        "sign_convention": "positive: to the atmosphere",
    }
    return ds


def open_topdown_files(
    paths, variables: dict[str, str] | None = None, relative_error: float | None = None
) -> xr.Dataset:
    """:func:`open_topdown` of several files (e.g. one per month), joined along time
    (sorted; a month given twice keeps the later file's values)."""
    parts = [open_topdown(p, variables, relative_error) for p in sorted(map(str, paths))]
    if not parts:
        raise ReaderError("no top-down flux file given")
    ds = xr.concat(parts, dim="time", join="exact") if len(parts) > 1 else parts[0]
    ds = ds.sortby("time")
    _, keep = np.unique(ds["time"].values[::-1], return_index=True)
    return ds.isel(time=np.sort(len(ds["time"]) - 1 - keep))


def _sniff(path: Path) -> bool:
    """NetCDF with lat/lon/time and a known land flux variable (:data:`KNOWN_LAND`) in flux
    units; ReaderError saying what is missing otherwise."""
    path = Path(path)
    require(path, ("hdf5", "netcdf3"), "NetCDF", "top-down flux files are NetCDF")
    try:
        ds = xr.open_dataset(path, engine="netcdf4", cache=False, decode_times=False)
    except (OSError, ValueError) as exc:
        raise ReaderError(f"{path}: not a readable NetCDF file ({exc})") from exc
    with ds:
        if None in (_coord(ds, n) for n in (_TIME_NAMES, _LAT_NAMES, _LON_NAMES)):
            raise ReaderError(f"{path}: no time/latitude/longitude coordinates")
        names = [n for n in KNOWN_LAND if n in ds.data_vars]
        if not names:
            raise ReaderError(
                f"{path}: no top-down land flux variable ({', '.join(KNOWN_LAND)}) found"
            )
        unit_factor(path, names[0], ds[names[0]].attrs.get("units", ""))
    return True


def _summarize(path: Path) -> FileSummary:
    with xr.open_dataset(path, engine="netcdf4", cache=False, decode_times=False) as raw:
        land = next((n for n in KNOWN_LAND if n in raw.data_vars), DEFAULT_VARIABLES["land"])
        units = {str(v): raw[v].attrs.get("units", "") for v in raw.data_vars}
    mapping = {"land": land}
    if f"{land}_sd" in units:  # e.g. bio_flux_opt_sd beside bio_flux_opt
        mapping["land_sd"] = f"{land}_sd"
    if DEFAULT_VARIABLES["fire"] in units:
        mapping["fire"] = DEFAULT_VARIABLES["fire"]
    ds = open_topdown(path, mapping)
    lon, lat = ds["lon"].values, ds["lat"].values
    times = pd.DatetimeIndex(ds["time"].values)
    return FileSummary(
        path=str(path),
        reader="topdown",
        variables=list(ds.data_vars),
        bbox=[float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())],
        time=[times[0].isoformat(), times[-1].isoformat()],
        details={
            "land_variable": land,
            "file_units": units,
            "units": "gC m-2 d-1 (positive: to the atmosphere)",
            "resolution_deg": float(abs(np.diff(lat)).mean()) if lat.size > 1 else None,
            "shape": dict(ds.sizes),
            "mean_land_gC_m2_d": float(ds["land"].mean()),
        },
    )


SPEC = register(
    ReaderSpec(
        name="topdown",
        patterns=(re.compile(r".*\.(nc|nc4|netcdf)").pattern,),
        sniff=_sniff,
        open=open_topdown,
        summarize=_summarize,
        capabilities=frozenset({"topdown_flux"}),
        description=(
            "top-down (inversion) monthly surface fluxes in CF NetCDF (CarbonTracker "
            "bio_flux_opt / fire_flux_imp, mol m-2 s-1; CAMS, GOSAT L4 with a variable map): "
            "land, land_sd, fire in gC m-2 d-1 on lat/lon, positive to the atmosphere"
        ),
    )
)
