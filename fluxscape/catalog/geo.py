"""Where-to-read helpers for the catalog: lon/lat places to store pixels, tidy tables.

Product stores carry 1-D pixel-centre ``x``/``y`` coordinates in the CRS of ``spatial_ref``
(EPSG:4326 degrees for the shipped workflows, metres for projected grids). Places come in as
lon/lat (EPSG:4326) and are transformed to the store's CRS with pyproj. Site lists are read by
the one parser the workflow uses too (:mod:`fluxscape.sitelist`); polygons and their means are
in :mod:`fluxscape.catalog.regions`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import shapely
import xarray as xr

from fluxscape.errors import FluxscapeError
from fluxscape.sitelist import read_site_list

Bbox = tuple[float, float, float, float]


def store_crs(obj: xr.Dataset | xr.DataArray):
    """The pyproj CRS of a store, or None when it is geographic lon/lat (or unknown)."""
    from pyproj import CRS

    ref = obj.coords.get("spatial_ref") if "spatial_ref" in obj.coords else None
    if ref is None and isinstance(obj, xr.Dataset) and "spatial_ref" in obj:
        ref = obj["spatial_ref"]
    wkt = ref.attrs.get("crs_wkt", "") if ref is not None else ""
    if not wkt:
        return None
    crs = CRS.from_wkt(wkt)
    return None if crs.is_geographic else crs


def _transformer(obj):
    from pyproj import Transformer

    crs = store_crs(obj)
    return None if crs is None else Transformer.from_crs("EPSG:4326", crs, always_xy=True)


def to_store_xy(obj, lon, lat):
    """Lon/lat (scalars or arrays) -> x, y in the store's CRS."""
    tr = _transformer(obj)
    return (lon, lat) if tr is None else tr.transform(lon, lat)


#: Longest edge (degrees) of a lon/lat shape before it is transformed to a projected store
#: CRS: straight lon/lat edges become curves there, followed by points this far apart.
DENSIFY_DEG = 0.01


def to_store_shape(obj, geom: shapely.Geometry) -> shapely.Geometry:
    """A lon/lat shapely geometry in the store's CRS (edges densified to DENSIFY_DEG first
    when the store is projected)."""
    tr = _transformer(obj)
    if tr is None:
        return geom
    geom = shapely.segmentize(geom, DENSIFY_DEG)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def _yslice(obj, lo: float, hi: float) -> slice:
    return slice(hi, lo) if obj.y[0] > obj.y[-1] else slice(lo, hi)


def subset_bbox(ds, bbox: Bbox):
    """Pixels whose centres fall inside a lon/lat bbox (W, S, E, N)."""
    tr = _transformer(ds)
    w, s, e, n = bbox if tr is None else tr.transform_bounds(*bbox, densify_pts=21)
    return ds.sel(x=slice(w, e), y=_yslice(ds, s, n))


def tidy(da: xr.DataArray) -> pd.DataFrame:
    """One row per remaining coordinate (``time``, or ``year`` and ``season``; ``site``):
    those columns and ``value`` (float)."""
    da = da.drop_vars([c for c in da.coords if c not in da.dims])
    frame = da.load().to_dataframe(name="value").reset_index()
    frame["value"] = frame["value"].astype(float)
    return frame


def at_point(da: xr.DataArray, lon: float, lat: float) -> pd.DataFrame:
    """The nearest pixel's series; columns (time...), value, x, y (pixel centre)."""
    x, y = to_store_xy(da, lon, lat)
    px = da.sel(x=x, y=y, method="nearest")
    frame = tidy(px)
    frame["x"] = round(float(px.x), 9)
    frame["y"] = round(float(px.y), 9)
    return frame


def read_sites(sites: pd.DataFrame | str | Path) -> pd.DataFrame:
    """A sites table with columns site, lon, lat (degrees, WGS84) from a DataFrame with those
    columns or a file :func:`fluxscape.sitelist.read_site_list` reads: FLUXNET's
    ``SitesList.csv``, a ``site,lat,lon`` CSV (common spellings) or GeoJSON points. Sites
    without a valid latitude/longitude are left out with a warning; FluxscapeError naming the
    file when it is unreadable, lacks a column or holds no usable site."""
    source = "sites table"
    if isinstance(sites, pd.DataFrame):
        missing = {"site", "lon", "lat"} - set(sites.columns)
        if missing:
            raise FluxscapeError(
                f"{source}: needs columns site, lon, lat (missing {', '.join(sorted(missing))})"
            )
        out = sites[["site", "lon", "lat"]].copy()
        try:
            out["lon"] = out["lon"].astype(float)
            out["lat"] = out["lat"].astype(float)
        except ValueError as exc:
            raise FluxscapeError(f"{source}: lon/lat must be numbers ({exc})") from exc
    else:
        source = str(sites)
        listed = read_site_list(sites)
        out = pd.DataFrame({"site": listed["site_id"], "lon": listed["lon"], "lat": listed["lat"]})
    if out.empty:
        raise FluxscapeError(f"{source}: no site with a valid latitude and longitude")
    out["site"] = out["site"].astype(str)
    return out.reset_index(drop=True)


def sites_bbox(sites: pd.DataFrame) -> Bbox:
    return (sites.lon.min(), sites.lat.min(), sites.lon.max(), sites.lat.max())


def at_sites(da: xr.DataArray, sites: pd.DataFrame, lonlat_bbox: list[float]) -> pd.DataFrame:
    """The nearest pixel of each site inside ``lonlat_bbox`` (one read for all sites);
    columns site, (time...), value, x, y."""
    w, s, e, n = lonlat_bbox
    inside = sites[sites.lon.between(w, e) & sites.lat.between(s, n)]
    if inside.empty:
        return pd.DataFrame()
    x, y = to_store_xy(da, inside.lon.to_numpy(), inside.lat.to_numpy())
    idx = pd.Index(inside.site.to_numpy(), name="site")
    px = da.sel(
        x=xr.DataArray(np.asarray(x), dims="site", coords={"site": idx}),
        y=xr.DataArray(np.asarray(y), dims="site", coords={"site": idx}),
        method="nearest",
    )
    coords = pd.DataFrame(
        {"site": idx, "x": np.round(px.x.values, 9), "y": np.round(px.y.values, 9)}
    )
    frame = tidy(px)
    frame = frame[["site"] + [c for c in frame.columns if c != "site"]]
    return frame.merge(coords, on="site", how="left")


def box(bbox: Bbox) -> shapely.Geometry:
    return shapely.box(*bbox)
