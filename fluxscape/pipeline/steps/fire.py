"""The ``fire_alerts`` product: active fires in every Himawari AHI scene of the period (the
contextual 3.9 / 11 um test, :mod:`fluxscape.products.fire`), as a store and as alerts.

Store: one time step per scene (its nominal time), ``(time, y, x)``: ``fire_mask`` (MOD14
codes: 0 no observation, 4 cloud, 5 clear land, 6 rejected for sun glint, 7/8/9 fire of low,
nominal, high confidence), ``fire_confidence`` (0-1), ``frp`` (MW) and the fire pixels'
``fire_bt07``/``fire_bt14`` (K; NaN off fires). Each tile reads the scenes' B07 and B14
brightness temperatures at the native 2 km (nearest pixel; choose a region resolution near
0.02 degree) and tests them with the sun and satellite geometry of the scene; background
windows stop at the tile's edge, so a large ``tile_size`` (the whole region) is best.

Alerts (:meth:`Plan.finish`, :mod:`fluxscape.catalog.alerts`): every fire pixel becomes a
GeoJSON point (time, lon/lat, bt07, bt14, dT, frp, confidence) in
``OUT/alerts/<product>/<batch>.geojson`` and ``alerts.parquet`` and a STAC Item of the
catalog's ``alerts`` collection, with its latency (scene nominal time to catalog).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.grid import Tile
from fluxscape.pipeline.inputs import (
    TileInputs,
    coverage_error,
    giving_all,
    granules_per_tile,
    read_onto_tile,
    select,
)
from fluxscape.pipeline.schema import StrictModel, input_ref
from fluxscape.pipeline.steps.base import Plan, Step, StepContext, TileResult
from fluxscape.pipeline.store import VariableSpec
from fluxscape.products import fire
from fluxscape.readers.ontile import Granule

log = logging.getLogger(__name__)


class FireAlertsConfig(StrictModel):
    """The ``fire_alerts`` product: active fires in every scene of a source giving the 3.9 um
    and 11 um brightness temperatures (Himawari AHI HSD B07 and B14), by the contextual test
    of the MODIS MOD14 family, with fire radiative power; written as a store, as GeoJSON and
    as STAC Items of the catalog's ``alerts`` collection."""

    kind: Literal["fire_alerts"]  # Product kind.
    input: Annotated[
        str, input_ref({"bt07", "bt14"}, what="3.9 and 11 um brightness temperatures")
    ] = Field(
        description="The scenes: an input giving `bt07` and `bt14` (Himawari AHI HSD B07 and "
        "B14 segments)."
    )
    glint_max_deg: Annotated[float, Field(ge=0, le=40)] = Field(
        fire.GLINT_MAX_DEG,
        description="Candidates within this glint angle (degrees) of the specular direction "
        "are rejected (MOD14: 12 next to water; 0 turns the screen off).",
    )
    min_confidence: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0,
        description="Fires below this confidence (0-1) are kept in the store but raise no alert.",
    )
    nadir_pixel_km: Annotated[float, Field(gt=0)] = Field(
        2.0, description="Pixel size (km) of the 3.9 um band at the sub-satellite point, for FRP."
    )


VARIABLES = [
    VariableSpec(
        "fire_mask",
        "uint8",
        {
            "long_name": "fire mask (MOD14 codes)",
            "units": "1",
            "flag_values": [0, 4, 5, 6, 7, 8, 9],
            "flag_meanings": "missing cloud clear_land glint_rejected low_confidence_fire "
            "nominal_confidence_fire high_confidence_fire",
        },
        fill=0,
    ),
    VariableSpec(
        "fire_confidence",
        "float32",
        {"long_name": "fire detection confidence (Giglio et al. 2003)", "units": "1"},
    ),
    VariableSpec(
        "frp",
        "float32",
        {"long_name": "fire radiative power (MIR radiance method)", "units": "MW"},
    ),
    VariableSpec(
        "fire_bt07",
        "float32",
        {"long_name": "3.9 um brightness temperature of fire pixels", "units": "K"},
    ),
    VariableSpec(
        "fire_bt14",
        "float32",
        {"long_name": "11.2 um brightness temperature of fire pixels", "units": "K"},
    ),
]


@dataclass(frozen=True)
class FireTask:
    """One tile: its scenes (granules), the scene times of the store and the settings."""

    tile: Tile
    times: tuple
    reader: str
    granules: tuple[Granule, ...]
    product: FireAlertsConfig


def run_fire_tile(task: FireTask) -> TileResult:
    """Detect fires in every scene of the tile."""
    from fluxscape.readers.ontile import tile_lonlat

    p = task.product
    times = pd.DatetimeIndex(task.times)
    ny, nx = task.tile.geobox.shape.yx
    shape = (len(times), ny, nx)
    mask = np.zeros(shape, np.uint8)
    conf = np.full(shape, np.nan, np.float32)
    frp = np.full(shape, np.nan, np.float32)
    bt07 = np.full(shape, np.nan, np.float32)
    bt14 = np.full(shape, np.nan, np.float32)
    lon, lat = tile_lonlat(task.tile.geobox)
    record = TileInputs()
    for granule, layers in read_onto_tile(
        task.reader, task.granules, task.tile.geobox, {"bt07", "bt14"}, {}, record
    ):
        t = times.get_loc(pd.Timestamp(granule.start))
        when = pd.Timestamp(layers.get("observation_time", granule.start)).to_pydatetime()
        geo = fire.view_geometry(when, lon, lat, layers.get("sub_lon", 140.7))
        area = fire.pixel_area_m2(geo["vza"], p.nadir_pixel_km)
        res = fire.detect_fires(
            layers["bt07"],
            layers["bt14"],
            geo["sza"],
            geo["glint"],
            area,
            glint_max_deg=p.glint_max_deg,
        )
        mask[t] = res.mask
        on = res.fire
        conf[t] = np.where(on, res.confidence, np.nan)
        frp[t] = np.where(on, res.frp, np.nan)
        bt07[t] = np.where(on, layers["bt07"], np.nan)
        bt14[t] = np.where(on, layers["bt14"], np.nan)
    dims = ("time", "y", "x")
    data = xr.Dataset(
        {
            "fire_mask": (dims, mask),
            "fire_confidence": (dims, conf),
            "frp": (dims, frp),
            "fire_bt07": (dims, bt07),
            "fire_bt14": (dims, bt14),
        }
    )
    return TileResult(data, record)


def _iso(t) -> str:
    return pd.Timestamp(t).tz_localize(None).isoformat() + "Z"


def alert_features(
    store: Path,
    product: str,
    min_confidence: float,
    scene_files: dict,
    after: np.datetime64 | None = None,
) -> list[dict]:
    """GeoJSON point features of every fire pixel of a fire_alerts store (lon/lat of the
    pixel centre; the store must be on a lon/lat grid or carry a CRS pyproj reads).
    ``scene_files``: nominal time -> newest file modification time (UTC) of the scene, kept as
    ``file_time``. ``after``: only scenes after this time (an incremental update's new
    scenes); None: every scene of the store."""
    ds = xr.open_zarr(store, consolidated=False)
    mask = ds["fire_mask"].values
    t, r, c = np.nonzero(mask >= fire.MASK["low"])
    if after is not None:
        keep = ds["time"].values[t] > np.datetime64(after, "ns")
        t, r, c = t[keep], r[keep], c[keep]
    x, y = ds["x"].values[c], ds["y"].values[r]
    crs = ds["spatial_ref"].attrs.get("crs_wkt", "")
    if crs and "GEOGCRS" not in crs and "GEOGCS" not in crs[:6]:
        from pyproj import Transformer

        x, y = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    conf = ds["fire_confidence"].values[t, r, c]
    frp = ds["frp"].values[t, r, c]
    b7 = ds["fire_bt07"].values[t, r, c]
    b14 = ds["fire_bt14"].values[t, r, c]
    names = {7: "low", 8: "nominal", 9: "high"}
    out = []
    for k in range(t.size):
        if not conf[k] >= min_confidence:
            continue
        when = ds["time"].values[t[k]]
        stamp = pd.Timestamp(when)
        props = {
            "id": f"{product}-{stamp:%Y%m%dT%H%M}-{r[k]}-{c[k]}",
            "kind": "fire",
            "product": product,
            "time": _iso(when),
            "lon": round(float(x[k]), 5),
            "lat": round(float(y[k]), 5),
            "bt07": round(float(b7[k]), 2),
            "bt14": round(float(b14[k]), 2),
            "dT": round(float(b7[k] - b14[k]), 2),
            "frp": round(float(frp[k]), 2) if np.isfinite(frp[k]) else None,
            "confidence": round(float(conf[k]), 3),
            "confidence_class": names[int(mask[t[k], r[k], c[k]])],
            "fluxscape:access": ds.attrs.get("access", "public"),
        }
        if stamp in scene_files:
            props["file_time"] = scene_files[stamp]
        out.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [props["lon"], props["lat"]]},
                "properties": props,
            }
        )
    return out


class FireAlertsStep(Step):
    kind = "fire_alerts"
    Config = FireAlertsConfig

    def plan(self, ctx: StepContext) -> Plan:
        """One time step per scene of the input in the period; alerts after the last tile."""
        from fluxscape.pipeline import config as cfg

        p: FireAlertsConfig = ctx.product
        index = ctx.input_index(p.input)
        usable, ignored = select(index, giving_all("bt07", "bt14"))
        start = pd.Timestamp(ctx.workflow.period.start)
        end = pd.Timestamp(ctx.workflow.period.end) + pd.Timedelta(days=1)
        granules = [g for g in usable if start <= pd.Timestamp(g.start) < end]
        per_tile = granules_per_tile(granules, ctx.grid.tiling, ctx.grid.tiles)
        if not any(per_tile.values()):
            raise FluxscapeError(coverage_error(p.input, index, usable, granules, ctx.workflow))
        times = pd.DatetimeIndex(sorted({pd.Timestamp(g.start) for g in granules}))
        interval = times.to_series().diff().median() if len(times) > 1 else pd.Timedelta("10min")
        bounds = np.stack([times.values, (times + interval).values], axis=1)
        scene_files: dict = {}
        for g in granules:
            newest = max(os.stat(f).st_mtime for f in g.files)
            stamp = pd.Timestamp(g.start)
            scene_files[stamp] = max(scene_files.get(stamp, 0.0), newest)
        scene_files = {
            k: datetime.fromtimestamp(v, UTC).isoformat().replace("+00:00", "Z")
            for k, v in scene_files.items()
        }
        access = cfg.product_access(ctx.workflow, ctx.name)
        catalog_dir = ctx.catalog_dir()

        def make_task(tile: Tile) -> FireTask:
            return FireTask(tile, tuple(times.values), index.reader, tuple(per_tile[tile.id]), p)

        def finish(store: Path) -> None:
            from fluxscape.catalog.alerts import publish_alerts

            ds_attrs = {"access": access}
            features = alert_features(store, ctx.name, p.min_confidence, scene_files)
            for f in features:
                f["properties"]["fluxscape:access"] = ds_attrs["access"]
            batch = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            ctx.output_path("alerts", ctx.name)  # proven inside OUT
            result = publish_alerts(features, ctx.out_dir, catalog_dir, ctx.name, batch)
            lat = result["latency_s"]
            log.info(
                "%s: %d fire alert(s) in %s%s",
                ctx.name,
                len(features),
                result["geojson"],
                f", latency median {np.median(lat):.0f} s" if lat else "",
            )

        return Plan(
            dims={"time": times.values},
            time_bounds=bounds,
            variables=VARIABLES,
            summary=f"Active fires in {len(times)} Himawari AHI scene(s): contextual 3.9/11 um "
            f"test of the MOD14 family (Giglio et al. 2003) with sun-glint screening "
            f"(< {p.glint_max_deg:g} deg), FRP by the MIR radiance method (Wooster et al. 2003)",
            make_task=make_task,
            inputs=[f for g in granules for f in g.files],
            skipped=list(index.skipped),
            ignored=ignored,
            finish=finish,
            source_attrs={"glint_max_deg": p.glint_max_deg},
        )

    run_tile = staticmethod(run_fire_tile)


STEP = FireAlertsStep()
