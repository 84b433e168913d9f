"""Analysts' view of a catalog: search products, open them lazily, extract time series.

>>> cat = open_catalog("demo-out/catalog")
>>> cat.search(variable="ndvi", bbox=(138.2, 35.8, 138.4, 36.0))
>>> ds = cat.open("demo.vi")                       # lazy xarray.Dataset (dask)
>>> df = cat.extract("ndvi", point=(138.44, 35.96))  # tidy DataFrame
>>> df = cat.extract("ndvi", sites="SitesList.csv")    # FLUXNET list or site,lat,lon CSV
>>> df = cat.extract("ndvi", polygon="regions.gpkg")   # one area-weighted mean per feature
>>> cat.export("demo.vi", "ndvi.tif", variables=["ndvi"], time="2021-06-01/2021-06-30")

Every search, listing and lookup is a query of the Parquet index beside the STAC JSON
(:mod:`fluxscape.catalog.index`); opening a catalog without one builds it from the collection
JSON first. Time ranges mean the same to search and to open (:mod:`fluxscape.catalog.times`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import xarray as xr

from fluxscape.catalog import geo, index, itemindex, times
from fluxscape.catalog.regions import bounds as region_bounds
from fluxscape.catalog.regions import mean_in, means_in, read_regions
from fluxscape.catalog.times import TimeRange
from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.remote import is_url
from fluxscape.sitelist import swapped_hint

#: ``"START/END"`` -> (start, end); see :func:`fluxscape.catalog.times.parse_range`.
parse_time_range = times.parse_range


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
    run_id: str = ""
    access: str = "public"
    models: list[str] = field(default_factory=list)
    href: str = ""

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "product": self.product,
            "run": self.run,
            "run_id": self.run_id,
            "access": self.access,
            "models": self.models,
            "variables": self.variables,
            "bbox": self.bbox,
            "time": self.time,
            "store": str(self.store),
        }


#: Index columns an Entry needs, with the times formatted by DuckDB (fast for many rows).
ENTRY_COLUMNS = (
    "id, product, workflow, run_id, access, variables, models, xmin, ymin, xmax, ymax, href, "
    "store, strftime(start_datetime, '%Y-%m-%dT%H:%M:%SZ') AS start_text, "
    "strftime(end_datetime, '%Y-%m-%dT%H:%M:%SZ') AS end_text"
)


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
    """A fluxscape STAC catalog on disk (see :func:`open_catalog`). Every query goes through
    the catalog's index (:mod:`fluxscape.catalog.index`), built from the collection JSON when
    the catalog is opened without one."""

    def __init__(self, root: Path):
        self.root = root
        self.directory = root.parent
        #: The index built in memory, for a catalog folder without index.parquet that this
        #: process cannot write (None when the file is there).
        self._built: pa.Table | None = index.build_missing(self.directory)
        #: The index file's last version read and its table (read again when it changes).
        self._read: tuple[index.Version, pa.Table] | None = None
        #: The same for the item index (:mod:`fluxscape.catalog.itemindex`), read on demand.
        self._items_built: pa.Table | None = None
        self._items_read: tuple[index.Version, pa.Table] | None = None

    def index_table(self) -> pa.Table:
        """The catalog's index as an Arrow table: the same object as long as the index file
        is unchanged (a republished index is read again, whole: never half of one)."""
        return self._index()

    def item_table(self) -> pa.Table:
        """The catalog's item index (one row per STAC Item) as an Arrow table, the same
        object as long as the file is unchanged; built from the Item JSON files when the
        catalog has none (in memory when the folder cannot be written)."""
        read = self._items_read
        try:
            version, table = itemindex.snapshot_if_changed(self.directory, read and read[0])
        except FileNotFoundError:
            if self._items_built is None:
                self._items_built = itemindex.build_missing(self.directory)
                if self._items_built is None:  # written by this call
                    return itemindex.snapshot_if_changed(self.directory, None)[1]
            return self._items_built
        if table is None:
            return read[1]
        self._items_read = (version, table)
        return table

    def _index(self) -> pa.Table:
        read = self._read
        try:
            version, table = index.snapshot_if_changed(self.directory, read and read[0])
        except FileNotFoundError:
            if self._built is None:
                self._built = index.build_missing(self.directory)
                if self._built is None:  # written by this call
                    return index.snapshot(self.directory)
            return self._built
        if table is None:
            return read[1]
        self._read = (version, table)
        return table

    def select(self, columns: str = "*", limit: int | None = None, offset: int = 0, **filters):
        """Index rows (Arrow table, ordered by id) matching the filters of
        :func:`fluxscape.catalog.index.select`; ``product`` may also be an :class:`Entry`."""
        return index.select(self._index(), columns, limit, offset, **_filters(**filters))

    def rows(self, limit: int | None = None, offset: int = 0, **filters) -> list[dict]:
        """Index rows (dicts) matching the filters (see :meth:`select`)."""
        return self.select("*", limit, offset, **filters).to_pylist()

    def count(self, **filters) -> int:
        """How many products match the filters (see :meth:`select`)."""
        return index.count(self._index(), **_filters(**filters))

    def entries(self, access: list[str] | None = None) -> list[Entry]:
        """Every published product (ordered by id), optionally only those whose access
        level is in ``access``."""
        return self.search(access=access)

    def _entries(self, table) -> list[Entry]:
        """Entries from an Arrow table of ENTRY_COLUMNS (column-wise: no dict per row)."""
        c = table.to_pydict()
        base = str(self.directory)
        return [
            Entry(
                id=c["id"][i],
                product=c["product"][i],
                run=c["workflow"][i],
                variables=c["variables"][i],
                bbox=[c["xmin"][i], c["ymin"][i], c["xmax"][i], c["ymax"][i]],
                time=[c["start_text"][i], c["end_text"][i]],
                store=_entry_store(base, c["store"][i]),
                run_id=c["run_id"][i],
                access=c["access"][i],
                models=c["models"][i],
                href=c["href"][i],
            )
            for i in range(table.num_rows)
        ]

    def table(self, **filters) -> pd.DataFrame:
        """The index rows matching the :meth:`search` filters (product, variable, bbox,
        time, run, access) as a DataFrame: one row per product, no per-entry objects (the
        fast path for large catalogs)."""
        return self.select("* EXCLUDE (geometry)", **filters).to_pandas()

    def collection(self, name: str | Entry) -> dict:
        """The STAC Collection (dict) of a product, by id, product name or search hit."""
        entry = self._entry(name)
        path = self.directory / (entry.href or f"{entry.id}/collection.json")
        return json.loads(path.read_text())

    def search(
        self,
        product: str | Entry | None = None,
        variable: str | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        time: TimeRange | str | None = None,
        run: str | None = None,
        access: list[str] | None = None,
    ) -> list[Entry]:
        """Products matching all given filters: product name, id or search hit, variable, a
        lon/lat bbox that intersects, a time range (start, end) or ``"START/END"`` that
        overlaps (:mod:`fluxscape.catalog.times`), a run (workflow name or run id), access
        levels allowed. Ordered by id."""
        filters = dict(variable=variable, bbox=bbox, time=time, run=run, access=access)
        return self._entries(self.select(ENTRY_COLUMNS, product=product, **filters))

    def _entry(self, name: str | Entry) -> Entry:
        matches = self.search(product=name)
        if not matches:
            known = ", ".join(e.id for e in self.entries()) or "none"
            shown = name.id if isinstance(name, Entry) else name
            raise FluxscapeError(f"{self.root}: no product {shown!r} (published: {known})")
        return matches[-1]

    def open(
        self,
        name: str | Entry,
        bbox: tuple[float, float, float, float] | None = None,
        time: TimeRange | str | None = None,
        dask: bool = True,
    ) -> xr.Dataset:
        """Open a product lazily by id, product name or search hit (an :class:`Entry`),
        optionally subset to a lon/lat bbox (pixels whose centres fall inside) and a time range
        (the ``time`` steps or whole ``year`` s that overlap it, as a search decides, see
        :mod:`fluxscape.catalog.times`). Variables are dask arrays with the store's chunks, or
        with ``dask=False`` xarray's lazily indexed arrays (reads only what is indexed; faster
        for a few pixels)."""
        return _open_store(self._entry(name).store, bbox, time, dask)

    def extract(
        self,
        variable: str,
        point: tuple[float, float] | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        time: TimeRange | str | None = None,
        product: str | Entry | None = None,
        sites: pd.DataFrame | str | Path | None = None,
        polygon: dict | str | Path | None = None,
        name_property: str | None = None,
    ) -> pd.DataFrame:
        """A tidy time series of ``variable`` from every product carrying it (or ``product``:
        a product name, id or search hit). Places are lon/lat (EPSG:4326), longitude first:

        - ``point=(lon, lat)``: the nearest pixel; columns product, time, variable, value, x, y
          (x/y: the pixel centre in the store's CRS);
        - ``sites``: a table with columns site, lon, lat, or a file: FLUXNET's
          ``SitesList.csv``, a ``site,lat,lon`` CSV or GeoJSON points
          (:func:`fluxscape.sitelist.read_site_list`): the nearest pixel of each site inside
          the product; columns product, site, time, variable, value, x, y;
        - ``polygon``: a vector file in any format GDAL reads (GeoJSON, GeoPackage, Shapefile;
          reprojected to lon/lat) or a GeoJSON dict: one area-weighted mean per feature, named
          by ``name_property``, else its ``name``, else its ``id`` property, else its position
          (1, 2, ...); columns product, region, time, variable, value, n_pixels, area_km2,
          valid_km2;
        - ``bbox=(W, S, E, N)``: the area-weighted mean over the box; columns product, time,
          variable, value, n_pixels, area_km2, valid_km2.

        Means weigh each pixel by the exact fraction of it inside the shape times its area
        (:mod:`fluxscape.zonal`: WGS84 ellipsoidal cell area on lon/lat grids), over the pixels
        with a value; ``n_pixels`` counts pixels covered at least in part, ``area_km2`` is the
        shape's area on the grid and ``valid_km2`` the part of it with a value at that step.
        Products with a ``year`` (and ``season``) axis give those columns instead of time.
        FluxscapeError listing the catalog's variables for an unknown ``variable``, and
        hinting at swapped coordinates when a place matches nothing but would swapped.
        """
        given = [v is not None for v in (point, bbox, sites, polygon)]
        if sum(given) != 1:
            raise FluxscapeError("extract needs exactly one of point, sites, bbox or polygon")
        self._check_variable(variable, product)
        regions = None
        if sites is not None:
            sites = geo.read_sites(sites)
            where = geo.sites_bbox(sites)
        elif polygon is not None:
            regions = read_regions(polygon, name_property)
            where = region_bounds(regions)
        elif point is not None:
            _check_latitude(point[1], point[0], "point")
            where = (point[0], point[1], point[0], point[1])
        else:
            _check_latitude(bbox[1], bbox[0], "bbox")
            _check_latitude(bbox[3], bbox[2], "bbox")
            where = bbox
        entries = self.search(product=product, variable=variable, bbox=where)
        if not entries:
            raise FluxscapeError(self._nothing_there(variable, product, where))
        frames = []
        for e in entries:
            da = _open_store(e.store, None, time, dask=False)[variable]
            if point is not None:
                frame = geo.at_point(da, *point)
            elif sites is not None:
                frame = geo.at_sites(da, sites, e.bbox)
            elif bbox is not None:
                frame = mean_in(da, geo.box(bbox))
            else:
                frame = means_in(da, regions)
            if frame is None or frame.empty:
                continue
            frame.insert(0, "product", e.id)
            frame.insert(frame.columns.get_loc("value"), "variable", variable)
            frames.append(frame)
        if not frames:
            raise FluxscapeError(f"{_place(where)} holds no pixel of {variable!r}")
        return pd.concat(frames, ignore_index=True)

    def _check_variable(self, variable: str, product: str | Entry | None) -> None:
        """FluxscapeError listing the variables there are when no product (or not
        ``product``) has ``variable``."""
        if self.count(product=product, variable=variable):
            return
        if product is None:
            hits, where = self.entries(), f"{self.root}"
        else:
            hits = [self._entry(product)]  # raises for an unknown product
            where = f"product {hits[0].id}"
        known = sorted({v for e in hits for v in e.variables})
        raise FluxscapeError(
            f"no variable {variable!r} in {where}; variables: {', '.join(known) or 'none'}"
        )

    def _nothing_there(self, variable: str, product, where: tuple) -> str:
        """No product with ``variable`` covers ``where``: the message, with a hint when the
        place swapped (latitude first) would be covered."""
        message = f"no product in {self.root} has {variable!r} at {_place(where)}"
        w, s, e, n = where
        swapped = (s, w, n, e)
        if abs(w) <= 90 and abs(e) <= 90:
            hits = self.search(product=product, variable=variable, bbox=swapped)
            if hits:
                ids = ", ".join(h.id for h in hits)
                message += (
                    f"; swapped to longitude {s:g}..{n:g}, latitude {w:g}..{e:g} it would fall "
                    f"in {ids}: are latitude and longitude swapped? (give longitude first)"
                )
        return message

    def export(
        self,
        name: str | Entry,
        path: str | Path,
        variables: list[str] | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        time: TimeRange | str | None = None,
        fmt: str | None = None,
    ) -> Path:
        """Write a subset of a product (id, product name or search hit) for desktop GIS: CF
        NetCDF (``.nc``) or a Cloud-Optimised GeoTIFF (``.tif``, one variable, one band per time
        step); ``fmt`` (``netcdf`` or ``cog``) overrides the suffix. Returns the path written."""
        from fluxscape.catalog.export import export_dataset

        return export_dataset(self.open(name, bbox=bbox, time=time), Path(path), variables, fmt)


def _check_latitude(lat: float, lon: float, what: str) -> None:
    """FluxscapeError when ``lat`` is not a latitude, with a hint when swapping would fix it."""
    if not -90 <= lat <= 90:
        hint = swapped_hint(lon, lat) or "; latitudes lie within -90..90"
        raise FluxscapeError(
            f"{what}: latitude {lat:g} is outside -90..90 (places are longitude first){hint}"
        )


def _place(where: tuple) -> str:
    """``lon 138.4, lat 35.9`` for a point, ``W,S,E,N = ...`` for a box."""
    w, s, e, n = (float(v) for v in where)
    if w == e and s == n:
        return f"lon {w:g}, lat {s:g}"
    return f"W,S,E,N = {w:g},{s:g},{e:g},{n:g}"


def _open_store(store: Path, bbox, time, dask: bool) -> xr.Dataset:
    ds = xr.open_zarr(store, consolidated=True, **({} if dask else {"chunks": None}))
    if bbox is not None:
        ds = geo.subset_bbox(ds, bbox)
    return times.select_steps(ds, time)


def _filters(product: str | Entry | None = None, **filters) -> dict:
    """Index filters with ``product`` given by name or id, or as a search hit (its id)."""
    if isinstance(product, Entry):
        ids = filters.get("ids")
        filters["ids"] = [product.id] if ids is None else [i for i in ids if i == product.id]
        return filters
    return {"product": product, **filters}


def _entry_store(base: str, store: str) -> Path | str:
    """A catalog row's store: its URL (object storage) or its path under the catalog."""
    return store if is_url(store) else Path(os.path.normpath(f"{base}/{store}"))


def open_catalog(path: str | Path) -> Catalog:
    """Open a catalog by its folder or its ``catalog.json``; a URL (``s3://bucket/OUT/catalog``,
    endpoint and credentials from the storage library's environment) is copied into the
    per-user cache first (:func:`fluxscape.catalog.remote_catalog.local_copy`: small JSON and
    index files; the stores stay on object storage and are opened by their URLs)."""
    if is_url(path):
        from fluxscape.catalog.remote_catalog import local_copy

        path = local_copy(str(path))
    path = Path(path)
    root = path / "catalog.json" if path.is_dir() else path
    if not root.exists():
        raise FluxscapeError(f"{path}: no catalog.json here (run a workflow first)")
    return Catalog(root.resolve())
