"""The sample world's truth: land cover, phenology, reflectance, weather and tower fluxes, and
the events a monitoring system should find.

- Phenology: one double-logistic season a year, or two on double-cropped lowland fields
  (winter wheat then paddy rice, :meth:`World.double_crop`); see :meth:`World.phenology`.
- Disturbances (:meth:`World.disturbance`): forest patches cleared or burnt on known days of
  the preset's ``event_year``, with a known NDVI drop that recovers exponentially; fires also
  char the surface, so NBR drops more (:meth:`World.char`, :meth:`World.nbr`). Towers are
  never disturbed, so their fluxes stay clean.
- A heat wave (:meth:`World.heat_wave`): a known LST anomaly over a disc for 12 days.

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
NDVI_FLOOR = 0.05  # NDVI of a cleared or burnt patch never goes below this
FOREST = (LC_NAMES.index("DBF"), LC_NAMES.index("ENF"))
#: Elevation (m) below which croplands grow two crops a year: winter wheat (green-up in March,
#: senescence in late May) then paddy rice (green-up in July, senescence in late September);
#: the valley between them lasts about 55 days, three 16-day composites.
DOUBLE_CROP_BELOW_M = 580.0
#: Disturbance kinds of :meth:`World.disturbance` (``kind`` values).
DISTURBANCE_KINDS = {0: "none", 1: "clearing", 2: "fire"}
#: Temperature sensitivity of the sample world's soil CO2 efflux (Q10, unitless).
SOIL_Q10 = 2.3
#: Soil respiration at 10 degC (umol m-2 s-1) of each forest class: the chamber sites' R10
#: scatter +-15 % around it; the gridded truth (:meth:`World.soil_flux_map`) uses it as is.
SOIL_R10 = {"DBF": 2.4, "ENF": 1.9}
#: Sources a preset can write (``fluxscape sample-data``).
ALL_SOURCES = ("modis", "towers", "gosat", "sgli", "ahi", "meteo")
#: Soil-chamber sites a preset with the ``chambers`` source writes (COSORE datasets).
N_CHAMBER_SITES = 15


@dataclass(frozen=True)
class Preset:
    """A sample region: bbox [W, S, E, N] in degrees, years, number of towers."""

    name: str
    bbox: tuple[float, float, float, float]
    years: tuple[int, ...]
    n_towers: int
    description: str = ""
    #: Forest patches cleared or burnt in ``event_year`` (see :meth:`World.disturbance`).
    n_disturbances: int = 0
    #: Year of the disturbances and of the heat wave (None: no events).
    event_year: int | None = None
    #: A heat wave (a known LST anomaly, see :meth:`World.heat_wave`) in ``event_year``.
    heat_wave: bool = False
    #: Lowland croplands grow two crops a year (see :data:`DOUBLE_CROP_BELOW_M`).
    double_crop: bool = True
    #: Sources written: any of ALL_SOURCES, plus ``burned_area`` (MODIS MCD64A1 monthly tiles),
    #: ``modis_lst`` (MODIS MOD11A2 8-day LST tiles, beside the VI tiles in ``modis/``) and
    #: ``ahi_ptree`` (AHI P-Tree NetCDF only, 02:30 UTC every 2nd day of all years, for LST)
    #: and ``landcover`` (MODIS MCD12Q1 annual land-cover tiles, 500 m), ``modis_sr`` (MODIS
    #: MOD09A1 8-day surface-reflectance tiles, 500 m, in ``reflectance/``) and ``modis_lai``
    #: (MODIS MCD15A2H 8-day LAI/FPAR tiles, 500 m, in ``lai/``) and ``topdown`` (a
    #: CarbonTracker-like monthly 1-degree inversion NetCDF with a known injected difference,
    #: in ``topdown/``; :mod:`fluxscape.sample.topdown_writer`), ``chambers`` (COSORE
    #: soil-chamber datasets) and ``dem`` (a 30 arc-second CF NetCDF DEM in ``dem/``).
    sources: tuple[str, ...] = ALL_SOURCES


PRESETS = {
    "demo": Preset(
        "demo",
        (138.0, 35.5, 139.0, 36.5),
        (2021, 2022),
        12,
        "1 degree around the Kanto-Chubu mountains, central Japan",
        n_disturbances=6,
        event_year=2022,
        heat_wave=True,
        sources=(*ALL_SOURCES, "landcover", "topdown"),
    ),
    "demo-4x": Preset(
        "demo-4x",
        (137.5, 35.0, 139.5, 37.0),
        (2021, 2022),
        8,
        "2 x 2 degrees (4x the demo area), crossing MODIS tiles h28v05/h29v05",
        n_disturbances=12,
        event_year=2022,
        heat_wave=True,
        sources=(*ALL_SOURCES, "landcover"),
    ),
    # The demo plus MOD09A1 reflectance and MCD15A2H LAI/FPAR: same seed, same files for the
    # demo's sources (one random stream per source), 8-day 500 m tiles on top.
    "demo-rs": Preset(
        "demo-rs",
        (138.0, 35.5, 139.0, 36.5),
        (2021, 2022),
        12,
        "the demo region and years, plus MODIS MOD09A1 8-day surface reflectance and MCD15A2H "
        "8-day LAI/FPAR (500 m)",
        n_disturbances=6,
        event_year=2022,
        heat_wave=True,
        sources=(*ALL_SOURCES, "landcover", "topdown", "modis_sr", "modis_lai"),
    ),
    "disturbance": Preset(
        "disturbance",
        (138.6, 35.0, 139.0, 35.4),
        tuple(range(2017, 2023)),
        0,
        "0.4 degree of forest and fields, stable 2017-2021 history, forest clearings and "
        "fires in 2022, a heat wave in summer 2022 (MODIS VI, MOD11A2 LST and MCD64A1 burned "
        "area, and AHI P-Tree scenes at 02:30 UTC every 2nd day for AHI LST)",
        n_disturbances=8,
        event_year=2022,
        heat_wave=True,
        sources=("modis", "burned_area", "modis_lst", "ahi_ptree"),
    ),
    # Near-real-time alerts: hourly AHI B07/B14 fire scenes over four days of the 2023 fire
    # season in Central Kalimantan (:mod:`fluxscape.sample.fire_writer`).
    "nrt": Preset(
        "nrt",
        (113.0, -3.5, 115.0, -1.5),
        (2023,),
        0,
        "2 x 2 degrees of peat and savanna in Central Kalimantan, hourly Himawari-9 AHI B07 "
        "(3.9 um) and B14 (11.2 um) scenes of 2023-09-14..17 with fires of known start, size "
        "and temperature, drifting clouds and a sun-glint trap (a lake near the specular point)",
        sources=("ahi_fire",),
    ),
    # Soil chambers with the grid's drivers: the demo region and 2021 only, so the demo's
    # files and run time do not change (COSORE CSVs of 15 sites x 5 ports, 2-hourly, are
    # ~30 MB a year). MODIS VI, meteorology (and the regions GeoJSON) and land cover are the
    # soil_flux product's predictors and forest mask (workflows/soil-ghg.yaml).
    "soil": Preset(
        "soil",
        (138.0, 35.5, 139.0, 36.5),
        (2021,),
        0,
        "the demo region in 2021: 15 forest soil-chamber sites in COSORE layout (4 control "
        "ports and a trenched Rh port each; soil CO2 efflux and CH4 uptake), with MODIS "
        "MOD13A2 VI, ERA5-like meteorology (with soil temperature and moisture), MCD12Q1 land "
        "cover and a 30 arc-second DEM as gridded predictors",
        sources=("chambers", "modis", "meteo", "landcover", "dem"),
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
        # Later additions draw from their own stream so the fields above never change.
        extra = np.random.default_rng([self.seed, 1])
        for name in ("crop1", "crop2"):
            self._coef[name] = (
                extra.uniform(0.8, 3.0, size=(4, 2)) * extra.choice([-1, 1], size=(4, 2)),
                extra.uniform(0, 2 * np.pi, size=4),
                extra.uniform(0.5, 1.0, size=4),
            )
        self._coef["events"] = self._draw_events(np.random.default_rng([self.seed, 2]))
        self._coef["heat"] = self._draw_heat_wave(np.random.default_rng([self.seed, 3]))

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

    def double_crop(self, lon, lat) -> np.ndarray:
        """True where the land grows two crops a year (lowland croplands, bool array)."""
        if not self.preset.double_crop:
            return np.zeros(np.shape(lon), bool)
        lc = self.land_cover(lon, lat)
        return (lc == LC_NAMES.index("CRO")) & (self.elevation(lon, lat) < DOUBLE_CROP_BELOW_M)

    def phenology(self, lon, lat, year: int) -> dict[str, np.ndarray]:
        """Double-logistic parameters per location for ``year``: sos/eos (day of year of the
        inflection points), k1/k2 (1/day), vmin/vmax (NDVI) of the first season, and
        sos2/eos2/k1_2/k2_2/vmax2 of a second season (NaN where there is one season only, see
        :meth:`double_crop`); ``seasons`` is 1 or 2. On double-crop pixels the first season is
        winter wheat and the second paddy rice, each a double logistic on the same base."""
        lc = self.land_cover(lon, lat)
        elev = self.elevation(lon, lat)
        shift = self._coef["year_shift"].get(year, 0.0)
        vmin = np.choose(lc, [LAND_COVER[n]["vmin"] for n in LC_NAMES])
        vmax = np.choose(lc, [LAND_COVER[n]["vmax"] for n in LC_NAMES])
        sos = 112 + 12 * self._field("sos", lon, lat) + elev / 100.0 + shift
        eos = 292 - 10 * self._field("eos", lon, lat) - elev / 150.0 + 0.5 * shift
        sos = np.where(lc == 2, sos + 25, sos)  # crops are sown later
        eos = np.where(lc == 2, eos - 40, eos)
        k1, k2 = np.full_like(sos, 0.09), np.full_like(sos, 0.07)
        two = self.double_crop(lon, lat)
        f1, f2 = self._field("crop1", lon, lat), self._field("crop2", lon, lat)
        sos = np.where(two, 80 + 6 * f1 + elev / 150.0 + shift, sos)
        eos = np.where(two, 146 - 4 * f2 + 0.5 * shift, eos)
        k1, k2 = np.where(two, 0.12, k1), np.where(two, 0.12, k2)
        vmax = np.where(two, 0.66, vmax)
        nan = np.full_like(sos, np.nan)
        return {
            "sos": sos,
            "eos": eos,
            "k1": k1,
            "k2": k2,
            "vmin": vmin * np.ones_like(sos),
            "vmax": vmax * np.ones_like(sos),
            "sos2": np.where(two, 203 + 5 * f2 + 0.5 * shift, nan),
            "eos2": np.where(two, 270 - 7 * f1 + 0.5 * shift, nan),
            "k1_2": np.where(two, 0.12, nan),
            "k2_2": np.where(two, 0.08, nan),
            "vmax2": np.where(two, 0.80, nan),
            "seasons": np.where(two, 2.0, 1.0),
        }

    # --- events: disturbance patches and a heat wave ---------------------------------------

    def _draw_events(self, rng: np.random.Generator) -> list[dict]:
        """Forest patches (discs intersected with forest) cleared or burnt in the event year,
        away from each other, the region's edges and the towers. Every second one is a fire."""
        p = self.preset
        if not p.n_disturbances or p.event_year is None:
            return []
        w, s, e, n = p.bbox
        towers = self.towers()
        ring = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        events: list[dict] = []
        for _ in range(20000):
            if len(events) == p.n_disturbances:
                break
            r = float(rng.uniform(0.025, 0.045))
            lon = float(rng.uniform(w + r + 0.02, e - r - 0.02))
            lat = float(rng.uniform(s + r + 0.02, n - r - 0.02))
            probe_lon = np.concatenate(
                [[lon], lon + 0.5 * r * np.cos(ring), lon + r * np.cos(ring)]
            )
            probe_lat = np.concatenate(
                [[lat], lat + 0.5 * r * np.sin(ring), lat + r * np.sin(ring)]
            )
            forest = np.isin(self.land_cover(probe_lon, probe_lat), FOREST)
            if not forest[:9].all() or forest.mean() < 0.75:
                continue
            if len(towers) and np.min(np.hypot(towers.lon - lon, towers.lat - lat)) < r + 0.06:
                continue
            if any(
                np.hypot(ev["lon"] - lon, ev["lat"] - lat) < r + ev["radius"] + 0.03
                for ev in events
            ):
                continue
            fire = len(events) % 2 == 1
            severity = float(rng.uniform(0.2, 1.0)) if fire else 0.0
            doy = int(rng.integers(160, 241) if fire else rng.integers(110, 251))
            events.append(
                {
                    "kind": "fire" if fire else "clearing",
                    "lon": lon,
                    "lat": lat,
                    "radius": r,
                    "date": str(np.datetime64(f"{p.event_year}-01-01") + doy - 1),
                    "ndvi_drop": 0.2 + 0.3 * severity if fire else float(rng.uniform(0.2, 0.5)),
                    "recovery_years": float(rng.uniform(1.0, 3.0)),
                    "char": severity,
                }
            )
        else:
            raise RuntimeError(f"preset {p.name}: no room for {p.n_disturbances} disturbances")
        return events

    def _draw_heat_wave(self, rng: np.random.Generator) -> dict | None:
        p = self.preset
        if not p.heat_wave or p.event_year is None:
            return None
        w, s, e, n = p.bbox
        start = np.datetime64(f"{p.event_year}-07-01") + int(rng.integers(10, 35))
        return {
            "lon": float(rng.uniform(w + 0.3 * (e - w), e - 0.3 * (e - w))),
            "lat": float(rng.uniform(s + 0.3 * (n - s), n - 0.3 * (n - s))),
            "radius": 0.3 * min(e - w, n - s),
            "first": str(start),
            "last": str(start + 11),
            "lst_anomaly_k": 6.0,
        }

    def events(self) -> dict:
        """The preset's events as plain data (for ``truth/world.json``): ``disturbances`` (kind,
        centre lon/lat and radius in degrees, date, ndvi_drop, recovery_years, char) and
        ``heat_wave`` (centre, radius, first/last day, lst_anomaly_k) or None."""
        return {"disturbances": list(self._coef["events"]), "heat_wave": self._coef["heat"]}

    def _event_masks(self, lon, lat) -> list[tuple[dict, np.ndarray]]:
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        if not self._coef["events"]:
            return []
        forest = np.isin(self.land_cover(lon, lat), FOREST)
        return [
            (ev, forest & (np.hypot(lon - ev["lon"], lat - ev["lat"]) <= ev["radius"]))
            for ev in self._coef["events"]
        ]

    @staticmethod
    def _recovery(ev: dict, dates: pd.DatetimeIndex) -> np.ndarray:
        """exp(-(t - t0) / tau) after the event (1 on its day), 0 before; shape (dates,)."""
        days = (dates.values.astype("datetime64[D]") - np.datetime64(ev["date"])).astype(float)
        tau = 365.25 * ev["recovery_years"]
        return np.where(days >= 0, np.exp(-np.maximum(days, 0) / tau), 0.0)

    def disturbance(self, lon, lat) -> dict[str, np.ndarray]:
        """Disturbance truth per location (the preset's ``event_year``): ``disturbed`` (bool),
        ``kind`` (int, :data:`DISTURBANCE_KINDS`), ``date`` (day of year of the onset, NaN where
        none), ``magnitude`` (NDVI change on the onset day, negative), ``dnbr`` (NBR before minus
        NBR just after the onset, unitless), ``recovery_years`` (e-folding time of the
        recovery) and ``edge_distance`` (degrees from the nearest patch boundary; inf without
        patches). A patch is a disc intersected with forest (DBF, ENF); NDVI drops by
        ``ndvi_drop`` on the onset day and recovers exponentially; fires also char the surface
        (darker red/NIR, brighter SWIR), so NBR drops more than NDVI alone explains."""
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        nan = np.full(lon.shape, np.nan)
        out = {
            "disturbed": np.zeros(lon.shape, bool),
            "kind": np.zeros(lon.shape, np.int8),
            "date": nan.copy(),
            "magnitude": nan.copy(),
            "dnbr": nan.copy(),
            "recovery_years": nan.copy(),
            "edge_distance": np.full(lon.shape, np.inf),
        }
        bright = self.brightness(lon, lat)
        for ev, mask in self._event_masks(lon, lat):
            d = np.abs(np.hypot(lon - ev["lon"], lat - ev["lat"]) - ev["radius"])
            out["edge_distance"] = np.minimum(out["edge_distance"], d)
            if not mask.any():
                continue
            day = pd.Timestamp(ev["date"])
            before = self._ndvi_undisturbed(lon, lat, pd.DatetimeIndex([day]))[..., 0]
            after = np.maximum(before - ev["ndvi_drop"], NDVI_FLOOR)
            nbr0 = _nbr(self.reflectance(before, bright))
            nbr1 = _nbr(self.reflectance(after, bright, char=ev["char"]))
            out["disturbed"] |= mask
            out["kind"] = np.where(mask, 2 if ev["kind"] == "fire" else 1, out["kind"])
            for key, value in (
                ("date", day.dayofyear),
                ("magnitude", after - before),
                ("dnbr", nbr0 - nbr1),
                ("recovery_years", ev["recovery_years"]),
            ):
                out[key] = np.where(mask, value, out[key])
        return out

    def char(self, lon, lat, dates) -> np.ndarray:
        """Fire char fraction (0-1) per location and date (lon.shape + (len(dates),)): the
        fire's severity on its day, recovering like NDVI; 0 outside fires."""
        dates = pd.DatetimeIndex(np.atleast_1d(dates))
        out = np.zeros(np.shape(lon) + (len(dates),))
        for ev, mask in self._event_masks(lon, lat):
            if ev["char"] > 0 and mask.any():
                out = np.where(mask[..., None], ev["char"] * self._recovery(ev, dates), out)
        return out

    def heat_wave(self, lon, lat, dates) -> np.ndarray:
        """Heat-wave LST anomaly truth (K) per location and date (lon.shape + (len(dates),)):
        ``lst_anomaly_k`` inside the heat wave's disc on its days, 0 elsewhere."""
        dates = pd.DatetimeIndex(np.atleast_1d(dates))
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        hw = self._coef["heat"]
        if hw is None:
            return np.zeros(lon.shape + (len(dates),))
        inside = np.hypot(lon - hw["lon"], lat - hw["lat"]) <= hw["radius"]
        days = (dates >= pd.Timestamp(hw["first"])) & (dates <= pd.Timestamp(hw["last"]))
        return hw["lst_anomaly_k"] * (inside[..., None] & np.asarray(days))

    def homogeneous(self, lon, lat, radius: float = 0.015) -> np.ndarray:
        """True where land cover, cropping (one or two seasons) and disturbance are the same at
        12 points on a circle of ``radius`` degrees around each location as at the location
        (pixels away from edges, where a resampled grid may take a neighbour's value)."""
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)

        def key(x, y):
            return (
                self.land_cover(x, y) * 100
                + self.double_crop(x, y) * 10
                + self.disturbance(x, y)["kind"]
            )

        centre = key(lon, lat)
        same = np.ones(lon.shape, bool)
        for a in np.linspace(0, 2 * np.pi, 12, endpoint=False):
            same &= key(lon + radius * np.cos(a), lat + radius * np.sin(a)) == centre
        return same

    # --- vegetation ------------------------------------------------------------------------

    def ndvi(self, lon, lat, dates) -> np.ndarray:
        """True NDVI at each location and date (broadcast: lon/lat shape + dates shape),
        disturbances included."""
        dates = pd.DatetimeIndex(np.atleast_1d(dates))
        out = self._ndvi_undisturbed(lon, lat, dates)
        for ev, mask in self._event_masks(lon, lat):
            if mask.any():
                drop = ev["ndvi_drop"] * self._recovery(ev, dates)
                out = np.where(mask[..., None], np.maximum(out - drop, NDVI_FLOOR), out)
        return out

    def _ndvi_undisturbed(self, lon, lat, dates: pd.DatetimeIndex) -> np.ndarray:
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
            value = e["vmin"] + (e["vmax"] - e["vmin"]) * (rise + fall - 1)
            two = np.isfinite(e["sos2"])
            if two.any():
                rise2 = 1 / (1 + np.exp(-e["k1_2"] * (t - e["sos2"])))
                fall2 = 1 / (1 + np.exp(e["k2_2"] * (t - e["eos2"])))
                second = (e["vmax2"] - e["vmin"]) * (rise2 + fall2 - 1)
                value = np.where(two, value + np.where(two, second, 0.0), value)
            out[..., sel] = value
        return out

    def brightness(self, lon, lat) -> np.ndarray:
        """Red + NIR surface reflectance sum (0.40-0.52), a soil/canopy brightness field."""
        return 0.46 + 0.06 * self._field("bright", lon, lat)

    def reflectance(
        self, ndvi: np.ndarray, brightness: np.ndarray, char=0.0
    ) -> dict[str, np.ndarray]:
        """Nadir surface reflectance (0-1) consistent with ``ndvi`` (same shape; ``brightness``
        and ``char`` broadcast): ``blue`` 0.47 um, ``green`` 0.55, ``red`` 0.64, ``nir`` 0.86,
        ``swir16`` 1.6 and ``mir`` (= SWIR 2.1-2.3 um: MODIS b7, AHI B06, SGLI SW04).
        ``char`` (0-1, :meth:`char`) darkens red and NIR alike (NDVI unchanged) and brightens
        SWIR, as ash and exposed soil after a fire do."""
        dark = 1 - 0.35 * np.asarray(char, float)
        nir = brightness * (1 + ndvi) / 2 * dark
        red = brightness * (1 - ndvi) / 2 * dark
        return {
            "red": red,
            "nir": nir,
            "blue": 0.55 * red + 0.01,
            "green": 0.7 * red + 0.035,
            "swir16": 0.30 - 0.10 * ndvi + 0.06 * np.asarray(char, float),
            "mir": 0.6 * red + 0.04 + 0.12 * np.asarray(char, float),
        }

    def nbr(self, lon, lat, dates) -> np.ndarray:
        """True normalized burn ratio (NIR - SWIR2) / (NIR + SWIR2) per location and date
        (lon.shape + (len(dates),)), fire char included."""
        bright = self.brightness(lon, lat)[..., None]
        return _nbr(
            self.reflectance(self.ndvi(lon, lat, dates), bright, self.char(lon, lat, dates))
        )

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
        excess that is larger over sparse vegetation, plus the heat wave's anomaly
        (:meth:`heat_wave`; the air and the towers do not see it).
        Shape lon.shape + (len(dates),)."""
        ndvi = self.ndvi(lon, lat, dates)
        air = self.air_temperature(lon, lat, dates)
        return air + 273.15 + 3.0 + 7.0 * (1 - ndvi) + self.heat_wave(lon, lat, dates)

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

    # --- soil chambers ----------------------------------------------------------------------

    def soil_drivers(self, lon: float, lat: float, times) -> pd.DataFrame:
        """Soil temperature at 5 cm (``t5``, degC) and volumetric soil moisture at 10 cm
        (``sm10``, m3 m-3) at local times ``times`` (tz-naive, local clock) at one place.

        T5: the daily air temperature damped by 0.85 around a 2 degC warmer mean, lagged
        8 days, plus a diurnal cycle of 2 degC amplitude peaking at 15:00. SM10: a seasonal
        cycle (wettest in early March) plus 0.08 x (the day's cloudiness - 0.4), in
        [0.08, 0.50].
        """
        times = pd.DatetimeIndex(np.atleast_1d(times))
        daily = self.soil_state(np.array(lon), np.array(lat), times.normalize())
        hour = np.asarray(times.hour + times.minute / 60.0, float)
        t5 = daily["t5"].reshape(-1) + 2.0 * np.cos(2 * np.pi * (hour - 15) / 24)
        return pd.DataFrame({"t5": t5, "sm10": daily["sm10"].reshape(-1)}, index=times)

    def soil_state(self, lon, lat, days) -> dict[str, np.ndarray]:
        """Daily means of the soil drivers of :meth:`soil_drivers` on any lon/lat array on
        the days ``days``: ``t5`` (soil temperature at 5 cm, degC: the diurnal cycle averages
        out) and ``sm10`` (volumetric soil moisture at 10 cm, m3 m-3, regional), each of
        shape lon.shape + (len(days),): what a reanalysis' top soil layer gives."""
        days = pd.DatetimeIndex(np.atleast_1d(days)).normalize()
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        ta = self.air_temperature(lon, lat, days - pd.Timedelta(days=8))
        doy = np.asarray(days.dayofyear, float)
        cloud = self._cloudiness(days)
        sm = 0.30 + 0.06 * np.cos(2 * np.pi * (doy - 60) / 365) + 0.08 * (cloud - 0.4)
        sm = np.broadcast_to(np.clip(sm, 0.08, 0.50), ta.shape)
        return {"t5": 2.0 + 0.85 * ta, "sm10": sm}

    @staticmethod
    def soil_co2_efflux(t5, sm10, r10: float, q10: float = SOIL_Q10) -> np.ndarray:
        """Soil CO2 efflux (umol m-2 s-1, positive to the atmosphere): R10 x Q10^((T5-10)/10)
        x f(SM), f(SM) = 1 - ((SM - 0.30) / 0.28)^2 clipped to [0.2, 1] (limited when dry
        and when saturated)."""
        f_sm = np.clip(1 - ((np.asarray(sm10) - 0.30) / 0.28) ** 2, 0.2, 1.0)
        return r10 * q10 ** ((np.asarray(t5) - 10.0) / 10.0) * f_sm

    @staticmethod
    def soil_ch4_flux(t5, sm10) -> np.ndarray:
        """Soil CH4 flux (nmol m-2 s-1, negative = uptake): -3 x 1.04^(T5-10) x
        clip(1 - (SM - 0.1) / 0.5, 0.1, 1): uptake rises with temperature and falls with
        wetness."""
        wet = np.clip(1 - (np.asarray(sm10) - 0.10) / 0.5, 0.1, 1.0)
        return -3.0 * 1.04 ** (np.asarray(t5) - 10.0) * wet

    def chamber_sites(self, n: int = 15) -> pd.DataFrame:
        """Forest soil-chamber sites inside the region (0.05 degrees from its edges):
        ``site`` (COSORE dataset name), ``name``, ``lat``, ``lon``, ``igbp`` (DBF/ENF),
        ``r10`` (umol m-2 s-1 at 10 degC: 2.4 DBF, 1.9 ENF, +-15 %), ``rh_fraction`` (share
        of heterotrophic respiration, seen by the trenched port)."""
        w, s, e, n_ = self.preset.bbox
        rng = np.random.default_rng([self.seed, 5])
        rows = []
        while len(rows) < n:
            lon = round(float(rng.uniform(w + 0.05, e - 0.05)), 4)
            lat = round(float(rng.uniform(s + 0.05, n_ - 0.05)), 4)
            lc = int(self.land_cover(lon, lat))
            if lc not in FOREST:
                continue
            i = len(rows) + 1
            base = SOIL_R10[LC_NAMES[lc]]
            rows.append(
                {
                    "site": f"d20210101_SAMPLE{i:02d}",
                    "name": f"Sample world chamber site {i}",
                    "lat": lat,
                    "lon": lon,
                    "igbp": LC_NAMES[lc],
                    "r10": round(base * float(rng.uniform(0.85, 1.15)), 3),
                    "rh_fraction": round(float(rng.uniform(0.45, 0.65)), 3),
                }
            )
        return pd.DataFrame(rows)

    def soil_flux_daily(self, site: pd.Series | dict, days) -> pd.DataFrame:
        """True daily means at a chamber site on the local days ``days``: ``rs`` (control
        soil CO2 efflux, umol m-2 s-1), ``ch4`` (nmol m-2 s-1), and the same in
        ``rs_gc`` (gC m-2 d-1) and ``ch4_mg`` (mgCH4 m-2 d-1): the mean of 48 half-hourly
        values (at hh:15 and hh:45) of :meth:`soil_co2_efflux` / :meth:`soil_ch4_flux`."""
        days = pd.DatetimeIndex(days)
        steps = pd.to_timedelta(np.arange(48) * 30 + 15, unit="min")
        times = (days.values[:, None] + steps.values[None, :]).reshape(-1)
        drv = self.soil_drivers(site["lon"], site["lat"], times)
        rs = self.soil_co2_efflux(drv["t5"], drv["sm10"], site["r10"]).reshape(len(days), 48)
        ch4 = self.soil_ch4_flux(drv["t5"], drv["sm10"]).reshape(len(days), 48)
        out = pd.DataFrame({"rs": rs.mean(axis=1), "ch4": ch4.mean(axis=1)}, index=days)
        out["rs_gc"] = out["rs"] * 12.011e-6 * 86400
        out["ch4_mg"] = out["ch4"] * 16.04e-6 * 86400
        return out

    def soil_flux_map(self, lon, lat, days, r10=None) -> dict[str, np.ndarray]:
        """True daily soil fluxes on any lon/lat array on the local days ``days``: ``rs_gc``
        (soil CO2 efflux, gC m-2 d-1) and ``ch4_mg`` (mgCH4 m-2 d-1), shape
        lon.shape + (len(days),); the same daily means as :meth:`soil_flux_daily` (48
        half-hourly values of :meth:`soil_co2_efflux` / :meth:`soil_ch4_flux` on
        :meth:`soil_drivers`) with R10 = ``r10`` (umol m-2 s-1, scalar or lon-shaped) or, by
        default, :data:`SOIL_R10` of the pixel's forest class; NaN outside forest (both gases; with
        ``r10`` given, NaN where it is).

        Soil temperature is a daily part plus a diurnal cycle common to every place, so each
        day's mean of Q10^((T5 - 10) / 10) is the daily part's factor times the mean of the
        diurnal factor (exact, no half-hourly cube in memory); moisture is regional."""
        days = pd.DatetimeIndex(np.atleast_1d(days))
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        if r10 is None:
            lc = self.land_cover(lon, lat)
            r10 = np.full(lc.shape, np.nan)
            for name, value in SOIL_R10.items():
                r10 = np.where(lc == LC_NAMES.index(name), value, r10)
        r10 = np.broadcast_to(np.asarray(r10, float), lon.shape)[..., None]
        state = self.soil_state(lon, lat, days)
        daily_t5, sm = state["t5"], state["sm10"]  # t5 less its diurnal cycle
        hour = (np.arange(48) * 30 + 15) / 60.0
        diurnal = 2.0 * np.cos(2 * np.pi * (hour - 15) / 24)
        rs = self.soil_co2_efflux(daily_t5, sm, 1.0) * np.mean(SOIL_Q10 ** (diurnal / 10.0))
        ch4 = self.soil_ch4_flux(daily_t5, sm) * np.mean(1.04**diurnal)
        ch4 = np.where(np.isfinite(r10), ch4, np.nan)  # forest soils only, as the CO2
        return {"rs_gc": r10 * rs * 12.011e-6 * 86400, "ch4_mg": ch4 * 16.04e-6 * 86400}

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
                    "site_id": f"JP-S{i + 1:02d}",  # FLUXNET ids: CC-XXX
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


def _nbr(refl: dict[str, np.ndarray]) -> np.ndarray:
    return (refl["nir"] - refl["mir"]) / (refl["nir"] + refl["mir"])
