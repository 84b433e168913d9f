"""Export a product subset for desktop GIS: CF NetCDF (xarray/netCDF4) or a Cloud-Optimised
GeoTIFF (rioxarray/GDAL's COG driver)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from fluxscape.errors import FluxscapeError

FORMATS = {".nc": "netcdf", ".nc4": "netcdf", ".tif": "cog", ".tiff": "cog"}


def export_dataset(
    ds: xr.Dataset, path: Path, variables: list[str] | None = None, fmt: str | None = None
) -> Path:
    """Write ``ds`` (a product store, maybe subset) to ``path`` as ``netcdf`` or ``cog``
    (default from the suffix). A COG holds one variable, one band per time step (band
    descriptions name the step). Returns ``path``."""
    fmt = fmt or FORMATS.get(path.suffix.lower())
    if fmt not in ("netcdf", "cog"):
        raise FluxscapeError(f"{path}: unknown export format; use .nc (NetCDF) or .tif (COG)")
    data_vars = [v for v in ds.data_vars if v != "spatial_ref"]
    variables = variables or data_vars
    unknown = [v for v in variables if v not in data_vars]
    if unknown:
        raise FluxscapeError(f"{path}: no variable {unknown[0]!r} (has {', '.join(data_vars)})")
    if ds.sizes.get("x", 0) == 0 or ds.sizes.get("y", 0) == 0:
        raise FluxscapeError(f"{path}: the subset holds no pixel")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "netcdf":
        return _netcdf(ds, variables, path)
    if len(variables) != 1:
        raise FluxscapeError(f"{path}: a GeoTIFF holds one variable; choose one of {variables}")
    return _cog(ds, variables[0], path)


def _netcdf(ds: xr.Dataset, variables: list[str], path: Path) -> Path:
    keep = variables + (["spatial_ref"] if "spatial_ref" in ds.variables else [])
    out = ds[keep].load()
    for v in out.variables.values():
        v.encoding = {k: v.encoding[k] for k in ("dtype", "_FillValue", "units") if k in v.encoding}
    # netCDF attributes are numbers, strings or 1-D arrays: store provenance lists as JSON.
    out.attrs = {  # NetCDF attributes hold no lists of dicts or booleans
        k: (json.dumps(v) if isinstance(v, dict | list) else int(v) if isinstance(v, bool) else v)
        for k, v in ds.attrs.items()
    }
    out.attrs.setdefault("Conventions", "CF-1.10")
    encoding = {v: {"zlib": True, "complevel": 4} for v in variables}
    out.to_netcdf(path, engine="netcdf4", encoding=encoding)
    return path


def _label(dim: str, value) -> str:
    return str(value)[:10] if dim == "time" else f"{dim}={value}"


def _cog(ds: xr.Dataset, variable: str, path: Path) -> Path:
    import rioxarray  # noqa: F401  (registers .rio)

    src = ds[variable]
    other = [d for d in src.dims if d not in ("y", "x")]
    values = [src[d].values for d in other]
    labels = [
        ",".join(_label(d, values[i][j]) for i, (d, j) in enumerate(zip(other, combo, strict=True)))
        for combo in np.ndindex(*[src.sizes[d] for d in other])
    ]
    labels = labels if other else [variable]
    cube = src.transpose(*other, "y", "x").values.reshape(-1, src.sizes["y"], src.sizes["x"])
    da = xr.DataArray(cube, dims=("band", "y", "x"), coords={"y": src.y, "x": src.x})
    da.attrs = dict(src.attrs)
    crs = ds["spatial_ref"].attrs.get("crs_wkt") if "spatial_ref" in ds.variables else None
    if crs:
        da = da.rio.write_crs(crs)
    units = da.attrs.get("units", "")
    da.attrs = {"long_name": tuple(labels) if len(labels) > 1 else labels[0], "units": units}
    if np.issubdtype(da.dtype, np.floating):
        da = da.rio.write_nodata(np.nan, encoded=False)
    da.encoding = {}
    da.rio.to_raster(path, driver="COG", compress="DEFLATE")
    return path
