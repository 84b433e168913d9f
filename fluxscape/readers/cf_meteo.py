"""Gridded meteorology from CF NetCDF: ERA5 / ERA5-Land as the CDS ships it, or any CF file.

Variables are recognised by ERA5 short name (``t2m``, ``d2m``, ``ssrd``, ``tp``, ``vpd``...) or
by CF ``standard_name``, and converted to the FLUXNET-style meteorology the flux models use:

* ``ta``      air temperature, degC
* ``sw_in``   incoming shortwave radiation, W m-2 (accumulated J m-2 divided by the time step)
* ``vpd``     vapour-pressure deficit, hPa (from temperature and dewpoint by the Magnus formula
              when the file has no VPD)
* ``precip``  precipitation, mm d-1 (accumulated metres scaled to a day)
* ``ts``      soil temperature of the top soil layer, degC (ERA5 ``stl1``, CF
              ``soil_temperature``)
* ``swc``     volumetric soil water content of the top soil layer, m3 m-3 (ERA5 ``swvl1``,
              CF ``volume_fraction_of_condensed_water_in_soil``; percent is divided by 100;
              or CF ``mass_content_of_water_in_soil_layer`` in kg m-2 divided by 1000 kg m-3
              and the layer's thickness from the bounds of its vertical coordinate)

A soil variable with a vertical dimension (CF files with ``depth``/``soil_layer`` levels) gives
its first (top) level.

Dims of the result: ``time``, ``lat`` (south to north), ``lon``; degrees on WGS84. Written by
hand because satpy and xarray read the file but do not harmonise ERA5 names, accumulations and
units into a flux-model forcing.
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

#: Output variable -> (ERA5 short names, CF standard names).
_NAMES = {
    "ta": (("t2m", "2t", "tas"), ("air_temperature",)),
    "td": (("d2m", "2d"), ("dew_point_temperature",)),
    "sw_in": (
        ("ssrd", "rsds"),
        (
            "surface_downwelling_shortwave_flux_in_air",
            "surface_downwelling_shortwave_flux_in_air_due_to_diffuse_radiation",
        ),
    ),
    "precip": (("tp", "pr"), ("precipitation_amount", "precipitation_flux")),
    "vpd": (("vpd",), ("water_vapor_saturation_deficit_in_air",)),
    "ts": (("stl1", "tsl"), ("soil_temperature",)),
    "swc": (("swvl1",), ("volume_fraction_of_condensed_water_in_soil",)),
    "swc_mass": (("mrsol",), ("mass_content_of_water_in_soil_layer",)),
}
_TIME_NAMES = ("valid_time", "time")
_LAT_NAMES = ("latitude", "lat")
_LON_NAMES = ("longitude", "lon")
VARIABLES = ("ta", "sw_in", "vpd", "precip", "ts", "swc")
ATTRS = {
    "ta": {"units": "degC", "long_name": "air temperature", "standard_name": "air_temperature"},
    "sw_in": {
        "units": "W m-2",
        "long_name": "incoming shortwave radiation",
        "standard_name": "surface_downwelling_shortwave_flux_in_air",
    },
    "vpd": {
        "units": "hPa",
        "long_name": "vapour pressure deficit",
        "standard_name": "water_vapor_saturation_deficit_in_air",
    },
    "precip": {"units": "mm d-1", "long_name": "precipitation"},
    "ts": {
        "units": "degC",
        "long_name": "soil temperature (top layer)",
        "standard_name": "soil_temperature",
    },
    "swc": {
        "units": "m3 m-3",
        "long_name": "volumetric soil water content (top layer)",
        "standard_name": "volume_fraction_of_condensed_water_in_soil",
    },
}


def _find(ds: xr.Dataset, key: str) -> str | None:
    short, standard = _NAMES[key]
    for name in short:
        if name in ds.data_vars:
            return name
    for name, var in ds.data_vars.items():
        if var.attrs.get("standard_name") in standard:
            return str(name)
    return None


def _coord(ds: xr.Dataset, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in ds.variables), None)


def _step_seconds(path: Path, times: np.ndarray) -> float:
    if len(times) < 2:
        return 86400.0
    step = np.median(np.diff(times.astype("datetime64[s]")).astype(float))
    if step <= 0:
        raise ReaderError(f"{path}: time coordinate is not increasing")
    return float(step)


def _celsius(path: Path, var: xr.DataArray) -> xr.DataArray:
    units = var.attrs.get("units", "K")
    if units in ("K", "kelvin"):
        return var - 273.15
    if units in ("degC", "C", "celsius", "degree_Celsius"):
        return var
    raise ReaderError(f"{path}: {var.name} has unsupported temperature units {units!r}")


def _watts(path: Path, var: xr.DataArray, step: float) -> xr.DataArray:
    units = str(var.attrs.get("units", "")).replace("**", "^").replace(" ", "")
    if units in ("Jm^-2", "Jm-2"):
        return var / step
    if units in ("Wm^-2", "Wm-2"):
        return var
    raise ReaderError(f"{path}: {var.name} has unsupported radiation units {units!r}")


def _mm_per_day(path: Path, var: xr.DataArray, step: float) -> xr.DataArray:
    units = str(var.attrs.get("units", "")).replace(" ", "")
    per_day = 86400.0 / step
    if units == "m":
        return var * 1000.0 * per_day
    if units == "mm":
        return var * per_day
    if units in ("kgm-2s-1", "kgm^-2s^-1", "kg m-2 s-1"):
        return var * 86400.0
    raise ReaderError(f"{path}: {var.name} has unsupported precipitation units {units!r}")


def _volume_fraction(path: Path, var: xr.DataArray) -> xr.DataArray:
    units = str(var.attrs.get("units", "1")).replace("**", "").replace("^", "").replace(" ", "")
    if units in ("m3m-3", "1", "", "m3/m3", "fraction"):
        return var
    if units in ("%", "percent"):
        return var / 100.0
    raise ReaderError(f"{path}: {var.name} has unsupported soil water units {units!r}")


def _from_mass(path: Path, raw: xr.Dataset, var: xr.DataArray) -> xr.DataArray:
    """Volumetric water (m3 m-3) of the top layer from its mass content (kg m-2): divided by
    the density of water (1000 kg m-3) and the layer's thickness (m) from the CF bounds of its
    vertical coordinate; ReaderError when the file does not say how thick the layer is."""
    units = str(var.attrs.get("units", "")).replace("**", "").replace("^", "").replace(" ", "")
    extra = [d for d in var.dims if d not in ("time", "lat", "lon")]
    bounds = raw[extra[0]].attrs.get("bounds") if extra and extra[0] in raw.variables else None
    if units not in ("kgm-2", "kg/m2") or bounds not in raw.variables:
        raise ReaderError(
            f"{path}: {var.name} is a soil water mass content ({units or 'no units'}) without "
            "a vertical coordinate with CF bounds, so its layer thickness is unknown"
        )
    top = raw[bounds].isel({extra[0]: 0}).values.astype(float)
    scale = 0.01 if raw[extra[0]].attrs.get("units") == "cm" else 1.0  # depth in cm or m
    thickness = abs(float(top[1] - top[0])) * scale
    return _top_level(var) / (1000.0 * thickness)


def _top_level(var: xr.DataArray) -> xr.DataArray:
    """The first level of a vertical dimension (the top soil layer), if the variable has one
    besides time/lat/lon."""
    extra = [d for d in var.dims if d not in ("time", "lat", "lon")]
    return var.isel({d: 0 for d in extra}, drop=True) if extra else var


def _vpd_hpa(path: Path, ta: xr.DataArray, td: xr.DataArray) -> xr.DataArray:
    es = 6.1078 * np.exp(17.27 * ta / (ta + 237.3))
    ea = 6.1078 * np.exp(17.27 * td / (td + 237.3))
    return np.maximum(es - ea, 0.0)


def open_cf_meteo(path: str | Path) -> xr.Dataset:
    """Open a CF / ERA5 NetCDF as ``ta`` (degC), ``sw_in`` (W m-2), ``vpd`` (hPa) and
    ``precip`` (mm d-1) on dims (time, lat, lon), lat ascending; variables the file cannot
    provide are absent. Raises ReaderError naming the file when it is unreadable, has no
    time/lat/lon coordinates or none of the variables."""
    path = Path(path)
    try:
        raw = xr.open_dataset(path, engine="netcdf4", cache=False)
    except (OSError, ValueError) as exc:
        raise ReaderError(f"{path}: cannot open as NetCDF ({exc})") from exc
    t, la, lo = (_coord(raw, n) for n in (_TIME_NAMES, _LAT_NAMES, _LON_NAMES))
    found = {k: _find(raw, k) for k in _NAMES}
    problem = None
    if None in (t, la, lo):
        problem = "no time/latitude/longitude coordinates (not gridded meteorology)"
    elif not any(found[k] for k in ("ta", "sw_in", "precip", "vpd")):
        problem = f"none of the meteorological variables {sorted(_NAMES)} found"
    if problem:
        raw.close()
        raise ReaderError(f"{path}: {problem}")
    # Lazy: a tile reads only its window of a large file.
    ds = raw[[v for v in found.values() if v]].rename({t: "time", la: "lat", lo: "lon"})
    step = _step_seconds(path, ds["time"].values)
    out = {}
    if found["ta"]:
        out["ta"] = _celsius(path, ds[found["ta"]])
    if found["sw_in"]:
        out["sw_in"] = _watts(path, ds[found["sw_in"]], step)
    if found["vpd"]:
        var = ds[found["vpd"]]
        out["vpd"] = var / 100.0 if var.attrs.get("units") == "Pa" else var
    elif found["td"] and found["ta"]:
        out["vpd"] = _vpd_hpa(path, out["ta"], _celsius(path, ds[found["td"]]))
    if found["precip"]:
        out["precip"] = _mm_per_day(path, ds[found["precip"]], step)
    if found["ts"]:
        out["ts"] = _celsius(path, _top_level(ds[found["ts"]]))
    if found["swc"]:
        out["swc"] = _volume_fraction(path, _top_level(ds[found["swc"]]))
    elif found["swc_mass"]:
        out["swc"] = _from_mass(path, raw, ds[found["swc_mass"]])
    result = xr.Dataset({k: v.astype("float32").drop_attrs() for k, v in out.items()})
    for name in result.data_vars:
        result[name].attrs.update(ATTRS[str(name)])
    result = result.sortby("lat")
    result.attrs = {"source_file": path.name, "time_step_seconds": step}
    return result


def _sniff(path: Path) -> bool:
    """CF NetCDF with 1-D lat, lon and time and one of ta / sw_in / precip; ReaderError
    saying what is missing otherwise."""
    path = Path(path)
    require(path, ("hdf5", "netcdf3"), "NetCDF", "CF meteorology files are NetCDF")
    try:
        ds = xr.open_dataset(path, engine="netcdf4", cache=False, decode_times=False)
    except (OSError, ValueError) as exc:
        raise ReaderError(f"{path}: not a readable NetCDF file ({exc})") from exc
    with ds:
        missing = [
            what
            for what, names in (("lat", _LAT_NAMES), ("lon", _LON_NAMES), ("time", _TIME_NAMES))
            if not _coord(ds, names)
        ]
        if missing:
            raise ReaderError(
                f"{path}: has no {', '.join(missing)} coordinate, not gridded CF meteorology"
            )
        if ds[_coord(ds, _LAT_NAMES)].ndim != 1:
            raise ReaderError(f"{path}: latitude is not 1-D, not a regular lat/lon grid")
        if not any(_find(ds, k) for k in ("ta", "sw_in", "precip")):
            raise ReaderError(
                f"{path}: has no temperature, shortwave or precipitation variable "
                f"(variables: {', '.join(map(str, ds.data_vars))[:200]})"
            )
    return True


def _summarize(path: Path) -> FileSummary:
    ds = open_cf_meteo(path)
    lon, lat = ds["lon"].values, ds["lat"].values
    times = pd.DatetimeIndex(ds["time"].values)
    counts = {str(v): int(np.isfinite(ds[v]).sum()) for v in ds.data_vars}
    empty = bool(counts) and not any(counts.values())
    return FileSummary(
        path=str(path),
        reader="cf_meteo",
        variables=list(ds.data_vars),
        bbox=[float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())],
        time=[times[0].isoformat(), times[-1].isoformat()],
        details={
            "time_step_seconds": ds.attrs["time_step_seconds"],
            "shape": dict(ds.sizes),
            "valid_values": counts,
        }
        | ({"warnings": [f"no valid data: {', '.join(counts)} are all fill"]} if empty else {}),
    )


SPEC = register(
    ReaderSpec(
        name="cf_meteo",
        patterns=(re.compile(r".*\.(nc|nc4|netcdf)").pattern,),
        sniff=_sniff,
        open=open_cf_meteo,
        summarize=_summarize,
        capabilities=frozenset({"meteorology"}),
        description=(
            "gridded meteorology in CF NetCDF (ERA5 / ERA5-Land from the CDS: t2m, d2m, ssrd, "
            "tp, stl1, swvl1): ta (degC), sw_in (W m-2), vpd (hPa), precip (mm d-1), ts "
            "(degC), swc (m3 m-3) on lat/lon"
        ),
    )
)
