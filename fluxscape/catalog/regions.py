"""Polygons for extraction: read from any vector file, area-weighted means on a product grid.

Regions come from any vector format GDAL reads through pyogrio (GeoJSON, GeoPackage,
Shapefile, FlatGeobuf, ...) or from a GeoJSON dict; they are reprojected to lon/lat
(EPSG:4326) when the file says another CRS (a file without a CRS is taken as lon/lat, as
GeoJSON is). Means use exact fractional pixel weights (:mod:`fluxscape.zonal`) in the store's
own CRS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
import xarray as xr

from fluxscape import zonal
from fluxscape.catalog import geo
from fluxscape.errors import FluxscapeError

#: Properties naming a feature when no ``name_property`` is given, in this order (compared
#: case-insensitively: shapefiles often say ``NAME`` or ``Id``).
NAME_PROPERTIES = ("name", "id")


@dataclass(frozen=True)
class Region:
    """A named lon/lat (EPSG:4326) (Multi)Polygon."""

    name: str
    geometry: shapely.Geometry


def read_regions(source: dict | str | Path, name_property: str | None = None) -> list[Region]:
    """The polygon features of a vector file (any format pyogrio reads) or a GeoJSON dict
    (geometry, Feature or FeatureCollection), one :class:`Region` per name, in file order.

    A feature's name is its ``name_property`` value; without one, its ``name`` property, else
    its ``id`` property, else its position (1, 2, ...). Features sharing a name are united
    (a region drawn in several parts). FluxscapeError naming the file when it cannot be read,
    holds no feature, lacks ``name_property`` or holds a feature that is not a polygon."""
    label = "GeoJSON" if isinstance(source, dict) else str(source)
    frame = _read_frame(source, label)
    if frame.empty:
        raise FluxscapeError(f"{label}: no features")
    names = _names(frame, name_property, label)
    parts: dict[str, list[shapely.Geometry]] = {}
    for i, (name, geom) in enumerate(zip(names, frame.geometry, strict=True)):
        parts.setdefault(name, []).append(_polygon(geom, i, label))
    return [Region(name, shapely.union_all(geoms)) for name, geoms in parts.items()]


def _read_frame(source: dict | str | Path, label: str):
    """A GeoDataFrame in EPSG:4326 from a file or a GeoJSON dict."""
    import geopandas as gpd

    if isinstance(source, dict):
        kind = source.get("type")
        if kind == "FeatureCollection":
            features = source.get("features") or []
        elif kind == "Feature":
            features = [source]
        else:
            features = [{"type": "Feature", "properties": {}, "geometry": source}]
        try:
            return gpd.GeoDataFrame.from_features(features, crs="EPSG:4326")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FluxscapeError(f"{label}: not a GeoJSON geometry or feature ({exc})") from exc
    path = Path(source)
    if not path.exists():
        raise FluxscapeError(f"{path}: no such file")
    import pyogrio

    try:
        frame = pyogrio.read_dataframe(path)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise FluxscapeError(
            f"{path}: not a vector file GDAL can read ({_first_line(exc)})"
        ) from None
    except (RuntimeError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise FluxscapeError(f"{path}: cannot read vector file ({_first_line(exc)})") from None
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry is None:
        raise FluxscapeError(f"{path}: has no geometry column")
    if frame.crs is None:
        return frame.set_crs("EPSG:4326")
    if frame.crs.to_epsg() != 4326:
        return frame.to_crs("EPSG:4326")
    return frame


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _names(frame, name_property: str | None, label: str) -> list[str]:
    columns = [c for c in frame.columns if c != frame.geometry.name]
    if name_property is not None:
        if name_property not in columns:
            found = ", ".join(map(str, columns)) or "none"
            raise FluxscapeError(f"{label}: no property {name_property!r} (found: {found})")
        column = name_property
    else:
        lower = {str(c).lower(): c for c in reversed(columns)}
        column = next((lower[p] for p in NAME_PROPERTIES if p in lower), None)
    if column is None:
        return [str(i + 1) for i in range(len(frame))]
    values = frame[column]
    if values.isna().any():
        i = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise FluxscapeError(f"{label}: feature {i + 1} has no {column!r}")
    return [str(v) for v in values]


def _polygon(geom, i: int, label: str) -> shapely.Geometry:
    if geom is None or geom.is_empty:
        raise FluxscapeError(f"{label}: feature {i + 1} has no geometry")
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise FluxscapeError(
            f"{label}: feature {i + 1} is a {geom.geom_type}; expected a Polygon or MultiPolygon"
        )
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
        geom = shapely.union_all(
            [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
        )
    return geom


def bounds(regions: list[Region]) -> geo.Bbox:
    """The lon/lat bbox (W, S, E, N) of all regions."""
    return tuple(float(v) for v in shapely.union_all([r.geometry for r in regions]).bounds)


def mean_in(da: xr.DataArray, lonlat_shape: shapely.Geometry) -> pd.DataFrame | None:
    """Area-weighted mean of ``da`` (any leading dims, then ``y``, ``x``) over a lon/lat
    (Multi)Polygon, with exact fractional pixel weights (:func:`fluxscape.zonal.coverage_weights`:
    fraction of each pixel inside x its area) in the store's CRS, over the pixels with a
    value. Columns: the leading coordinates (``time``, or ``year`` and ``season``), ``value``,
    ``n_pixels`` (pixels the polygon covers at least in part), ``area_km2`` (the polygon's
    area on the grid) and ``valid_km2`` (the part of it with a value at that step). None when
    the polygon touches no pixel."""
    geographic = geo.store_crs(da) is None
    weights = zonal.coverage_weights(
        da.x.values, da.y.values, geo.to_store_shape(da, lonlat_shape), geographic
    )
    if weights is None:
        return None
    block = da.isel(y=weights.rows, x=weights.cols)
    lead = [d for d in block.dims if d not in ("y", "x")]
    values = block.transpose(*lead, "y", "x").values[..., weights.iy, weights.ix]
    mean, used = zonal.weighted_mean(values, weights.weight)
    to_km2 = 1e-6 if geographic or _metric(da) else np.nan
    coords = {d: block[d].values for d in lead}
    frame = geo.tidy(xr.DataArray(mean, dims=lead, coords=coords))
    frame["n_pixels"] = weights.n_pixels
    frame["area_km2"] = weights.area * to_km2
    frame["valid_km2"] = np.asarray(used, dtype=float).ravel() * to_km2
    return frame


def _metric(da: xr.DataArray) -> bool:
    crs = geo.store_crs(da)
    return crs is not None and all(a.unit_name in ("metre", "meter") for a in crs.axis_info)


def means_in(da: xr.DataArray, regions: list[Region]) -> pd.DataFrame | None:
    """:func:`mean_in` for each region, with a first column ``region`` (its name); regions
    that touch no pixel give no rows. None when none touches the grid."""
    frames = []
    for r in regions:
        frame = mean_in(da, r.geometry)
        if frame is not None:
            frame.insert(0, "region", r.name)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else None
