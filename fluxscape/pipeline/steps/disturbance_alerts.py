"""Disturbance alerts: the confirmed breaks of a ``disturbance`` store as patches.

Each 8-connected patch of disturbed pixels of a monitored year (at least ``min_pixels``)
becomes one GeoJSON feature: the outline of its pixels in lon/lat (a Polygon or
MultiPolygon), the earliest onset in the patch as the alert's ``time``, its area, the median
magnitude (and dNBR and the most frequent burn severity where the store has them), and the
patch centre. The alert id is the product, the onset day and the patch's first pixel, so the
same break keeps its id across runs and updates: a later update republishes it in place and
only breaks confirmed since appear as new Items of the catalog's ``alerts`` collection.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


def _median(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return round(float(np.median(finite)), 4) if finite.size else None


def _grid_to_lonlat(ds: xr.Dataset):
    """A function (x, y) -> (lon, lat) for the store's grid (identity on lon/lat grids)."""
    wkt = ds["spatial_ref"].attrs.get("crs_wkt", "") if "spatial_ref" in ds else ""
    if not wkt or wkt.lstrip().startswith(("GEOGCRS", "GEOGCS")):
        return None
    from pyproj import Transformer

    return Transformer.from_crs(wkt, "EPSG:4326", always_xy=True).transform


def disturbance_features(store: Path, product: str, access: str, min_pixels: int = 1) -> list[dict]:
    """GeoJSON features (kind ``disturbance``) of every break patch in a disturbance store
    (dims year, y, x; ``disturbed`` 0/1, ``date`` day of year of the onset, ``magnitude``;
    optional ``detection_date``, ``dnbr``, ``burn_severity``). Areas in km² from the grid's
    cell sizes (metres on projected grids, WGS84 cell areas on lon/lat grids); coordinates in
    lon/lat degrees."""
    from scipy import ndimage
    from shapely.geometry import mapping
    from shapely.ops import transform

    from fluxscape.zonal import cell_area_m2, pixel_outline

    ds = xr.open_zarr(store, consolidated=False)
    x, y = ds["x"].values, ds["y"].values
    dx = float(abs(x[1] - x[0])) if x.size > 1 else 1.0
    dy = float(abs(y[1] - y[0])) if y.size > 1 else 1.0
    to_lonlat = _grid_to_lonlat(ds)
    if to_lonlat is None:
        rows_km2 = np.asarray(cell_area_m2(y - dy / 2, y + dy / 2, dx), float) / 1e6
    else:
        rows_km2 = np.full(y.size, dx * dy / 1e6)
    optional = [v for v in ("detection_date", "dnbr", "burn_severity") if v in ds]
    out = []
    for year in ds["year"].values:
        one = ds.sel(year=year)
        disturbed = one["disturbed"].values == 1
        doy = one["date"].values
        labels, n = ndimage.label(disturbed & np.isfinite(doy), structure=np.ones((3, 3)))
        if n == 0:
            continue
        values = {v: one[v].values for v in ["magnitude", *optional]}
        for k, where in enumerate(ndimage.find_objects(labels), start=1):
            rr, cc = np.nonzero(labels[where] == k)
            if rr.size < min_pixels:
                continue
            rr, cc = rr + where[0].start, cc + where[1].start
            # the patch's median onset: one early pixel (a cloud-hit composite) must not date it
            onset_doy = float(np.round(np.median(doy[rr, cc])))
            onset = pd.Timestamp(f"{int(year)}-01-01") + pd.Timedelta(days=onset_doy - 1)
            shape = pixel_outline(rr, cc, x, y, dx, dy)
            if to_lonlat is not None:
                shape = transform(to_lonlat, shape)
            centre = shape.centroid
            props = {
                "id": f"{product}-{onset:%Y%m%d}-{rr[0]}-{cc[0]}",
                "kind": "disturbance",
                "product": product,
                "time": f"{onset:%Y-%m-%d}T00:00:00Z",
                "year": int(year),
                "onset": f"{onset:%Y-%m-%d}",
                "pixels": int(rr.size),
                "area_km2": round(float(rows_km2[rr].sum()), 3),
                "magnitude": _median(values["magnitude"][rr, cc]),
                "lon": round(float(centre.x), 5),
                "lat": round(float(centre.y), 5),
                "fluxscape:access": access,
            }
            if "detection_date" in values:
                det = _median(values["detection_date"][rr, cc])
                if det is not None:
                    seen = pd.Timestamp(f"{int(year)}-01-01") + pd.Timedelta(days=round(det) - 1)
                    props["detected"] = f"{seen:%Y-%m-%d}"
            if "dnbr" in values:
                props["dnbr"] = _median(values["dnbr"][rr, cc])
            if "burn_severity" in values:
                classes = values["burn_severity"][rr, cc].astype(int)
                props["burn_severity"] = int(np.bincount(classes).argmax())
            out.append({"type": "Feature", "geometry": mapping(shape), "properties": props})
    return out
