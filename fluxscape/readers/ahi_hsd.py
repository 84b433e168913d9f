"""Himawari-8/9 AHI Himawari Standard Data (HSD) segments, read through satpy's ``ahi_hsd``.

Format: JMA, "Himawari Standard Data User's Guide" v1.3,
https://www.data.jma.go.jp/mscweb/en/himawari89/space_segment/hsd_sample/HS_D_users_guide_en_v13.pdf
(satpy's reader: https://satpy.readthedocs.io/en/stable/api/satpy.readers.ahi_hsd.html).

One file holds one band of one segment of one observation::

    HS_{H08|H09}_{YYYYMMDD}_{hhmm}_B{bb}_{area}_R{res}_S{seg:02d}{total:02d}.DAT[.bz2]

11 little-endian header blocks (each starts with its number, u1, and its length, <u2; <u4
for block 10), then the image as ``<u2`` counts, shape (lines, columns). Geolocation is the
CGMS normalized geostationary projection (block 3: sub-satellite longitude, CFAC/LFAC/COFF/
LOFF, Earth radii and satellite distance); a segment's lines are numbered inside its
observation area, first line in block 7.

Decoding is satpy's (calibration to reflectance / brightness temperature, count sentinels
65535 error and 65534 outside scan to NaN, space masking, area definition). This module adds
what the pipeline needs around it and what satpy does not do:

* a small header parser of its own (only the fields needed, no satpy import) so that
  ``granule_info``, ``segments_for_bbox``, the registry sniff and ``inspect`` read a few
  hundred bytes and never the image, and so that zero-byte, truncated, foreign or
  inconsistent files get a :class:`~fluxscape.errors.ReaderError` naming the file instead of
  a numpy or satpy traceback;
* segment selection by a lon/lat box (from the projection block and the segment line range);
* one common pixel grid for the five land bands, solar zenith angle and observation time.

Written by hand because satpy has no header-only access and no segment selection by region.
"""

from __future__ import annotations

import bz2
import functools
import math
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from fluxscape.errors import ReaderError
from fluxscape.readers.granule_cache import BLOCKS, file_stamp
from fluxscape.readers.magic import describe, require
from fluxscape.readers.ontile import Granule
from fluxscape.readers.registry import FileSummary, ReaderSpec, register

if TYPE_CHECKING:  # pyresample is imported lazily (reader modules must import fast)
    from pyresample.geometry import AreaDefinition

SPEC_URL = (
    "https://www.data.jma.go.jp/mscweb/en/himawari89/space_segment/hsd_sample/"
    "HS_D_users_guide_en_v13.pdf"
)

FILENAME_RE = re.compile(
    r"HS_(?P<platform>H0[89])_(?P<date>\d{8})_(?P<time>\d{4})_B(?P<band>\d{2})_"
    r"(?P<area>[A-Z0-9]{4})_R(?P<res>\d{2})_S(?P<segment>\d{2})(?P<total>\d{2})"
    r"\.DAT(?P<bz2>\.bz2)?"
)

#: Bands read by default: satpy name -> (role, central wavelength um, native resolution m,
#: satpy calibration). Reflectances are returned as fractions (0-1), not satpy's percent.
BANDS: dict[str, tuple[str, float, int, str]] = {
    "B03": ("red", 0.64, 500, "reflectance"),
    "B04": ("nir", 0.86, 1000, "reflectance"),
    "B05": ("swir16", 1.6, 2000, "reflectance"),
    "B06": ("swir22", 2.3, 2000, "reflectance"),
    "B13": ("tir104", 10.4, 2000, "brightness_temperature"),
}

#: Native resolution (m) of each AHI band 1-16 (JMA: B03 0.5 km, B01/B02/B04 1 km, rest 2 km).
NATIVE_RESOLUTION = {b: 1000 for b in (1, 2, 4)} | {3: 500} | {b: 2000 for b in range(5, 17)}

MJD_EPOCH = datetime(1858, 11, 17)
COUNT_ERROR = 65535
COUNT_OUTSIDE_SCAN = 65534

# Minimum lengths (bytes) of the 11 header blocks: fixed part of each block (User's Guide
# tables 4-1..4-11); blocks 8-10 grow with their number of entries.
_BLOCK_MIN_LENGTH = {1: 282, 2: 50, 3: 127, 4: 139, 5: 147, 6: 259, 7: 47, 8: 21, 9: 5, 10: 7}
_BLOCK_MIN_LENGTH[11] = 259


def _fields(spec: list[tuple[str, str, int]]) -> np.dtype:
    """A little-endian structured dtype from (name, format, byte offset) triples."""
    names, formats, offsets = zip(*spec, strict=True)
    return np.dtype({"names": list(names), "formats": list(formats), "offsets": list(offsets)})


# Only the fields this module uses, at their byte offsets inside each block.
_BLOCK1 = _fields(
    [
        ("satellite", "S16", 6),
        ("observation_area", "S4", 38),
        ("observation_timeline", "<u2", 44),
        ("observation_start_time", "<f8", 46),
        ("observation_end_time", "<f8", 54),
        ("total_header_length", "<u4", 70),
        ("total_data_length", "<u4", 74),
    ]
)
_BLOCK2 = _fields([("bits_per_pixel", "<u2", 3), ("columns", "<u2", 5), ("lines", "<u2", 7)])
_BLOCK3 = _fields(
    [
        ("sub_lon", "<f8", 3),
        ("CFAC", "<u4", 11),
        ("LFAC", "<u4", 15),
        ("COFF", "<f4", 19),
        ("LOFF", "<f4", 23),
        ("distance_from_earth_center", "<f8", 27),
        ("earth_equatorial_radius", "<f8", 35),
        ("earth_polar_radius", "<f8", 43),
    ]
)
_BLOCK5 = _fields([("band_number", "<u2", 3), ("central_wave_length", "<f8", 5)])
_BLOCK7 = _fields([("total_segments", "u1", 3), ("segment", "u1", 4), ("first_line", "<u2", 5)])


@dataclass(frozen=True)
class HsdHeader:
    """The header fields of one HSD file that geolocation and selection need.

    Times are UTC (naive datetimes); ``sub_lon`` degrees east; CFAC/LFAC are the column/line
    scaling factors (pixels per 2**-16 degree of scan angle); COFF/LOFF the column/line of
    the sub-satellite point in this observation area's 1-based pixel numbering; distances km.
    """

    path: Path
    satellite: str
    area: str
    timeline: int
    observation_start: datetime
    observation_end: datetime
    header_length: int
    data_length: int
    columns: int
    lines: int
    sub_lon: float
    cfac: int
    lfac: int
    coff: float
    loff: float
    distance_km: float
    req_km: float
    rpol_km: float
    band: int
    wavelength_um: float
    total_segments: int
    segment: int
    first_line: int

    @property
    def nominal_start(self) -> datetime:
        """Nominal (timeline) start: the HHMM of ``observation_timeline`` on the day of the
        observation start closest to it."""
        hh, mm = divmod(self.timeline, 100)
        best = None
        for delta in (-1, 0, 1):
            day = (self.observation_start + timedelta(days=delta)).date()
            cand = datetime(day.year, day.month, day.day, hh, mm)
            if best is None or abs(cand - self.observation_start) < abs(
                best - self.observation_start
            ):
                best = cand
        return best

    @property
    def resolution_km(self) -> float:
        """Sampling distance at the sub-satellite point (km): h * 2**16 / CFAC degrees."""
        h = self.distance_km - self.req_km
        return round(h * math.radians(2**16 / self.cfac), 3)

    @property
    def proj4(self) -> str:
        """PROJ string of the geostationary projection (metres, sweep y as AHI scans)."""
        h = (self.distance_km - self.req_km) * 1000
        return (
            f"+proj=geos +lon_0={self.sub_lon} +h={h} +a={self.req_km * 1000} "
            f"+b={self.rpol_km * 1000} +units=m +no_defs"
        )


def parse_filename(path: str | Path) -> dict | None:
    """Platform, nominal start, band, area, resolution (km), segment and total segments from
    an HSD file name; None if the name does not follow the convention."""
    m = FILENAME_RE.fullmatch(Path(path).name)
    if not m:
        return None
    try:
        start = datetime.strptime(m["date"] + m["time"], "%Y%m%d%H%M")
    except ValueError:
        return None
    return {
        "platform": m["platform"],
        "start": start,
        "band": int(m["band"]),
        "area": m["area"],
        "resolution_km": int(m["res"]) / 10,
        "segment": int(m["segment"]),
        "total_segments": int(m["total"]),
        "compressed": bool(m["bz2"]),
    }


#: Nominal full-disk geometry of Himawari-8/9 (HSD guide, block 3 of an FLDK file at 2 km):
#: sub-satellite longitude, Earth radii and satellite distance (km), lines of the full disk
#: and the line scaling factor. A segment's latitude band is a fraction of the disk's lines,
#: the same at every resolution.
FLDK_NOMINAL = {
    "sub_lon": 140.7,
    "req_km": 6378.137,
    "rpol_km": 6356.7523,
    "distance_km": 42164.0,
    "lines": 5500,
    "lfac": 20466275,
}


@functools.lru_cache(maxsize=256)
def segment_lat_band(segment: int, total: int, margin: float = 0.1) -> tuple[float, float]:
    """(south, north) latitude (degrees) of segment ``segment`` of ``total`` of the full disk
    (``FLDK``): its lines are the disk's ``[(segment-1)/total, segment/total)`` from the north;
    the latitudes its pixels reach on the disc (a lattice over the segment, all columns),
    widened by ``margin`` degrees for the actual header's geometry."""
    from types import SimpleNamespace

    n = FLDK_NOMINAL["lines"]
    centre = (n + 1) / 2
    h = (FLDK_NOMINAL["distance_km"] - FLDK_NOMINAL["req_km"]) * 1000
    nominal = SimpleNamespace(
        **FLDK_NOMINAL,
        cfac=FLDK_NOMINAL["lfac"],
        coff=centre,
        loff=centre,
        proj4=(
            f"+proj=geos +lon_0={FLDK_NOMINAL['sub_lon']} +h={h} "
            f"+a={FLDK_NOMINAL['req_km'] * 1000} +b={FLDK_NOMINAL['rpol_km'] * 1000} "
            "+units=m +no_defs"
        ),
    )
    lines = np.linspace((segment - 1) * n / total + 0.5, segment * n / total + 0.5, 65)
    cols = np.linspace(0.5, n + 0.5, 257)
    gl, gc = np.meshgrid(lines, cols, indexing="ij")
    _, lat = linecol_to_lonlat(nominal, gl, gc)
    return (
        max(-90.0, float(np.nanmin(lat)) - margin),
        min(90.0, float(np.nanmax(lat)) + margin),
    )


def name_bbox(name: str) -> tuple[float, float, float, float] | None:
    """The lon/lat envelope a full-disk (``FLDK``) segment's file name gives: its segment's
    latitude band, all longitudes (the disk spans the date line); None for other areas
    (Japan, target and regional scans move) and other names."""
    # string splitting, not FILENAME_RE: the index applies this to every name of an archive
    # (10^6 of them) and a regex costs several times more; HS_H09_<date>_<time>_B03_FLDK_R05_
    # S0110.DAT[.bz2] splits into 8 parts, the area 6th, the segment token last
    parts = name.split("_")
    if len(parts) != 8 or parts[0] != "HS" or parts[5] != "FLDK":
        return None
    seg = parts[7]
    if not (seg.startswith("S") and seg[1:5].isdigit() and seg[5:] in (".DAT", ".DAT.bz2")):
        return None
    return _segment_bbox(int(seg[1:3]), int(seg[3:5]))


@functools.lru_cache(maxsize=256)
def _segment_bbox(segment: int, total: int) -> tuple[float, float, float, float] | None:
    if not 1 <= segment <= total:
        return None
    south, north = segment_lat_band(segment, total)
    return (-180.0, south, 180.0, north)


def _mjd(value: float, path: Path, what: str) -> datetime:
    if not np.isfinite(value) or not 40000 < value < 100000:  # 1968..2132
        raise ReaderError(f"{path}: {what} {value!r} is not a Modified Julian Date")
    when = MJD_EPOCH + timedelta(days=float(value))
    return when + timedelta(microseconds=round(when.microsecond, -3) - when.microsecond)


def _read_head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of the uncompressed content (bz2 streams are decompressed
    only as far as needed)."""
    try:
        if path.name.endswith(".bz2"):
            with bz2.open(path, "rb") as fh:
                return fh.read(size)
        with open(path, "rb") as fh:
            return fh.read(size)
    except (OSError, EOFError, ValueError) as exc:
        raise ReaderError(f"{path}: cannot read ({exc})") from exc


def read_header(path: str | Path) -> HsdHeader:
    """Parse and check the 11 header blocks of an HSD file (``.DAT`` or ``.DAT.bz2``).

    Reads only the header bytes. Checks the block numbers 1..11, each block length against
    the block's fixed size, their sum against ``total_header_length``, 16-bit pixels, the
    data length against lines x columns and the segment numbers. Raises ReaderError naming
    the file and the problem (empty, not HSD, broken header).
    """
    path = Path(path)
    if not path.is_file():
        raise ReaderError(f"{path}: no such file")
    head = _read_head(path, 512)
    if len(head) == 0:
        raise ReaderError(f"{path}: empty file (0 bytes), not an HSD segment")
    if len(head) < 3 or head[0] != 1 or int.from_bytes(head[1:3], "little") != 282:
        raise ReaderError(
            f"{path}: not a Himawari Standard Data file (block 1 must start with number 1 "
            f"and length 282)"
        )
    if len(head) < 282:
        raise ReaderError(f"{path}: truncated in header block 1 ({len(head)} bytes)")
    b1 = np.frombuffer(head, _BLOCK1, count=1, offset=0)[0]
    total = int(b1["total_header_length"])
    if not sum(_BLOCK_MIN_LENGTH.values()) <= total <= 10_000_000:
        raise ReaderError(f"{path}: broken header: total_header_length {total} is implausible")
    head = _read_head(path, total)
    if len(head) < total:
        raise ReaderError(
            f"{path}: truncated: {len(head)} header bytes, total_header_length says {total}"
        )
    offsets: dict[int, int] = {}
    pos = 0
    for number in range(1, 12):
        if pos + 3 > total:
            raise ReaderError(f"{path}: broken header: block {number} starts past the header")
        got = head[pos]
        width = 4 if number == 10 else 2
        length = int.from_bytes(head[pos + 1 : pos + 1 + width], "little")
        if got != number:
            raise ReaderError(
                f"{path}: broken header: expected block {number} at byte {pos}, found {got} "
                "(wrong block lengths?)"
            )
        if length < _BLOCK_MIN_LENGTH[number]:
            raise ReaderError(
                f"{path}: broken header: block {number} length {length} < its fixed size "
                f"{_BLOCK_MIN_LENGTH[number]}"
            )
        offsets[number] = pos
        pos += length
    if pos != total:
        raise ReaderError(
            f"{path}: broken header: block lengths add up to {pos} bytes, "
            f"total_header_length says {total}"
        )
    b2 = np.frombuffer(head, _BLOCK2, count=1, offset=offsets[2])[0]
    b3 = np.frombuffer(head, _BLOCK3, count=1, offset=offsets[3])[0]
    b5 = np.frombuffer(head, _BLOCK5, count=1, offset=offsets[5])[0]
    b7 = np.frombuffer(head, _BLOCK7, count=1, offset=offsets[7])[0]
    lines, columns = int(b2["lines"]), int(b2["columns"])
    if int(b2["bits_per_pixel"]) != 16 or lines == 0 or columns == 0:
        raise ReaderError(
            f"{path}: broken header: {lines} x {columns} pixels of "
            f"{int(b2['bits_per_pixel'])} bits (expected 16-bit counts)"
        )
    if int(b1["total_data_length"]) != lines * columns * 2:
        raise ReaderError(
            f"{path}: broken header: total_data_length {int(b1['total_data_length'])} != "
            f"{lines} lines x {columns} columns x 2 bytes"
        )
    seg, nseg, first = int(b7["segment"]), int(b7["total_segments"]), int(b7["first_line"])
    if not 1 <= seg <= nseg or first < 1:
        raise ReaderError(f"{path}: broken header: segment {seg} of {nseg}, first line {first}")
    band = int(b5["band_number"])
    if not 1 <= band <= 16:
        raise ReaderError(f"{path}: broken header: band number {band}")
    if (
        not (
            0
            < float(b3["earth_polar_radius"])
            <= float(b3["earth_equatorial_radius"])
            < float(b3["distance_from_earth_center"])
        )
        or int(b3["CFAC"]) == 0
    ):
        raise ReaderError(f"{path}: broken header: projection block (radii, distance, CFAC)")
    timeline = int(b1["observation_timeline"])
    if timeline >= 2400 or timeline % 100 >= 60:
        raise ReaderError(f"{path}: broken header: observation_timeline {timeline} is not HHMM")
    return HsdHeader(
        path=path,
        satellite=bytes(b1["satellite"]).split(b"\0")[0].decode("ascii", "replace").strip(),
        area=bytes(b1["observation_area"]).split(b"\0")[0].decode("ascii", "replace"),
        timeline=timeline,
        observation_start=_mjd(float(b1["observation_start_time"]), path, "observation start"),
        observation_end=_mjd(float(b1["observation_end_time"]), path, "observation end"),
        header_length=total,
        data_length=int(b1["total_data_length"]),
        columns=columns,
        lines=lines,
        sub_lon=float(b3["sub_lon"]),
        cfac=int(b3["CFAC"]),
        lfac=int(b3["LFAC"]),
        coff=float(b3["COFF"]),
        loff=float(b3["LOFF"]),
        distance_km=float(b3["distance_from_earth_center"]),
        req_km=float(b3["earth_equatorial_radius"]),
        rpol_km=float(b3["earth_polar_radius"]),
        band=band,
        wavelength_um=float(b5["central_wave_length"]),
        total_segments=nseg,
        segment=seg,
        first_line=first,
    )


# --- geolocation -------------------------------------------------------------------------


def linecol_to_lonlat(
    header: HsdHeader, line: np.ndarray, column: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Longitude/latitude (degrees, WGS84-like ellipsoid of block 3) of pixel positions.

    ``line``/``column`` are 1-based and may be fractional (pixel centres are integers, edges
    at +-0.5); lines are numbered in the observation area, north to south. Scan angles are
    ``x = (column - COFF) * 2**16 / CFAC`` and ``y = (LOFF - line) * 2**16 / LFAC`` degrees
    (CGMS LRIT/HRIT Global Specification 4.4.4); PROJ's ``geos`` (sweep y) maps them to
    lon/lat. Points off the Earth's disc are NaN.
    """
    from pyproj import Transformer

    h = (header.distance_km - header.req_km) * 1000
    x = np.radians((np.asarray(column, float) - header.coff) * 2**16 / header.cfac) * h
    y = np.radians((header.loff - np.asarray(line, float)) * 2**16 / header.lfac) * h
    x, y = np.broadcast_arrays(x, y)
    tr = Transformer.from_crs(header.proj4, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(x, y, errcheck=False)
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    bad = ~np.isfinite(lon) | ~np.isfinite(lat) | (np.abs(lon) > 1e3)
    return np.where(bad, np.nan, lon), np.where(bad, np.nan, lat)


def lonlat_to_linecol(
    header: HsdHeader, lon: np.ndarray, lat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fractional 1-based (line, column) in the observation area of lon/lat points (the
    inverse of :func:`linecol_to_lonlat`); NaN where the point is not seen from the
    satellite."""
    from pyproj import Transformer

    h = (header.distance_km - header.req_km) * 1000
    tr = Transformer.from_crs("EPSG:4326", header.proj4, always_xy=True)
    lon, lat = np.broadcast_arrays(np.asarray(lon, float), np.asarray(lat, float))
    x, y = tr.transform(lon, lat, errcheck=False)
    x, y = np.asarray(x, float), np.asarray(y, float)
    bad = ~np.isfinite(x) | ~np.isfinite(y) | (np.abs(x) > 1e8)
    column = header.coff + np.degrees(x / h) * header.cfac / 2**16
    line = header.loff - np.degrees(y / h) * header.lfac / 2**16
    return np.where(bad, np.nan, line), np.where(bad, np.nan, column)


def _wrap_bbox(lon: np.ndarray, lat: np.ndarray, sub_lon: float) -> list[float] | None:
    """[W, S, E, N] of finite points; longitudes are taken relative to the sub-satellite
    longitude so that a footprint across 180 degrees gives W > E (STAC convention)."""
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return None
    rel = (lon[ok] - sub_lon + 180.0) % 360.0 - 180.0
    west, east = sub_lon + rel.min(), sub_lon + rel.max()
    west, east = ((west + 180) % 360) - 180, ((east + 180) % 360) - 180
    return [round(float(v), 6) for v in (west, lat[ok].min(), east, lat[ok].max())]


def footprint_bbox(header: HsdHeader, samples: int = 64) -> list[float] | None:
    """Lon/lat box [W, S, E, N] (degrees) of the segment's pixel edges seen from the
    satellite (a ``samples`` x ``samples`` lattice over the segment, edges included)."""
    lines = np.linspace(header.first_line - 0.5, header.first_line + header.lines - 0.5, samples)
    cols = np.linspace(0.5, header.columns + 0.5, samples)
    gl, gc = np.meshgrid(lines, cols, indexing="ij")
    lon, lat = linecol_to_lonlat(header, gl, gc)
    return _wrap_bbox(lon, lat, header.sub_lon)


def granule_info(path: str | Path) -> dict:
    """Header-only summary of one HSD file.

    Keys: ``start``/``end`` (observation start/end, UTC datetimes), ``nominal_start``,
    ``platform``, ``band`` (``"B03"``), ``wavelength_um``, ``segment``, ``total_segments``,
    ``first_line`` (1-based, in the observation area), ``lines``, ``columns``,
    ``resolution_km`` (at the sub-satellite point), ``area`` (``FLDK``, ``JP01``, ``R301``,
    ...), ``sub_lon`` and ``bbox`` [W, S, E, N] degrees (None if off the disc).
    """
    hdr = read_header(path)
    return {
        "path": str(hdr.path),
        "start": hdr.observation_start,
        "end": hdr.observation_end,
        "nominal_start": hdr.nominal_start,
        "platform": hdr.satellite,
        "band": f"B{hdr.band:02d}",
        "wavelength_um": hdr.wavelength_um,
        "segment": hdr.segment,
        "total_segments": hdr.total_segments,
        "first_line": hdr.first_line,
        "lines": hdr.lines,
        "columns": hdr.columns,
        "resolution_km": hdr.resolution_km,
        "area": hdr.area,
        "sub_lon": hdr.sub_lon,
        "bbox": footprint_bbox(hdr),
    }


def bbox_line_range(
    header: HsdHeader, bbox: Sequence[float], samples: int = 41
) -> tuple[float, float, float, float] | None:
    """(first line, last line, first column, last column), fractional and 1-based in the
    header's observation area, covered by the lon/lat ``bbox`` [W, S, E, N] degrees (a
    ``samples`` x ``samples`` lattice over the box, edges included). None if no part of
    the box is seen from the satellite."""
    west, south, east, north = (float(v) for v in bbox)
    if east < west:  # across 180 degrees
        east += 360.0
    glon, glat = np.meshgrid(np.linspace(west, east, samples), np.linspace(south, north, samples))
    line, col = lonlat_to_linecol(header, glon, glat)
    ok = np.isfinite(line) & np.isfinite(col)
    if not ok.any():
        return None
    return (
        float(line[ok].min()),
        float(line[ok].max()),
        float(col[ok].min()),
        float(col[ok].max()),
    )


def segment_overlaps(header: HsdHeader, bbox: Sequence[float]) -> bool:
    """True if any pixel of this segment (its line range, all columns) falls inside the
    lon/lat ``bbox`` [W, S, E, N] degrees."""
    rng = bbox_line_range(header, bbox)
    if rng is None:
        return False
    lmin, lmax, cmin, cmax = rng
    first, last = header.first_line - 0.5, header.first_line + header.lines - 0.5
    return lmax >= first and lmin <= last and cmax >= 0.5 and cmin <= header.columns + 0.5


def segments_for_bbox(paths: Iterable[str | Path], bbox: Sequence[float]) -> list[Path]:
    """The HSD files (any bands, segments and times) whose segment lines overlap the lon/lat
    ``bbox`` [W, S, E, N] degrees, in the order given. Reads only headers; a file whose
    header is broken raises ReaderError."""
    return [Path(p) for p in paths if segment_overlaps(read_header(p), bbox)]


# --- reading through satpy -----------------------------------------------------------------


def _as_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(paths, str | Path):
        return [Path(paths)]
    out = [Path(p) for p in paths]
    if not out:
        raise ReaderError("ahi_hsd: no files given")
    return out


def _check_group(headers: list[HsdHeader]) -> None:
    """All files must be one observation (platform, area, nominal time) and each (band,
    segment) present once."""
    first = headers[0]
    key = (first.satellite, first.area, first.nominal_start)
    seen: dict[tuple[int, int], Path] = {}
    for h in headers:
        if (h.satellite, h.area, h.nominal_start) != key:
            raise ReaderError(
                f"{h.path}: belongs to {h.satellite} {h.area} {h.nominal_start:%Y-%m-%d %H:%M}, "
                f"not to the observation of {first.path.name} ({first.satellite} {first.area} "
                f"{first.nominal_start:%Y-%m-%d %H:%M}); open one observation at a time"
            )
        if (h.band, h.segment) in seen:
            raise ReaderError(
                f"{h.path}: band B{h.band:02d} segment {h.segment} given twice "
                f"(also {seen[(h.band, h.segment)].name})"
            )
        seen[(h.band, h.segment)] = h.path
        meta = parse_filename(h.path)
        if meta is None:
            raise ReaderError(
                f"{h.path}: name does not follow HS_<sat>_<date>_<hhmm>_B<bb>_<area>_R<res>_"
                "S<seg><total>.DAT[.bz2]; satpy selects files by name"
            )
        if (meta["band"], meta["segment"], meta["total_segments"]) != (
            h.band,
            h.segment,
            h.total_segments,
        ):
            raise ReaderError(
                f"{h.path}: file name says band {meta['band']} segment {meta['segment']}/"
                f"{meta['total_segments']}, header says band {h.band} segment "
                f"{h.segment}/{h.total_segments}"
            )


def _local_copy(header: HsdHeader, folder: Path) -> Path:
    """An uncompressed file satpy can memory-map: the file itself, or its bz2 content in
    ``folder`` under the ``.DAT`` name. Checks the size against the header (truncation)."""
    expected = header.header_length + header.data_length
    path = header.path
    if not path.name.endswith(".bz2"):
        size = path.stat().st_size
        if size < expected:
            raise ReaderError(
                f"{path}: truncated: {size} bytes, header says {expected} "
                f"({header.lines} lines x {header.columns} columns)"
            )
        return path
    target = folder / path.name[: -len(".bz2")]
    try:
        with bz2.open(path, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
    except (OSError, EOFError, ValueError) as exc:
        raise ReaderError(f"{path}: truncated or corrupt bz2 stream ({exc})") from exc
    size = target.stat().st_size
    if size < expected:
        raise ReaderError(
            f"{path}: truncated: {size} bytes after decompression, header says {expected}"
        )
    return target


def _target_area(areas: dict[int, AreaDefinition], resolution: int) -> AreaDefinition:
    """The geostationary AreaDefinition at ``resolution`` metres covering the loaded
    segments: the loaded band's own area at that resolution, else another band's area with
    its pixel grid refined or coarsened (AHI grids nest: 2 km = 2 x 2 x 1 km = 4 x 4 x 0.5 km).
    """
    from pyresample.geometry import AreaDefinition

    if resolution in areas:
        return areas[resolution]
    res, area = min(areas.items())
    factor = res / resolution
    width, height = area.width * factor, area.height * factor
    if abs(width - round(width)) > 1e-6 or abs(height - round(height)) > 1e-6:
        raise ReaderError(f"ahi_hsd: cannot place {resolution} m pixels on the {res} m grid")
    return AreaDefinition(
        f"{area.area_id}_{resolution}m",
        f"{area.description} at {resolution} m",
        area.proj_id,
        area.crs,
        int(round(width)),
        int(round(height)),
        area.area_extent,
    )


def open_hsd(
    paths: str | Path | Iterable[str | Path],
    bands: Sequence[str] | None = None,
    resolution: int = 1000,
    solar_angles: bool = True,
) -> xr.Dataset:
    """Load one AHI observation (any number of bands and segments) with satpy's ``ahi_hsd``.

    Parameters
    ----------
    paths:
        HSD files of ONE observation (same satellite, area and nominal time): one or more
        segments of one or more bands, ``.DAT`` or ``.DAT.bz2``. Use
        :func:`segments_for_bbox` first to open only the segments over a region. Every band
        must cover the same, adjacent segments.
    bands:
        satpy band names; default: those of :data:`BANDS` (B03, B04, B05, B06, B13) present.
    resolution:
        Common pixel size in metres at the sub-satellite point (500, 1000 or 2000). Every
        band is put on that geostationary grid with satpy's ``native`` resampler: finer
        bands are block-averaged, coarser bands replicated (no new detail is invented).
    solar_angles:
        Add ``solar_zenith_angle`` (degrees, pyorbital at the observation mid-time).

    Returns
    -------
    xarray.Dataset
        Dims ``(y, x)``: rows north to south. Coordinates ``x``/``y`` are pixel centres in
        metres of the geostationary projection (``proj=geos``, sweep y, lon_0 from the
        header, WGS84-like ellipsoid a=6378137, b=6356752.3 m, h=35785863 m), ``spatial_ref``
        holds its CRS WKT, ``lon``/``lat`` (degrees, NaN off the disc) are 2-D, and
        ``ds.attrs["area"]`` is the pyresample ``AreaDefinition`` (use it to resample).
        Variables: B03/B04/B05/B06 top-of-atmosphere reflectance as a FRACTION (0-1, satpy's
        percent / 100, not divided by cos(SZA): satpy's AHI reflectance is the radiance
        times the block-5 albedo coefficient), B13 brightness temperature (K); NaN for count
        sentinels, space and missing data. Scalar coordinates ``time`` (nominal start) and
        ``observation_time`` (mid-point of the observation start/end in the headers).

    Raises
    ------
    ReaderError
        Empty, truncated, foreign or inconsistent files; files of several observations; a
        requested band missing; no valid pixel in any band (all counts 65535/65534).
    """
    files = _as_paths(paths)
    headers = [read_header(p) for p in files]
    _check_group(headers)
    present = sorted({f"B{h.band:02d}" for h in headers})
    wanted = list(bands) if bands is not None else [b for b in BANDS if b in present]
    if not wanted:
        raise ReaderError(
            f"{files[0]}: none of the bands {', '.join(BANDS)} among the files "
            f"(they hold {', '.join(present)})"
        )
    missing = [b for b in wanted if b not in present]
    if missing:
        raise ReaderError(
            f"{files[0]}: band(s) {', '.join(missing)} not among the files "
            f"(they hold {', '.join(present)})"
        )
    if resolution not in (500, 1000, 2000):
        raise ReaderError(f"ahi_hsd: resolution must be 500, 1000 or 2000 m, not {resolution}")
    segs = {b: sorted(h.segment for h in headers if f"B{h.band:02d}" == b) for b in wanted}
    if len({tuple(s) for s in segs.values()}) > 1:
        raise ReaderError(
            f"{files[0]}: bands cover different segments ({segs}); give every band the same "
            "segments"
        )
    seg_list = next(iter(segs.values()))
    if seg_list != list(range(seg_list[0], seg_list[-1] + 1)):
        raise ReaderError(
            f"{files[0]}: segments {seg_list} are not contiguous; satpy would stack them "
            "without the gap, so open each run of adjacent segments separately"
        )
    chosen = [h for h in headers if f"B{h.band:02d}" in wanted]
    with tempfile.TemporaryDirectory(prefix="fluxscape_hsd_") as tmp:
        local = [_local_copy(h, Path(tmp)) for h in chosen]
        ds = _load_with_satpy(local, chosen, wanted, resolution)
    return _finish(ds, chosen, wanted, resolution, solar_angles)


def _load_with_satpy(local: list[Path], headers: list[HsdHeader], wanted: list[str], res: int):
    """satpy Scene -> computed DataArrays on one common grid (inside the temporary folder's
    lifetime, hence computed)."""
    import dask
    from satpy import Scene

    names = ", ".join(sorted(h.path.name for h in headers))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scn = Scene([str(p) for p in local], reader="ahi_hsd")
            vis = [b for b in wanted if _calibration(b) == "reflectance"]
            ir = [b for b in wanted if _calibration(b) != "reflectance"]
            if vis:
                scn.load(vis, calibration="reflectance", pad_data=False)
            if ir:
                scn.load(ir, calibration="brightness_temperature", pad_data=False)
            loaded = [b for b in wanted if b in scn]
            if len(loaded) != len(wanted):
                raise ReaderError(
                    f"{names}: satpy ahi_hsd did not load {sorted(set(wanted) - set(loaded))}"
                )
            areas = {int(scn[b].attrs["resolution"]): scn[b].attrs["area"] for b in loaded}
            target = _target_area(areas, res)
            if all(scn[b].attrs["area"] == target for b in loaded):
                out = scn
            else:
                out = scn.resample(target, resampler="native")
            # Synchronous: small arrays, and safe inside a task of a distributed Dask cluster.
            computed = dask.compute(*(out[b] for b in wanted), scheduler="synchronous")
            arrays = dict(zip(wanted, computed, strict=True))
    except ReaderError:
        raise
    except Exception as exc:  # satpy/numpy/dask errors become one clear line
        raise ReaderError(
            f"{names}: satpy ahi_hsd could not load ({type(exc).__name__}: {exc})"
        ) from exc
    return arrays, target


def _calibration(band: str) -> str:
    return "reflectance" if int(band[1:]) <= 6 else "brightness_temperature"


def _finish(
    loaded, headers: list[HsdHeader], wanted: list[str], resolution: int, solar_angles: bool
) -> xr.Dataset:
    from odc.geo.xr import xr_coords

    arrays, area = loaded
    names = ", ".join(sorted(h.path.name for h in headers))
    empty = [b for b in wanted if not np.isfinite(arrays[b].values).any()]
    if len(empty) == len(wanted):
        raise ReaderError(
            f"{names}: no valid pixel in any band (all counts are fill: 65535 error or "
            "65534 outside scan, or space)"
        )
    gbox = area.to_odc_geobox()
    coords = xr_coords(gbox, crs_coord_name="spatial_ref")
    data_vars = {}
    for b in wanted:
        arr = arrays[b]
        values = np.asarray(arr.values, dtype=np.float32)
        role, wl, _, _ = BANDS.get(b, (b.lower(), float("nan"), 0, ""))
        if _calibration(b) == "reflectance":
            values = values / np.float32(100.0)
            attrs = {
                "units": "1",
                "standard_name": "toa_bidirectional_reflectance",
                "long_name": f"AHI {b} ({wl} um, {role}) top-of-atmosphere reflectance",
            }
        else:
            attrs = {
                "units": "K",
                "standard_name": "toa_brightness_temperature",
                "long_name": f"AHI {b} ({wl} um) brightness temperature",
            }
        attrs.update(
            band=b,
            wavelength_um=float(arr.attrs["wavelength"].central),
            native_resolution_m=NATIVE_RESOLUTION[int(b[1:])],
            grid_mapping="spatial_ref",
        )
        data_vars[b] = (("y", "x"), values, attrs)
    ds = xr.Dataset(data_vars, coords=coords)
    lons, lats = area.get_lonlats()
    # float64: float32 would move pixel centres by up to 1.5e-5 degree (about 1.5 m).
    lons = np.where(np.isfinite(lons) & (np.abs(lons) <= 360), lons, np.nan)
    lats = np.where(np.isfinite(lats) & (np.abs(lats) <= 90), lats, np.nan)
    ds = ds.assign_coords(
        lon=(("y", "x"), lons, {"units": "degrees_east", "standard_name": "longitude"}),
        lat=(("y", "x"), lats, {"units": "degrees_north", "standard_name": "latitude"}),
    )
    start = min(h.observation_start for h in headers)
    end = max(h.observation_end for h in headers)
    mid = start + (end - start) / 2
    if solar_angles:
        from pyorbital.astronomy import sun_zenith_angle

        with np.errstate(invalid="ignore"):
            sza = sun_zenith_angle(mid, lons, lats)
        ds["solar_zenith_angle"] = (
            ("y", "x"),
            np.asarray(sza, dtype=np.float32),
            {
                "units": "degree",
                "standard_name": "solar_zenith_angle",
                "long_name": "solar zenith angle at the observation mid-time (pyorbital)",
                "grid_mapping": "spatial_ref",
            },
        )
    first = headers[0]
    ds = ds.assign_coords(
        time=np.datetime64(first.nominal_start, "ns"),
        observation_time=np.datetime64(mid, "ns"),
    )
    ds["time"].attrs["long_name"] = "nominal start of the observation (timeline), UTC"
    ds["observation_time"].attrs["long_name"] = "mid-point of observation start/end, UTC"
    ds.attrs.update(
        area=area,
        platform=first.satellite,
        sensor="ahi",
        observation_area=first.area,
        segments=sorted({h.segment for h in headers}),
        total_segments=first.total_segments,
        resolution_m=resolution,
        observation_start_time=start.isoformat(),
        observation_end_time=end.isoformat(),
        empty_bands=empty,
        source_files=[str(h.path) for h in headers],
        format_reference=SPEC_URL,
    )
    return ds


# --- registry --------------------------------------------------------------------------------


def _sniff(path: Path) -> bool:
    """Block 1 starts with number 1 and length 282, the header parses and an uncompressed
    segment is as long as its header says; ReaderError saying what is wrong otherwise."""
    path = Path(path)
    compressed = path.name.endswith(".bz2")
    kind = require(
        path,
        ("bz2",) if compressed else ("binary",),
        "a bzip2-compressed Himawari HSD segment" if compressed else "a Himawari HSD segment",
    )
    head = _read_head(path, 3)
    if len(head) < 3 or head[0] != 1 or int.from_bytes(head[1:3], "little") != 282:
        raise ReaderError(
            f"{path}: is {describe(kind)}, not a Himawari HSD segment (block 1 must start with "
            "number 1 and length 282)"
        )
    header = read_header(path)
    if not compressed:
        expected = header.header_length + header.data_length
        size = path.stat().st_size
        if size < expected:
            raise ReaderError(f"{path}: truncated: header says {expected} bytes, file has {size}")
    return True


def valid_count(path: str | Path) -> int:
    """Pixels of the segment whose count is neither 65535 (error) nor 65534 (outside the
    scan); reads (for ``.bz2``: decompresses) the whole segment."""
    header = read_header(path)
    path = Path(path)
    n, valid = header.lines * header.columns, 0
    opener = bz2.open if path.name.endswith(".bz2") else open
    try:
        with opener(path, "rb") as fh:
            fh.read(header.header_length)
            left, tail = n * 2, b""
            while left > 0:
                chunk = tail + fh.read(min(left, 1 << 22))
                if len(chunk) == len(tail):
                    break
                left -= len(chunk) - len(tail)
                even = len(chunk) - len(chunk) % 2
                counts = np.frombuffer(chunk[:even], "<u2")
                valid += int(np.count_nonzero(counts < 65534))
                tail = chunk[even:]
    except (OSError, EOFError, ValueError) as exc:
        raise ReaderError(f"{path}: truncated or corrupt ({exc})") from exc
    return valid


def _summarize(path: Path) -> FileSummary:
    """Header summary; ``details["valid_values"]`` counts the band's valid pixels."""
    info = granule_info(path)
    band, valid = info["band"], valid_count(path)
    return FileSummary(
        path=str(path),
        reader="ahi_hsd",
        variables=[info["band"]],
        bbox=info["bbox"],
        time=[info["start"].isoformat(), info["end"].isoformat()],
        details={
            k: info[k]
            for k in (
                "platform",
                "area",
                "segment",
                "total_segments",
                "first_line",
                "lines",
                "columns",
                "resolution_km",
                "wavelength_um",
            )
        }
        | {"nominal_start": info["nominal_start"].isoformat(), "valid_values": {band: valid}}
        | ({"warnings": [f"no valid data in {band}: every count is fill"]} if not valid else {}),
    )


# --- source: AHI scenes onto a tile ---------------------------------------------------------

#: HSD band -> standard layer; B13 (10.4 um) screens cold clouds when the scene has it.
HSD_LAYERS = {
    "B01": "blue",
    "B02": "green",
    "B03": "red",
    "B04": "nir",
    "B05": "swir16",
    "B06": "swir22",
}
#: HSD thermal band -> standard layer (brightness temperature, K): the fire product's pair.
HSD_BT_LAYERS = {"B07": "bt07", "B14": "bt14"}
THERMAL_BAND = "B13"
#: Brightness temperature (K) of B13 below which a pixel is a cold cloud.
COLD_CLOUD_K = 265.0


def _granule_info(path: str | Path) -> Granule | None:
    """One segment file as a granule part: the files of one scene (satellite, area, nominal
    time) share a group and are merged by the pipeline; None when the segment is off the
    disc."""
    info = granule_info(path)
    if info["bbox"] is None:
        return None
    layer = HSD_LAYERS.get(info["band"]) or HSD_BT_LAYERS.get(info["band"])
    return Granule(
        str(path),
        info["nominal_start"],
        tuple(float(v) for v in info["bbox"]),
        (info["platform"], info["area"], info["sub_lon"]),
        (str(path),),
        layers=frozenset({layer} if layer else ()),
        group=(info["platform"], info["area"], info["nominal_start"]),
        product=info["area"],
    )


def _band_of(path: str) -> str:
    match = FILENAME_RE.fullmatch(Path(path).name)
    return f"B{match['band']}" if match else ""


def _prepare(granule: Granule, tile, options: dict) -> dict:
    from fluxscape.readers.ontile import tile_lonlat

    lon, lat = tile_lonlat(tile)
    return {"lon": lon, "lat": lat, "index": {}}


def _read(granule: Granule, tile, layers, options: dict, context: dict) -> dict | None:
    """The requested reflectance layers of one scene on the tile (nearest pixel through the
    scene's AreaDefinition), opening only the segments of the bands needed over the tile:
    those layers, B03 (red) for the bright-cloud test and B13 when the scene has it."""
    from fluxscape.readers.ontile import tile_bbox

    if set(layers) & set(HSD_BT_LAYERS.values()):
        return _read_bt(granule, tile, layers, options, context)
    wanted = {band for band, name in HSD_LAYERS.items() if name in layers}
    wanted |= {"B03", THERMAL_BAND}
    files = [p for p in granule.files if _band_of(p) in wanted]
    selected = segments_for_bbox(files, tile_bbox(tile, 0.05))
    if not selected:
        return None
    bands = sorted({_band_of(str(p)) for p in selected})
    ds = _scene(selected, bands, options.get("ahi_resolution", 1000))
    rows, cols, valid = _nearest(ds, context)
    r, c = np.where(valid, rows, 0), np.where(valid, cols, 0)

    def on_tile(band: str) -> np.ndarray:
        if band not in ds:
            return np.full(valid.shape, np.nan, "float32")
        return np.where(valid, ds[band][r, c], np.nan).astype("float32")

    out = {HSD_LAYERS[b]: on_tile(b) for b in sorted(wanted - {THERMAL_BAND})}
    out = {k: v for k, v in out.items() if k in layers or k == "red"}
    out = screen_clouds(out, on_tile(THERMAL_BAND), granule, context["lon"], context["lat"])
    out["files"] = [str(p) for p in selected]
    return out


def _scene(selected: list[Path], bands: list[str], resolution: int) -> dict:
    """The decoded bands (``{band: (y, x) array}``), ``area`` (pyresample AreaDefinition)
    and ``observation_time`` of :func:`open_hsd` on ``selected`` segments, through the
    per-process granule cache (``granule_cache.BLOCKS``, keyed by each file's path, size and
    modification time, the bands and the resolution): the tiles of a region that meet the
    same segments of a scene decode them once per process instead of once per tile. The
    arrays may be shared with the cache: do not write into them."""
    try:
        key = ("ahi_hsd", tuple(file_stamp(p) for p in selected), tuple(bands), resolution)
    except OSError as exc:
        raise ReaderError(f"{selected[0]}: cannot read ({exc.strerror})") from exc
    scene = BLOCKS.get(key)
    if scene is None:
        ds = open_hsd(selected, bands=bands, resolution=resolution, solar_angles=False)
        scene = {b: ds[b].values for b in bands}
        scene["area"] = ds.attrs["area"]
        scene["observation_time"] = ds["observation_time"].values
        BLOCKS.put(key, scene)
    return scene


def _nearest(ds, context: dict):
    """Row/column of the scene pixel nearest each tile pixel (cached per scene grid) and
    whether the tile pixel falls on the scene (``ds``: a :func:`_scene`)."""
    area = ds["area"]
    key = (area.area_extent, area.shape)
    if key not in context["index"]:
        # pyresample returns (column, row) indices of the nearest pixel
        cols, rows = area.get_array_indices_from_lonlat(context["lon"], context["lat"])
        rows, cols = np.ma.filled(rows, -1), np.ma.filled(cols, -1)
        context["index"][key] = (rows, cols, (rows >= 0) & (cols >= 0))
    return context["index"][key]


def _read_bt(granule: Granule, tile, layers, options: dict, context: dict) -> dict | None:
    """Brightness temperatures (``bt07``, ``bt14``, K) of one scene on the tile at the native
    2 km (nearest pixel), opening only those bands' segments over the tile; ``usable`` where
    every requested one is finite (cloud screening is the product's: the fire test has its
    own), plus ``doy``, ``solar_time``, ``sza`` and ``reliability`` (0, or -1 unobserved)."""
    from fluxscape.readers.ontile import day_of_year, solar_geometry, tile_bbox

    bands = {b for b, name in HSD_BT_LAYERS.items() if name in layers}
    files = [p for p in granule.files if _band_of(p) in bands]
    selected = segments_for_bbox(files, tile_bbox(tile, 0.05))
    present = sorted({_band_of(str(p)) for p in selected})
    if not selected or len(present) < len(bands):
        return None
    ds = _scene(selected, present, 2000)
    rows, cols, valid = _nearest(ds, context)
    r, c = np.where(valid, rows, 0), np.where(valid, cols, 0)
    out = {
        HSD_BT_LAYERS[b]: np.where(valid, ds[b][r, c], np.nan).astype("float32") for b in present
    }
    usable = np.logical_and.reduce([np.isfinite(v) for v in out.values()])
    out["usable"] = usable
    out["reliability"] = np.where(usable, 0, -1)
    out["doy"] = np.full(usable.shape, day_of_year(granule.start), "float32")
    out["solar_time"], out["sza"] = solar_geometry(granule.start, context["lon"], context["lat"])
    out["observation_time"] = ds["observation_time"]
    out["sub_lon"] = float(granule.key[2])  # (platform, area, sub_lon) from the header
    out["files"] = [str(p) for p in selected]
    return out


def screen_clouds(layers: dict, bt: np.ndarray, granule: Granule, lon, lat) -> dict:
    """Add ``reliability`` (0 clear, 3 cloudy, -1 no observation), ``usable``, ``doy`` and the
    observation geometry (``solar_time``, ``sza``) to an AHI scene's layers on a tile. Cloudy:
    red reflectance above 0.3 or the 10.4 um brightness temperature ``bt`` below
    :data:`COLD_CLOUD_K` (NaN where the scene has no B13: the red test alone)."""
    from fluxscape.readers.ontile import cloud_screen, day_of_year, solar_geometry

    observed = np.isfinite(layers["red"])
    if "nir" in layers:
        observed &= np.isfinite(layers["nir"])
    with np.errstate(invalid="ignore"):
        cloudy = cloud_screen(layers["red"]) | (bt < COLD_CLOUD_K)
    layers["reliability"] = np.where(observed, np.where(cloudy, 3, 0), -1)
    layers["usable"] = observed & ~cloudy
    layers["doy"] = np.full(layers["red"].shape, day_of_year(granule.start), "float32")
    layers["solar_time"], layers["sza"] = solar_geometry(granule.start, lon, lat)
    layers["files"] = list(granule.files)
    return layers


SPEC = register(
    ReaderSpec(
        name="ahi_hsd",
        patterns=(FILENAME_RE.pattern,),
        sniff=_sniff,
        open=open_hsd,
        summarize=_summarize,
        description=(
            "Himawari-8/9 AHI Himawari Standard Data segments (HS_H0x_..._Bbb_..._Sssss.DAT"
            "[.bz2]) through satpy's ahi_hsd; geostationary grid, reflectance 0-1, BT K"
        ),
        capabilities=frozenset(HSD_LAYERS.values()) | frozenset(HSD_BT_LAYERS.values()),
        many_per_day=True,
        granule_info=_granule_info,
        prepare=_prepare,
        read=_read,
        name_bbox=name_bbox,
        quality="bright-red and cold-B13 cloud screen",
    )
)
