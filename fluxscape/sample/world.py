"""The sample world's truth: land cover, phenology, reflectance, weather and tower fluxes.

Everything is an analytic, deterministic function of (lon, lat, date) and the seed, so that the
files written in real formats and the tests that check the pipeline agree on the same truth at
any pixel. Dates are ``numpy.datetime64``; longitudes/latitudes in degrees (EPSG:4326).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: Land-cover classes (IGBP codes) and their parameters: NDVI minimum and maximum, light-use
#: efficiency (gC MJ-1 of absorbed PAR) and reference respiration at 15 degC (gC m-2 d-1).
LAND_COVER = {
    "DBF": {"code": 4, "vmin": 0.25, "vmax": 0.88, "lue": 1.35, "rref": 2.6},
    "ENF": {"code": 1, "vmin": 0.55, "vmax": 0.82, "lue": 1.05, "rref": 2.2},
    "CRO": {"code": 12, "vmin": 0.18, "vmax": 0.80, "lue": 1.55, "rref": 2.0},
    "GRA": {"code": 10, "vmin": 0.22, "vmax": 0.72, "lue": 1.15, "rref": 1.8},
}
LC_NAMES = list(LAND_COVER)


@dataclass(frozen=True)
class Preset:
    """A sample region: bbox [W, S, E, N] in degrees, years, number of towers."""

    name: str
    bbox: tuple[float, float, float, float]
    years: tuple[int, ...]
    n_towers: int
    description: str = ""


PRESETS = {
    "demo": Preset(
        "demo",
        (138.0, 35.5, 139.0, 36.5),
        (2021, 2022),
        12,
        "1 degree around the Kanto-Chubu mountains, central Japan",
    ),
    "demo-4x": Preset(
        "demo-4x",
        (137.5, 35.0, 139.5, 37.0),
        (2021, 2022),
        8,
        "2 x 2 degrees (4x the demo area), crossing MODIS tiles h28v05/h29v05",
    ),
}


@dataclass(frozen=True)
class World:
    """The truth generator for one preset and seed."""

    preset: Preset
    seed: int = 42
    _coef: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        # Smooth random fields: sums of a few plane waves with random wave numbers and phases.
        for name in ("lc_a", "lc_b", "sos", "eos", "elev", "bright"):
            self._coef[name] = (
                rng.uniform(0.8, 3.0, size=(4, 2)) * rng.choice([-1, 1], size=(4, 2)),
                rng.uniform(0, 2 * np.pi, size=4),
                rng.uniform(0.5, 1.0, size=4),
            )
        self._coef["year_shift"] = {y: float(rng.normal(0, 4)) for y in self.preset.years}

    # --- static fields ---------------------------------------------------------------------

    def _field(self, name: str, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """A smooth field in [-1, 1] (about 0.3-1 degree wavelengths)."""
        k, phase, amp = self._coef[name]
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        total = sum(
            a * np.sin(2 * np.pi * (kx * lon + ky * lat) + p)
            for (kx, ky), p, a in zip(k, phase, amp, strict=True)
        )
        return np.clip(total / amp.sum() * 1.6, -1, 1)

    def land_cover(self, lon, lat) -> np.ndarray:
        """Index into :data:`LC_NAMES` for each location (int array)."""
        a = self._field("lc_a", lon, lat)
        b = self._field("lc_b", lon, lat)
        return np.where(a > 0.1, np.where(b > 0.2, 1, 0), np.where(b > -0.1, 2, 3)).astype(int)

    def elevation(self, lon, lat) -> np.ndarray:
        """Pseudo elevation in metres (0-2500) that delays spring and cools the air."""
        return 1250 + 1250 * self._field("elev", lon, lat)

    def phenology(self, lon, lat, year: int) -> dict[str, np.ndarray]:
        """Double-logistic parameters per location for ``year``: sos/eos (day of year of the
        inflection points), k1/k2 (1/day), vmin/vmax (NDVI)."""
        lc = self.land_cover(lon, lat)
        elev = self.elevation(lon, lat)
        shift = self._coef["year_shift"].get(year, 0.0)
        vmin = np.choose(lc, [LAND_COVER[n]["vmin"] for n in LC_NAMES])
        vmax = np.choose(lc, [LAND_COVER[n]["vmax"] for n in LC_NAMES])
        sos = 112 + 12 * self._field("sos", lon, lat) + elev / 100.0 + shift
        eos = 292 - 10 * self._field("eos", lon, lat) - elev / 150.0 + 0.5 * shift
        sos = np.where(lc == 2, sos + 25, sos)  # crops are sown later
        eos = np.where(lc == 2, eos - 40, eos)
        return {
            "sos": sos,
            "eos": eos,
            "k1": np.full_like(sos, 0.09),
            "k2": np.full_like(sos, 0.07),
            "vmin": vmin * np.ones_like(sos),
            "vmax": vmax * np.ones_like(sos),
        }

    # --- vegetation ------------------------------------------------------------------------

    def ndvi(self, lon, lat, dates) -> np.ndarray:
        """True NDVI at each location and date (broadcast: lon/lat shape + dates shape)."""
        dates = pd.DatetimeIndex(np.atleast_1d(dates))
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        out = np.empty(lon.shape + (len(dates),), dtype=float)
        for year in np.unique(dates.year):
            sel = np.flatnonzero(dates.year == year)
            p = self.phenology(lon, lat, int(year))
            doy = np.asarray(dates[sel].dayofyear, float)
            t = doy.reshape((1,) * lon.ndim + (-1,))
            e = {k: v[..., None] for k, v in p.items()}
            rise = 1 / (1 + np.exp(-e["k1"] * (t - e["sos"])))
            fall = 1 / (1 + np.exp(e["k2"] * (t - e["eos"])))
            out[..., sel] = e["vmin"] + (e["vmax"] - e["vmin"]) * (rise + fall - 1)
        return out

    def brightness(self, lon, lat) -> np.ndarray:
        """Red + NIR surface reflectance sum (0.40-0.52), a soil/canopy brightness field."""
        return 0.46 + 0.06 * self._field("bright", lon, lat)

    def reflectance(self, ndvi: np.ndarray, brightness: np.ndarray) -> dict[str, np.ndarray]:
        """Nadir surface reflectance (0-1) consistent with ``ndvi`` (same shape; ``brightness``
        broadcasts): ``blue`` 0.47 um, ``green`` 0.55, ``red`` 0.64, ``nir`` 0.86, ``swir16``
        1.6 and ``mir`` (= SWIR 2.1-2.3 um: MODIS b7, AHI B06, SGLI SW04)."""
        nir = brightness * (1 + ndvi) / 2
        red = brightness * (1 - ndvi) / 2
        return {
            "red": red,
            "nir": nir,
            "blue": 0.55 * red + 0.01,
            "green": 0.7 * red + 0.035,
            "swir16": 0.30 - 0.10 * ndvi,
            "mir": 0.6 * red + 0.04,
        }

    def fapar(self, ndvi: np.ndarray) -> np.ndarray:
        """Fraction of absorbed PAR from NDVI (unitless): 1.24 NDVI - 0.168, in [0, 0.95]."""
        return np.clip(1.24 * ndvi - 0.168, 0, 0.95)

    def lai(self, ndvi: np.ndarray) -> np.ndarray:
        """Leaf area index (m2 m-2) from fAPAR by Beer's law with k = 0.5."""
        return -np.log(1 - self.fapar(ndvi)) / 0.5

    def air_temperature(self, lon, lat, dates) -> np.ndarray:
        """Daily mean air temperature (degC), shape lon.shape + (len(dates),)."""
        dates = pd.DatetimeIndex(np.atleast_1d(dates))
        doy = np.asarray(dates.dayofyear, float)
        cloud = self._cloudiness(dates)
        elev = self.elevation(np.asarray(lon, float), np.asarray(lat, float))[..., None]
        return (
            14.0 - 11.5 * np.cos(2 * np.pi * (doy - 20) / 365) - 0.0055 * elev + 2.5 * (0.5 - cloud)
        )

    def land_surface_temperature(self, lon, lat, dates) -> np.ndarray:
        """Clear-sky daytime land surface temperature (K): air temperature plus a sensible-heat
        excess that is larger over sparse vegetation. Shape lon.shape + (len(dates),)."""
        ndvi = self.ndvi(lon, lat, dates)
        return self.air_temperature(lon, lat, dates) + 273.15 + 3.0 + 7.0 * (1 - ndvi)

    def xco2(self, lon, lat, dates) -> np.ndarray:
        """Column-averaged dry-air CO2 mole fraction (ppm): growth of 2.4 ppm per year, a
        northern-hemisphere seasonal cycle (minimum in August), a latitude gradient and an
        urban enhancement around Tokyo. Shape lon.shape + (len(dates),)."""
        return self._column(
            lon, lat, dates, base=413.0, growth=2.4, season=3.5, grad=0.15, plume=1.5
        )

    def xch4(self, lon, lat, dates) -> np.ndarray:
        """Column-averaged dry-air CH4 mole fraction (ppb), like :meth:`xco2`."""
        return self._column(
            lon, lat, dates, base=1895.0, growth=12.0, season=12.0, grad=2.0, plume=10.0
        )

    def _column(self, lon, lat, dates, base, growth, season, grad, plume) -> np.ndarray:
        dates = pd.DatetimeIndex(np.atleast_1d(dates))
        lon = np.asarray(lon, float)[..., None]
        lat = np.asarray(lat, float)[..., None]
        years = np.asarray((dates - pd.Timestamp("2021-01-01")).days, float) / 365.25
        doy = np.asarray(dates.dayofyear, float)
        d2 = (lon - 139.7) ** 2 + (lat - 35.7) ** 2
        return (
            base
            + growth * years
            + season * np.cos(2 * np.pi * (doy - 135) / 365)
            + grad * (lat - 36.0)
            + plume * np.exp(-d2 / 0.35**2)
        )

    def _cloudiness(self, dates: pd.DatetimeIndex) -> np.ndarray:
        """Daily regional cloudiness in [0, 1] (one synoptic sequence for the whole region)."""
        rng = np.random.default_rng(self.seed + 7)
        days = (dates - pd.Timestamp("2000-01-01")).days.to_numpy()
        return rng.beta(2.0, 3.0, size=days.max() + 1)[days]

    # --- weather and fluxes ----------------------------------------------------------------

    def meteo(self, lon, lat, dates) -> dict[str, np.ndarray]:
        """True daily weather on any lon/lat array: ``TA_F`` (degC), ``SW_IN_F`` (W m-2),
        ``SW_IN_POT`` (W m-2), ``VPD_F`` (hPa), ``P_F`` (mm d-1), each of shape
        lon.shape + (len(dates),). Cloudiness is shared across the region (one synoptic
        sequence); radiation decreases northwards, temperature with elevation."""
        dates = pd.DatetimeIndex(np.atleast_1d(dates))
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        doy = np.asarray(dates.dayofyear, float)
        cloud = self._cloudiness(dates) + 0.15 * np.sin(2 * np.pi * (doy - 100) / 365) ** 8
        cloud = np.clip(cloud, 0, 1)
        ta = self.air_temperature(lon, lat, dates)
        sw_pot = 250 + 150 * np.sin(2 * np.pi * (doy - 80) / 365) - 3.0 * (lat[..., None] - 36)
        sw = sw_pot * (1 - 0.7 * cloud)
        es = 6.1078 * np.exp(17.27 * ta / (ta + 237.3))
        vpd = es * (0.45 - 0.3 * cloud)
        precip = np.broadcast_to(np.where(cloud > 0.55, 25 * (cloud - 0.55), 0.0), ta.shape)
        return {"TA_F": ta, "SW_IN_F": sw, "SW_IN_POT": sw_pot / 0.75, "VPD_F": vpd, "P_F": precip}

    def weather(self, lon: float, lat: float, dates) -> pd.DataFrame:
        """Daily true weather at one location (columns as :meth:`meteo`), indexed by date."""
        dates = pd.DatetimeIndex(dates)
        met = self.meteo(np.array(lon), np.array(lat), dates)
        return pd.DataFrame({k: np.asarray(v).reshape(-1) for k, v in met.items()}, index=dates)

    def fluxes(self, lon, lat, dates) -> dict[str, np.ndarray]:
        """True daily ``GPP``, ``RECO`` and ``NEE`` (gC m-2 d-1) and ``NDVI`` on any lon/lat
        array, shape lon.shape + (len(dates),).

        GPP follows a light-use-efficiency model: LUE(land cover) x fAPAR(NDVI) x PAR x f(T) x
        f(VPD), with fAPAR = 1.24 NDVI - 0.168 and PAR = 0.45 SW_IN (MJ m-2 d-1).
        RECO follows Lloyd-Taylor on air temperature plus 20 % of GPP; NEE = RECO - GPP.
        """
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        met = self.meteo(lon, lat, dates)
        lc = self.land_cover(lon, lat)[..., None]
        ndvi = self.ndvi(lon, lat, dates)
        par = 0.45 * met["SW_IN_F"] * 0.0864
        f_t = np.clip((met["TA_F"] + 2) / 12, 0, 1)
        f_vpd = np.clip(1 - (met["VPD_F"] - 8) / 30, 0.3, 1)
        lue = np.choose(lc, [LAND_COVER[n]["lue"] for n in LC_NAMES])
        rref = np.choose(lc, [LAND_COVER[n]["rref"] for n in LC_NAMES])
        gpp = lue * self.fapar(ndvi) * par * f_t * f_vpd
        ta = met["TA_F"]
        reco = rref * np.exp(308.56 * (1 / 56.02 - 1 / (ta + 46.02))) + 0.2 * gpp
        return {"NDVI": ndvi, "GPP": gpp, "RECO": reco, "NEE": reco - gpp}

    def tower_fluxes(self, lon: float, lat: float, dates) -> pd.DataFrame:
        """Daily true weather plus NDVI, GPP, RECO and NEE (gC m-2 d-1) at one location (see
        :meth:`fluxes`), indexed by date."""
        dates = pd.DatetimeIndex(dates)
        out = self.weather(lon, lat, dates)
        for name, values in self.fluxes(np.array(lon), np.array(lat), dates).items():
            out[name] = np.asarray(values).reshape(-1)
        return out

    # --- towers ----------------------------------------------------------------------------

    def towers(self) -> pd.DataFrame:
        """Tower sites inside the region, at least 0.12 degrees from its edges: site_id, name,
        lat, lon, igbp."""
        w, s, e, n = self.preset.bbox
        rng = np.random.default_rng(self.seed + 1)
        rows = []
        margin = 0.12
        while len(rows) < self.preset.n_towers:
            lon = round(float(rng.uniform(w + margin, e - margin)), 4)
            lat = round(float(rng.uniform(s + margin, n - margin)), 4)
            # Keep towers inside homogeneous land cover (no class change within 0.03 deg),
            # as real sites are chosen for a homogeneous footprint.
            ring = np.linspace(0, 2 * np.pi, 12, endpoint=False)
            around = self.land_cover(lon + 0.03 * np.cos(ring), lat + 0.03 * np.sin(ring))
            lc_index = int(self.land_cover(lon, lat))
            if np.any(around != lc_index):
                continue
            i = len(rows)
            rows.append(
                {
                    "site_id": f"JP-SW{i + 1}",
                    "name": f"Sample world tower {i + 1}",
                    "lat": lat,
                    "lon": lon,
                    "igbp": LC_NAMES[lc_index],
                }
            )
        return pd.DataFrame(rows)

    def dates(self) -> pd.DatetimeIndex:
        """Every day of the preset's years."""
        y0, y1 = min(self.preset.years), max(self.preset.years)
        return pd.date_range(f"{y0}-01-01", f"{y1}-12-31", freq="D")
