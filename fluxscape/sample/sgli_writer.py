"""Write GCOM-C SGLI sample files from the sample world's truth, in JAXA's HDF5 layouts (h5py).

Two kinds of files are written into one folder:

* **L2 land tiles** (``GC1SG1_{YYYYMMDD}D01D_T{vv}{hh}_L2SG_{VGI_|LST_|LAI_|RSRF}K_3000.h5``),
  1 km EQA tiles of 1200 x 1200 pixels, every tile that meets the region (T0529 for the demo
  preset; T0528 and T0529 for demo-4x). Overpasses come every 2 days (SGLI's 1150 km swath
  revisits mid-latitudes about every 2 days; a real 01D tile exists every day, but on the other
  days the region lies outside the swath, so those are not written). VGI (NDVI and EVI
  computed from noisy surface reflectances), LST (daytime) and LAI are written for every
  overpass; RSRF (those reflectances: ``Rs_VN03``, ``Rs_VN05``, ``Rs_VN08``, ``Rs_VN11``,
  ``Rs_SW03``, ``Rs_SW04``) for every 4th overpass (8 days), which keeps the demo sample under
  60 MB (see :data:`PRODUCT_EVERY`). Every layer has ``QA_flag`` bits
  (:data:`fluxscape.readers.sgli_l2.QA_BITS`); LST and RSRF also a per-pixel
  ``Geometry_data/Obs_time``. Only pixels within the region plus :data:`MARGIN_DEG` carry
  data; the rest of the tile is Error_DN with the QA no-data bit, as over the sea. Layers are
  gzip-compressed in 200 x 200 chunks and only chunks that hold data are written: HDF5 returns
  the fill value (= Error_DN) for the others, so a reader sees the full tile exactly as if
  every chunk had been written.
* **L1B granules** (``GC1SG1_{YYYYMMDDhhmm}M{path}{scene}_1BSG_{VNR|IRS}DK_2002.h5``), one
  daytime 1 km scene a month in the first year, with VN03-VN06, VN08, VN11 (VNR file) and
  SW03, SW04 (IRS file), tie-point geolocation and solar/sensor angles every 10 pixels, and
  JAXA's 1-element array attributes. Real L1B scenes are about 1250 pixels x 1955 lines at
  1 km; the sample scenes are cut to the region plus margin (143 lines x 125 pixels for the demo
  preset) to stay small. The sample world has no atmosphere: a clear pixel's TOA reflectance
  is the true surface reflectance, stored as JAXA's Slope_reflectance quantity (pi L / F0,
  i.e. times cos(solar zenith)). One pixel is missing (DN 16383) and the last three lines carry
  the stray-light bit (bit 15), which readers must mask off.

Clouds are spatially correlated blobs (smoothed Gaussian noise thresholded at the day's
regional cloudiness from :meth:`World.weather`). Cloudy pixels carry cloud-contaminated
values (bright, flat reflectances, hence low NDVI, EVI and LAI) and the QA cloud bit; LST is
Error_DN there (clear-sky retrieval). Pixels at cloud edges get thin-cloud contamination
(slightly brighter, LST 2 K colder) and the adjacency bit.

Attribute names and layouts follow JAXA's format descriptions; numerical Slope/Offset/valid
ranges, QA bit positions, ``Obs_time`` and the letter and path/scene numbers in L1B names are
hedged choices (see the reader modules).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from fluxscape.readers.sgli_l2 import (
    QA_BITS,
    TILE_PIXELS,
    eqa_lonlat,
    tile_window,
    tiles_for_bbox,
)
from fluxscape.sample.world import World

log = logging.getLogger(__name__)

MARGIN_DEG = 0.05
REVISIT_DAYS = 2
L2_RES = "K"
L2_VERSION = "3000"
L1B_VERSION = "2002"
#: Overpass time over the region: 10:30 local solar time at ~138.5 E is about 01:16 UTC.
OVERPASS_UTC_H = 1.27
#: Ground speed of the sub-satellite point: seconds per degree of latitude.
SECONDS_PER_DEG_LAT = 16.3
NOISE_REFLECTANCE = 0.004
NOISE_LST_K = 0.6
NOISE_LAI_REL = 0.05
NOISE_TOA = 0.003
#: On-disk chunks of the L2 layers (36 per 1200 x 1200 tile) and their compression. Noisy
#: 16-bit layers compress to ~1.5 bytes/pixel; gzip 4 with shuffle is ~6 % smaller than gzip 1.
CHUNKS = (200, 200)
COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
#: Write each product on every n-th overpass. RSRF (six reflectance layers) is written every
#: 4th overpass (8 days) to keep the demo sample under 60 MB and 20 s; VGI, LST and LAI on
#: every overpass.
PRODUCT_EVERY = {"VGI": 1, "LST": 1, "LAI": 1, "RSRF": 4}

#: SGLI band -> world reflectance key (VN03 0.443, VN04 0.490 um ~ blue; VN05 0.530,
#: VN06 0.565 ~ green; VN08 0.6735 red; VN11 0.8685 NIR; SW03 1.63; SW04 2.21 um).
BAND_TRUTH = {
    "VN03": "blue",
    "VN04": "blue",
    "VN05": "green",
    "VN06": "green",
    "VN08": "red",
    "VN11": "nir",
    "SW03": "swir16",
    "SW04": "mir",
}
RSRF_BANDS = ("VN03", "VN05", "VN08", "VN11", "SW03", "SW04")
L1B_VNR_BANDS = ("VN03", "VN04", "VN05", "VN06", "VN08", "VN11")
L1B_IRS_BANDS = ("SW03", "SW04")
#: Band centre wavelengths (nm) and mean solar irradiance (W m-2 um-1, approximate).
BAND_INFO = {
    "VN03": (443.0, 1900.0),
    "VN04": (490.0, 1970.0),
    "VN05": (530.0, 1860.0),
    "VN06": (565.0, 1800.0),
    "VN08": (673.5, 1510.0),
    "VN11": (868.5, 960.0),
    "SW03": (1630.0, 240.0),
    "SW04": (2210.0, 80.0),
}


@dataclass(frozen=True)
class Layer:
    """One uint16 L2 layer: JAXA decoding attributes (value = DN * slope + offset)."""

    name: str
    slope: float
    offset: float
    min_dn: int
    max_dn: int
    unit: str
    description: str
    error_dn: int = 65535


_VI = dict(slope=1e-4, offset=-1.0, min_dn=0, max_dn=20000, unit="NA")
PRODUCTS: dict[str, tuple[str, tuple[Layer, ...]]] = {
    "VGI": (
        "Vegetation index",
        (
            Layer("NDVI", description="Normalized difference vegetation index", **_VI),
            Layer("EVI", description="Enhanced vegetation index", **_VI),
        ),
    ),
    "LST": (
        "Land surface temperature",
        (Layer("LST", 0.02, 0.0, 10000, 20000, "Kelvin", "Land surface temperature (day)"),),
    ),
    "LAI": (
        "Leaf area index",
        (Layer("LAI", 0.01, 0.0, 0, 1000, "m^2/m^2", "Leaf area index"),),
    ),
    "RSRF": (
        "Land surface reflectance",
        tuple(
            Layer(f"Rs_{b}", 1e-4, 0.0, 0, 10000, "NA", f"Surface reflectance {b}")
            for b in RSRF_BANDS
        ),
    ),
}

QA_DESCRIPTION = (
    "QA flag (bit 0 = LSB; 1 = true): "
    + ", ".join(f"bit {bit}: {name}" for name, bit in QA_BITS.items())
    + "; other bits spare (fluxscape sample, bit positions hedged)"
)
QA_NO_DATA = 1 << QA_BITS["no_data"]
QA_CLOUDY = 1 << QA_BITS["cloudy"]
QA_ADJACENT = 1 << QA_BITS["cloud_adjacent_or_thin"]

#: Products whose tiles carry Geometry_data/Obs_time [hedged]: those whose use needs the
#: observation time (LST's diurnal cycle, RSRF's sun-view geometry).
OBS_TIME_PRODUCTS = ("LST", "RSRF")
OBS_TIME = Layer(
    "Obs_time", 0.001, 0.0, 0, 24000, "hour", "Observation time (UT hours)", error_dn=-32768
)


# --- shared helpers ----------------------------------------------------------------------------


def _s(text: str) -> np.ndarray:
    """A JAXA-style 1-element fixed-length byte-string attribute."""
    raw = text.encode()
    return np.array([raw], dtype=f"S{max(len(raw), 1)}")


def _jaxa_time(t: datetime) -> str:
    return t.strftime("%Y%m%d %H:%M:%S.%f")[:-3]


def _set_layer_attrs(dset: h5py.Dataset, layer: Layer, dtype) -> None:
    dset.attrs["Slope"] = np.array([layer.slope], dtype=np.float32)
    dset.attrs["Offset"] = np.array([layer.offset], dtype=np.float32)
    dset.attrs["Error_DN"] = np.array([layer.error_dn], dtype=dtype)
    dset.attrs["Minimum_valid_DN"] = np.array([layer.min_dn], dtype=dtype)
    dset.attrs["Maximum_valid_DN"] = np.array([layer.max_dn], dtype=dtype)
    dset.attrs["Unit"] = _s(layer.unit)
    dset.attrs["Data_description"] = _s(layer.description)


def _to_dn(values: np.ndarray, layer: Layer, dtype=np.uint16) -> np.ndarray:
    dn = np.round((values - layer.offset) / layer.slope)
    dn = np.clip(dn, layer.min_dn, layer.max_dn)
    return np.where(np.isfinite(values), dn, layer.error_dn).astype(dtype)


#: Cloud fields are drawn on a regional lon/lat grid (so clouds continue across tile edges
#: and the same day's L2 tiles share them) and looked up at each pixel's lon/lat.
CLOUD_GRID_DEG = 0.01
CLOUD_SIGMA_CELLS = 4.0
CLOUD_EDGE_FRACTION = 0.06


@dataclass(frozen=True)
class CloudField:
    """One day's clouds over the region: a smooth standardised field on a lon/lat grid
    (north-west corner ``west``/``north``, ``CLOUD_GRID_DEG`` cells) and its thresholds:
    cloudy below ``cloud``, cloud edge/thin cloud below ``edge``."""

    west: float
    north: float
    field: np.ndarray
    cloud: float
    edge: float

    def at(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cloudy, edge, depth) at lon/lat: depth in [0, 1] grows smoothly towards a cloud's
        core (optical depth) and is 0 outside clouds."""
        ny, nx = self.field.shape
        row = np.clip(np.round((self.north - lat) / CLOUD_GRID_DEG), 0, ny - 1).astype(int)
        col = np.clip(np.round((lon - self.west) / CLOUD_GRID_DEG), 0, nx - 1).astype(int)
        value = self.field[row, col]
        cloudy = value < self.cloud
        edge = ~cloudy & (value < self.edge)
        return cloudy, edge, np.clip(self.cloud - value, 0.0, 1.0)


def _clouds(world: World, rng: np.random.Generator, fraction: float) -> CloudField:
    """Spatially correlated clouds (blobs of ~10 km) covering ``fraction`` of the region."""
    w, s, e, n = world.preset.bbox
    pad = MARGIN_DEG + 0.1  # also covers the corners of the L1B scenes
    west, north = w - pad, n + pad
    ny = int(np.ceil((n - s + 2 * pad) / CLOUD_GRID_DEG)) + 1
    nx = int(np.ceil((e - w + 2 * pad) / CLOUD_GRID_DEG)) + 1
    field = gaussian_filter(rng.normal(size=(ny, nx)), sigma=CLOUD_SIGMA_CELLS)
    field /= field.std()
    k = int(np.ceil(pad / CLOUD_GRID_DEG))
    region = field[k:-k, k:-k]  # the fraction refers to the region without the padding
    if fraction <= 0:
        return CloudField(west, north, field, -np.inf, -np.inf)
    cloud, edge = np.quantile(
        region, [min(fraction, 1.0), min(fraction + CLOUD_EDGE_FRACTION, 1.0)]
    )
    return CloudField(west, north, field, float(cloud), float(edge))


def _cloud_fraction(world: World, dates: pd.DatetimeIndex) -> np.ndarray:
    """Fraction of cloudy pixels per date from the world's regional cloudiness (the same
    synoptic sequence that dims the towers' shortwave radiation)."""
    w, s, e, n = world.preset.bbox
    met = world.weather((w + e) / 2, (s + n) / 2, dates)
    cloud = (1 - met["SW_IN_F"] / (0.75 * met["SW_IN_POT"])) / 0.7
    return np.clip(0.9 * cloud.to_numpy(), 0.0, 0.95)


def revisit_dates(world: World) -> pd.DatetimeIndex:
    """Dates with an overpass over the region: every :data:`REVISIT_DAYS` days of the years."""
    return world.dates()[::REVISIT_DAYS]


def l2_name(date: datetime, vtile: int, htile: int, product: str) -> str:
    """JAXA file name of a daytime daily 1 km L2 tile."""
    return (
        f"GC1SG1_{date:%Y%m%d}D01D_T{vtile:02d}{htile:02d}_L2SG_{product:_<4}{L2_RES}"
        f"_{L2_VERSION}.h5"
    )


# --- L2 tiles ----------------------------------------------------------------------------------


@dataclass
class _TileArea:
    """The pixels of one tile inside region + margin: window, mask and their lon/lat."""

    vtile: int
    htile: int
    window: tuple[slice, slice]
    inside: np.ndarray  # (wy, wx) bool
    lon: np.ndarray  # (k,) of the inside pixels
    lat: np.ndarray


def _tile_areas(world: World, n: int) -> list[_TileArea]:
    w, s, e, nn = world.preset.bbox
    outer = (w - MARGIN_DEG, s - MARGIN_DEG, e + MARGIN_DEG, nn + MARGIN_DEG)
    areas = []
    for v, h in tiles_for_bbox(outer, n):
        win = tile_window(v, h, outer, n)
        if win is None:
            continue
        lon, lat = eqa_lonlat(
            np.arange(win[0].start, win[0].stop)[:, None],
            np.arange(win[1].start, win[1].stop)[None, :],
            v,
            h,
            n,
        )
        inside = (lon >= outer[0]) & (lon <= outer[2]) & (lat >= outer[1]) & (lat <= outer[3])
        if inside.any():
            areas.append(_TileArea(v, h, win, inside, lon[inside], lat[inside]))
    return areas


def _observe(world: World, truth: dict, clouds: CloudField, overpass: float, rng) -> dict:
    """One overpass over one tile area: sensor noise, clouds and their contamination.

    ``truth`` holds the area's true ``ndvi``, ``lst``, ``brightness``, ``lon`` and ``lat``
    (shape (k,)); returns observed layers (physical values), QA bits and per-pixel UT hours.
    """
    k = truth["lon"].size
    refl = world.reflectance(truth["ndvi"], truth["brightness"])
    cloudy, edge, depth = clouds.at(truth["lon"], truth["lat"])
    # Cloud reflectance grows smoothly with optical depth (flat spectrum, darker in the SWIR);
    # thin cloud at the edges adds a little brightness. Sensor noise comes on top of both.
    cloud_refl = 0.22 + 0.3 * depth
    for b in refl:
        swir = b in ("swir16", "mir")
        value = np.where(cloudy, cloud_refl - (0.08 if swir else 0.0), refl[b])
        value = np.where(edge, value + (0.01 if swir else 0.03), value)
        refl[b] = np.clip(value + rng.normal(0, NOISE_REFLECTANCE, k), 0.001, 1.0)
    red, nir, blue = refl["red"], refl["nir"], refl["blue"]
    ndvi = (nir - red) / (nir + red)
    evi = 2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1)
    lai = np.clip(world.lai(ndvi) * (1 + rng.normal(0, NOISE_LAI_REL, k)), 0, 10)
    # LST is retrieved for clear sky only: detected clouds are Error_DN; undetected thin cloud
    # at the edges of the cloud mask biases it cold.
    lst = truth["lst"] - np.where(edge, 2.0, 0) + rng.normal(0, NOISE_LST_K, k)
    lst = np.where(cloudy, np.nan, lst)
    qa = np.where(cloudy, QA_CLOUDY, 0) | np.where(edge, QA_ADJACENT, 0)
    hours = overpass + (36.0 - truth["lat"]) * SECONDS_PER_DEG_LAT / 3600.0
    layers = {"NDVI": ndvi, "EVI": evi, "LST": lst, "LAI": lai}
    layers.update({f"Rs_{b}": refl[BAND_TRUTH[b]] for b in RSRF_BANDS})
    return {"layers": layers, "qa": qa.astype(np.uint16), "hours": hours, "overpass": overpass}


def _chunk_blocks(area: _TileArea) -> list[tuple[tuple[slice, slice], tuple[slice, slice]]]:
    """The data window cut along chunk boundaries, keeping the pieces that hold region pixels:
    (tile slices, window-relative slices). Chunks without region pixels are never written."""
    r0, r1 = area.window[0].start, area.window[0].stop
    c0, c1 = area.window[1].start, area.window[1].stop
    cy, cx = CHUNKS
    blocks = []
    for rs in range(r0 // cy * cy, r1, cy):
        for cs in range(c0 // cx * cx, c1, cx):
            tr = slice(max(rs, r0), min(rs + cy, r1))
            tc = slice(max(cs, c0), min(cs + cx, c1))
            rel = (slice(tr.start - r0, tr.stop - r0), slice(tc.start - c0, tc.stop - c0))
            if area.inside[rel].any():
                blocks.append(((tr, tc), rel))
    return blocks


def _l2_template(product: str, area: _TileArea, n: int) -> bytes:
    """An L2 tile file with every group, attribute and (empty, fill-valued) dataset, as bytes.

    Each date's file is a copy with its times, name and pixel data filled in: creating ~50
    HDF5 attributes and ~10 datasets per file is what made writing slow. The file uses the
    HDF5 1.10 object format (smaller metadata; any h5py reads it; JAXA's files are older)."""
    product_name, layers = PRODUCTS[product]
    buf = io.BytesIO()
    with h5py.File(buf, "w", libver=("v110", "latest")) as h5:
        g = h5.create_group("Global_attributes")
        for key, value in (
            ("Satellite", "Global Change Observation Mission - Climate (GCOM-C)"),
            ("Sensor", "Second-generation Global Imager (SGLI)"),
            ("Product_level", "Level-2"),
            ("Product_name", product_name),
            ("Product_version", L2_VERSION),
            ("Algorithm_version", L2_VERSION[0]),
            ("Parameter_version", L2_VERSION[1:]),
            ("Tile_number", f"{area.vtile:02d}{area.htile:02d}"),
            ("Image_start_time", _jaxa_time(datetime(2000, 1, 1))),
            ("Image_end_time", _jaxa_time(datetime(2000, 1, 1))),
            ("Product_file_name", l2_name(datetime(2000, 1, 1), area.vtile, area.htile, product)),
            ("Comment", "fluxscape sample world (synthetic data in the JAXA layout)"),
        ):
            g.attrs[key] = _s(value)
        p = h5.create_group("Processing_attributes")
        p.attrs["Processing_result"] = _s("Good")
        p.attrs["Processing_UT"] = _s("20000101 00:00:00")
        img = h5.create_group("Image_data")
        geo = h5.create_group("Geometry_data")
        for grp in (img, geo):
            grp.attrs["Number_of_lines"] = np.array([n], dtype=np.int32)
            grp.attrs["Number_of_pixels"] = np.array([n], dtype=np.int32)
        corners = {
            "Upper_left": (0, 0),
            "Upper_right": (0, n - 1),
            "Lower_left": (n - 1, 0),
            "Lower_right": (n - 1, n - 1),
        }
        for key, (r, c) in corners.items():
            lon, lat = eqa_lonlat(r, c, area.vtile, area.htile, n)
            geo.attrs[f"{key}_latitude"] = np.array([lat], dtype=np.float32)
            geo.attrs[f"{key}_longitude"] = np.array([lon], dtype=np.float32)
        for layer in layers:
            _set_layer_attrs(
                _dataset(img, layer.name, n, np.uint16, layer.error_dn), layer, np.uint16
            )
        qa = _dataset(img, "QA_flag", n, np.uint16, QA_NO_DATA)
        qa.attrs["Data_description"] = _s(QA_DESCRIPTION)
        if product in OBS_TIME_PRODUCTS:
            ot = _dataset(geo, "Obs_time", n, np.int16, OBS_TIME.error_dn)
            _set_layer_attrs(ot, OBS_TIME, np.int16)
    return buf.getvalue()


def _write_l2_tile(
    path: Path, template: bytes, product: str, date: datetime, area: _TileArea, blocks, obs: dict
) -> Path:
    """One daily tile file from its template: times, name and the region's pixels."""
    # The tile's pass: the sub-satellite point crosses the tile's 10 degrees in ~163 s.
    lat_n = 90.0 - area.vtile * 10.0
    start = date + timedelta(hours=obs["overpass"] + (36.0 - lat_n) * SECONDS_PER_DEG_LAT / 3600)
    end = start + timedelta(seconds=10.0 * SECONDS_PER_DEG_LAT)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(template)
    with h5py.File(tmp, "r+") as h5:
        # attrs.modify rewrites the values in place (same type and size as in the template).
        g = h5["Global_attributes"].attrs
        g.modify("Image_start_time", _s(_jaxa_time(start)))
        g.modify("Image_end_time", _s(_jaxa_time(end)))
        g.modify("Product_file_name", _s(path.name))
        processed = date + timedelta(days=3, hours=5)
        h5["Processing_attributes"].attrs.modify(
            "Processing_UT", _s(f"{processed:%Y%m%d %H:%M:%S}")
        )
        for layer in PRODUCTS[product][1]:
            _write_blocks(
                h5["Image_data"][layer.name],
                area,
                blocks,
                _to_dn(obs["layers"][layer.name], layer),
                layer.error_dn,
            )
        _write_blocks(h5["Image_data/QA_flag"], area, blocks, obs["qa"], QA_NO_DATA)
        if product in OBS_TIME_PRODUCTS:
            _write_blocks(
                h5["Geometry_data/Obs_time"],
                area,
                blocks,
                _to_dn(obs["hours"], OBS_TIME, np.int16),
                OBS_TIME.error_dn,
            )
    tmp.replace(path)
    return path


def _dataset(group: h5py.Group, name: str, n: int, dtype, fill) -> h5py.Dataset:
    return group.create_dataset(
        name, shape=(n, n), dtype=dtype, chunks=CHUNKS, fillvalue=dtype(fill), **COMPRESSION
    )


def _write_blocks(dset: h5py.Dataset, area: _TileArea, blocks, values: np.ndarray, fill) -> None:
    """Write the region's pixels (fill elsewhere in the touched chunks); chunks without region
    pixels stay unallocated and read back as the dataset's fill value."""
    window = np.full(area.inside.shape, fill, dtype=dset.dtype)
    window[area.inside] = values
    for tile_slices, rel in blocks:
        dset[tile_slices] = window[rel]


def write_sgli_l2(
    world: World,
    out_dir: str | Path,
    rng: np.random.Generator,
    dates: pd.DatetimeIndex | None = None,
    products: tuple[str, ...] = ("VGI", "LST", "LAI", "RSRF"),
) -> list[Path]:
    """Write daily 1 km L2 tiles for ``dates`` (default: every revisit date of the world's
    years) for every EQA tile that meets the region; product ``p`` on every
    ``PRODUCT_EVERY[p]``-th date. One overpass time and one cloud field per date, shared by
    all tiles. Returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = TILE_PIXELS[L2_RES]
    dates = revisit_dates(world) if dates is None else pd.DatetimeIndex(dates)
    areas = _tile_areas(world, n)
    blocks = [_chunk_blocks(area) for area in areas]
    templates = [{p: _l2_template(p, area, n) for p in products} for area in areas]
    fractions = _cloud_fraction(world, dates)
    paths = []
    block = 32  # dates per truth evaluation: bounds memory for large presets
    for b0 in range(0, len(dates), block):
        sub = dates[b0 : b0 + block]
        truths = [
            {
                "lon": a.lon,
                "lat": a.lat,
                "brightness": world.brightness(a.lon, a.lat),
                "ndvi": world.ndvi(a.lon, a.lat, sub),
                "lst": world.land_surface_temperature(a.lon, a.lat, sub),
            }
            for a in areas
        ]
        for i, date in enumerate(sub):
            index = b0 + i
            day = date.to_pydatetime()
            clouds = _clouds(world, rng, fractions[index])
            overpass = OVERPASS_UTC_H + rng.uniform(-0.4, 0.4)
            for a, area in enumerate(areas):
                truth = dict(truths[a], ndvi=truths[a]["ndvi"][:, i], lst=truths[a]["lst"][:, i])
                obs = _observe(world, truth, clouds, overpass, rng)
                for product in products:
                    if index % PRODUCT_EVERY[product]:
                        continue
                    name = l2_name(day, area.vtile, area.htile, product)
                    paths.append(
                        _write_l2_tile(
                            out / name, templates[a][product], product, day, area, blocks[a], obs
                        )
                    )
    return paths


# --- L1B granules ------------------------------------------------------------------------------

#: Ground track heading of the descending daytime orbit at ~36 N (degrees from north).
TRACK_HEADING_DEG = 192.0
PIXEL_KM = 1.0
TIE_INTERVAL = 10
KM_PER_DEG_LAT = 111.2
GROUND_SPEED_KM_S = 6.8
ORBIT_HEIGHT_KM = 798.0
DN_MISSING = 16383
STRAY_LIGHT_BIT = 1 << 15  # the upper bit flags stray light (masked off by Mask = 16383)
SLOPE_REFLECTANCE, OFFSET_REFLECTANCE = 5e-5, -0.05
BIT_DESCRIPTION = "Digital Number\n16383 : Missing value\n16382 : Saturation value"


def _swath_lonlat(world: World, lines, pixels, n_lines: int, n_pixels: int):
    """Lon/lat (degrees) of scene lines/pixels: 1 km steps along and across the ground track
    in a local tangent frame centred on the region (smooth, like a real swath at this size)."""
    w, s, e, n = world.preset.bbox
    clon, clat = (w + e) / 2, (s + n) / 2
    head = np.radians(TRACK_HEADING_DEG)
    along = np.array([np.sin(head), np.cos(head)])  # (east, north) per line
    across = np.array([np.cos(head), -np.sin(head)])  # (east, north) per pixel
    i = (np.asarray(lines, float) - (n_lines - 1) / 2) * PIXEL_KM
    j = (np.asarray(pixels, float) - (n_pixels - 1) / 2) * PIXEL_KM
    east = i * along[0] + j * across[0]
    north = i * along[1] + j * across[1]
    lat = clat + north / KM_PER_DEG_LAT
    lon = clon + east / (KM_PER_DEG_LAT * np.cos(np.radians(lat)))
    return lon, lat


def _swath_size(world: World) -> tuple[int, int]:
    """Lines and pixels of a 1 km scene that covers region + margin at the track heading."""
    w, s, e, n = world.preset.bbox
    clat = (s + n) / 2
    half_e = ((e - w) / 2 + MARGIN_DEG) * KM_PER_DEG_LAT * np.cos(np.radians(clat))
    half_n = ((n - s) / 2 + MARGIN_DEG) * KM_PER_DEG_LAT
    head = np.radians(TRACK_HEADING_DEG)
    lines = 2 * (half_e * abs(np.sin(head)) + half_n * abs(np.cos(head))) / PIXEL_KM
    pixels = 2 * (half_e * abs(np.cos(head)) + half_n * abs(np.sin(head))) / PIXEL_KM
    return int(np.ceil(lines)) + 2, int(np.ceil(pixels)) + 2


def l1b_scene_dates(world: World) -> list[datetime]:
    """One overpass a month in the world's first year: the revisit date nearest the 10th."""
    dates = revisit_dates(world)
    year = min(world.preset.years)
    out = []
    for month in range(1, 13):
        target = pd.Timestamp(year, month, 10)
        out.append(dates[np.argmin(np.abs((dates - target).days))].to_pydatetime())
    return out


def l1b_name(start: datetime, kind: str) -> str:
    """JAXA-style L1B file name (``kind`` VNR or IRS). The letter after the minutes and the
    path/scene numbers are synthetic [hedged]: real names carry e.g. ``M25511``."""
    path_no = 1 + (start.toordinal() * 143) % 486
    return f"GC1SG1_{start:%Y%m%d%H%M}M{path_no:03d}07_1BSG_{kind}DK_{L1B_VERSION}.h5"


def _one(value, dtype) -> np.ndarray:
    """A JAXA-style 1-element array attribute."""
    return np.array([value], dtype=dtype)


def _write_l1b(
    path: Path,
    bands: tuple[str, ...],
    reflectance: dict[str, np.ndarray],
    ties: dict[str, np.ndarray],
    start: datetime,
    end: datetime,
) -> Path:
    """One L1B granule. ``reflectance`` is JAXA's Slope_reflectance quantity (pi L / F0, not
    divided by cos(SZA)) per band, shape (lines, pixels); ``ties`` the tie-point geometry."""
    n_lines, n_pixels = next(iter(reflectance.values())).shape
    tmp = path.with_name(path.name + ".part")
    with h5py.File(tmp, "w") as h5:
        g = h5.create_group("Global_attributes")
        g.attrs["Scene_start_time"] = np.array([_jaxa_time(start).encode()], dtype="S21")
        g.attrs["Scene_end_time"] = np.array([_jaxa_time(end).encode()], dtype="S21")
        for key, value in (
            ("Satellite", "Global Change Observation Mission - Climate (GCOM-C)"),
            ("Sensor", "Second-generation Global Imager (SGLI)"),
            ("Product_level", "Level-1B"),
            ("Product_name", "Top of atmosphere radiance"),
            ("Product_file_name", path.name),
            ("Comment", "fluxscape sample world (synthetic scene cut to the region)"),
        ):
            g.attrs[key] = _s(value)
        img = h5.create_group("Image_data")
        img.attrs["Number_of_lines"] = _one(n_lines, np.int32)
        img.attrs["Number_of_pixels"] = _one(n_pixels, np.int32)
        for band in bands:
            wavelength, e0 = BAND_INFO[band]
            dn = np.round((reflectance[band] - OFFSET_REFLECTANCE) / SLOPE_REFLECTANCE)
            dn = np.clip(dn, 0, DN_MISSING - 2).astype(np.uint16)
            dn[0, 0] = DN_MISSING  # one missing pixel, as at scene edges
            dn[-3:, :] |= STRAY_LIGHT_BIT
            dset = img.create_dataset(f"Lt_{band}", data=dn, chunks=True, **COMPRESSION)
            radiance_per_reflectance = e0 / np.pi
            dset.attrs["Slope"] = _one(SLOPE_REFLECTANCE * radiance_per_reflectance, np.float32)
            dset.attrs["Offset"] = _one(OFFSET_REFLECTANCE * radiance_per_reflectance, np.float32)
            dset.attrs["Slope_reflectance"] = _one(SLOPE_REFLECTANCE, np.float32)
            dset.attrs["Offset_reflectance"] = _one(OFFSET_REFLECTANCE, np.float32)
            dset.attrs["Mask"] = _one(16383, np.uint16)
            dset.attrs["Error_DN"] = _one(DN_MISSING, np.uint16)
            dset.attrs["Minimum_valid_DN"] = _one(0, np.uint16)
            dset.attrs["Maximum_valid_DN"] = _one(DN_MISSING - 2, np.uint16)
            dset.attrs["Bit00(LSB)-13"] = np.array([BIT_DESCRIPTION.encode()], dtype="S61")
            dset.attrs["Center_wavelength"] = _one(wavelength, np.float32)
            dset.attrs["Unit"] = _s("W/m^2/sr/um")
        geo = h5.create_group("Geometry_data")
        tie_shape = ties["Latitude"].shape
        geo.attrs["Number_of_lines"] = _one(tie_shape[0], np.int32)
        geo.attrs["Number_of_pixels"] = _one(tie_shape[1], np.int32)
        for name, arr in ties.items():
            if name in ("Latitude", "Longitude"):
                d = geo.create_dataset(name, data=arr.astype(np.float32), **COMPRESSION)
            else:
                d = geo.create_dataset(
                    name, data=np.round(arr / 0.01).astype(np.int16), **COMPRESSION
                )
                d.attrs["Slope"] = _one(0.01, np.float32)
                d.attrs["Offset"] = _one(0.0, np.float32)
            d.attrs["Resampling_interval"] = _one(TIE_INTERVAL, np.int32)
            d.attrs["Unit"] = _s("degree")
    tmp.replace(path)
    return path


def write_sgli_l1b(
    world: World,
    out_dir: str | Path,
    rng: np.random.Generator,
    dates: list[datetime] | None = None,
) -> list[Path]:
    """Write one VNR and one IRS 1 km L1B granule per date (default
    :func:`l1b_scene_dates`), cut to the region plus margin.

    The stored reflectance is the true surface reflectance (no atmosphere in the sample world;
    clouds are bright blobs) times cos(solar zenith) at the scene start, with pyorbital's solar
    position: JAXA's Slope_reflectance gives pi L / F0 without the cosine, and satpy's
    ``sunz_corrected`` modifier divides it out again.
    """
    from pyorbital.astronomy import get_alt_az

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dates = l1b_scene_dates(world) if dates is None else list(dates)
    n_lines, n_pixels = _swath_size(world)
    lon, lat = _swath_lonlat(
        world, np.arange(n_lines)[:, None], np.arange(n_pixels)[None, :], n_lines, n_pixels
    )
    tie_l = TIE_INTERVAL * np.arange(-(-(n_lines - 1) // TIE_INTERVAL) + 1)
    tie_p = TIE_INTERVAL * np.arange(-(-(n_pixels - 1) // TIE_INTERVAL) + 1)
    tlon, tlat = _swath_lonlat(world, tie_l[:, None], tie_p[None, :], n_lines, n_pixels)
    bright = world.brightness(lon, lat)
    paths = []
    for date in dates:
        start = date + timedelta(hours=OVERPASS_UTC_H + rng.uniform(-0.3, 0.3))
        start = start.replace(microsecond=start.microsecond // 1000 * 1000)
        end = start + timedelta(seconds=n_lines * PIXEL_KM / GROUND_SPEED_KM_S)
        refl = world.reflectance(world.ndvi(lon, lat, [date])[..., 0], bright)
        cloudy, _, depth = _clouds(world, rng, 0.15 + 0.2 * rng.random()).at(lon, lat)
        alt, _ = get_alt_az(start, lon, lat)
        cos_sza = np.sin(alt)
        toa = {}
        for band in L1B_VNR_BANDS + L1B_IRS_BANDS:
            key = BAND_TRUTH[band]
            cloud = 0.25 + 0.35 * depth - (0.1 if key in ("swir16", "mir") else 0.0)
            brf = np.where(cloudy, cloud, refl[key]) + rng.normal(0, NOISE_TOA, lon.shape)
            toa[band] = brf * cos_sza
        t_alt, t_az = get_alt_az(start, tlon, tlat)
        offset_km = rng.uniform(-400, 400)  # the region's distance from the sub-satellite track
        across_km = (tie_p[None, :] - (n_pixels - 1) / 2) * PIXEL_KM + offset_km
        ties = {
            "Latitude": tlat,
            "Longitude": tlon,
            "Solar_zenith": 90.0 - np.degrees(t_alt),
            "Solar_azimuth": np.degrees(t_az),
            "Sensor_zenith": np.degrees(np.arctan(np.abs(across_km) / ORBIT_HEIGHT_KM))
            * np.ones_like(tlat),
            "Sensor_azimuth": np.where(across_km > 0, 102.0, -78.0) * np.ones_like(tlat),
        }
        for kind, bands in (("VNR", L1B_VNR_BANDS), ("IRS", L1B_IRS_BANDS)):
            paths.append(
                _write_l1b(
                    out / l1b_name(start, kind), bands, {b: toa[b] for b in bands}, ties, start, end
                )
            )
    return paths


def write_sgli(world: World, out_dir: str | Path, rng: np.random.Generator) -> list[Path]:
    """Write the SGLI sample files for the world's years into ``out_dir``: L2 land tiles
    (VGI, LST, LAI, RSRF; 1 km, 2-day revisit) and monthly L1B granules of the first year.
    Deterministic given ``rng``; returns the paths written (L2 first)."""
    log.info("writing SGLI L2 land tiles")
    paths = write_sgli_l2(world, out_dir, rng)
    log.info("writing SGLI L1B granules")
    paths += write_sgli_l1b(world, out_dir, rng)
    return paths
