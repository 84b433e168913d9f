"""The workflow file (DESIGN section 4): schema, validation and resolution.

A workflow is validated completely before any work starts. Unknown keys and wrong types are
errors naming the key (``region.bbox: ...``); an input glob that matches no file is an error
naming the input. :func:`resolve_workflow` fills defaults and makes every path absolute, so the
resolved YAML (written to ``OUT/workflow.yaml``) reruns anywhere with ``--resume``.
"""

from __future__ import annotations

import glob
import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fluxscape.access import AccessLevel, most_restrictive
from fluxscape.errors import WorkflowError
from fluxscape.pipeline import recipes

#: Named regions, [W, S, E, N] in degrees.
REGION_PRESETS: dict[str, tuple[float, float, float, float]] = {
    "sample-demo": (138.0, 35.5, 139.0, 36.5),
    "sample-demo-4x": (137.5, 35.0, 139.5, 37.0),
    "kanto": (138.4, 34.8, 141.0, 37.2),
    "japan": (122.0, 24.0, 146.0, 46.0),
    "korea": (124.0, 33.0, 132.0, 39.0),
    "northeast-asia": (100.0, 20.0, 150.0, 55.0),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Region(_Strict):
    """Target grid: bbox [W, S, E, N] in degrees (or a named preset), CRS, resolution in CRS
    units (degrees for EPSG:4326)."""

    bbox: tuple[float, float, float, float] | None = None
    preset: str | None = None
    crs: str = "EPSG:4326"
    resolution: Annotated[float, Field(gt=0)] = 0.01

    @model_validator(mode="after")
    def _bbox_or_preset(self) -> Region:
        if self.bbox is None and self.preset is None:
            raise ValueError("give either bbox [W, S, E, N] or preset")
        if self.preset is not None and self.preset not in REGION_PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known: {sorted(REGION_PRESETS)}")
        if self.bbox is not None:
            w, s, e, n = self.bbox
            if not (w < e and s < n):
                raise ValueError(f"bbox {list(self.bbox)} must be [W, S, E, N] with W < E, S < N")
        return self

    @property
    def lonlat_bbox(self) -> tuple[float, float, float, float]:
        return self.bbox if self.bbox is not None else REGION_PRESETS[self.preset]


class Period(_Strict):
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


class Input(_Strict):
    """One input: a reader name and path globs (relative to ``data_dir`` or absolute)."""

    reader: str
    paths: list[str] = Field(min_length=1)
    access: AccessLevel = "public"  # who may see data made from it (fluxscape.access)

    @field_validator("reader")
    @classmethod
    def _known_reader(cls, value: str) -> str:
        from fluxscape.readers.registry import readers

        if value not in readers():
            raise ValueError(f"unknown reader {value!r}; known: {sorted(readers())}")
        return value


#: Product time steps from finest to coarsest (a vi ``source`` must be finer than its user).
STEPS = ("1D", "8D", "16D", "1M")


class ViProduct(_Strict):
    """The ``vi`` product: vegetation indices on the target grid, QA-masked. Made from an
    ``input`` (its observations composited per step) or from the ``source`` store of a vi
    product with a finer step (e.g. 16-day composites of a daily clear-sky AHI layer)."""

    kind: Literal["vi"]
    input: str | None = None  # the raster input (MODIS, SGLI or AHI reader); or give source
    source: str | None = None  # a vi product with a finer step whose values it composites
    step: Literal["16D", "8D", "1D", "1M"] | None = None  # own time step (default period.step)
    variables: list[Literal["ndvi", "evi", "evi2", "grvi", "nbr", "ndwi"]] = ["ndvi"]
    max_pixel_reliability: Annotated[int, Field(ge=0, le=3)] = 1
    resampling: Literal["nearest", "average", "bilinear"] = "nearest"
    hours: tuple[float, float] | None = None  # UTC [first, last) hours of observations kept
    composite: Literal["max_ndvi", "median", "nearest_time"] = "max_ndvi"
    solar_time: Annotated[float, Field(ge=0, lt=24)] = 12.0  # local solar hour nearest_time aims at


class GosatL3Product(_Strict):
    """The ``gosat_l3`` product: monthly XCO2/XCH4 mean, count and standard error of the
    quality-passed soundings of GOSAT inputs, on a coarse grid of ``resolution`` (CRS units)."""

    kind: Literal["gosat_l3"]
    inputs: list[str] = Field(min_length=1)
    variables: list[Literal["xco2", "xch4"]] = ["xco2", "xch4"]
    resolution: Annotated[float, Field(gt=0)] = 0.25


class PhenologyProduct(_Strict):
    """The ``phenology`` product from an earlier ``vi`` product of the workflow."""

    kind: Literal["phenology"]
    source: str
    variable: Literal["ndvi", "evi", "evi2"] = "ndvi"
    method: Literal["whittaker", "savgol", "double_logistic"] = "whittaker"
    seasons: Annotated[int, Field(ge=1, le=2)] = 2
    sos_method: Literal["amplitude", "derivative"] = "amplitude"  # sos/eos rule (TIMESAT-like)
    sos_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.5  # sos at this share of the rise
    eos_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.5  # eos at this share of the fall
    smoothing_lambda: Annotated[float, Field(gt=0)] | None = None  # Whittaker lambda (day^3)
    savgol_window: Annotated[float, Field(gt=0)] = 41.0  # Savitzky-Golay window (days)
    min_amplitude: Annotated[float, Field(ge=0)] = 0.1  # smallest season amplitude (VI units)


class DisturbanceProduct(_Strict):
    """The ``disturbance`` product from an earlier ``vi`` product: a stable ``history``
    period and a ``monitor`` period, each [first, last] dates."""

    kind: Literal["disturbance"]
    source: str
    variable: Literal["ndvi", "evi", "evi2", "nbr"] = "ndvi"
    history: tuple[date, date]
    monitor: tuple[date, date]
    process: Literal["mosum", "cusum"] = "mosum"
    min_magnitude: Annotated[float, Field(ge=0)] = 0.05
    burn_severity: bool = False  # dNBR / severity class of each break (source needs nbr)
    reference: str | None = None  # an input of MCD64A1 tiles: burn dates scored against breaks
    lst: str | None = Field(
        None,
        description="An `lst` product of the same workflow: adds the year's heat-stress days, "
        "maximum LST anomaly and heat-stress onset.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> DisturbanceProduct:
        if not (self.history[0] < self.history[1] < self.monitor[0] <= self.monitor[1]):
            raise ValueError("need history[0] < history[1] < monitor[0] <= monitor[1]")
        return self


def _year_or_date(value, last: bool):
    """A year (int) as its first or last day; anything else unchanged (pydantic checks it)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return date(value, 12, 31) if last else date(value, 1, 1)
    return value


class LstProduct(_Strict):
    """The ``lst`` product: daytime land surface temperature (K) per period on the target grid
    from MODIS MOD11/MYD11 tiles or Himawari AHI P-Tree scenes (split window; quality-masked
    mean of the usable observations of each period),
    its standardized anomaly against the per-period-of-year climatology of the ``baseline``
    years, and a heat-stress flag where the anomaly exceeds ``threshold``."""

    kind: Literal["lst"]  # Product kind.
    input: str = Field(
        description="The LST input: MOD11A2/MYD11A2 tiles (reader `modis_hdf4`) or Himawari "
        "P-Tree NetCDF (reader `ahi_ptree`, split window on B13/B15)."
    )
    max_qa: Annotated[int, Field(ge=0, le=1)] = Field(
        0,
        description="Worst quality kept: MOD11 mandatory QA (QC bits 0-1: 0 good, 1 other "
        "quality; 2 and 3 mean not produced); for AHI 0 clear, 1 within 2 pixels of a cloud.",
    )
    baseline: tuple[date, date] = Field(
        description="[first, last] of the climatology: years (`[2017, 2021]`) or dates."
    )
    threshold: Annotated[float, Field(gt=0)] = Field(
        2.0, description="Standardized anomaly (z) above which a period is under heat stress."
    )
    min_consecutive: Annotated[int, Field(ge=1)] = Field(
        1,
        description="Flag heat stress only in runs of at least this many consecutive periods "
        "above the threshold (periods without a usable observation are skipped).",
    )
    sd_floor: Annotated[float, Field(gt=0)] = Field(
        1.0,
        description="Smallest climatological standard deviation (K), about the MOD11 accuracy: "
        "keeps z finite and meaningful where the baseline barely varies.",
    )
    min_baseline: Annotated[int, Field(ge=2)] = Field(
        3,
        description="Fewest usable baseline observations of a period of the year for a "
        "climatology (else z is NaN there).",
    )
    step: Literal["8D", "16D", "1M"] | None = Field(
        None,
        description="Time step of the product (default: the workflow's `period.step`); "
        "MOD11A2 is 8-day.",
    )

    @model_validator(mode="before")
    @classmethod
    def _baseline_years(cls, data):
        if isinstance(data, dict) and isinstance(data.get("baseline"), list | tuple):
            base = list(data["baseline"])
            if len(base) == 2:
                base = [_year_or_date(base[0], False), _year_or_date(base[1], True)]
            data = {**data, "baseline": base}
        return data

    @model_validator(mode="after")
    def _baseline_ordered(self) -> LstProduct:
        if self.baseline[1] < self.baseline[0]:
            raise ValueError(f"baseline ends ({self.baseline[1]}) before it starts")
        return self


class FluxProduct(_Strict):
    """The ``flux`` product: tower fluxes upscaled by machine learning (FLUXCOM style).

    Predictors are variables of the ``source`` vi store, gridded meteorology from the ``meteo``
    input (reader ``cf_meteo``) aggregated to the product step, and the season (sin/cos of the
    day of year). Targets come from the ``towers`` input (FLUXNET FULLSET files) aggregated to
    the same step with QC filtering; the tower coordinates from ``sites`` (a FLUXNET
    ``SitesList.csv``; by default the one beside the tower files). With ``land_cover`` (an
    input of MODIS MCD12Q1 tiles, reader ``modis_hdf4``) the static class of
    ``land_cover_layer`` (latest year) becomes one-hot ``lc_<code>`` features."""

    kind: Literal["flux"]
    source: str
    predictors: list[Literal["ndvi", "evi", "evi2", "grvi", "nbr", "ndwi"]] = ["ndvi", "evi"]
    meteo: str | None = None
    meteo_variables: list[Literal["ta", "sw_in", "vpd", "precip"]] = ["ta", "sw_in", "vpd"]
    seasonal_features: bool = True
    phenology: str | None = None  # a phenology product: days_since_sos, season_fraction
    land_cover: str | None = None  # an input of MCD12Q1 tiles: one-hot lc_<code> features
    land_cover_layer: Literal["LC_Type1", "LC_Type5"] = "LC_Type1"  # IGBP or PFT classes
    towers: str
    sites: str | None = None
    targets: list[Literal["gpp", "nee", "reco"]] = ["gpp", "nee", "reco"]
    partitioning: Literal["NT", "DT"] = "NT"
    min_qc: Annotated[float, Field(ge=0, le=1)] = 0.8
    min_coverage: Annotated[float, Field(gt=0, le=1)] = 0.5
    window: Literal[1, 3, 5] = 1
    methods: list[Literal["rf", "hgb", "lgbm"]] = Field(["rf", "hgb"], min_length=1)
    # hyperparameters per method, overriding the defaults (e.g. {rf: {n_estimators: 100}})
    method_params: dict[
        Literal["rf", "hgb", "lgbm"], dict[str, int | float | str | bool | None]
    ] = Field(default_factory=dict)
    cv: Literal["loso", "group_kfold"] = "loso"
    n_splits: Annotated[int, Field(ge=2)] = 5  # folds of group_kfold validation
    ensemble_folds: Annotated[int, Field(ge=1)] = 5  # site-grouped folds per method in the ensemble
    seed: int = 0
    regions: str | None = None  # GeoJSON of polygons for regional totals (TgC)
    region_name: str = "name"  # the polygons' property that names them


Product = Annotated[
    ViProduct | GosatL3Product | PhenologyProduct | DisturbanceProduct | FluxProduct | LstProduct,
    Field(discriminator="kind"),
]


def _product_refs(products: dict, name: str) -> list[str]:
    """The other products that product ``name`` reads (any field naming one: ``source``,
    ``phenology``, ``lst``, ...)."""
    refs = []
    for value in products[name].model_dump().values():
        for ref in value if isinstance(value, list | tuple) else [value]:
            if isinstance(ref, str) and ref in products and ref != name:
                refs.append(ref)
    return refs


def run_order(products: dict) -> list[str]:
    """Product names in the order they must run: products made from inputs first, then those
    derived from other products' stores, each after the products it reads (a 16-day vi made
    from a daily vi runs after it, phenology after that; an lst product before the
    disturbance product that reads it)."""
    direct = [name for name in products if not _product_refs(products, name)]
    order = list(direct)
    pending = [name for name in products if name not in direct]
    while pending:
        ready = [n for n in pending if all(r in order for r in _product_refs(products, n))]
        nxt = ready[0] if ready else pending[0]  # a cycle: the validator reports it
        order.append(nxt)
        pending.remove(nxt)
    return order


class Output(_Strict):
    """Output directory (products, catalog, logs) and the catalog directory in it."""

    dir: str = "."
    catalog: str = "catalog"


class DaskSettings(_Strict):
    """Where tiles run: an existing scheduler, a LocalCluster, or dask-jobqueue."""

    scheduler: str | None = None
    cluster: Literal["local", "slurm", "pbs"] = "local"
    workers: Annotated[int, Field(ge=1)] = 2
    threads_per_worker: Annotated[int, Field(ge=1)] = 1
    memory_limit: str = "3GiB"
    jobqueue: dict = Field(default_factory=dict)


class Workflow(_Strict):
    """A complete workflow file."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    description: str = ""
    region: Region
    tile_size: Annotated[int, Field(ge=8, le=4096)] = 256
    period: Period
    data_dir: str = "."
    inputs: dict[str, Input] = Field(min_length=1)
    products: dict[str, Product] = Field(min_length=1)
    output: Output = Output()
    dask: DaskSettings = DaskSettings()
    access: AccessLevel = "public"  # floor for every product (fluxscape.access)

    @model_validator(mode="after")
    def _products_use_known_inputs(self) -> Workflow:
        for name, product in self.products.items():
            source = getattr(product, "source", None)
            if source is not None and getattr(self.products.get(source), "kind", None) != "vi":
                vi_products = [k for k, v in self.products.items() if v.kind == "vi"]
                raise ValueError(
                    f"products.{name}.source: {source!r} is not a vi product of this workflow "
                    f"(vi products: {vi_products})"
                )
            lst = getattr(product, "lst", None)
            if lst is not None and getattr(self.products.get(lst), "kind", None) != "lst":
                lst_products = [k for k, v in self.products.items() if v.kind == "lst"]
                raise ValueError(
                    f"products.{name}.lst: {lst!r} is not an lst product of this workflow "
                    f"(lst products: {lst_products})"
                )
            if product.kind == "lst" and not (
                product.baseline[0] <= self.period.end and product.baseline[1] >= self.period.start
            ):
                raise ValueError(
                    f"products.{name}.baseline: {[str(d) for d in product.baseline]} lies "
                    f"outside the period {self.period.start} to {self.period.end}"
                )
            pheno = getattr(product, "phenology", None)
            if pheno is not None and getattr(self.products.get(pheno), "kind", None) != "phenology":
                raise ValueError(
                    f"products.{name}.phenology: {pheno!r} is not a phenology product of this "
                    "workflow"
                )
            for field in ("inputs", "input", "towers", "meteo", "reference", "land_cover"):
                used = getattr(product, field, None)
                for inp in [used] if isinstance(used, str) else used or []:
                    if inp not in self.inputs:
                        raise ValueError(
                            f"products.{name}.{field}: {inp!r} is not one of the inputs "
                            f"{sorted(self.inputs)}"
                        )
            lc = getattr(product, "land_cover", None)
            if lc is not None and self.inputs[lc].reader != "modis_hdf4":
                raise ValueError(
                    f"products.{name}.land_cover: input {lc!r} has reader "
                    f"{self.inputs[lc].reader}; MCD12Q1 land-cover tiles need reader modis_hdf4"
                )
        return self

    @model_validator(mode="after")
    def _vi_input_or_source(self) -> Workflow:
        for name, p in self.products.items():
            if p.kind != "vi":
                continue
            if (p.input is None) == (p.source is None):
                key = "input" if p.input is None else "source"
                raise ValueError(
                    f"products.{name}.{key}: give exactly one of input (an input's observations) "
                    "or source (a vi product with a finer step)"
                )
            if p.input is not None:
                reader = self.inputs[p.input].reader
                if p.composite == "nearest_time" and reader not in ("ahi_hsd", "ahi_ptree"):
                    raise ValueError(
                        f"products.{name}.composite: nearest_time picks among several scenes a "
                        f"day by their time (readers ahi_hsd, ahi_ptree), not {reader}"
                    )
                continue
            src = self.products.get(p.source)
            if getattr(src, "kind", None) != "vi":
                continue  # reported by _products_use_known_inputs
            mine, theirs = p.step or self.period.step, src.step or self.period.step
            if STEPS.index(theirs) >= STEPS.index(mine):
                raise ValueError(
                    f"products.{name}.step: {mine} is not coarser than the step {theirs} of its "
                    f"source {p.source!r}; set step on one of them (e.g. 1D for the source)"
                )
            if p.composite == "nearest_time":
                raise ValueError(
                    f"products.{name}.composite: nearest_time chooses among one day's scenes "
                    "(a product with an input); from a source use max_ndvi or median"
                )
            if p.hours is not None:
                raise ValueError(
                    f"products.{name}.hours: selects an input's scenes; its source "
                    f"{p.source!r} already did (set hours there)"
                )
            if "ndvi" not in src.variables:
                raise ValueError(
                    f"products.{name}.source: {p.source!r} has no ndvi, which the composite "
                    "rule ranks observations by (add ndvi to its variables)"
                )
            missing = [v for v in p.variables if v not in src.variables]
            if missing:
                raise ValueError(
                    f"products.{name}.variables: {missing} are not in its source {p.source!r} "
                    f"(it has {src.variables})"
                )
        return self


def _known_keys() -> set[str]:
    models = [
        Workflow,
        Region,
        Period,
        Input,
        Output,
        DaskSettings,
        ViProduct,
        GosatL3Product,
        PhenologyProduct,
        DisturbanceProduct,
        FluxProduct,
        LstProduct,
    ]
    return {key for model in models for key in model.model_fields}


def _suggest(key: str) -> str:
    """``; did you mean 'x'?`` for a misspelt key (difflib), else ''."""
    import difflib

    close = difflib.get_close_matches(key, sorted(_known_keys()), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def _product_kinds() -> set[str]:
    """The ``kind`` tags of the product union (``vi``, ``phenology``, ...)."""
    from typing import get_args

    models = get_args(get_args(Product)[0])
    return {get_args(m.model_fields["kind"].annotation)[0] for m in models}


def _format_error(source: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    parts = list(err["loc"])
    if len(parts) >= 4 and parts[0] == "products" and parts[2] in _product_kinds():
        del parts[2]  # pydantic puts the discriminated union's tag into the location
    loc = ".".join(str(p) for p in parts)
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key" + _suggest(str(err["loc"][-1]))
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "union_tag_not_found":
        loc, msg = f"{loc}.kind", "required key is missing (the product kind)"
    elif err["type"] == "union_tag_invalid":
        ctx = err.get("ctx", {})
        loc = f"{loc}.kind"
        msg = f"unknown product kind {ctx.get('tag')!r}; known: {ctx.get('expected_tags')}"
    msg = msg.removeprefix("Value error, ")
    where = f"{loc}: " if loc else ""
    more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return f"{source}: {where}{msg}{more}"


def parse_workflow(text: str, source: str = "<workflow>") -> Workflow:
    """Validate workflow YAML text; WorkflowError with one line naming the key otherwise."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WorkflowError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(raw, dict):
        raise WorkflowError(f"{source}: a workflow must be a YAML mapping of keys")
    try:
        return Workflow.model_validate(raw)
    except ValidationError as exc:
        raise WorkflowError(_format_error(source, exc)) from None


def load_workflow(path: str | Path) -> tuple[Workflow, Path]:
    """Read and validate a workflow file; returns the workflow and the base folder of its
    relative paths (the file's folder).

    A bare name that is no file, such as ``gosat-xco2.yaml`` or ``gosat-xco2``, is the recipe
    of that name shipped with fluxscape (:mod:`fluxscape.pipeline.recipes`); its relative paths
    start where they would in a clone, in ``./workflows`` (``data_dir: ../demo-out/sample`` is
    ``./demo-out/sample``). A file of that name in the current folder takes precedence."""
    path = Path(path)
    if path.is_file():
        return parse_workflow(path.read_text(), str(path)), path.resolve().parent
    shipped = recipes.shipped_recipe(str(path))
    if shipped is not None:
        base = Path.cwd().resolve() / recipes.RECIPE_BASE
        return parse_workflow(shipped.read_text(), str(shipped)), base
    names = recipes.recipe_names()
    hint = (
        f"; hint: the recipes shipped with fluxscape run by name ({', '.join(names)}), "
        f"copies in {recipes.recipes_folder()}"
        if names
        else ""
    )
    raise WorkflowError(f"{path}: workflow file not found{hint}")


def resolve_workflow(
    wf: Workflow, base: Path, out: str | Path | None = None, data_dir: str | Path | None = None
) -> Workflow:
    """Make every path absolute (``data_dir`` and ``output.dir`` relative to ``base``, input
    globs relative to ``data_dir``), apply overrides and check each glob matches a file."""
    data = Path(data_dir) if data_dir is not None else base / wf.data_dir
    data = data.resolve()
    out_dir = Path(out).resolve() if out is not None else (base / wf.output.dir).resolve()
    inputs = {}
    for name, inp in wf.inputs.items():
        patterns = [str(Path(p) if Path(p).is_absolute() else data / p) for p in inp.paths]
        for pattern in patterns:
            if not glob.glob(pattern):
                raise WorkflowError(f"inputs.{name}.paths: {pattern!r} matches no file")
        inputs[name] = inp.model_copy(update={"paths": patterns})
    products = {}
    for name, prod in wf.products.items():
        for key in ("sites", "regions"):
            value = getattr(prod, key, None)
            if value and not Path(value).is_absolute():
                prod = prod.model_copy(update={key: str(data / value)})
            if value and not Path(getattr(prod, key)).is_file():
                raise WorkflowError(f"products.{name}.{key}: {getattr(prod, key)} not found")
        products[name] = prod
    region = wf.region
    if region.bbox is None:
        region = region.model_copy(update={"bbox": region.lonlat_bbox})
    return wf.model_copy(
        update={
            "data_dir": str(data),
            "inputs": inputs,
            "products": products,
            "region": region,
            "output": wf.output.model_copy(update={"dir": str(out_dir)}),
        }
    )


def workflow_yaml(wf: Workflow) -> str:
    """The workflow as YAML text (every field, defaults included)."""
    return yaml.safe_dump(json.loads(wf.model_dump_json()), sort_keys=False)


def workflow_hash(wf: Workflow) -> str:
    """A digest of what determines the products (everything but Dask and output settings)."""
    # Access levels say who may read a product, not what it holds: reclassifying one
    # republishes the catalog entry without recomputing the store.
    skip = dict.fromkeys(("dask", "output", "description", "access"), True)
    exclude = skip | {"inputs": {"__all__": {"access"}}}
    payload = json.loads(wf.model_dump_json(exclude=exclude))
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# --- access levels ----------------------------------------------------------------------------


def product_inputs(wf: Workflow, name: str, _seen: frozenset = frozenset()) -> list[str]:
    """Names of the inputs product ``name`` is made from: those its fields name (``input``,
    ``inputs``, ``towers``, ``reference``, ...) and, recursively, those of the products it
    reads (``source``, ``phenology``, ``lst``, ...). Sorted, without repeats."""
    found: set[str] = set()
    for value in wf.products[name].model_dump().values():
        for ref in value if isinstance(value, list | tuple) else [value]:
            if not isinstance(ref, str):
                continue
            if ref in wf.inputs:
                found.add(ref)
            elif ref in wf.products and ref != name and ref not in _seen:
                found.update(product_inputs(wf, ref, _seen | {name}))
    return sorted(found)


def product_access(wf: Workflow, name: str) -> str:
    """Effective access level of product ``name``: the most restrictive of the workflow's
    level and the levels of every input it is made from (:func:`product_inputs`), so a
    product trained on partner-only towers is partner-only."""
    return most_restrictive(wf.access, *(wf.inputs[i].access for i in product_inputs(wf, name)))
