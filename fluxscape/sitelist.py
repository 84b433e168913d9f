"""Tower and site lists: one parser for the workflow's ``sites`` and ``catalog extract --sites``.

Accepted: FLUXNET's ``SitesList.csv`` (SiteCode, SiteName, Latitude, Longitude, IGBPCode),
any CSV with a site id, latitude and longitude column under a common spelling (``site,lat,lon``,
``SITE_ID,LAT,LON``, ``LOCATION_LAT``/``LOCATION_LONG``) and GeoJSON points. Coordinates are
WGS84 degrees (EPSG:4326). Neutral ground: imported by the FLUXNET reader and the catalog, it
imports neither.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from fluxscape.errors import ReaderError

log = logging.getLogger(__name__)

__all__ = ["read_site_list", "swapped_hint"]

#: Accepted column names (compared case-insensitively) of each site-list field: FLUXNET's
#: SitesList.csv, the BADM/ONEFlux spellings and a plain ``site,lat,lon`` table.
_SITE_LIST_ALIASES = {
    "site_id": ("sitecode", "site_id", "site", "id", "code", "site_code"),
    "lat": ("latitude", "lat", "location_lat"),
    "lon": ("longitude", "lon", "long", "lng", "location_long"),
    "name": ("sitename", "name", "site_name"),
    "igbp": ("igbpcode", "igbp", "igbp_code"),
}
_SITE_LIST_REQUIRED = ("site_id", "lat", "lon")


def read_site_list(path: str | Path) -> pd.DataFrame:
    """Tower sites from a table or GeoJSON file.

    Accepted: FLUXNET's ``SitesList.csv`` (SiteCode, SiteName, Latitude, Longitude,
    IGBPCode), any CSV with a site id, latitude and longitude column under a common spelling
    (``site,lat,lon``, ``SITE_ID,LAT,LON``, ``LOCATION_LAT``/``LOCATION_LONG``), and GeoJSON
    points whose properties hold the id (``site_id``, ``site``, ``id``, ``name``). Returns a
    DataFrame with ``site_id`` (str), ``name`` (str; the id when absent), ``lat`` and ``lon``
    (float, degrees north/east, WGS84) and ``igbp`` (IGBP class; "" when absent: upscaling
    takes land cover from the land-cover input). A UTF-8 byte-order mark and CRLF line ends
    are handled. ReaderError naming the file (and the columns found) when it is unreadable or
    lacks a site id, latitude or longitude column.
    """
    path = Path(path)
    if path.suffix.lower() in (".geojson", ".json"):
        return _finish_site_list(_geojson_sites(path), path)
    try:
        df = pd.read_csv(path, encoding="utf-8-sig", dtype=str, skipinitialspace=True)
    except FileNotFoundError as exc:
        raise ReaderError(f"{path}: no such file") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise ReaderError(f"{path}: cannot read site list ({exc})") from exc
    found = [str(c).strip().lstrip("\ufeff").strip('"') for c in df.columns]
    df.columns = found
    rename = {}
    lower = {c.lower(): c for c in reversed(found)}
    for field, aliases in _SITE_LIST_ALIASES.items():
        match = next((lower[a] for a in aliases if a in lower and lower[a] not in rename), None)
        if match is not None:
            rename[match] = field
    missing = [f for f in _SITE_LIST_REQUIRED if f not in rename.values()]
    if missing:
        raise ReaderError(
            f"{path}: site list lacks a {', '.join(missing)} column (columns found: "
            f"{', '.join(found)}); give SiteCode/Latitude/Longitude (FLUXNET SitesList.csv), "
            "site,lat,lon, or GeoJSON points"
        )
    return _finish_site_list(df.rename(columns=rename), path)


def _geojson_sites(path: Path) -> pd.DataFrame:
    """site_id/name/lat/lon rows of the Point features of a GeoJSON file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
        features = doc["features"] if doc.get("type") == "FeatureCollection" else [doc]
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise ReaderError(f"{path}: not a GeoJSON FeatureCollection ({exc})") from None
    rows = []
    for i, feat in enumerate(features):
        geom = (feat or {}).get("geometry") or {}
        props = (feat or {}).get("properties") or {}
        if geom.get("type") != "Point":
            raise ReaderError(f"{path}: feature {i} is a {geom.get('type')}, not a Point")
        site = next(
            (props[k] for k in ("site_id", "site", "id", "SiteCode", "name") if k in props), None
        )
        if site is None:
            raise ReaderError(
                f"{path}: feature {i} has no site id property (site_id, site, id or name; "
                f"found: {', '.join(props) or 'none'})"
            )
        lon, lat = geom["coordinates"][:2]
        rows.append(
            {
                "site_id": site,
                "name": props.get("name", site),
                "lat": lat,
                "lon": lon,
                "igbp": props.get("igbp", props.get("IGBP", "")),
            }
        )
    return pd.DataFrame(rows, columns=["site_id", "name", "lat", "lon", "igbp"])


def _finish_site_list(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    out = pd.DataFrame({"site_id": df["site_id"].astype(str).str.strip()})
    out["name"] = df["name"].astype(str).str.strip() if "name" in df else out["site_id"]
    for col in ("lat", "lon"):
        out[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    out["igbp"] = df["igbp"].fillna("").astype(str).str.strip() if "igbp" in df else ""
    bad = ~(out["lat"].between(-90, 90) & out["lon"].between(-180, 360))
    for _, row in out[bad].iterrows():  # e.g. IE-JtC's longitude -6499806.0 in a real list
        log.warning(
            "%s: site %s left out: no valid latitude/longitude (%s, %s)%s",
            path,
            row["site_id"],
            row["lat"],
            row["lon"],
            swapped_hint(row["lon"], row["lat"]),
        )
    out = out[~bad]
    return out.reset_index(drop=True)


def swapped_hint(lon: float, lat: float) -> str:
    """``"; latitude and longitude swapped?"`` when ``lat`` is outside +-90 degrees while
    ``lon`` would be a valid latitude, else ``""`` (a suffix for a message)."""
    if abs(lat) > 90 and abs(lon) <= 90:
        return "; latitude and longitude swapped?"
    return ""
