"""Sample-world Himawari AHI fire scenes: HSD segments of B07 (3.9 um) and B14 (11.2 um) with
fires of known start, duration, sub-pixel size and temperature, clouds and a sun-glint trap.

What is written (``out_dir`` is the ``ahi_fire`` folder of the sample world)::

    hsd/YYYY/MM/DD/hhmm/HS_H09_YYYYMMDD_hhmm_B{07,14}_R301_R20_S{ss}{tt}.DAT.bz2
    truth/fires.csv, truth/fire_scenes.csv

The ``nrt`` preset: a 2 x 2 degree peat and savanna landscape in Central Kalimantan (where the
Himawari wildfire products are much used), hourly scenes of 2023-09-14..17 (Himawari-9). The
files use the same target-area layout and real HSD header blocks as
:mod:`fluxscape.sample.ahi_writer` (IR calibration block: Planck constants, count-to-radiance
gain/offset, :data:`~fluxscape.sample.ahi_writer.IR_CALIBRATION`).

The truth, per native 2 km pixel (:func:`scene_truth`):

* clear land: an 11.2 um brightness temperature with a diurnal cycle (:func:`land_bt11`) and
  fixed spatial texture; at 3.9 um the surface emits about as at 11 um plus 1 K and, by day,
  reflects sunlight (reflectance 0.04-0.12, solar irradiance :data:`SOLAR_IRRADIANCE_B07`);
* fires (:func:`fires`): a fraction ``p`` of a pixel at ``temperature_k`` between ``start``
  and ``end``; the pixel's radiance in each band is ``(1 - p) L(background) + p L(fire)``
  (sub-pixel mixing of Planck radiances);
* clouds: a drifting smooth field covering about :data:`CLOUD_AMOUNT` of the region, cold
  (220-250 K at 11 um) and, by day, bright at 3.9 um (reflectance 0.15); partly cloudy edges
  mix radiances;
* a small lake (the glint trap, :data:`LAKE`): warm shallow water at 302.5 K whose 3.9 um
  signal by day includes specular sunlight, reflectance ``0.02 + 0.6 exp(-(g / 10 deg)^2)``
  (a rough, windy surface) at glint angle ``g``: near the specular geometry (06 UTC here,
  g about 7 deg) the lake is about 15 K warmer at 3.9 um than its shores, as a fire would
  be, and the contextual test alone calls it a fire; it never burns.

Noise: 0.15 K at 11 um, 0.2 K at 3.9 um.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from fluxscape.sample.ahi_writer import (
    TargetArea,
    _observation_window,
    bt_to_counts,
    hsd_name,
    target_area_for,
    write_hsd_file,
)
from fluxscape.sample.world import World

#: Days and UTC times of the ``nrt`` preset's scenes (hourly, four days).
FIRE_DAYS = ("2023-09-14", "2023-09-15", "2023-09-16", "2023-09-17")
FIRE_TIMES = tuple(f"{h:02d}:00" for h in range(24))
#: B07 / B14 as written: band -> central wavelength (um), 2 km.
FIRE_BANDS = {7: 3.8853, 14: 11.2392}
SUB_LON = 140.7
#: Band-averaged solar irradiance at the top of the atmosphere at 3.9 um (W m-2 um-1).
SOLAR_IRRADIANCE_B07 = 9.5
#: Share of the region under cloud (the field's threshold).
CLOUD_AMOUNT = 0.2
#: The glint trap: lake centre (lon, lat) and radius (km).
LAKE = (114.75, -1.75, 3.5)
#: Number of fires of the preset.
N_FIRES = 14
NOISE_T4_K, NOISE_T11_K = 0.2, 0.15


@dataclass(frozen=True)
class Fire:
    """A fire of the truth: centre lon/lat (degrees), burning from ``start`` to ``end`` (UTC,
    end exclusive), covering ``fraction`` of its pixel at ``temperature_k``."""

    id: str
    lon: float
    lat: float
    start: datetime
    end: datetime
    fraction: float
    temperature_k: float

    def burning(self, time: datetime) -> bool:
        return self.start <= time < self.end


def fires(world: World) -> list[Fire]:
    """The preset's fires (deterministic from the world's seed): :data:`N_FIRES` fires away
    from the lake and the region's edge, starting at any hour of the first three days, burning
    6-36 h, 0.3-2 % of a 2 km pixel (1.2-8 ha) at 650-1000 K."""
    rng = np.random.default_rng([world.seed, 2023, 915])
    w, s, e, n = world.preset.bbox
    t0 = datetime.fromisoformat(FIRE_DAYS[0])
    out = []
    while len(out) < N_FIRES:
        lon = float(rng.uniform(w + 0.15, e - 0.15))
        lat = float(rng.uniform(s + 0.15, n - 0.15))
        if np.hypot(lon - LAKE[0], lat - LAKE[1]) < 0.3:
            continue
        if any(np.hypot(lon - f.lon, lat - f.lat) < 0.15 for f in out):
            continue
        start = t0 + timedelta(hours=int(rng.integers(0, 72)), minutes=int(rng.integers(0, 60)))
        end = start + timedelta(hours=int(rng.integers(6, 37)))
        out.append(
            Fire(
                f"F{len(out) + 1:02d}",
                round(lon, 4),
                round(lat, 4),
                start,
                end,
                round(float(rng.uniform(0.003, 0.02)), 4),
                round(float(rng.uniform(650.0, 1000.0)), 1),
            )
        )
    return out


def _planck(t, wavelength_um):
    from fluxscape.radiometry import planck_radiance

    return planck_radiance(t, wavelength_um)


def _inverse_planck(rad, wavelength_um):
    from fluxscape.radiometry import brightness_temperature as radiance_to_bt

    return radiance_to_bt(rad, wavelength_um)


def land_bt11(local_hour: np.ndarray) -> np.ndarray:
    """Clear-land 11.2 um brightness temperature (K) at local solar hour: 297 K on average,
    +-8 K with the warmest at 13:30."""
    return 297.0 + 8.0 * np.cos(2 * np.pi * (np.asarray(local_hour) - 13.5) / 24.0)


@functools.lru_cache(maxsize=2)
def _static(world: World, area: TargetArea) -> dict:
    """Per-pixel static truth on the 2 km grid: lon, lat, texture (K), 3.9 um reflectance,
    lake mask."""
    from scipy.ndimage import gaussian_filter

    lon, lat = area.pixel_lonlat(2000)
    rng = np.random.default_rng([world.seed, 77])
    smooth = gaussian_filter(rng.standard_normal(lon.shape), 6.0)
    smooth /= smooth.std()
    texture = 1.5 * smooth + 0.5 * rng.standard_normal(lon.shape)
    rho = np.clip(
        0.08 + 0.02 * gaussian_filter(rng.standard_normal(lon.shape), 3.0) * 4, 0.04, 0.12
    )
    km = np.hypot((lon - LAKE[0]) * 111.0 * np.cos(np.radians(lat)), (lat - LAKE[1]) * 111.0)
    # The lake and its shores (30 km) stay clear, so that the trap is seen at every scene.
    clear = np.clip((km - 30.0) / 10.0, 0.0, 1.0)
    return {
        "lon": lon,
        "lat": lat,
        "texture": texture,
        "rho": rho,
        "lake": km < LAKE[2],
        "cloud_weight": clear,
    }


def _cloud_cover(world: World, lon, lat, time: datetime) -> tuple[np.ndarray, np.ndarray]:
    """Cloud cover fraction (0-1) and cloud-top temperature (K) at ``time``: a smooth random
    field per day drifting west (trade winds), threshold at :data:`CLOUD_AMOUNT`."""
    from scipy.ndimage import gaussian_filter, map_coordinates
    from scipy.special import ndtri

    day = time.date()
    rng = np.random.default_rng([world.seed, 99, day.toordinal()])
    step, pad = 0.02, 1.5
    w, s, e, n = world.preset.bbox
    nx, ny = int((e - w + 2 * pad) / step) + 1, int((n - s + 2 * pad) / step) + 1
    field = gaussian_filter(rng.standard_normal((ny, nx)), 5.0, mode="wrap")
    field = (field - field.mean()) / field.std()
    hours = time.hour + time.minute / 60.0
    col = (lon + 0.15 * hours - (w - pad)) / step
    row = (lat - (s - pad)) / step
    value = map_coordinates(field, [row.ravel(), col.ravel()], order=1, mode="grid-wrap")
    excess = value.reshape(lon.shape) - float(ndtri(1.0 - CLOUD_AMOUNT))
    cover = np.clip(excess / 0.3, 0.0, 1.0)
    top = 250.0 - 30.0 * np.clip(excess / 1.5, 0.0, 1.0)
    return cover, top


def scene_truth(world: World, area: TargetArea, nominal: datetime, rng=None) -> dict:
    """One scene on the native 2 km grid: ``bt07``, ``bt14`` (K, with noise when ``rng``),
    ``lon``, ``lat``, ``cloud`` (cover 0-1), ``lake``, ``glint`` (deg), ``sza`` (deg) and
    ``fire_pixels`` {fire id: (row, col)} of the fires burning at the scene's mid-time."""
    from fluxscape.radiometry import view_geometry

    st = _static(world, area)
    lon, lat = st["lon"], st["lat"]
    start, end = _observation_window(nominal)
    mid = start + (end - start) / 2
    geo = view_geometry(mid, lon, lat, SUB_LON)
    mu = np.cos(np.radians(np.minimum(geo["sza"], 90.0)))
    local = (nominal.hour + nominal.minute / 60.0 + lon / 15.0) % 24.0
    t11 = np.where(st["lake"], 302.5, land_bt11(local) + st["texture"])
    t4_emit = np.where(st["lake"], 301.5, t11 + 1.0)
    w4, w11 = FIRE_BANDS[7], FIRE_BANDS[14]
    rho = np.where(st["lake"], 0.02 + 0.6 * np.exp(-((geo["glint"] / 10.0) ** 2)), st["rho"])
    l4 = _planck(t4_emit, w4) + rho * SOLAR_IRRADIANCE_B07 * mu / np.pi
    l11 = _planck(t11, w11)
    fire_pixels = {}
    for f in fires(world):
        if not f.burning(mid):
            continue
        d = (lon - f.lon) ** 2 + ((lat - f.lat) * 1.0) ** 2
        r, c = np.unravel_index(np.argmin(d), d.shape)
        fire_pixels[f.id] = (int(r), int(c))
        p = f.fraction
        l4[r, c] = (1 - p) * l4[r, c] + p * _planck(f.temperature_k, w4)
        l11[r, c] = (1 - p) * l11[r, c] + p * _planck(f.temperature_k, w11)
    cover, top = _cloud_cover(world, lon, lat, mid)
    cover = cover * st["cloud_weight"]
    l4 = (1 - cover) * l4 + cover * (_planck(top, w4) + 0.15 * SOLAR_IRRADIANCE_B07 * mu / np.pi)
    l11 = (1 - cover) * l11 + cover * _planck(top, w11)
    bt07 = _inverse_planck(l4, w4)
    bt14 = _inverse_planck(l11, w11)
    if rng is not None:
        bt07 = bt07 + rng.normal(0.0, NOISE_T4_K, bt07.shape)
        bt14 = bt14 + rng.normal(0.0, NOISE_T11_K, bt14.shape)
    return {
        "bt07": bt07,
        "bt14": bt14,
        "lon": lon,
        "lat": lat,
        "cloud": cover,
        "lake": st["lake"],
        "glint": geo["glint"],
        "sza": geo["sza"],
        "fire_pixels": fire_pixels,
        "time": mid,
    }


def scene_times(days=FIRE_DAYS, times=FIRE_TIMES) -> list[datetime]:
    """Nominal times (UTC) of the scenes."""
    out = []
    for d in days:
        day = date.fromisoformat(str(d))
        for t in times:
            hh, mm = (int(v) for v in t.split(":"))
            out.append(datetime(day.year, day.month, day.day, hh, mm))
    return out


def write_fire_scenes(
    world: World,
    out_dir: str | Path,
    rng: np.random.Generator,
    *,
    days=FIRE_DAYS,
    times=FIRE_TIMES,
    truth_dir: str | Path | None = None,
) -> list[Path]:
    """Write B07 and B14 HSD segments of every scene (``days`` x UTC ``times`` "hh:mm") into
    ``out_dir/hsd/...`` and, in ``truth_dir`` (default ``out_dir/truth``), ``fires.csv`` (one
    row per fire) and ``fire_scenes.csv`` (per scene and burning fire: its 2 km pixel, cloud
    cover and glint angle there, so a test knows which fire-scenes had a clear view).
    Returns the HSD paths in time order."""
    out = Path(out_dir)
    truth = Path(truth_dir) if truth_dir else out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    area = target_area_for(world.preset.bbox)
    proj = area.projection(2000)
    paths: list[Path] = []
    rows = []
    for nominal in scene_times(days, times):
        sc = scene_truth(world, area, nominal, rng)
        start, end = _observation_window(nominal)
        folder = out / "hsd" / f"{nominal:%Y}" / f"{nominal:%m}" / f"{nominal:%d}"
        folder = folder / f"{nominal:%H%M}"
        for band, wavelength in FIRE_BANDS.items():
            counts = bt_to_counts(sc["bt07" if band == 7 else "bt14"], wavelength, band)
            nseg, seg_lines = area.segments, proj["segment_lines"]
            for k in range(nseg):
                name = hsd_name(nominal, band, 2000, k + 1, nseg)
                paths.append(
                    write_hsd_file(
                        folder / name,
                        counts[k * seg_lines : (k + 1) * seg_lines],
                        band=band,
                        wavelength_um=wavelength,
                        nominal=nominal,
                        obs_start=start,
                        obs_end=end,
                        projection=proj,
                        segment=k + 1,
                        total_segments=nseg,
                        first_line=k * seg_lines + 1,
                    )
                )
        for fid, (r, c) in sc["fire_pixels"].items():
            rows.append(
                {
                    "scene": nominal.isoformat(),
                    "fire": fid,
                    "lon": float(sc["lon"][r, c]),
                    "lat": float(sc["lat"][r, c]),
                    "cloud": round(float(sc["cloud"][r, c]), 3),
                    "glint_deg": round(float(sc["glint"][r, c]), 2),
                    "sza_deg": round(float(sc["sza"][r, c]), 2),
                }
            )
    with open(truth / "fires.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "lon", "lat", "start", "end", "fraction", "temperature_k"])
        for f in fires(world):
            writer.writerow(
                [
                    f.id,
                    f.lon,
                    f.lat,
                    f.start.isoformat(),
                    f.end.isoformat(),
                    f.fraction,
                    f.temperature_k,
                ]
            )
    pd.DataFrame(rows).to_csv(truth / "fire_scenes.csv", index=False)
    return paths
