"""Sample-world elevation: a CF NetCDF DEM like a GMTED2010 30 arc-second tile.

One file, ``dem/elevation_30s.nc``: the world's elevation field
(:meth:`fluxscape.sample.world.World.elevation`, m) at the cell centres of a 1/120 degree
regular lon/lat grid covering the region plus a margin; ``lat`` north to south (as GDAL
writes rasters), ``elevation`` int16 metres with the CF standard name ``surface_altitude``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from fluxscape.sample.world import World

RESOLUTION = 1.0 / 120.0  # 30 arc seconds
MARGIN_DEG = 0.1


def dem_grid(bbox: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre longitudes (west to east) and latitudes (north to south) of the DEM."""
    w, s, e, n = bbox
    cells = int(round(1 / RESOLUTION))
    west, east = np.floor((w - MARGIN_DEG) * cells), np.ceil((e + MARGIN_DEG) * cells)
    south, north = np.floor((s - MARGIN_DEG) * cells), np.ceil((n + MARGIN_DEG) * cells)
    lon = (np.arange(west, east) + 0.5) / cells
    lat = (np.arange(north, south, -1) - 0.5) / cells
    return lon, lat


def write_dem(world: World, out: Path) -> list[Path]:
    """Write the world's elevation as ``out/elevation_30s.nc``; returns [path]."""
    out.mkdir(parents=True, exist_ok=True)
    lon, lat = dem_grid(world.preset.bbox)
    glon, glat = np.meshgrid(lon, lat)
    elev = np.round(world.elevation(glon, glat)).astype("int16")
    ds = xr.Dataset(
        {
            "elevation": (
                ("lat", "lon"),
                elev,
                {
                    "long_name": "surface elevation above mean sea level",
                    "standard_name": "surface_altitude",
                    "units": "m",
                    "_FillValue": np.int16(-32768),
                },
            )
        },
        coords={
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": "GMTED2010-like 30 arc-second elevation (sample world truth)",
            "institution": "fluxscape sample world",
            "history": "written by fluxscape.sample.dem_writer",
        },
    )
    path = out / "elevation_30s.nc"
    ds.to_netcdf(path, encoding={"elevation": {"zlib": True, "complevel": 4}})
    return [path]
