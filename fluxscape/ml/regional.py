"""Monthly and annual carbon totals (TgC) of gridded fluxes over GeoJSON polygons.

Each pixel's weight is its true area times the fraction of the pixel inside the polygon
(:func:`fluxscape.zonal.coverage_weights`, the weights the catalog's extraction uses too):
on a lon/lat grid the area on the WGS84 ellipsoid, on a projected grid ``dx * dy`` with the
polygons (lon/lat) transformed to the grid's CRS first.

Uncertainty: the ensemble spread ``sd`` is treated as fully correlated between pixels and
time steps within a polygon and period (systematic model error), so the total's sd is the
area- and day-weighted sum of sd. That is an upper bound; independent errors would give the
root of the sum of squares.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
import xarray as xr
from odc.geo.geom import Geometry
from shapely.geometry import shape

from fluxscape.errors import FluxscapeError
from fluxscape.ml.timesteps import days_per_month, period_bounds
from fluxscape.zonal import cell_area_m2, coverage_weights

__all__ = [
    "cell_area_m2",
    "load_polygons",
    "pixel_weights",
    "regional_totals",
    "regional_totals_dataset",
    "write_totals",
]

G_PER_TG = 1e12


def load_polygons(polygons, name_property: str = "name") -> dict[str, object]:
    """{name: shapely geometry} from a GeoJSON path, a FeatureCollection dict, a Feature or a
    list of Features (lon/lat, EPSG:4326 as RFC 7946 says). Features with the same name are
    unioned. Raises FluxscapeError naming the file when unreadable or a name is missing."""
    source = "<polygons>"
    if isinstance(polygons, str | Path):
        source = str(polygons)
        try:
            polygons = json.loads(Path(polygons).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise FluxscapeError(f"{source}: cannot read GeoJSON ({exc})") from exc
    if isinstance(polygons, dict) and polygons.get("type") == "FeatureCollection":
        features = polygons.get("features", [])
    elif isinstance(polygons, dict) and polygons.get("type") == "Feature":
        features = [polygons]
    elif isinstance(polygons, list):
        features = polygons
    else:
        raise FluxscapeError(f"{source}: expected a GeoJSON FeatureCollection or Feature")
    out: dict[str, object] = {}
    for i, feat in enumerate(features):
        props = feat.get("properties") or {}
        if name_property not in props:
            raise FluxscapeError(f"{source}: feature {i} has no property {name_property!r}")
        try:
            geom = shape(feat["geometry"])
        except Exception as exc:
            raise FluxscapeError(f"{source}: feature {i}: bad geometry ({exc})") from exc
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise FluxscapeError(f"{source}: feature {i} is a {geom.geom_type}, not a polygon")
        name = str(props[name_property])
        out[name] = shapely.union(out[name], geom) if name in out else geom
    if not out:
        raise FluxscapeError(f"{source}: no polygon features")
    return out


def _edges(coord: np.ndarray, name: str, res: float | None = None):
    c = np.asarray(coord, float)
    if res is None:
        if c.size < 2:
            raise FluxscapeError(f"regional totals need >= 2 pixel centres along {name}")
        step = np.diff(c)
        if not np.allclose(step, step[0], rtol=1e-6, atol=1e-9):
            raise FluxscapeError(f"coordinate {name} is not regularly spaced")
        res = abs(float(step[0]))
    return c - res / 2.0, c + res / 2.0, res


def pixel_weights(
    x: np.ndarray,
    y: np.ndarray,
    geom,
    res: tuple[float, float] | None = None,
    geographic: bool = True,
) -> np.ndarray:
    """Area (m2) of each pixel inside ``geom``, shape (len(y), len(x)):
    :func:`fluxscape.zonal.coverage_weights` (exact coverage fraction x the pixel's area: on
    the WGS84 ellipsoid for a ``geographic`` lon/lat grid, ``dx * dy`` on a projected one).

    ``x``/``y`` are regularly spaced pixel-centre coordinates in the grid's CRS, as is
    ``geom``; ``res`` (dx, dy) gives the pixel size when ``x`` or ``y`` has a single centre
    (a block of a grid)."""
    w = np.zeros((len(y), len(x)))
    cells = coverage_weights(x, y, geom, geographic, res)
    if cells is not None:
        window = w[cells.rows, cells.cols]  # a view of w
        window[cells.iy, cells.ix] = cells.weight
    return w


#: Block edge (pixels) for fields that are not chunked in space.
BLOCK = 256


def _spatial_blocks(field: xr.DataArray) -> list[tuple[slice, slice]]:
    """(y, x) slices covering the field: its dask chunks when it has them (one store tile
    each), else BLOCK x BLOCK pixels, so that one block of all time steps is in memory."""
    sizes = {}
    for dim in ("y", "x"):
        chunks = field.chunksizes.get(dim) if field.chunks is not None else None
        if chunks is None:
            n = field.sizes[dim]
            chunks = [BLOCK] * (n // BLOCK) + ([n % BLOCK] if n % BLOCK else [])
        bounds = np.concatenate([[0], np.cumsum(chunks)])
        sizes[dim] = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return [(ys, xs) for ys in sizes["y"] for xs in sizes["x"]]


def _weighted_sums(field, sd, geoms: dict, geographic: bool = True) -> dict[str, tuple]:
    """Per region: (area m2, rate gC d-1 per step, valid area per step, rate of sd per step),
    accumulated block by block over the field's spatial blocks (memory: one block)."""
    _, _, dx = _edges(field["x"].values, "x")
    _, _, dy = _edges(field["y"].values, "y")
    n_time = field.sizes["time"]
    acc = {r: [0.0, np.zeros(n_time), np.zeros(n_time), np.zeros(n_time)] for r in geoms}
    for ys, xs in _spatial_blocks(field):
        block = field.isel(y=ys, x=xs)
        weights = {
            r: pixel_weights(block["x"].values, block["y"].values, g, (dx, dy), geographic)
            for r, g in geoms.items()
        }
        weights = {r: w.ravel() for r, w in weights.items() if w.any()}
        if not weights:
            continue
        vals = block.values.astype(np.float64).reshape(n_time, -1)
        ok = np.isfinite(vals)
        vals = np.where(ok, vals, 0.0)
        sds = None
        if sd is not None:
            sds = sd.isel(y=ys, x=xs).values.astype(np.float64).reshape(n_time, -1)
            sds = np.where(ok & np.isfinite(sds), sds, 0.0)
        for r, w in weights.items():
            a = acc[r]
            a[0] += w.sum()
            a[1] += vals @ w
            a[2] += ok.astype(float) @ w
            if sds is not None:
                a[3] += sds @ w
    if sd is None:
        for a in acc.values():
            a[3] = np.full(n_time, np.nan)
    return {r: tuple(a) for r, a in acc.items()}


def regional_totals(
    field: xr.DataArray,
    polygons,
    name_property: str = "name",
    sd: xr.DataArray | None = None,
    period_end: pd.Timestamp | str | None = None,
    variable: str | None = None,
) -> pd.DataFrame:
    """Monthly and annual totals (TgC) of a flux field over each polygon.

    Parameters
    ----------
    field:
        (time, y, x) in gC m-2 d-1, ``x``/``y`` pixel centres in the CRS of its
        ``spatial_ref`` grid mapping (lon/lat degrees without one);
        ``time`` = period starts (each value holds for its whole period: days from
        :func:`fluxscape.ml.timesteps.period_bounds`, last period ending at ``period_end`` if
        given). NaN pixels contribute nothing and lower ``valid_fraction``.
    polygons:
        GeoJSON path or dict (see :func:`load_polygons`); ``name_property`` names them.
    sd:
        Optional ensemble spread on the same grid (gC m-2 d-1); summed as fully correlated.

    Returns
    -------
    DataFrame with columns ``region``, ``variable``, ``period_type`` ("month" or "year"),
    ``period`` ("YYYY-MM" or "YYYY"), ``total_TgC``, ``sd_TgC`` (NaN without ``sd``),
    ``area_km2`` (polygon area on the grid), ``days`` (days of data in the period) and
    ``valid_fraction`` (area x days with finite data / area x days covered by the axis).

    Memory: the field is read one spatial block at a time (its dask chunks, i.e. one store
    tile each when opened from a store, else :data:`BLOCK` pixels square) with all its time
    steps, so it is bounded by the tile size, not the region.
    """
    if tuple(field.dims) != ("time", "y", "x"):
        raise FluxscapeError(f"field dims must be (time, y, x), got {field.dims}")
    if sd is not None and sd.shape != field.shape:
        raise FluxscapeError(f"sd shape {sd.shape} differs from field shape {field.shape}")
    geoms = load_polygons(polygons, name_property)
    crs = _grid_crs(field)
    geographic = crs is None or crs.is_geographic
    if not geographic:  # the polygons (lon/lat) onto the grid, edges densified by odc-geo
        geoms = {r: Geometry(g, "EPSG:4326").to_crs(crs.to_wkt()).geom for r, g in geoms.items()}
    starts, ends = period_bounds(pd.DatetimeIndex(field["time"].values), period_end)
    dpm = days_per_month(starts, ends)  # (n_steps, n_months) days
    name = variable or field.name or "flux"
    rows = []
    sums = _weighted_sums(field, sd, geoms, geographic)
    for region, (area, rate, valid, rate_sd) in sums.items():
        month_tot = rate @ dpm.to_numpy() / G_PER_TG
        month_sd = rate_sd @ dpm.to_numpy() / G_PER_TG
        month_valid = valid @ dpm.to_numpy()
        month_days = dpm.to_numpy().sum(axis=0)
        months = pd.DataFrame(
            {
                "month": dpm.columns,
                "total": month_tot,
                "sd": month_sd,
                "valid": month_valid,
                "days": month_days,
            }
        )
        for _, r in months.iterrows():
            rows.append(_row(region, name, "month", r["month"].strftime("%Y-%m"), r, area))
        years = months.assign(year=pd.DatetimeIndex(months["month"]).year).groupby("year")
        for year, g in years[["total", "sd", "valid", "days"]].sum(min_count=1).iterrows():
            rows.append(_row(region, name, "year", str(year), g, area))
    return pd.DataFrame(rows)


def _row(region, name, kind, period, r, area) -> dict:
    denom = area * r["days"]
    return {
        "region": region,
        "variable": name,
        "period_type": kind,
        "period": period,
        "total_TgC": float(r["total"]),
        "sd_TgC": float(r["sd"]),
        "area_km2": area / 1e6,
        "days": int(r["days"]),
        "valid_fraction": float(r["valid"] / denom) if denom > 0 else np.nan,
    }


def _grid_crs(field: xr.DataArray):
    """The pyproj CRS of a store's field (its ``spatial_ref`` grid mapping), None without one
    (then lon/lat degrees)."""
    from pyproj import CRS

    ref = field.coords.get("spatial_ref")
    wkt = ref.attrs.get("crs_wkt") if ref is not None else None
    return CRS.from_wkt(wkt) if wkt else None


def regional_totals_dataset(
    ds: xr.Dataset,
    polygons,
    name_property: str = "name",
    variables: tuple[str, ...] = ("gpp", "nee", "reco"),
    period_end: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """:func:`regional_totals` for each of ``variables`` present in a flux store dataset
    (using ``<v>_sd`` when present), concatenated. Write it with ``df.to_csv(path)``."""
    parts = [
        regional_totals(ds[v], polygons, name_property, ds.get(f"{v}_sd"), period_end, variable=v)
        for v in variables
        if v in ds.data_vars
    ]
    if not parts:
        raise FluxscapeError(f"dataset holds none of {variables}")
    return pd.concat(parts, ignore_index=True)


def write_totals(totals: pd.DataFrame, path: str | Path) -> str:
    """Write a :func:`regional_totals` table to CSV at ``path``; return it as a markdown table
    (region, variable, period, total +- sd in TgC) for a report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    totals.to_csv(path, index=False, float_format="%.6g")
    lines = [
        "| region | variable | period | total (TgC) | sd (TgC) | valid fraction |",
        "|---|---|---|---|---|---|",
    ]
    for r in totals.itertuples(index=False):
        lines.append(
            f"| {r.region} | {r.variable} | {r.period} | {r.total_TgC:.4g} | {r.sd_TgC:.3g} | "
            f"{r.valid_fraction:.3f} |"
        )
    return "\n".join(lines) + "\n"
