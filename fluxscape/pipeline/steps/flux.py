"""The ``flux`` product: GPP, NEE and RECO upscaled from the towers by an ML ensemble.

In the driver (:func:`plan`): the towers' fluxes are aggregated to the product step with QC
filtering, each tower's features are those of the grid pixel holding it (the one feature
builder, :func:`fluxscape.pipeline.features.block_features`, on a 1 x 1 block; towers off the
grid are dropped with a warning), each target gets a site-grouped
cross-validation (report under ``OUT/reports/<product>/``) and an ensemble (methods x folds)
saved with skops and a model card under ``OUT/models/<product>/``. A rerun with the same
workflow and training table reuses the saved models, so ``--resume`` finishes the same store.
On the workers (:func:`run_flux_tile`): the same builder gives each tile's features and the
ensemble mean and spread are written as ``<target>`` and ``<target>_sd`` (gC m-2 d-1).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from pydantic import Field
from threadpoolctl import threadpool_limits

from fluxscape.errors import FluxscapeError
from fluxscape.ml import persist
from fluxscape.ml.predict import predict_tile
from fluxscape.ml.regional import regional_totals_dataset
from fluxscape.ml.targets import build_targets
from fluxscape.pipeline import features as fb
from fluxscape.pipeline import native, remote
from fluxscape.pipeline.grid import Tile
from fluxscape.pipeline.inputs import (
    Skipped,
    TileInputs,
    expand_paths,
    giving_all,
    select,
    skipped_from,
)
from fluxscape.pipeline.predictors import period_of_days
from fluxscape.pipeline.progress import progress
from fluxscape.pipeline.schema import ProductRef, StrictModel, input_ref
from fluxscape.pipeline.steps.base import Plan, Step, StepContext, TileResult
from fluxscape.pipeline.steps.derived import source_store
from fluxscape.pipeline.store import VariableSpec
from fluxscape.pipeline.timeaxis import store_period_ends
from fluxscape.readers.fluxnet import (
    find_site_list,
    parse_fluxnet_name,
    read_fluxnet,
    read_site_list,
)
from fluxscape.readers.ontile import Granule

log = logging.getLogger(__name__)

#: UDUNITS spelling of gC m-2 d-1 (CF: the "C" is no unit; the long name says "as carbon").
STORE_UNITS = "g m-2 d-1"
LONG_NAMES = {
    "gpp": (
        "gross primary productivity",
        "gross_primary_productivity_of_biomass_expressed_as_carbon",
    ),
    "nee": ("net ecosystem exchange of CO2 (positive: release)", None),
    "reco": ("ecosystem respiration", None),
}


#: Meteorology features (:mod:`fluxscape.readers.cf_meteo`): ``ta`` degC, ``sw_in`` W m-2,
#: ``vpd`` hPa, ``precip`` mm d-1, ``ts`` top-layer soil temperature degC, ``swc`` top-layer
#: volumetric soil water m3 m-3.
MeteoVariable = Literal["ta", "sw_in", "vpd", "precip", "ts", "swc"]


class UpscalingConfig(StrictModel):
    """What every site-to-grid upscaling product shares (``flux``, ``soil_flux``): the grid
    predictors, the placement of the sites on the grid, the ensemble, its validation and the
    regional totals. A product kind adds its ``kind``, its site input and its ``targets``."""

    source: Annotated[str, ProductRef(("vi",))]
    predictors: list[Literal["ndvi", "evi", "evi2", "grvi", "nbr", "ndwi"]] = ["ndvi", "evi"]
    meteo: Annotated[str | None, input_ref({"meteorology"}, what="gridded meteorology")] = None
    meteo_variables: list[MeteoVariable] = ["ta", "sw_in", "vpd"]
    seasonal_features: bool = True
    phenology: Annotated[str | None, ProductRef(("phenology",))] = None  # days_since_sos, ...
    lst: Annotated[str | None, ProductRef(("lst",))] = None  # an lst product: lst (K) per period
    land_cover: Annotated[str | None, input_ref({"land_cover"})] = None  # one-hot lc_<code>
    land_cover_layer: Literal["LC_Type1", "LC_Type5"] = "LC_Type1"  # IGBP or PFT classes
    land_cover_resampling: Literal["nearest", "mode"] = "nearest"
    # an input of leaf area index / FPAR maps (e.g. MCD15A2H): their period means as features
    biophysical: Annotated[str | None, input_ref({"lai"}, {"fpar"}, what="LAI/FPAR maps")] = None
    biophysical_variables: list[Literal["lai", "fpar"]] = ["lai", "fpar"]
    # an input of a DEM (source giving elevation, e.g. cf_elevation): feature elevation (m)
    elevation: Annotated[str | None, input_ref({"elevation"}, what="elevation (DEM)")] = None
    sites_outside: Literal["drop", "use_nearest"] = "drop"  # off-grid sites: dropped or nearest
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
    regions: str | None = None  # GeoJSON of polygons for regional totals
    region_name: str = "name"  # the polygons' property that names them
    # tiles predicted by each ensemble member compiled (flat arrays walked by a numba kernel;
    # treelite + tl2cgen for members it cannot take) or by the saved model (same values);
    # auto: compiled where the prediction time saved beats the compile time (or it is cached)
    inference: Literal["auto", "compiled", "reference"] = "auto"


class FluxConfig(UpscalingConfig):
    """The ``flux`` product: tower fluxes upscaled by machine learning (FLUXCOM style).

    Predictors are variables of the ``source`` vi store, gridded meteorology from the ``meteo``
    input (a source giving ``meteorology``: ERA5-like CF NetCDF) aggregated to the product
    step, and the season (sin/cos of the day of year). Targets come from the ``towers`` input
    (FLUXNET FULLSET files) aggregated to the same step with QC filtering; the tower
    coordinates from ``sites`` (a FLUXNET ``SitesList.csv``; by default the one beside the
    tower files). With ``land_cover`` (an input giving ``land_cover``: MODIS MCD12Q1 tiles)
    the static class of ``land_cover_layer`` (latest year) becomes one-hot ``lc_<code>``
    features; with ``biophysical`` (an input giving ``lai``/``fpar``: MCD15A2H tiles) the
    period means of ``biophysical_variables`` are features."""

    kind: Literal["flux"]
    towers: Annotated[str, input_ref({"tower_flux"}, what="eddy-covariance tower files")]
    sites: str | None = None
    targets: list[Literal["gpp", "nee", "reco"]] = ["gpp", "nee", "reco"]
    partitioning: Literal["NT", "DT"] = "NT"
    min_qc: Annotated[float, Field(ge=0, le=1)] = 0.8
    min_coverage: Annotated[float, Field(gt=0, le=1)] = 0.5


@dataclass(frozen=True)
class FluxTask:
    """One tile of an upscaling product: the feature spec (shared with training), the model
    and the land-cover classes predicted (``mask_classes``; empty: every pixel; else NaN
    where the spec's land cover is another class)."""

    tile: Tile
    spec: fb.FeatureSpec
    model: str  # path of the saved FluxModel
    mask_classes: tuple[int, ...] = ()
    inference: str = "reference"  # "compiled": the model's libraries made ready by the driver


@dataclass
class SiteTargets:
    """The training targets of an upscaling product, from its site input.

    - ``sites``: index site id; ``lon``, ``lat`` (degrees) and any descriptive columns (they
      go to ``reports/<product>/sites.csv``);
    - ``values``: index (``site``, ``time`` = period start), one column per target;
    - ``units``: target -> units of the values (model card, cross-validation report);
    - ``files``: the files (or dataset folders) read; ``skipped``: those refused, with why;
    - ``noun``: what a site is, in messages ("tower", "chamber site");
    - ``card``: extra model-card entries (e.g. the tower partitioning and QC);
    - ``daily``: the sites' daily values when the site input has them (columns ``site``,
      ``date`` and one per target, same units): the cross-validation then also scores each
      held-out day against its period's prediction (scale ``daily`` in the skill)."""

    sites: pd.DataFrame
    values: pd.DataFrame
    units: dict[str, str]
    files: list[str]
    skipped: list[Skipped]
    noun: str = "tower"
    card: dict | None = None
    daily: pd.DataFrame | None = None


@dataclass
class Upscaling:
    """What a product kind gives :func:`plan_upscaling`: ``targets(ctx, times, ends)`` ->
    :class:`SiteTargets` on the product's periods; ``variables(card_id)`` -> the store's
    VariableSpecs (each target and ``<target>_sd``); ``totals(ds, ctx, period_end)`` -> the
    regional totals table (``regions`` given); ``mask_classes``: land-cover codes predicted
    (empty: all pixels); ``summary_units``: units named in the run summary."""

    targets: object
    variables: object
    totals: object
    mask_classes: tuple[int, ...] = ()
    summary_units: str = "gC m-2 d-1"


def feature_names(product, land_cover_classes: tuple[int, ...] = ()) -> list[str]:
    """The model features in order: vi variables, meteorology, phenology, the season, then
    one ``lc_<code>`` per land-cover class found at the towers."""
    return fb.feature_names(
        product.predictors,
        product.meteo_variables if product.meteo else (),
        bool(product.phenology),
        product.seasonal_features,
        land_cover_classes,
        product.biophysical_variables if product.biophysical else (),
        elevation=bool(product.elevation),
        lst=bool(product.lst),
    )


def _biophysical_granules(ctx: StepContext, times, ends) -> tuple[Granule, ...]:
    """The granules of the product's ``biophysical`` input that give its variables and start
    within the product's periods."""
    p = ctx.product
    index = ctx.input_index(p.biophysical)
    usable, _ = select(index, giving_all(*p.biophysical_variables))
    first, last = pd.Timestamp(times[0]), pd.Timestamp(ends[-1])
    chosen = tuple(g for g in usable if first <= pd.Timestamp(g.start) < last)
    if not chosen:
        raise FluxscapeError(
            f"{ctx.key('biophysical')}: none of the {len(index.files)} file(s) of input "
            f"{p.biophysical!r} gives {'/'.join(p.biophysical_variables)} in the period"
        )
    return chosen


def _land_cover_granules(ctx: StepContext) -> tuple[Granule, ...]:
    """The granules of the product's ``land_cover`` input that give ``land_cover``, the
    latest of each native grid (a static map), from the run's input index."""
    p = ctx.product
    key = ctx.key("land_cover")
    index = ctx.input_index(p.land_cover)
    usable, _ = select(index, giving_all("land_cover"))
    if not usable:
        shown = [Path(f).name for f in index.files[:3]]
        raise FluxscapeError(
            f"{key}: no land-cover granule (e.g. MCD12Q1.AYYYY001.hHHvVV.061.*.hdf) among the "
            f"{len(index.files)} file(s) of input {p.land_cover!r} {shown}"
        )
    return fb.latest_per_grid(usable)


def _feature_spec(ctx: StepContext, source: Path, times, ends, features, **land_cover):
    """The picklable spec of the product's features (towers and tiles)."""
    p = ctx.product
    wf = ctx.workflow
    return fb.FeatureSpec(
        times=tuple(times),
        ends=tuple(ends),
        source=str(source),
        predictors=tuple(p.predictors),
        features=tuple(features),
        window=p.window,
        meteo_files=tuple(expand_paths(wf.inputs[p.meteo].paths)) if p.meteo else (),
        meteo_variables=tuple(p.meteo_variables) if p.meteo else (),
        meteo_reader=wf.inputs[p.meteo].reader if p.meteo else "",
        layers=tuple(p.biophysical_variables) if p.biophysical else (),
        layers_reader=wf.inputs[p.biophysical].reader if p.biophysical else "",
        layers_granules=_biophysical_granules(ctx, times, ends) if p.biophysical else (),
        lst=str(source_store(ctx, p.lst)) if p.lst else None,
        elevation_files=tuple(expand_paths(wf.inputs[p.elevation].paths)) if p.elevation else (),
        elevation_reader=wf.inputs[p.elevation].reader if p.elevation else "",
        phenology=str(source_store(ctx, p.phenology)) if p.phenology else None,
        seasonal=p.seasonal_features,
        land_cover_reader=wf.inputs[p.land_cover].reader if p.land_cover else "",
        land_cover_layer=p.land_cover_layer,
        land_cover_resampling=p.land_cover_resampling,
        **land_cover,
    )


# --- driver: training ------------------------------------------------------------------------


def _sites(ctx: StepContext, tower_files: list[str]) -> pd.DataFrame:
    p = ctx.product
    path = p.sites or (_site_list_beside(tower_files[0]) if tower_files else None)
    if path is None:
        raise FluxscapeError(
            f"products.{ctx.name}.sites: no site list given and no SitesList.csv beside "
            f"{tower_files[0] if tower_files else 'the tower files'}"
        )
    return read_site_list(remote.local(str(path))).set_index("site_id")


def _site_list_beside(tower_file: str) -> str | None:
    """The ``SitesList.csv`` beside a tower file (its folder or up to two parents): a
    path, or a URL for a tower file on object storage."""
    if remote.is_url(tower_file):
        return remote.find_up(tower_file, "SitesList.csv")
    found = find_site_list(tower_file)
    return str(found) if found is not None else None


def _tower_targets(
    ctx: StepContext, files: list[str], times, ends
) -> tuple[pd.DataFrame, list[Skipped]]:
    """Targets of every tower file on the product axis, index (site, time); unreadable files
    and files without the target columns are skipped and reported."""
    p = ctx.product
    frames, skipped = [], []
    for path in files:
        try:
            frame = build_targets(
                read_fluxnet(remote.local(path)),  # a URL: its staged copy
                times,
                partition=p.partitioning,
                min_qc=p.min_qc,
                min_coverage=p.min_coverage,
                period_end=ends[-1],
                targets=tuple(p.targets),
            )
        except (FluxscapeError, OSError) as exc:
            skipped.append(skipped_from(path, exc))
            continue
        frames.append(frame)
    if not frames:
        raise FluxscapeError(f"products.{ctx.name}.towers: no usable tower file among {len(files)}")
    return pd.concat(frames).set_index(["site", "time"]), skipped


OUTSIDE = "outside the region grid"


def tower_pixels(ctx: StepContext, sites: pd.DataFrame) -> pd.DataFrame:
    """The towers with the row/col of the target-grid pixel holding each (``row``, ``col``,
    and that pixel's centre ``pixel_x``/``pixel_y`` in the grid's CRS), ``native_pixel``
    (whether the tower lies in the source pixel its grid pixel takes; empty where the source
    has no pixel grid, :func:`fluxscape.pipeline.native.shares_native_pixel`) and ``reason``:
    why a tower is not used (towers off the region grid: logged as a warning; empty
    otherwise)."""
    box = ctx.grid.geobox
    nearest = ctx.product.sites_outside == "use_nearest"
    row, col, inside = fb.tower_pixels(box, sites["lon"].values, sites["lat"].values, nearest)
    if nearest and not inside.all():
        log.warning(
            "products.%s: towers %s are %s; sites_outside: use_nearest trains on the nearest "
            "pixel of the grid (distance in sites.csv)",
            ctx.name,
            sites.index[~inside].tolist(),
            OUTSIDE,
        )
        inside = row >= 0
    x, y = box.affine * (col + 0.5, row + 0.5)
    tx, ty = fb.to_grid_crs(box, sites["lon"].values, sites["lat"].values)
    shares = native.shares_native_pixel(_source_grids(ctx), box, tx, ty, row, col)
    shares = np.where(inside, shares, None)
    out = sites.assign(
        row=row,
        col=col,
        pixel_x=np.where(inside, x, np.nan),
        pixel_y=np.where(inside, y, np.nan),
        distance_m=np.where(inside, _distance_to_pixel(box, sites, x, y), np.nan),
        native_pixel=shares,
        reason=np.where(inside, "", OUTSIDE),
    )
    moved = out.index[[s is False for s in shares]].tolist()
    if moved:
        log.info(
            "products.%s: towers %s lie in another source pixel than the one their grid pixel "
            "takes (native_pixel in sites.csv; a grid on the source's own, region.origin and "
            "shape, keeps every tower in its pixel)",
            ctx.name,
            moved,
        )
    outside = out.index[~inside].tolist()
    if outside:
        log.warning(
            "products.%s: towers %s are %s and are left out of training",
            ctx.name,
            outside,
            OUTSIDE,
        )
    return out


def _source_grids(ctx: StepContext) -> list:
    """The native pixel grids of the input under the product's ``source`` (following a vi
    made from another vi's store down to the one that reads an input); none for sources
    without a pixel grid."""
    wf, name, seen = ctx.workflow, ctx.product.source, set()
    while name in wf.products and name not in seen:
        seen.add(name)
        product = wf.products[name]
        if getattr(product, "input", None):
            return native.native_grids(ctx.input_index(product.input).granules)
        name = getattr(product, "source", None)
    return []


def _models():
    """fluxscape.ml.models, imported when a model is fitted or its parameters checked: it
    pulls in scikit-learn (about 1.5 s with scipy.stats), which most commands never need."""
    from fluxscape.ml import models

    return models


def _validation():
    """fluxscape.ml.validation, imported when a model is trained: it pulls in scikit-learn's
    model selection (about 1 s), which validating a workflow never needs."""
    from fluxscape.ml import validation

    return validation


def _distance_to_pixel(box, sites: pd.DataFrame, x, y) -> np.ndarray:
    """Geodesic distance (m, WGS84) from each tower to the centre of its pixel (x, y in the
    grid's CRS): how far the pixel that stands for the tower lies from it."""
    from pyproj import Geod, Transformer

    tr = Transformer.from_crs(box.crs.to_wkt(), "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(np.asarray(x, float), np.asarray(y, float))
    _, _, dist = Geod(ellps="WGS84").inv(sites["lon"].values, sites["lat"].values, lon, lat)
    return np.round(dist, 1)


def _tower_predictors(ctx: StepContext, spec: fb.FeatureSpec, towers: pd.DataFrame) -> pd.DataFrame:
    """Each tower's features, index (site, time): the features of the grid pixel holding it
    (``towers`` from :func:`tower_pixels`, on the grid), by the tiles' feature builder."""
    box = ctx.grid.geobox
    frames = []
    for site, t in towers.iterrows():
        r, c = int(t["row"]), int(t["col"])
        rows, cols = slice(r, r + 1), slice(c, c + 1)
        ds = fb.block_features(spec, rows, cols, box[rows, cols])
        frame = ds.isel(y=0, x=0, drop=True).to_dataframe()[list(spec.features)]
        frames.append(frame.set_index(pd.Index([site] * len(frame), name="site"), append=True))
    return pd.concat(frames).reorder_levels(["site", "time"])


def _fingerprint(ctx: StepContext, table: pd.DataFrame) -> str:
    digest = hashlib.sha256(ctx.digest.encode())
    digest.update(pd.util.hash_pandas_object(table, index=False).values.tobytes())
    return digest.hexdigest()[:16]


def _train(
    ctx: StepContext,
    table: pd.DataFrame,
    features: list[str],
    extra: dict | None = None,
    units: dict[str, str] | None = None,
    noun: str = "tower",
    daily: pd.DataFrame | None = None,
) -> tuple[str, dict, object | None]:
    """Cross-validate (report in ``OUT/reports/<product>/``) and fit the FluxModel, or reuse
    the saved one when its fingerprint (workflow + training table) matches. ``units``: per
    target (default gC m-2 d-1 for all); ``daily``: the sites' daily values on the product
    periods (:func:`fluxscape.ml.validation.daily_pairs`) for the ``daily`` skill. Returns
    the model path, its card and the fitted model (None when the saved one is reused)."""
    units = units or {t: "gC m-2 d-1" for t in ctx.product.targets}
    p = ctx.product
    path = ctx.output_path("models", ctx.name, "flux_model.skops")
    fingerprint = _fingerprint(ctx, table)
    card = _reusable(ctx, path, fingerprint, features)
    if card is not None:
        return str(path), card, None
    if _store_card(ctx) is not None:
        raise FluxscapeError(
            f"products.{ctx.name}: its unfinished store {ctx.store} was predicted by a model "
            f"that {path} no longer holds; rerun with --fresh to retrain and rebuild it"
        )
    n_sites = table["site"].nunique()
    if n_sites < 2:
        raise FluxscapeError(
            f"products.{ctx.name}: {n_sites} {noun}(s) with data; site-grouped validation needs 2"
        )
    # One thread per fit: OpenMP in HistGradientBoosting oversubscribes a busy machine badly.
    with threadpool_limits(limits=1):
        try:
            cv, model = _fit(ctx, table, features, n_sites, units, daily)
        except (ValueError, TypeError) as exc:
            if not p.method_params:
                raise
            raise FluxscapeError(
                f"products.{ctx.name}.method_params: a learner refused its hyperparameters ({exc})"
            ) from exc
    skill = _validation().skill(cv.predictions, daily)
    card = {
        "targets": list(p.targets),
        "units": units[p.targets[0]] if len(set(units.values())) == 1 else dict(units),
        "features": features,
        "sites": sorted(table["site"].unique().tolist()),
        "period": [
            str(pd.Timestamp(table["time"].min()).date()),
            str(pd.Timestamp(table["time"].max()).date()),
        ],
        "n_samples": {t: int(table[t].notna().sum()) for t in p.targets},
        "methods": list(p.methods),
        "method_params": {
            m: _models().effective_params(m, p.method_params.get(m)) for m in p.methods
        },
        "cv": p.cv,
        "cv_skill": {
            t: {k: v for k, v in sk.items() if k != "per_site"} for t, sk in skill.items()
        },
        "workflow": ctx.workflow.name,
        "fingerprint": fingerprint,
        **(extra or {}),
    }
    return str(path), persist.save_model(model, path, card), model


def _reusable(
    ctx: StepContext, path: Path, fingerprint: str, features: list[str] | None = None
) -> dict | None:
    """The card of the saved model when it was trained on this workflow and training table
    and its file is the model its card describes (provenance checked by loading it); None
    when it must be trained. A saved model that fails the check is retrained when no store
    depends on it, and refused (naming the file) when the unfinished store's tiles were
    predicted by the model its card describes: retraining would mix two models in one store."""
    if not (path.exists() and persist.card_path(path).exists()):
        return None
    try:
        card = persist.read_card(path)
        # fluxscape update: the saved model predicts the new periods when it was trained for
        # these targets on these features (its training table is an earlier one)
        kept = (
            getattr(ctx, "reuse_model", False)
            and card.get("targets") == list(ctx.product.targets)
            and (features is None or card.get("features") == list(features))
        )
        if card.get("fingerprint") != fingerprint and not kept:
            return None
        _, inner = persist.load_model(path)
        if inner.get("card_id") != card.get("card_id"):
            raise FluxscapeError(
                f"{path}: holds model card {inner.get('card_id')}, not card "
                f"{card.get('card_id')} of {persist.card_path(path).name} beside it"
            )
    except FluxscapeError as exc:
        if _store_card(ctx) is None:
            log.warning("%s; training the model again", exc)
            return None
        raise FluxscapeError(
            f"{exc} (products.{ctx.name}: its unfinished store was predicted by the model of "
            "that card; rerun with --fresh to retrain and rebuild it)"
        ) from None
    stored = _store_card(ctx)
    if stored is not None and stored != card["card_id"]:
        raise FluxscapeError(
            f"products.{ctx.name}: its unfinished store {ctx.store} was predicted by model "
            f"card {stored}, not {card['card_id']} of {path}; rerun with --fresh to rebuild it"
        )
    return card


def _store_card(ctx: StepContext) -> str | None:
    """The model card id the product's unfinished store was created for, or None when there
    is no such store (a first run, or --fresh)."""
    from fluxscape.pipeline.outstore import location_exists

    if not location_exists(ctx.store):
        return None
    group = zarr.open_group(str(ctx.store), mode="r")
    for target in ctx.product.targets:
        if target in group:
            return group[target].attrs.get("model_card")
    return None


def _fit(
    ctx: StepContext,
    table: pd.DataFrame,
    features: list[str],
    n_sites: int,
    units: dict[str, str],
    daily: pd.DataFrame | None = None,
):
    """Cross-validation (its report written) and the fitted FluxModel, with the progress of
    every member fitted (cross-validation folds x methods, then the ensemble's); ``units``
    per target for the report."""
    p = ctx.product
    targets, groups = list(p.targets), table["site"].to_numpy()
    model = _models().FluxModel(
        tuple(features),
        tuple(p.targets),
        tuple(p.methods),
        n_splits=min(p.ensemble_folds, n_sites),
        method_params=dict(p.method_params),
        random_state=p.seed,
    )
    cv_args = {"methods": tuple(p.methods), "cv": p.cv, "n_splits": p.n_splits}
    total = _validation().n_members(table, features, targets, **cv_args)
    total += model.n_members(table[features], table[targets], groups=groups)
    bar = progress(f"{ctx.name} model fits", total, every=5.0)  # fits take a fraction of a second
    # On the run's workers: the final ensemble's members are submitted first (the longest
    # work), the cross-validation folds after them, so both workers fit while the driver waits.
    client = ctx.client() if ctx.client is not None else None
    try:
        final = None
        if client is not None:
            final = model.submit_fit(client, table[features], table[targets], groups=groups)
        cv = _validation().cross_validate(
            table,
            features,
            targets,
            **cv_args,
            method_params=dict(p.method_params),
            random_state=p.seed,
            units=dict(units),
            on_member=lambda label: bar.advance(f"cross-validation {label}"),
            client=client,
        )
        plots = None
        if client is not None:  # the CV plots drawn on a worker while the final fits finish
            plots = client.submit(
                _validation().write_report, cv, _report_dir(ctx), daily, pure=False
            )
        ensemble = lambda label: bar.advance(f"ensemble {label}")  # noqa: E731
        if final is None:
            model.fit(table[features], table[targets], groups=groups, on_member=ensemble)
        else:
            model.collect_fit(final, on_member=ensemble)
        if plots is None:
            _validation().write_report(cv, _report_dir(ctx), daily)
        else:
            plots.result()
    finally:
        bar.close()
    return cv, model


def _check_method_params(ctx: StepContext) -> None:
    """FluxscapeError naming the key for hyperparameters of a method the product does not use
    or that its estimator does not take (before any fit; bad values fail in the first fit,
    with sklearn's or LightGBM's message)."""
    import difflib

    p = ctx.product
    for method, params in p.method_params.items():
        key = f"products.{ctx.name}.method_params.{method}"
        if method not in p.methods:
            raise FluxscapeError(f"{key}: {method} is not one of the methods {list(p.methods)}")
        for name in _models().check_params(method, params):
            known = sorted(_models().make_estimator(method).get_params())
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise FluxscapeError(f"{key}.{name}: not a parameter of the {method} learner{hint}")


class FluxStep(Step):
    kind = "flux"
    Config = FluxConfig

    def check(self, ctx: StepContext) -> None:
        """The tower site list and the hyperparameters, before any product runs."""
        _check_method_params(ctx)
        tower_files = expand_paths(ctx.workflow.inputs[ctx.product.towers].paths)
        sites = _sites(ctx, tower_files)
        named = {info["site_id"] for f in tower_files if (info := parse_fluxnet_name(f))}
        unknown = sorted(named - set(sites.index))
        if named and len(unknown) == len(named):  # no tower of the input is in the site list
            raise FluxscapeError(
                f"products.{ctx.name}.sites: none of the towers {unknown[:5]} of input "
                f"{ctx.product.towers!r} is in the site list "
                f"{ctx.product.sites or 'beside the tower files'} ({len(sites)} site(s): "
                f"{sorted(sites.index)[:5]})"
            )

    def validate(self, wf, name: str, p: FluxConfig) -> None:
        if p.biophysical:
            from fluxscape.readers.registry import get_reader

            gives = get_reader(wf.inputs[p.biophysical].reader).capabilities
            missing = [v for v in p.biophysical_variables if v not in gives]
            if missing:
                raise ValueError(
                    f"products.{name}.biophysical_variables: {missing} are not given by input "
                    f"{p.biophysical!r}"
                )

    def plan(self, ctx: StepContext) -> Plan:
        return plan(ctx)

    @staticmethod
    def run_tile(task: FluxTask) -> TileResult:
        return run_flux_tile(task)


def _tower_site_targets(ctx: StepContext, times, ends) -> SiteTargets:
    """The towers (site list) and their fluxes on the product periods (gC m-2 d-1)."""
    p = ctx.product
    tower_files = expand_paths(ctx.workflow.inputs[p.towers].paths)
    sites = _sites(ctx, tower_files)
    tgt, skipped = _tower_targets(ctx, tower_files, times, ends)
    unknown = sorted(set(tgt.index.get_level_values("site")) - set(sites.index))
    if unknown:
        raise FluxscapeError(f"products.{ctx.name}: towers {unknown} are not in the site list")
    return SiteTargets(
        sites=sites,
        values=tgt,
        units={t: "gC m-2 d-1" for t in p.targets},
        files=tower_files,
        skipped=skipped,
        noun="tower",
        card={"partitioning": p.partitioning, "min_qc": p.min_qc},
    )


def _tower_variables(targets: list[str], card_id: str) -> list[VariableSpec]:
    """The flux store's variables: each target and its ensemble spread (gC m-2 d-1)."""
    variables = []
    for target in targets:
        long_name, standard = LONG_NAMES[target]
        attrs = {
            "units": STORE_UNITS,
            "long_name": f"{long_name}, as carbon",
            "cell_methods": "time: mean",
            "model_card": card_id,
        }
        if standard:
            attrs["standard_name"] = standard
        variables.append(VariableSpec(target, "float32", attrs))
        variables.append(
            VariableSpec(
                f"{target}_sd",
                "float32",
                {
                    "units": STORE_UNITS,
                    "long_name": f"{long_name}, as carbon: ensemble standard deviation",
                    "cell_methods": "time: mean",
                },
            )
        )
    return variables


def _tower_totals(ds: xr.Dataset, ctx: StepContext, period_end) -> pd.DataFrame:
    """Monthly and annual totals (TgC) per region of each target."""
    p = ctx.product
    return regional_totals_dataset(
        ds, remote.local(p.regions), p.region_name, tuple(p.targets), period_end=period_end
    )


TOWERS = Upscaling(targets=_tower_site_targets, variables=_tower_variables, totals=_tower_totals)


def plan(ctx: StepContext) -> Plan:
    """Train (or reuse) the models in the driver; one prediction task per tile."""
    return plan_upscaling(ctx, TOWERS)


def plan_upscaling(ctx: StepContext, kind: Upscaling) -> Plan:
    """The plan of an upscaling product (``flux``, ``soil_flux``): the sites' targets from
    ``kind.targets`` on the source's periods, each site's features at its grid pixel (the one
    feature builder), cross-validation and the ensemble (or the reused saved one), one
    prediction task per tile (masked to ``kind.mask_classes``) and the regional totals."""
    p = ctx.product
    _check_method_params(ctx)
    wf = ctx.workflow
    source = source_store(ctx, p.source)
    with xr.open_zarr(source, consolidated=True) as src:
        times = pd.DatetimeIndex(src["time"].values)
        ends = store_period_ends(src)
        absent = [v for v in p.predictors if v not in src]
    if absent:
        raise FluxscapeError(
            f"products.{ctx.name}.predictors: {absent} not in the {p.source} store"
        )
    found = kind.targets(ctx, times, ends)
    tgt, skipped, tower_files, noun = found.values, found.skipped, found.files, found.noun
    sites = tower_pixels(ctx, found.sites.loc[sorted(set(tgt.index.get_level_values("site")))])
    towers = sites[sites["reason"] == ""]
    if len(towers) < 2:
        outside = sites.index[sites["reason"] == OUTSIDE].tolist()
        raise FluxscapeError(
            f"products.{ctx.name}: {len(towers)} {noun}(s) with data on the region grid; "
            f"site-grouped validation needs 2 ({noun}s {outside} are {OUTSIDE}); "
            f"hint: check region.bbox and the {noun} coordinates in the site list"
        )
    lc: dict = {}
    lc_card: dict = {}
    lc_files: list[str] = []
    if p.land_cover:
        granules = _land_cover_granules(ctx)
        lc_files = sorted({f for g in granules for f in g.files})
        reader = wf.inputs[p.land_cover].reader
        box = ctx.grid.geobox
        codes = [
            int(
                fb.land_cover_codes(
                    reader,
                    granules,
                    p.land_cover_layer,
                    box[r : r + 1, c : c + 1],
                    resampling=p.land_cover_resampling,
                )[0, 0]
            )
            for r, c in zip(towers["row"], towers["col"], strict=True)
        ]
        sites["land_cover"] = pd.Series(codes, index=towers.index).reindex(sites.index)
        sites["land_cover"] = sites["land_cover"].fillna(-1).astype(int)
        classes = tuple(sorted(c for c in set(codes) if c >= 0))
        lc = {"land_cover_granules": granules, "land_cover_classes": classes}
        lc_card = {
            "land_cover": {
                "input": p.land_cover,
                "layer": p.land_cover_layer,
                "classes": list(classes),
                "files": sorted(Path(f).name for f in lc_files),
            }
        }
    # where each tower was placed, in the model card: pixel centre (grid CRS) and distance
    lc_card["tower_pixels"] = {
        site: {
            "x": float(t["pixel_x"]),
            "y": float(t["pixel_y"]),
            "distance_m": float(t["distance_m"]),
            "native_pixel": t["native_pixel"],
        }
        for site, t in towers.iterrows()
    }
    report = sites.drop(columns=["row", "col"])
    report = report[[c for c in report.columns if c != "reason"] + ["reason"]]
    report.rename_axis("site").to_csv(_report_dir(ctx) / "sites.csv")
    features = feature_names(p, lc.get("land_cover_classes", ()))
    spec = _feature_spec(ctx, source, times, ends, features, **lc)
    predictors = _tower_predictors(ctx, spec, towers)
    table = predictors.join(tgt[list(p.targets)], how="inner").reset_index()
    table = table.dropna(subset=features).dropna(subset=list(p.targets), how="all")
    table.to_csv(_report_dir(ctx) / "training_table.csv", index=False)
    daily = _daily_on_periods(found.daily, times, ends)
    extra = (found.card or {}) | lc_card
    model_path, card, fitted = _train(ctx, table, features, extra, found.units, noun, daily)
    if p.land_cover:  # a reused model keeps the classes of its card
        classes = tuple(card.get("land_cover", {}).get("classes", lc["land_cover_classes"]))
        features = feature_names(p, classes)
        spec = _feature_spec(
            ctx, source, times, ends, features, **(lc | {"land_cover_classes": classes})
        )
    variables = kind.variables(list(p.targets), card["card_id"])
    mask = kind.mask_classes if p.land_cover else ()
    inference = p.inference
    if inference != "reference":
        from fluxscape.ml import compiled  # treelite and tl2cgen only when compiling

        if inference == "auto":
            rows = int(np.prod(ctx.grid.geobox.shape)) * len(times)
            worth, why = compiled.worth_compiling(model_path, rows, fitted)
            log.info("products.%s: inference auto, %s", ctx.name, why)
            inference = "compiled" if worth else "reference"
    if inference == "compiled":
        inference = compiled.prepare(model_path, fitted)  # once per model card, or reused

    def make_task(tile: Tile) -> FluxTask:
        return FluxTask(tile, spec, model_path, mask, inference)

    def finish(store: Path) -> None:
        if p.regions:
            with xr.open_zarr(store, consolidated=False) as ds:  # not finalised yet
                totals = kind.totals(ds, ctx, ends[-1])
            totals.to_csv(_report_dir(ctx) / "regional_totals.csv", index=False)

    return Plan(
        dims={"time": times.values},
        time_bounds=np.stack([times.values, ends.values], axis=1),
        variables=variables,
        summary=f"{', '.join(t.upper() for t in p.targets)} upscaled from {len(towers)} {noun}s "
        f"by an ensemble of {'/'.join(p.methods)} x site-grouped folds on {', '.join(features)}; "
        f"mean and ensemble spread, {kind.summary_units}",
        make_task=make_task,
        inputs=tower_files + list(spec.meteo_files) + list(spec.elevation_files) + lc_files,
        # training and the features' meteorology and elevation
        used=tower_files + list(spec.meteo_files) + list(spec.elevation_files),
        skipped=skipped,
        finish=finish,
        source_attrs={
            "source_product": p.source,
            "models": [card["card_id"]],
            "model_card": json.dumps(card),
            "cv_skill": json.dumps(card["cv_skill"]),
            f"{noun.split()[-1]}s": sorted(towers.index.tolist()),
        },
    )


def _daily_on_periods(daily: pd.DataFrame | None, times, ends) -> pd.DataFrame | None:
    """The sites' daily values with ``time``, the start of the product period
    ``[times[i], ends[i])`` holding each day; days outside every period dropped."""
    if daily is None:
        return None
    times = pd.DatetimeIndex(times)
    label = period_of_days(pd.DatetimeIndex(daily["date"]), times, pd.DatetimeIndex(ends))
    keep = label >= 0
    return daily[keep].assign(time=times[label[keep]])


def _report_dir(ctx: StepContext) -> Path:
    path = ctx.output_path("reports", ctx.name)
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- workers: prediction ---------------------------------------------------------------------


def run_flux_tile(task: FluxTask) -> TileResult:
    """Predict every target on one tile from the features of the one feature builder, on the
    pixels of ``task.mask_classes`` only (all pixels when empty)."""
    from fluxscape.ml.compiled import inference_model

    record = TileInputs()
    feats = fb.block_features(task.spec, task.tile.rows, task.tile.cols, task.tile.geobox, record)
    model = inference_model(task.model, task.inference)  # loaded once per worker process
    mask = None
    if task.mask_classes:
        spec = task.spec
        codes = fb.land_cover_codes(
            spec.land_cover_reader,
            spec.land_cover_granules,
            spec.land_cover_layer,
            task.tile.geobox,
            resampling=spec.land_cover_resampling,
        )
        mask = xr.DataArray(np.isin(codes, task.mask_classes), dims=("y", "x"))
    with threadpool_limits(limits=1):
        result = predict_tile(model, feats, mask=mask)
    out = result[[v for t in model.targets for v in (t, f"{t}_sd")]].drop_attrs()
    record.observations = int(np.isfinite(out[model.targets[0]].values).any())
    return TileResult(out, record)


STEP = FluxStep()
