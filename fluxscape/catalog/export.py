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


#: Attributes of the Zarr stores that are not CF and mean nothing in a NetCDF file (GDAL's
#: Zarr CRS; the CRS is in the ``spatial_ref`` grid mapping).
_ZARR_ONLY = ("_CRS",)


def _netcdf(ds: xr.Dataset, variables: list[str], path: Path) -> Path:
    """CF-1.10 NetCDF-4: integer variables (flags, counts) stay integer with their fill value
    and flag values of their own type, coordinates carry no ``_FillValue``, the time bounds
    go along, every data variable names its grid mapping."""
    keep = variables + [c for c in ("spatial_ref", "time_bnds") if c in ds.variables]
    out = ds[keep].load()
    encoding = {}
    for name in list(out.variables):
        source = out[name].encoding
        dtype = np.dtype(source.get("dtype", out[name].dtype))
        fill = source.get("_FillValue")
        if name in variables and np.issubdtype(dtype, np.integer) and fill is not None:
            # xarray decoded the integer store as float with NaN for the fill: undo it.
            out[name] = out[name].fillna(fill).astype(dtype)
            encoding[name] = {"dtype": dtype, "_FillValue": dtype.type(fill)}
            if "flag_values" in out[name].attrs:
                out[name].attrs["flag_values"] = np.asarray(out[name].attrs["flag_values"], dtype)
        elif name in variables:
            encoding[name] = {}
        elif name != "spatial_ref":
            encoding[name] = {"_FillValue": None}  # CF: coordinates have no missing values
        if name in variables:
            encoding[name] |= {"zlib": True, "complevel": 4}
        if name in ("time", "time_bnds"):  # one time encoding for the axis and its bounds
            encoding[name] |= {
                k: ds["time"].encoding[k]
                for k in ("units", "calendar", "dtype")
                if k in ds["time"].encoding
            }
        var = out[name].variable
        var.encoding = {}
        for attr in _ZARR_ONLY:
            var.attrs.pop(attr, None)
    # NetCDF attributes hold no lists of dicts or booleans: store provenance as JSON.
    out.attrs = {
        k: (json.dumps(v) if isinstance(v, dict | list) else int(v) if isinstance(v, bool) else v)
        for k, v in ds.attrs.items()
    }
    out.attrs["Conventions"] = "CF-1.10"
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
