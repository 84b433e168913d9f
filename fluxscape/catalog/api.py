"""Analysts' view of a catalog: search products, open them lazily, extract time series.

>>> cat = open_catalog("demo-out/catalog")
>>> cat.search(variable="ndvi", bbox=(138.2, 35.8, 138.4, 36.0))
>>> ds = cat.open("demo.vi")                       # lazy xarray.Dataset (dask)
>>> df = cat.extract("ndvi", point=(138.44, 35.96))  # tidy DataFrame
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import xarray as xr

from fluxscape.errors import FluxscapeError

TimeRange = tuple[str | None, str | None]


@dataclass(frozen=True)
class Entry:
    """A published product: catalog id, product, run, variables, lon/lat bbox, time span,
    and the absolute path of its Zarr store."""

    id: str
    product: str
    run: str
    variables: list[str]
    bbox: list[float]
    time: list[str]
    store: Path

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "product": self.product,
            "run": self.run,
            "variables": self.variables,
            "bbox": self.bbox,
            "time": self.time,
            "store": str(self.store),
        }


def parse_time_range(text: str | None) -> TimeRange:
    """``"2021-01-01/2021-12-31"`` (either side may be empty or ``..``) -> (start, end)."""
    if not text:
        return (None, None)
    if "/" not in text:
        raise FluxscapeError(f"time range {text!r}: expected START/END, e.g. 2021-04-01/2021-10-31")
    start, end = (p.strip() or None for p in text.split("/", 1))
    start = None if start == ".." else start
    end = None if end == ".." else end
    for v in (start, end):
        if v is not None:
            try:
                pd.Timestamp(v)
            except ValueError as exc:
                raise FluxscapeError(f"time range {text!r}: {v!r} is not a date") from exc
    return (start, end)


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``"W,S,E,N"`` in degrees -> tuple; FluxscapeError when malformed."""
    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise FluxscapeError(f"bbox {text!r}: expected W,S,E,N in degrees") from exc
    if not (w < e and s < n):
        raise FluxscapeError(f"bbox {text!r}: expected W < E and S < N")
    return (w, s, e, n)


class Catalog:
    """A fluxscape STAC catalog on disk (see :func:`open_catalog`)."""

    def __init__(self, root: Path):
        self.root = root
        self.directory = root.parent

    def entries(self) -> list[Entry]:
        """Every published product, in catalog order."""
        out = []
        for link in json.loads(self.root.read_text()).get("links", []):
            if link.get("rel") != "child":
                continue
            path = (self.directory / link["href"]).resolve()
            if not path.exists():
                continue  # a product being replaced right now
            coll = json.loads(path.read_text())
            asset = coll["assets"]["zarr"]
            interval = coll["extent"]["temporal"]["interval"][0]
            out.append(
                Entry(
                    id=coll["id"],
                    product=coll.get("fluxscape:product", coll["id"]),
                    run=coll.get("fluxscape:run", ""),
                    variables=list(coll.get("fluxscape:variables", [])),
                    bbox=list(coll["extent"]["spatial"]["bbox"][0]),
                    time=[interval[0], interval[1]],
                    store=(path.parent / asset["href"]).resolve(),
                )
            )
        return out

    def search(
        self,
        product: str | None = None,
        variable: str | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        time: TimeRange | str | None = None,
    ) -> list[Entry]:
        """Products matching all given filters: product name (or id), variable, a lon/lat
        bbox that intersects, a time range (start, end) or ``"START/END"`` that overlaps."""
        if isinstance(time, str):
            time = parse_time_range(time)
        found = []
        for e in self.entries():
            if product and product not in (e.product, e.id):
                continue
            if variable and variable not in e.variables:
                continue
            if bbox is not None:
                w, s, ea, n = bbox
                if w > e.bbox[2] or ea < e.bbox[0] or s > e.bbox[3] or n < e.bbox[1]:
                    continue
            if time is not None:
                start, end = time
                if start and pd.Timestamp(start, tz="UTC") > pd.Timestamp(e.time[1]):
                    continue
                if end and pd.Timestamp(end, tz="UTC") < pd.Timestamp(e.time[0]):
                    continue
            found.append(e)
        return found

    def _entry(self, name: str) -> Entry:
        matches = [e for e in self.entries() if name in (e.id, e.product)]
        if not matches:
            known = ", ".join(e.id for e in self.entries()) or "none"
            raise FluxscapeError(f"{self.root}: no product {name!r} (published: {known})")
        return matches[-1]

    def open(
        self,
        name: str,
        bbox: tuple[float, float, float, float] | None = None,
        time: TimeRange | str | None = None,
    ) -> xr.Dataset:
        """Open a product lazily (dask-backed) by id or product name, optionally subset to a
        lon/lat bbox and a time range."""
        ds = xr.open_zarr(self._entry(name).store, consolidated=True)
        if bbox is not None:
            w, s, e, n = bbox
            ds = ds.sel(x=slice(w, e), y=slice(n, s) if ds.y[0] > ds.y[-1] else slice(s, n))
        if time is not None:
            start, end = parse_time_range(time) if isinstance(time, str) else time
            ds = ds.sel(time=slice(start, end))
        return ds

    def extract(
        self,
        variable: str,
        point: tuple[float, float] | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        time: TimeRange | str | None = None,
        product: str | None = None,
    ) -> pd.DataFrame:
        """A time series of ``variable`` at a lon/lat point (nearest pixel) or as the mean
        over a bbox, from every product carrying it (or ``product``). Columns: product,
        time, variable, value, and x/y of the pixel (point) or n_pixels (bbox)."""
        if (point is None) == (bbox is None):
            raise FluxscapeError("extract needs exactly one of point=(lon, lat) or bbox")
        entries = self.search(
            product=product,
            variable=variable,
            bbox=bbox or (point[0], point[1], point[0], point[1]),
        )
        if not entries:
            raise FluxscapeError(f"no product in {self.root} has {variable!r} there")
        frames = []
        for e in entries:
            ds = self.open(e.id, time=time)
            da = ds[variable]
            if point is not None:
                px = da.sel(x=point[0], y=point[1], method="nearest")
                frame = _tidy(px)
                frame["x"] = round(float(px.x), 9)
                frame["y"] = round(float(px.y), 9)
            else:
                w, s, ea, n = bbox
                sub = da.sel(x=slice(w, ea), y=slice(n, s) if da.y[0] > da.y[-1] else slice(s, n))
                if sub.sizes["x"] == 0 or sub.sizes["y"] == 0:
                    continue
                frame = _tidy(sub.mean(dim=("y", "x"), skipna=True))
                frame["n_pixels"] = int(sub.sizes["x"] * sub.sizes["y"])
            frame.insert(0, "product", e.id)
            frame.insert(frame.columns.get_loc("value"), "variable", variable)
            frames.append(frame)
        if not frames:
            raise FluxscapeError(f"bbox {bbox} holds no pixel of {variable!r}")
        return pd.concat(frames, ignore_index=True)


def _tidy(da: xr.DataArray) -> pd.DataFrame:
    """One row per remaining coordinate (``time``, or ``year`` and ``season``): those
    columns and ``value`` (float)."""
    da = da.drop_vars([c for c in da.coords if c not in da.dims])
    frame = da.load().to_dataframe(name="value").reset_index()
    frame["value"] = frame["value"].astype(float)
    return frame


def open_catalog(path: str | Path) -> Catalog:
    """Open a catalog by its folder or its ``catalog.json``."""
    path = Path(path)
    root = path / "catalog.json" if path.is_dir() else path
    if not root.exists():
        raise FluxscapeError(f"{path}: no catalog.json here (run a workflow first)")
    return Catalog(root.resolve())
