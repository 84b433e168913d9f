"""Static surface elevation (a DEM) on a regular lon/lat grid in CF NetCDF.

GMTED2010, SRTM or Copernicus DEM tiles exported to NetCDF (``gdal_translate -of netCDF``
names the band ``Band1``; CF files ``elevation``, ``altitude`` or ``orog``), or any CF file
whose variable has the standard name ``surface_altitude`` or ``height_above_mean_sea_level``:
2-D ``lat``/``lon`` (1-D coordinates, either order of latitude), no time axis. A variable with
a leading length-1 time dimension (a static field written by a model) is accepted.

Output of :func:`open_elevation`: ``elevation`` (m above sea level, float32) on dims
(lat, lon), lat ascending, lon in [-180, 180) ascending; km and ft are converted, other units
refused. The flux models interpolate it bilinearly to the pixel centres
(:mod:`fluxscape.pipeline.features`): a smooth field, like the meteorology. Written by hand:
rioxarray opens such a file as a raster but names neither the variable nor its units.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from fluxscape.errors import ReaderError
from fluxscape.readers.magic import require
from fluxscape.readers.registry import FileSummary, ReaderSpec, register

#: Variable names taken for elevation, in order; then any variable with a standard name of
#: :data:`STANDARD_NAMES`.
NAMES = ("elevation", "elev", "altitude", "orog", "dem", "Band1")
STANDARD_NAMES = ("surface_altitude", "height_above_mean_sea_level", "height_above_geoid")
#: Units -> factor to metres.
UNITS = {"m": 1.0, "metre": 1.0, "meter": 1.0, "metres": 1.0, "meters": 1.0, "km": 1000.0}
UNITS |= {"ft": 0.3048, "feet": 0.3048}
_LAT_NAMES = ("latitude", "lat", "y")
_LON_NAMES = ("longitude", "lon", "x")


def _coord(ds: xr.Dataset, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n in ds.variables and ds[n].ndim == 1), None)


def _variable(ds: xr.Dataset) -> str | None:
    for name in NAMES:
        if name in ds.data_vars:
            return name
    for name, var in ds.data_vars.items():
        if var.attrs.get("standard_name") in STANDARD_NAMES:
            return str(name)
    return None


def _check(path: Path, ds: xr.Dataset) -> tuple[str, str, str]:
    """(variable, lat, lon) names, or ReaderError saying what the file lacks."""
    la, lo = _coord(ds, _LAT_NAMES), _coord(ds, _LON_NAMES)
    if la is None or lo is None:
        raise ReaderError(f"{path}: no 1-D latitude/longitude coordinates, not a lon/lat DEM")
    name = _variable(ds)
    if name is None:
        raise ReaderError(
            f"{path}: no elevation variable (names {', '.join(NAMES)} or standard name "
            f"surface_altitude; variables: {', '.join(map(str, ds.data_vars))[:200]})"
        )
    extra = [d for d in ds[name].dims if d not in (la, lo)]
    if any(ds.sizes[d] != 1 for d in extra):
        raise ReaderError(
            f"{path}: elevation variable {name} has dimensions {extra} besides lat/lon; a DEM "
            "is one static field"
        )
    return name, la, lo


def open_elevation(path: str | Path) -> xr.Dataset:
    """Open a CF NetCDF DEM as ``elevation`` (m, float32) on dims (lat, lon), lat ascending,
    lon in [-180, 180) ascending; ReaderError naming the file when it is unreadable, has no
    lon/lat grid or elevation variable, or its units are not a length."""
    path = Path(path)
    try:
        raw = xr.open_dataset(path, engine="netcdf4", cache=False, decode_times=False)
    except (OSError, ValueError) as exc:
        raise ReaderError(f"{path}: cannot open as NetCDF ({exc})") from exc
    try:
        name, la, lo = _check(path, raw)
        units = str(raw[name].attrs.get("units", "m")).strip()
        if units not in UNITS:
            raise ReaderError(f"{path}: elevation {name} has units {units!r}, not m, km or ft")
    except ReaderError:
        raw.close()
        raise
    # Lazy: a tile reads only its window of a large DEM.
    var = raw[name].squeeze([d for d in raw[name].dims if d not in (la, lo)], drop=True)
    elev = (var.astype("float64") * UNITS[units]).astype("float32")
    elev = elev.rename({la: "lat", lo: "lon"}).transpose("lat", "lon").drop_attrs()
    lon = elev["lon"].values
    elev = elev.assign_coords(lon=np.where(lon >= 180.0, lon - 360.0, lon))
    elev = elev.sortby("lat").sortby("lon")
    elev.attrs = {
        "units": "m",
        "long_name": "surface elevation above sea level",
        "standard_name": "surface_altitude",
    }
    return xr.Dataset({"elevation": elev}, attrs={"source_file": path.name})


def _sniff(path: Path) -> bool:
    path = Path(path)
    require(path, ("hdf5", "netcdf3"), "NetCDF", "CF elevation files are NetCDF")
    try:
        ds = xr.open_dataset(path, engine="netcdf4", cache=False, decode_times=False)
    except (OSError, ValueError) as exc:
        raise ReaderError(f"{path}: not a readable NetCDF file ({exc})") from exc
    with ds:
        _check(path, ds)
    return True


def _summarize(path: Path) -> FileSummary:
    ds = open_elevation(path)
    lon, lat = ds["lon"].values, ds["lat"].values
    valid = int(np.isfinite(ds["elevation"]).sum())
    return FileSummary(
        path=str(path),
        reader="cf_elevation",
        variables=["elevation"],
        bbox=[float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())],
        time=None,
        details={
            "shape": dict(ds.sizes),
            "valid_values": {"elevation": valid},
            "range_m": [float(ds["elevation"].min()), float(ds["elevation"].max())]
            if valid
            else None,
        }
        | ({"warnings": ["no valid data: elevation is all fill"]} if not valid else {}),
    )


SPEC = register(
    ReaderSpec(
        name="cf_elevation",
        patterns=(re.compile(r".*\.(nc|nc4|netcdf)").pattern,),
        sniff=_sniff,
        open=open_elevation,
        summarize=_summarize,
        capabilities=frozenset({"elevation"}),
        description=(
            "static surface elevation (DEM) on a lon/lat grid in CF NetCDF (elevation, orog, "
            "GDAL's Band1 or standard name surface_altitude): elevation (m)"
        ),
    )
)
