"""Input granules: expand globs, read each file's header (time, footprint), record bad files.

The driver builds this index once per run; tile tasks receive only the granules that meet
their tile, so a task never lists directories or opens files it does not need.
"""

from __future__ import annotations

import glob
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from odc.geo.geobox import GeoBox

from fluxscape.errors import FluxscapeError
from fluxscape.readers import modis_hdf4
from fluxscape.readers.registry import detect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Granule:
    """One input raster: path, nominal start time and its native pixel grid."""

    path: str
    start: datetime
    geobox: GeoBox


@dataclass(frozen=True)
class Skipped:
    """An input that could not be used, and why."""

    path: str
    reason: str

    def to_json(self) -> dict:
        return {"file": self.path, "reason": self.reason}


def expand_paths(patterns: list[str]) -> list[str]:
    """Sorted unique files matched by the glob patterns."""
    return sorted({p for pattern in patterns for p in glob.glob(pattern) if Path(p).is_file()})


def index_granules(paths: list[str], reader: str) -> tuple[list[Granule], list[Skipped]]:
    """Open each file's header with ``reader``; files that fail are returned as Skipped
    (file and reason) and logged, never raised."""
    if reader != "modis_hdf4":
        raise FluxscapeError(f"reader {reader!r} cannot yet feed a gridded product")
    granules, skipped = [], []
    for path in paths:
        try:
            spec = detect(path)
            if spec.name != reader:
                raise FluxscapeError(f"is a {spec.name} file, expected {reader}")
            meta = modis_hdf4.parse_filename(path)
            if meta is None:
                raise FluxscapeError("file name does not follow the MODIS convention")
            granules.append(Granule(path, meta["start"], modis_hdf4.tile_geobox(path)))
        except Exception as exc:  # any failure to read a header skips the file
            reason = str(exc).replace(f"{path}: ", "")
            log.warning("skipped input %s: %s", path, reason)
            skipped.append(Skipped(path, reason))
    return granules, skipped


def granules_for(geobox: GeoBox, granules: list[Granule]) -> list[Granule]:
    """The granules whose footprint meets ``geobox`` (compared in the tile's CRS)."""
    tile = geobox.extent
    return [g for g in granules if g.geobox.extent.to_crs(tile.crs).intersects(tile)]


def file_checksum(path: str) -> str:
    """SHA-256 of a file (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
