"""The ``soil_flux`` product: soil CO2 efflux and CH4 flux upscaled from soil chambers.

The same machinery as the tower ``flux`` product (:func:`fluxscape.pipeline.steps.flux.
plan_upscaling`): one feature builder for sites and tiles, site-grouped cross-validation
(leave-one-site-out by default), an ensemble saved with skops and a model card, prediction
tile by tile with the ensemble spread, regional totals. What differs is where the targets come
from and what they are:

- sites: the COSORE datasets of the ``chambers`` input (one folder each,
  :func:`fluxscape.readers.cosore.read_cosore`); site id = the dataset name, lon/lat from
  ``CSR_LONGITUDE``/``CSR_LATITUDE``, ``igbp`` and ``elevation`` from the description;
- targets per product period ``[start, end)`` (:mod:`fluxscape.products.soil_chamber`): daily
  site values (mean of the control ports' daily means, a day kept when ``daily_min_coverage``
  of its 3-hour slots have a valid value) averaged over the period when at least
  ``min_coverage`` of its days are kept: ``soil_co2`` in gC m-2 d-1, ``soil_ch4`` in
  mgCH4 m-2 d-1, both positive to the atmosphere (CH4 uptake is negative); the daily site
  values also go to the cross-validation, which scores each held-out day against its
  period's prediction (scale ``daily`` of ``cv_skill`` in the model card and the store);
- forest mask: with a ``land_cover`` input, pixels whose class is not forest (IGBP 1-5 with
  ``LC_Type1``, PFT 1-4 with ``LC_Type5``) are NaN (``forest_mask: false`` predicts everywhere);
- regional totals: ``soil_co2`` in TgC, ``soil_ch4`` in GgCH4 (``units`` column).
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field

from fluxscape.errors import FluxscapeError
from fluxscape.ml.regional import G_PER_TG, regional_totals
from fluxscape.pipeline import remote
from fluxscape.pipeline.inputs import Skipped
from fluxscape.pipeline.schema import input_ref
from fluxscape.pipeline.steps import flux
from fluxscape.pipeline.steps.base import Plan, Step, StepContext, TileResult
from fluxscape.pipeline.store import VariableSpec
from fluxscape.products.soil_chamber import daily_port_fluxes, daily_site_fluxes, period_fluxes
from fluxscape.readers.cosore import QCOptions, find_tables, read_cosore

#: Target -> (column of :func:`period_fluxes`, store units (UDUNITS), long name).
TARGETS = {
    "soil_co2": ("co2_gc", "g m-2 d-1", "soil CO2 efflux, as carbon (positive: release)"),
    "soil_ch4": ("ch4_mg", "mg m-2 d-1", "soil CH4 flux, as CH4 (positive: release)"),
}
#: Units of the targets as written in the model card and the cross-validation report.
CARD_UNITS = {"soil_co2": "gC m-2 d-1", "soil_ch4": "mgCH4 m-2 d-1"}
#: Forest classes of each MCD12Q1 layer: IGBP 1-5 (evergreen/deciduous needleleaf and
#: broadleaf, mixed forest), PFT 1-4 (the four tree types).
FOREST_CLASSES = {"LC_Type1": (1, 2, 3, 4, 5), "LC_Type5": (1, 2, 3, 4)}
#: Regional totals: g or mg per reporting unit. CO2 in gC -> TgC: 1 Tg = 1e12 g. CH4 in
#: mgCH4 -> GgCH4: 1 Gg = 1e9 g = 1e9 x 1e3 mg = 1e12 mg.
TOTAL_UNITS = {"soil_co2": ("TgC", 1e12), "soil_ch4": ("GgCH4", 1e12)}


class SoilFluxConfig(flux.UpscalingConfig):
    """The ``soil_flux`` product: soil-chamber CO2 efflux and CH4 flux upscaled by the flux
    product's ensemble (same predictors, validation, model card and prediction). Targets come
    from the ``chambers`` input (COSORE dataset folders) aggregated to the product step;
    with ``land_cover`` and ``forest_mask`` only forest pixels are predicted."""

    kind: Literal["soil_flux"]
    # COSORE dataset folders (d<YYYYMMDD>_<NAME>/), e.g. paths: ["chambers/d*_*"]
    chambers: Annotated[str, input_ref({"soil_chamber_flux"}, what="soil-chamber datasets")]
    targets: list[Literal["soil_co2", "soil_ch4"]] = Field(
        ["soil_co2", "soil_ch4"], min_length=1
    )  # soil_co2: gC m-2 d-1, soil_ch4: mgCH4 m-2 d-1
    min_r2_co2: Annotated[float | None, Field(ge=0, le=1)] = 0.9  # least CO2 fit R2 kept
    daily_min_coverage: Annotated[float, Field(gt=0, le=1)] = 0.75  # 3-h slots of a day kept
    min_coverage: Annotated[float, Field(gt=0, le=1)] = 0.5  # kept days of a product period
    forest_mask: bool = True  # with land_cover: NaN outside forest (IGBP 1-5 / PFT 1-4)


def chamber_folders(patterns: list[str]) -> list[str]:
    """Sorted unique dataset folders matched by the glob ``patterns``."""
    return sorted({p for pattern in patterns for p in glob.glob(pattern) if Path(p).is_dir()})


def chamber_targets(ctx: StepContext, times, ends) -> flux.SiteTargets:
    """The chamber sites and their fluxes on the product periods ``[times[i], ends[i])``:
    ``soil_co2`` (gC m-2 d-1) and ``soil_ch4`` (mgCH4 m-2 d-1); unreadable datasets are
    skipped and reported."""
    p = ctx.product
    folders = chamber_folders(ctx.workflow.inputs[p.chambers].paths)
    qc = QCOptions(min_r2_co2=p.min_r2_co2)
    sites, frames, days, files, skipped = [], [], [], [], []
    for folder in folders:
        try:
            ds = read_cosore(folder, qc)
            daily = daily_site_fluxes(
                daily_port_fluxes(ds.data, min_coverage=p.daily_min_coverage), ds.ports
            )
            per = period_fluxes(daily, times, ends, min_coverage=p.min_coverage, by=None)
            day = pd.DataFrame({"site": ds.name, "date": pd.DatetimeIndex(daily["date"])})
        except FluxscapeError as exc:
            skipped.append(Skipped(folder, str(exc)))
            continue
        files += [str(f) for f in find_tables(folder).values()]
        d = ds.description
        sites.append(
            {
                "site": ds.name,
                "lon": float(d["CSR_LONGITUDE"]),
                "lat": float(d["CSR_LATITUDE"]),
                "igbp": str(d.get("CSR_IGBP", "")),
                "elevation": float(d.get("CSR_ELEVATION", np.nan)),
            }
        )
        frame = pd.DataFrame({"site": ds.name, "time": per["start"].to_numpy()})
        for target in p.targets:
            column = TARGETS[target][0]
            frame[target] = per[column].to_numpy() if column in per else np.nan
            day[target] = daily[column].to_numpy() if column in daily else np.nan
        frames.append(frame)
        days.append(day)
    if not frames:
        raise FluxscapeError(
            f"products.{ctx.name}.chambers: no usable COSORE dataset among {len(folders)} "
            f"folder(s) of input {p.chambers!r}"
            + (f" (first: {skipped[0].file}: {skipped[0].reason})" if skipped else "")
        )
    values = pd.concat(frames).set_index(["site", "time"])
    return flux.SiteTargets(
        sites=pd.DataFrame(sites).set_index("site"),
        values=values,
        units={t: CARD_UNITS[t] for t in p.targets},
        files=files,
        skipped=skipped,
        noun="chamber site",
        card={
            "chamber_qc": {
                "min_r2_co2": p.min_r2_co2,
                "daily_min_coverage": p.daily_min_coverage,
                "min_coverage": p.min_coverage,
            }
        },
        daily=pd.concat(days, ignore_index=True),
    )


def soil_variables(targets: list[str], card_id: str) -> list[VariableSpec]:
    """The store's variables: each target and its ensemble spread ``<target>_sd``."""
    variables = []
    for target in targets:
        _, units, long_name = TARGETS[target]
        attrs = {
            "units": units,
            "long_name": long_name,
            "cell_methods": "time: mean",
            "model_card": card_id,
        }
        variables.append(VariableSpec(target, "float32", attrs))
        variables.append(
            VariableSpec(
                f"{target}_sd",
                "float32",
                {
                    "units": units,
                    "long_name": f"{long_name}: ensemble standard deviation",
                    "cell_methods": "time: mean",
                },
            )
        )
    return variables


def soil_totals(
    ds: xr.Dataset,
    polygons,
    name_property: str = "name",
    variables: tuple[str, ...] = ("soil_co2", "soil_ch4"),
    period_end=None,
) -> pd.DataFrame:
    """Monthly and annual totals of each soil flux over each polygon, with the ensemble
    spread: ``soil_co2`` (gC m-2 d-1) in TgC, ``soil_ch4`` (mgCH4 m-2 d-1) in GgCH4.

    Columns as :func:`fluxscape.ml.regional.regional_totals` with ``total_TgC``/``sd_TgC``
    renamed ``total``/``sd`` and a ``units`` column. That function divides the area- and
    day-weighted sum (g or mg) by :data:`G_PER_TG` (1e12); the factor of each variable
    (:data:`TOTAL_UNITS`) is rescaled from it."""
    parts = []
    for v in variables:
        if v not in ds.data_vars:
            continue
        unit, per_unit = TOTAL_UNITS[v]
        t = regional_totals(ds[v], polygons, name_property, ds.get(f"{v}_sd"), period_end, v)
        scale = G_PER_TG / per_unit
        t = t.rename(columns={"total_TgC": "total", "sd_TgC": "sd"})
        t["total"] *= scale
        t["sd"] *= scale
        t.insert(t.columns.get_loc("sd") + 1, "units", unit)
        parts.append(t)
    if not parts:
        raise FluxscapeError(f"dataset holds none of {variables}")
    return pd.concat(parts, ignore_index=True)


def _totals(ds: xr.Dataset, ctx: StepContext, period_end) -> pd.DataFrame:
    p = ctx.product
    return soil_totals(ds, remote.local(p.regions), p.region_name, tuple(p.targets), period_end)


def _upscaling(ctx: StepContext) -> flux.Upscaling:
    p = ctx.product
    mask = FOREST_CLASSES[p.land_cover_layer] if p.forest_mask else ()
    return flux.Upscaling(
        targets=chamber_targets,
        variables=soil_variables,
        totals=_totals,
        mask_classes=mask,
        summary_units="soil_co2 gC m-2 d-1, soil_ch4 mgCH4 m-2 d-1"
        + ("; forest pixels only" if mask and p.land_cover else ""),
    )


class SoilFluxStep(Step):
    kind = "soil_flux"
    Config = SoilFluxConfig

    def check(self, ctx: StepContext) -> None:
        """The hyperparameters and the chamber folders, before any product runs."""
        flux._check_method_params(ctx)
        p = ctx.product
        if not chamber_folders(ctx.workflow.inputs[p.chambers].paths):
            raise FluxscapeError(
                f"products.{ctx.name}.chambers: input {p.chambers!r} matches no COSORE "
                f"dataset folder ({ctx.workflow.inputs[p.chambers].paths})"
            )

    def validate(self, wf, name: str, p: SoilFluxConfig) -> None:
        flux.STEP.validate(wf, name, p)

    def plan(self, ctx: StepContext) -> Plan:
        return flux.plan_upscaling(ctx, _upscaling(ctx))

    @staticmethod
    def run_tile(task: flux.FluxTask) -> TileResult:
        return flux.run_flux_tile(task)


STEP = SoilFluxStep()
