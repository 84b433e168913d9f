"""Sample-world gridded meteorology in the layout of ERA5(-Land) daily NetCDF from the CDS.

One file per year, ``era5_daily_<year>.nc``, on a 0.1 degree regular lon/lat grid covering the
region plus a margin: dims ``valid_time``, ``latitude`` (north to south, as ERA5 ships it) and
``longitude``; variables with ERA5 short names and units:

* ``t2m``  2 metre temperature, K (daily mean)
* ``d2m``  2 metre dewpoint temperature, K (daily mean)
* ``ssrd`` surface solar radiation downwards, J m-2 accumulated over the day
* ``tp``   total precipitation, m accumulated over the day
* ``stl1`` soil temperature level 1, K (daily mean; CF ``soil_temperature``)
* ``swvl1`` volumetric soil water layer 1, m3 m-3 (daily mean; CF
  ``volume_fraction_of_condensed_water_in_soil``)

The values are the world's true weather (:meth:`fluxscape.sample.world.World.meteo`) at the
cell centres, with the dewpoint derived from the vapour-pressure deficit (Magnus formula), so
a reader that recovers VPD from t2m and d2m gets the truth back. The soil layer is the world's
soil-chamber drivers (:meth:`fluxscape.sample.world.World.soil_state`: the daily mean of the
5 cm soil temperature, a lagged and damped air temperature, and the 10 cm soil moisture).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.sample.world import World

RESOLUTION = 0.1
MARGIN_DEG = 0.3


def dewpoint_from_vapour_pressure(ea_hpa: np.ndarray) -> np.ndarray:
    """Dewpoint (degC) from vapour pressure (hPa), inverse of the Magnus formula used by the
    world (es = 6.1078 exp(17.27 T / (T + 237.3)))."""
    g = np.log(np.maximum(ea_hpa, 1e-6) / 6.1078)
    return 237.3 * g / (17.27 - g)


def meteo_grid(bbox: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre longitudes (west to east) and latitudes (north to south) of the grid."""
    w, s, e, n = bbox
    lon = np.round(np.arange(np.floor((w - MARGIN_DEG) * 10) / 10, e + MARGIN_DEG, RESOLUTION), 2)
    lat = np.round(np.arange(np.ceil((n + MARGIN_DEG) * 10) / 10, s - MARGIN_DEG, -RESOLUTION), 2)
    return lon, lat


def write_meteo(world: World, out: Path) -> list[Path]:
    """Write one ERA5-like daily NetCDF per year of the world into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    lon, lat = meteo_grid(world.preset.bbox)
    glon, glat = np.meshgrid(lon, lat)
    paths = []
    for year in world.preset.years:
        dates = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
        met = world.meteo(glon, glat, dates)
        soil = world.soil_state(glon, glat, dates)
        ta = np.moveaxis(met["TA_F"], -1, 0)
        vpd = np.moveaxis(met["VPD_F"], -1, 0)
        es = 6.1078 * np.exp(17.27 * ta / (ta + 237.3))
        td = dewpoint_from_vapour_pressure(es - vpd)
        dims = ("valid_time", "latitude", "longitude")
        ds = xr.Dataset(
            {
                "t2m": (
                    dims,
                    (ta + 273.15).astype("f4"),
                    _attrs("2 metre temperature", "K", "air_temperature", "mean"),
                ),
                "d2m": (
                    dims,
                    (td + 273.15).astype("f4"),
                    _attrs("2 metre dewpoint temperature", "K", "dew_point_temperature", "mean"),
                ),
                "ssrd": (
                    dims,
                    (np.moveaxis(met["SW_IN_F"], -1, 0) * 86400.0).astype("f4"),
                    _attrs(
                        "Surface short-wave (solar) radiation downwards",
                        "J m**-2",
                        "surface_downwelling_shortwave_flux_in_air",
                        "sum",
                    ),
                ),
                "tp": (
                    dims,
                    (np.moveaxis(met["P_F"], -1, 0) / 1000.0).astype("f4"),
                    _attrs("Total precipitation", "m", "precipitation_amount", "sum"),
                ),
                "stl1": (
                    dims,
                    (np.moveaxis(soil["t5"], -1, 0) + 273.15).astype("f4"),
                    _attrs("Soil temperature level 1", "K", "soil_temperature", "mean"),
                ),
                "swvl1": (
                    dims,
                    np.moveaxis(soil["sm10"], -1, 0).astype("f4"),
                    _attrs(
                        "Volumetric soil water layer 1",
                        "m**3 m**-3",
                        "volume_fraction_of_condensed_water_in_soil",
                        "mean",
                    ),
                ),
            },
            coords={
                "valid_time": ("valid_time", dates, {"long_name": "time", "standard_name": "time"}),
                "latitude": (
                    "latitude",
                    lat,
                    {"units": "degrees_north", "standard_name": "latitude"},
                ),
                "longitude": (
                    "longitude",
                    lon,
                    {"units": "degrees_east", "standard_name": "longitude"},
                ),
            },
            attrs={
                "Conventions": "CF-1.7",
                "institution": "fluxscape sample world",
                "title": "ERA5-like daily single-level fields (sample world truth)",
                "history": "written by fluxscape.sample.meteo_writer",
            },
        )
        path = out / f"era5_daily_{year}.nc"
        encoding = {v: {"zlib": True, "complevel": 4} for v in ds.data_vars}
        ds.to_netcdf(path, encoding=encoding)
        paths.append(path)
    return paths


def _attrs(long_name: str, units: str, standard_name: str, method: str) -> dict:
    return {
        "long_name": long_name,
        "units": units,
        "standard_name": standard_name,
        "cell_methods": f"valid_time: {method}",
    }
