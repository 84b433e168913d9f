"""Radiometry and viewing geometry shared by the readers, the products and the sample world:
Planck's law, its inverse, and the sun, geostationary-satellite and sun-glint angles.

Neutral ground (imports no stage), like :mod:`fluxscape.zonal`: the fire product needs these
to test and to estimate fire radiative power, and the sample world to make the scenes it is
tested on.
"""

from __future__ import annotations

import numpy as np

STEFAN_BOLTZMANN = 5.670374419e-8  # W m-2 K-4
_C1 = 1.191042972e-16  # 2 h c^2, W m2 sr-1
_C2 = 1.4387769e-2  # h c / k, m K


def planck_radiance(temperature_k, wavelength_um: float) -> np.ndarray:
    """Spectral radiance (W m-2 sr-1 um-1) of a black body at ``temperature_k`` (K)."""
    lam = wavelength_um * 1e-6
    t = np.asarray(temperature_k, float)
    with np.errstate(over="ignore", divide="ignore"):
        return _C1 / (lam**5 * np.expm1(_C2 / (lam * t))) * 1e-6


def brightness_temperature(radiance, wavelength_um: float) -> np.ndarray:
    """Inverse of :func:`planck_radiance`: K from W m-2 sr-1 um-1."""
    lam = wavelength_um * 1e-6
    rad = np.asarray(radiance, float) * 1e6
    with np.errstate(invalid="ignore", divide="ignore"):
        return _C2 / (lam * np.log1p(_C1 / (lam**5 * rad)))


def glint_angle(sza, saa, vza, vaa) -> np.ndarray:
    """Angle (degrees) between the view direction and the direction of specular reflection of
    the sun: ``cos g = cos vza cos sza - sin vza sin sza cos(phi)`` with ``phi`` the relative
    azimuth (view azimuth - solar azimuth; Giglio et al. 2003, eq. 4). 0 at the specular
    point. All angles in degrees, azimuths clockwise from north towards the sun and the
    satellite."""
    s, v = np.radians(sza), np.radians(vza)
    phi = np.radians(np.asarray(vaa, float) - np.asarray(saa, float))
    cos_g = np.cos(v) * np.cos(s) - np.sin(v) * np.sin(s) * np.cos(phi)
    return np.degrees(np.arccos(np.clip(cos_g, -1.0, 1.0)))


def view_geometry(time, lon, lat, sub_lon: float) -> dict[str, np.ndarray]:
    """Solar and geostationary-satellite angles (degrees) at ``time`` (UTC datetime) for
    points ``lon``/``lat`` (degrees): ``sza``, ``saa``, ``vza``, ``vaa`` and ``glint``. The
    satellite sits over the equator at ``sub_lon`` at 35 786 km (pyorbital's observer look
    and sun position)."""
    from pyorbital.astronomy import get_alt_az
    from pyorbital.orbital import get_observer_look

    lon = np.asarray(lon, float)
    lat = np.asarray(lat, float)
    t = np.full(lon.shape, np.datetime64(time, "us"))
    alt, az = get_alt_az(t, lon, lat)
    sza = 90.0 - np.degrees(alt)
    saa = np.degrees(az) % 360.0
    sat_az, sat_el = get_observer_look(
        np.full(lon.shape, sub_lon),
        np.zeros(lon.shape),
        np.full(lon.shape, 35786.0),
        t,
        lon,
        lat,
        np.zeros(lon.shape),
    )
    vza = 90.0 - np.asarray(sat_el, float)
    vaa = np.asarray(sat_az, float) % 360.0
    return {
        "sza": sza,
        "saa": saa,
        "vza": vza,
        "vaa": vaa,
        "glint": glint_angle(sza, saa, vza, vaa),
    }
