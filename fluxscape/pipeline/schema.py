"""The workflow file's building blocks shared by every step: region, period, inputs,
output, Dask settings, and the typed references a product uses to name inputs and other
products (:class:`InputRef`, :class:`ProductRef`).

Run order, the inputs a product is made from and inherited access levels come from these
typed references alone (:func:`references`), never from matching string values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fluxscape.access import AccessLevel

#: Named regions, [W, S, E, N] in degrees.
REGION_PRESETS: dict[str, tuple[float, float, float, float]] = {
    "sample-demo": (138.0, 35.5, 139.0, 36.5),
    "sample-demo-4x": (137.5, 35.0, 139.5, 37.0),
    "kanto": (138.4, 34.8, 141.0, 37.2),
    "japan": (122.0, 24.0, 146.0, 46.0),
    "korea": (124.0, 33.0, 132.0, 39.0),
    "northeast-asia": (100.0, 20.0, 150.0, 55.0),
}


class StrictModel(BaseModel):
    """Unknown keys are errors; numbers must be finite (NaN and infinities are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Region(StrictModel):
    """Target grid: bbox [W, S, E, N] in degrees (or in ``bbox_crs``), a named preset, or a
    geobox (``origin`` + ``shape``: the grid exactly, e.g. a MODIS tile's own); CRS; resolution
    in CRS units (degrees for EPSG:4326)."""

    bbox: tuple[float, float, float, float] | None = None
    # CRS of the bbox values: lon/lat degrees by default, or e.g. the grid's own CRS (metres)
    bbox_crs: Annotated[str, Field(validate_default=True)] = "EPSG:4326"
    preset: str | None = None
    crs: str = "EPSG:4326"
    resolution: Annotated[float, Field(gt=0)] = 0.01
    polygon: str | None = None  # GeoJSON (lon/lat) of the area: tiles that miss it are not run
    origin: tuple[float, float] | None = None
    shape: tuple[PositiveInt, PositiveInt] | None = None  # [rows, columns] of the geobox grid

    @field_validator("bbox")
    @classmethod
    def _bbox_order(cls, value):
        """[W, S, E, N] with W < E and S < N (ranges are checked with ``bbox_crs``)."""
        if value is None:
            return value
        w, s, e, n = value
        if not (w < e and s < n):
            raise ValueError(f"{list(value)} must be [W, S, E, N] with W < E, S < N")
        return value

    @field_validator("bbox_crs")
    @classmethod
    def _bbox_in_degrees_or_known(cls, value: str, info: ValidationInfo) -> str:
        """In degrees (a geographic ``bbox_crs``) the bbox lies within [-180, 180] x [-90, 90]
        (0-360 longitudes are not read); any other ``bbox_crs`` must be a CRS PROJ knows."""
        crs = _parse_crs(value, "give EPSG:4326 (degrees) or the grid's CRS")
        bbox = info.data.get("bbox")
        if bbox is not None and crs.is_geographic:
            w, s, e, n = bbox
            if not (-180 <= w and e <= 180 and -90 <= s and n <= 90):
                raise ValueError(
                    f"region.bbox {list(bbox)} is outside [-180, -90, 180, 90]: longitudes and "
                    "latitudes in degrees, longitudes from -180 to 180 (a bbox in the grid's "
                    "units needs bbox_crs)"
                )
        return value

    @field_validator("crs")
    @classmethod
    def _known_crs(cls, value: str, info: ValidationInfo) -> str:
        """A horizontal (geographic or projected) CRS that PROJ knows and in which the
        region's lon/lat box has finite coordinates."""
        crs = _parse_crs(value, "give an EPSG code (EPSG:4326), WKT or a PROJ string (+proj=...)")
        if not (crs.is_geographic or crs.is_projected):
            raise ValueError(
                f"{value!r} is a {crs.type_name}; a geographic or projected CRS is needed"
            )
        bbox = info.data.get("bbox") or REGION_PRESETS.get(info.data.get("preset"))
        if info.data.get("bbox") is not None and info.data.get("bbox_crs") not in (
            None,
            "EPSG:4326",
        ):
            bbox = None  # given in other units: region_geobox transforms it
        if bbox is not None and crs.is_projected and not _projects(bbox, value):
            raise ValueError(
                f"{value!r} cannot represent the region {list(bbox)} (infinite coordinates: "
                "outside the projection's area of use); choose a CRS that covers the region"
            )
        return value

    @model_validator(mode="after")
    def _bbox_or_preset(self) -> Region:
        given = [k for k in ("bbox", "preset", "origin") if getattr(self, k) is not None]
        if (self.origin is None) != (self.shape is None):
            raise ValueError("a geobox region needs both origin [x, y] and shape [rows, columns]")
        if not given or (self.origin is not None and len(given) > 1):  # a resolved preset has both
            raise ValueError(
                "give one of bbox [W, S, E, N], preset, or origin [x, y] with shape "
                f"[rows, columns] (got {', '.join(given) or 'none'})"
            )
        if self.origin is not None and not _projects_box(self.grid_bbox, self.crs):
            raise ValueError(
                f"origin {list(self.origin)} and shape {list(self.shape)} at resolution "
                f"{self.resolution:g} make {list(self.grid_bbox)}, which {self.crs} cannot "
                "transform to lon/lat (outside its area of use?)"
            )
        if self.preset is not None and self.preset not in REGION_PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known: {sorted(REGION_PRESETS)}")
        return self

    @property
    def grid_bbox(self) -> tuple[float, float, float, float] | None:
        """A geobox region's [W, S, E, N] in ``crs`` units (None for other regions)."""
        if self.origin is None:
            return None
        (x0, y0), (ny, nx) = self.origin, self.shape
        r = self.resolution
        return (x0, y0 - ny * r, x0 + nx * r, y0)

    @property
    def lonlat_bbox(self) -> tuple[float, float, float, float]:
        """The region's [W, S, E, N] in degrees (a bbox in other units, transformed)."""
        if self.origin is not None:
            from odc.geo.geom import BoundingBox

            box = BoundingBox(*self.grid_bbox, crs=self.crs).to_crs("EPSG:4326")
            return tuple(float(v) for v in box)
        if self.bbox is None:
            return REGION_PRESETS[self.preset]
        if self.bbox_crs == "EPSG:4326":
            return self.bbox
        from odc.geo.geom import BoundingBox

        box = BoundingBox(*self.bbox, crs=self.bbox_crs).to_crs("EPSG:4326")
        return tuple(float(v) for v in box)


def _parse_crs(value: str, hint: str):
    """The pyproj CRS of ``value``, or a ValueError saying PROJ does not know it, with ``hint``."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        return CRS.from_user_input(value)
    except CRSError:
        raise ValueError(f"{value!r} is not a CRS PROJ knows; {hint}") from None


def _projects_box(bbox: tuple[float, float, float, float], crs: str) -> bool:
    """True when ``bbox`` (in ``crs`` units) transforms to finite lon/lat within the globe
    (PROJ's inverse sinusoidal returns latitudes beyond 90° for points off the map)."""
    import math

    from odc.geo.geom import BoundingBox

    try:
        w, s, e, n = BoundingBox(*bbox, crs=crs).to_crs("EPSG:4326")
    except Exception:
        return False
    finite = all(math.isfinite(v) for v in (w, s, e, n))
    return finite and -180 <= w < e <= 180 and -90 <= s < n <= 90


def _projects(bbox: tuple[float, float, float, float], crs: str) -> bool:
    """True when the lon/lat ``bbox`` has a finite, non-empty extent in ``crs``."""
    import math

    from odc.geo.geom import BoundingBox

    try:
        box = BoundingBox(*bbox, crs="EPSG:4326").to_crs(crs)
    except Exception:  # PROJ raises several types for points it cannot project
        return False
    return all(math.isfinite(v) for v in box) and box.left < box.right and box.bottom < box.top


class Period(StrictModel):
    """Time period (inclusive dates) and product time step. ``16D`` is the MODIS convention:
    16-day periods starting on day 1, 17, ..., 353 of each year."""

    start: date
    end: date
    step: Literal["16D", "8D", "1D", "1M"] = "16D"

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Input(StrictModel):
    """One input: a reader name and path globs (relative to ``data_dir`` or absolute)."""

    reader: str
    paths: list[str] = Field(min_length=1)
    access: AccessLevel = "public"  # who may see data made from it (fluxscape.access)
    # topdown reader only: role (land, land_sd, fire) -> file variable (CarbonTracker default)
    variables: dict[Literal["land", "land_sd", "fire"], str] | None = None
    # topdown reader only: land_sd as this share of |land| when no land_sd variable is mapped
    relative_error: Annotated[float, Field(gt=0, le=10)] | None = None

    @model_validator(mode="after")
    def _reader_options(self) -> Input:
        """``variables`` and ``relative_error`` are options of the ``topdown`` reader only."""
        given = [k for k in ("variables", "relative_error") if getattr(self, k) is not None]
        if given and self.reader != "topdown":
            raise ValueError(f"{', '.join(given)}: only the topdown reader takes them")
        return self

    @field_validator("reader")
    @classmethod
    def _known_reader(cls, value: str) -> str:
        from fluxscape.readers.registry import readers

        if value not in readers():
            raise ValueError(f"unknown reader {value!r}; known: {sorted(readers())}")
        return value


#: Product time steps from finest to coarsest (a vi ``source`` must be finer than its user).
STEPS = ("1D", "8D", "16D", "1M")
TimeStep = Literal["16D", "8D", "1D", "1M"]


#: An SPDX licence identifier or expression (``CC-BY-4.0``, ``CC-BY-4.0 OR MIT``).
SPDX_PATTERN = r"^[A-Za-z0-9.+-]+( (AND|OR|WITH) [A-Za-z0-9.+-]+)*$"


class Output(StrictModel):
    """Output directory (products, catalog, logs) and the catalog directory in it."""

    dir: str = "."
    catalog: str = "catalog"
    license: Annotated[str | None, Field(pattern=SPDX_PATTERN)] = None  # SPDX id, e.g. CC-BY-4.0


class Provenance(StrictModel):
    """What the stores record of their input files. Each input's base name, path, size and
    modification time (or ETag) always, from the listing; a content hash only on request."""

    content_hash: bool = False  # also record each input's SHA-256 (hashed on the workers)


class DaskSettings(StrictModel):
    """Where tiles run: an existing scheduler, a LocalCluster, or dask-jobqueue."""

    scheduler: str | None = None
    cluster: Literal["local", "slurm", "pbs"] = "local"
    workers: Annotated[int, Field(ge=1)] = 2
    threads_per_worker: Annotated[int, Field(ge=1)] = 1
    memory_limit: str = "3GiB"
    processes: bool = True  # worker processes, or threads of the driver (debugging, profiling)
    jobqueue: dict = Field(default_factory=dict)


class Limits(StrictModel):
    """What one run may ask for; checked before anything is read or allocated
    (:mod:`fluxscape.pipeline.budget`)."""

    max_tiles: Annotated[int, Field(ge=1)] = 100_000  # tiles of the region's grid
    max_time_steps: Annotated[int, Field(ge=1)] = 20_000  # time steps of one product
    max_output_gib: Annotated[float, Field(gt=0)] = 4096.0  # estimated size of all stores, GiB
    max_tile_memory_share: Annotated[float, Field(gt=0, le=1)] = 0.8  # of dask.memory_limit


def year_or_date(value, last: bool):
    """A year (int) as its first or last day; anything else unchanged (pydantic checks it)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return date(value, 12, 31) if last else date(value, 1, 1)
    return value


# --- typed references ------------------------------------------------------------------------


@dataclass(frozen=True)
class InputRef:
    """Marks a product field that names workflow inputs (a name, a list of names, or None).

    ``gives``: alternatives, each a set of standard layers (fluxscape.readers.ontile.LAYERS);
    the input's source must be able to give every layer of at least one of them."""

    gives: tuple[frozenset[str], ...] = ()
    what: str = ""  # what the input is, for messages ("MCD64A1 burned-area tiles")

    def accepts(self, capabilities: frozenset[str]) -> bool:
        return not self.gives or any(alt <= capabilities for alt in self.gives)


@dataclass(frozen=True)
class ProductRef:
    """Marks a product field that names other products of the workflow (it reads their
    stores, so it runs after them and inherits their inputs' access levels); ``kinds``: the
    product kinds accepted."""

    kinds: tuple[str, ...]


def input_ref(*gives: set[str] | frozenset[str], what: str = "") -> InputRef:
    """An :class:`InputRef` whose source must give one of the ``gives`` layer sets."""
    return InputRef(tuple(frozenset(g) for g in gives), what)


@dataclass(frozen=True)
class Reference:
    """One reference of a product: the field, what it points at and the names it gives."""

    field: str
    marker: InputRef | ProductRef
    names: tuple[str, ...]

    @property
    def to_input(self) -> bool:
        return isinstance(self.marker, InputRef)


def references(product: BaseModel) -> list[Reference]:
    """The typed references of a product (fields marked :class:`InputRef` / :class:`ProductRef`)
    with the names they hold (none for an unset optional reference)."""
    out = []
    for name, info in type(product).model_fields.items():
        marker = next((m for m in info.metadata if isinstance(m, InputRef | ProductRef)), None)
        if marker is None:
            continue
        value = getattr(product, name)
        names = tuple(value) if isinstance(value, list | tuple) else (value,)
        out.append(Reference(name, marker, tuple(n for n in names if n is not None)))
    return out


def input_names(product: BaseModel) -> list[str]:
    """Names of the inputs a product's fields reference directly."""
    return [n for r in references(product) if r.to_input for n in r.names]


def product_names(product: BaseModel) -> list[str]:
    """Names of the other products a product's fields reference (it reads their stores)."""
    return [n for r in references(product) if not r.to_input for n in r.names]
