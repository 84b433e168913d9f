"""``fluxscape update``: bring every product up to date with the inputs that arrived since the
last update, recomputing only what they change.

What an update does, per product in run order (under the output lock, so two updates never
run at once):

- **vi from an input** (``periods``): the input's globs are listed and each file's size and
  modification time compared with those the current store version consumed (no old file is
  read or hashed again); only the new or changed files' headers are read (the granules of
  the files consumed earlier are cached beside the store). The periods those granules fall
  in are recomputed, on the tiles they meet, from every granule of those periods; the time
  axis grows to the period holding the newest observation (never past ``period.end``).
- **products read from a store on the same grid** (phenology, disturbance, a vi made from a
  finer vi: ``tiles``): the tiles whose source changed since the source version this one was
  made from are recomputed whole; the others are shared.
- **anything else** (``full``): rebuilt on every tile when one of its inputs or source
  products changed (a flux product reuses its saved model when its training table is the
  same, as ``run --resume`` does).

Each update of a product writes a new store *version*: a fresh store in the building folder
whose unchanged chunk files are hard links to the previous version's (the update's stores
keep one time step per chunk, so a period is its own chunk files), the recomputed regions
written, then published by the atomic link swap of :func:`~fluxscape.pipeline.store.
publish_version`. A reader holds the old complete version or the new one; a killed update
leaves the published version as it was, and the next update starts again from it (writing
into a hard-linked file would change the published version too, so a recomputed chunk is
never linked: it is written as a new file).

Every period (``time``) or year (``year``) carries a ``period_status`` coordinate: ``0``
final, ``1`` provisional (the period's end is after the newest observation and the
workflow's period is not over). The store's ``update_history`` attribute (and the STAC
collection's ``fluxscape:update_history``) records each update's time, inputs added and
periods changed.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import pickle
import shutil
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline import config as cfg
from fluxscape.pipeline import remote
from fluxscape.pipeline.inputs import (
    TileInputs,
    check_unchanged,
    granules_per_tile,
    index_input,
    input_record,
    select,
)
from fluxscape.pipeline.outdir import (
    STATE_DIR,
    OutputLock,
    check_output_dir,
    inside,
    mark_output_dir,
)
from fluxscape.pipeline.run import (
    _creation_attrs,
    _manifest,
    _run_log,
    _staging,
    _store,
    make_context,
    new_run_id,
    prepare,
)
from fluxscape.pipeline.schema import input_names, product_names
from fluxscape.pipeline.steps import step_for
from fluxscape.pipeline.store import create_store, finalize_store, publish_version, write_tile
from fluxscape.pipeline.timeaxis import period_index, period_starts, time_bounds
from fluxscape.pipeline.update_record import list_inputs, write_record
from fluxscape.readers.registry import get_reader

log = logging.getLogger(__name__)

#: Inside each store version written by an update: what it was made from (JSON) ...
STATE_FILE = ".fluxscape-update.json"
#: ... and, for a vi made from an input, the granules of the files it consumed (a pickle
#: of fluxscape's own Granule records, written and read by fluxscape only, in OUT).
GRANULES_FILE = ".fluxscape-granules.pkl"
#: Layout of the update's stores (one time step per chunk); a store of another layout (e.g.
#: made by ``fluxscape run``) is rebuilt once.
LAYOUT = 1
#: Entries kept in a store's change log (what derived products look up) and in the
#: ``update_history`` attribute; file names listed per history entry.
LOG_ENTRIES, HISTORY_FILES = 200, 20
STATUS_ATTRS = {
    "long_name": "status of the period's values",
    "flag_values": [0, 1],
    "flag_meanings": "final provisional",
    "comment": "provisional: the period ends after the newest observation the update had; "
    "its values are replaced when the period closes",
}
#: kinds whose tiles read only their own region of a source store on the same grid
TILE_KINDS = {"vi", "phenology", "disturbance"}


@dataclass
class ProductUpdate:
    """What an update did to one product: ``action`` (kept, updated, built), tiles and
    periods recomputed, files added, and the periods continued from their stored composites
    with the new granules alone."""

    name: str
    action: str
    store: Path
    tiles_run: int = 0
    tiles_total: int = 0
    periods_changed: list[str] = field(default_factory=list)
    inputs_added: int = 0
    periods_continued: list[str] = field(default_factory=list)


@dataclass
class UpdateResult:
    """The result of ``fluxscape update``: ``nothing_new`` when no input changed (decided
    without loading the workflow), the products and the wall time (s)."""

    out: Path | None
    nothing_new: bool
    products: list[ProductUpdate] = field(default_factory=list)
    seconds: float = 0.0
    version: str = ""


def update_workflow(
    workflow_path: str | Path,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    catalog: str | Path | None = None,
    started: float | None = None,
    retrain: bool = False,
) -> UpdateResult:
    """Bring the products of a workflow up to date with its inputs (see the module
    docstring). Exits early, reading only the input listing, when nothing arrived since the
    last update (:func:`fluxscape.pipeline.update_record.nothing_new`). FluxscapeError when
    another run or update holds the output folder. ``retrain``: upscaling products (flux)
    train their model again instead of predicting with the saved one."""
    from fluxscape.pipeline.update_record import nothing_new

    started = time.monotonic() if started is None else started
    quick = nothing_new(workflow_path, out, data_dir, catalog)
    if quick is not None:
        return UpdateResult(quick, True, seconds=time.monotonic() - started)
    wf = prepare(workflow_path, out, data_dir, None, None, catalog)
    if remote.is_url(wf.output.dir):
        raise FluxscapeError(
            f"output.dir: {wf.output.dir}: fluxscape update writes local output folders only "
            "(its versions share unchanged chunks by hard links); use fluxscape run --resume"
        )
    out_dir = check_output_dir(Path(wf.output.dir), [Path(wf.data_dir)])
    then = "update again (the refused update changed nothing)"
    with OutputLock(out_dir, command=f"fluxscape update {workflow_path}", then=then):
        if nothing_new(workflow_path, out, data_dir, catalog) is not None:  # done meanwhile
            return UpdateResult(out_dir, True, seconds=time.monotonic() - started)
        mark_output_dir(out_dir)
        version = new_run_id(wf.name)
        listing = {name: list_inputs(inp.paths) for name, inp in wf.inputs.items()}
        results = []
        with _run_log(out_dir / STATE_DIR / "update.log"):
            for name in cfg.run_order(wf.products):
                results.append(_update_product(wf, out_dir, name, listing, version, retrain))
        write_record(
            workflow_path,
            out,
            data_dir,
            catalog,
            out_dir,
            {p for inp in wf.inputs.values() for p in inp.paths},
            {f: s for files in listing.values() for f, s in files.items()},
            [r.store for r in results],
        )
    return UpdateResult(out_dir, False, results, time.monotonic() - started, version)


# -- state of a store version ------------------------------------------------------------------


def read_state(store: Path) -> dict | None:
    """The update state of the store version ``store`` links to (None: none, or a store
    made another way or by another layout)."""
    try:
        state = json.loads((store.resolve() / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("layout") == LAYOUT else None


def _load_granules(store: Path) -> list | None:
    """The cached granules of the store version (None when the cache cannot be read)."""
    try:
        with open(store.resolve() / GRANULES_FILE, "rb") as fh:
            granules = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
    return granules if isinstance(granules, list) else None


def _tiles_since(state: dict | None, since: str | None) -> tuple[set[str] | None, bool]:
    """The tiles a source changed in its versions after ``since`` (None: all tiles, e.g.
    ``since`` is not in its log), and whether one of those versions closed a period or
    changed a final one (a change of provisional periods only does not)."""
    if state is None or since is None:
        return None, True
    entries = state.get("log", [])
    pos = next((i for i, e in enumerate(entries) if e["version"] == since), None)
    if pos is None:
        return None, True
    tiles: set[str] | None = set()
    closed = False
    for entry in entries[pos + 1 :]:
        closed = closed or entry.get("closed", True)
        if entry["tiles"] is None or tiles is None:
            tiles = None
        else:
            tiles.update(entry["tiles"])
    return tiles, closed


def _input_delta(listing: dict, consumed: dict) -> tuple[list[str], list[str]]:
    """(files new or changed, files removed) of one input against what a version consumed."""
    added = sorted(f for f, stamp in listing.items() if consumed.get(f) != stamp)
    removed = sorted(f for f in consumed if f not in listing)
    return added, removed


# -- one product -------------------------------------------------------------------------------


def _update_product(
    wf, out_dir: Path, name: str, listing: dict, version: str, retrain: bool = False
) -> ProductUpdate:
    product = wf.products[name]
    if product.kind == "vi" and getattr(product, "input", None) is not None:
        result = _update_periods(wf, out_dir, name, listing, version)
    else:
        result = _update_tiles(wf, out_dir, name, listing, version, retrain)
    _mark_complete(out_dir, wf, name)
    return result


def _mark_complete(out_dir: Path, wf, name: str) -> None:
    """The product's manifest says its published store is complete (what the steps reading
    it check), written whole by rename: an update killed at any point never leaves a store
    whose manifest says otherwise."""
    if not _store(out_dir, name).exists():
        return
    manifest = _manifest(out_dir, name)
    text = json.dumps({"workflow_hash": cfg.product_hash(wf, name)}) + "\n"
    text += json.dumps({"complete": True}) + "\n"
    if manifest.path.exists() and manifest.path.read_text() == text:
        return
    tmp = manifest.path.with_name(manifest.path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, manifest.path)


def _clipped(wf, data_time: pd.Timestamp | None):
    """The workflow with ``period.end`` at the day of the newest observation (never later
    than its own end, never before its start): what a batch run over the data so far is."""
    if data_time is None:
        return wf
    end = min(wf.period.end, max(wf.period.start, data_time.date()))
    return wf.model_copy(update={"period": wf.period.model_copy(update={"end": end})})


def _status(ends: np.ndarray, data_time: pd.Timestamp | None, wf) -> np.ndarray:
    """``period_status`` of periods ending (exclusive) at ``ends``: 1 (provisional) when a
    period ends after the newest observation and the workflow's period is not over."""
    if data_time is None or data_time.date() >= wf.period.end:
        return np.zeros(len(ends), dtype="uint8")
    return (pd.DatetimeIndex(ends) > data_time).astype("uint8")


def _update_periods(wf, out_dir: Path, name: str, listing: dict, version: str) -> ProductUpdate:
    """A vi product made from an input: recompute the periods and tiles the new files meet."""
    from fluxscape.pipeline.steps.vi import ViTask, layers_for, vi_variables

    p = wf.products[name]
    inp = wf.inputs[p.input]
    store = _store(out_dir, name)
    state = read_state(store) if store.exists() else None
    digest = cfg.product_hash(wf, name)
    if state is not None and state.get("digest") != digest:
        log.info("%s: its settings changed since the last update; rebuilding it", name)
        state = None
    cached = _load_granules(store) if state else []
    if cached is None:
        log.warning("%s: the granule cache of %s cannot be read; rebuilding it", name, store)
        state, cached = None, []
    files = listing[p.input]
    consumed = state["consumed"].get(p.input, {}) if state else {}
    added, removed = _input_delta(files, consumed)
    step = p.step or wf.period.step
    all_times = period_starts(wf.period, step)

    def needs(have):
        return layers_for(p.variables, have)

    # granules of changed or removed files go; groups the new files join are indexed again
    touched = set(added) | set(removed)
    dropped = [g for g in cached if touched & set(g.files)]
    kept = [g for g in cached if not touched & set(g.files)]
    to_index = set(added)
    new_index = index_input(p.input, inp.reader, [glob.escape(f) for f in sorted(to_index)])
    groups = {g.group for g in new_index.granules if g.group is not None}
    joined = [g for g in kept if g.group is not None and g.group in groups]
    if joined:
        kept = [g for g in kept if g not in joined]
        dropped += joined
        to_index |= {f for g in joined for f in g.files if f in files}
        new_index = index_input(p.input, inp.reader, [glob.escape(f) for f in sorted(to_index)])
    for s in new_index.skipped:
        log.warning("skipped input %s: %s", s.path, s.reason)
    fresh, _refused = select(new_index, needs, p.hours)
    granules = sorted(kept + fresh, key=lambda g: (g.start, g.path))
    in_period = [g for g in granules if period_index(all_times, g.start, step) is not None]
    if not in_period:
        if state is None:
            raise FluxscapeError(
                f"products.{name}: no file of inputs.{p.input} gives an observation in the "
                f"period {wf.period.start} to {wf.period.end} yet; nothing to update"
            )
    data_time = max(g.start for g in in_period) if in_period else pd.Timestamp(state["data_time"])
    data_time = pd.Timestamp(data_time)
    wfc = _clipped(wf, data_time)
    times = period_starts(wfc.period, step)
    bounds = time_bounds(times, step)
    status = _status(bounds[:, 1], data_time, wf)
    ctx = make_context(wfc, out_dir, name, {})
    grid = ctx.grid
    compatible = state is not None and _compatible(store, times, state, "time")
    changed = [g for g in fresh + dropped if period_index(times, g.start, step) is not None]
    if compatible:
        periods = sorted({period_index(times, g.start, step) for g in changed})
        hit = granules_per_tile(changed, grid.tiling, grid.tiles)
        tiles = {t for t, gs in hit.items() if gs}
    else:
        periods, tiles = list(range(len(times))), {t.id for t in grid.tiles}
    old_status = np.asarray(state.get("status", []), dtype="uint8") if state else np.array([])
    status_changed = [
        i for i in range(len(times)) if i >= len(old_status) or old_status[i] != status[i]
    ]
    if compatible and not tiles and not status_changed and not removed and not added:
        log.info("%s: nothing new", name)
        return ProductUpdate(name, "kept", store, tiles_total=len(grid.tiles))
    seeded = _continued(periods, fresh, dropped, kept, times, step, p.composite, compatible, state)
    runs = [(lo, hi, True) for lo, hi in _runs(sorted(seeded))]
    runs += [(lo, hi, False) for lo, hi in _runs(sorted(set(periods) - seeded))]
    runs = runs if tiles else []

    def run_of(g) -> tuple | None:
        i = period_index(times, g.start, step)
        return next((r for r in runs if r[0] <= i <= r[1]), None)

    # a continued period reads its new granules only, the others every granule
    selected = [g for g in in_period if (r := run_of(g)) is not None and (not r[2] or g in fresh)]
    per_tile = granules_per_tile(selected, grid.tiling, grid.tiles)
    options = {"max_reliability": p.max_pixel_reliability, "resampling": p.resampling}
    tasks = []
    for tile in grid.tiles:
        if tile.id not in tiles:
            continue
        for run in runs:
            lo, hi, seed = run
            sub = tuple(g for g in per_tile[tile.id] if run_of(g) == run)
            task = ViTask(
                tile,
                tuple(times[lo : hi + 1].values),
                inp.reader,
                sub,
                p,
                step,
                options,
                (str(store.resolve()), lo) if seed else None,
            )
            tasks.append((task, slice(lo, hi + 1)))
    recomputed = {(t, i) for t in tiles for lo, hi, _ in runs for i in range(lo, hi + 1)}
    if state is None:
        plan = step_for("vi").plan(replace(ctx, inputs={p.input: _index_of(new_index, fresh)}))
        summary, source_attrs = plan.summary, plan.source_attrs
    else:
        old_attrs = _attrs(store)
        summary = old_attrs.get("summary", "")
        source_attrs = {k: old_attrs[k] for k in ("resampling", "native_grid") if k in old_attrs}
    variables = vi_variables(p.variables, get_reader(inp.reader).many_per_day, p.composite)
    changed_dates = sorted(
        {str(times[i].date()) for _, i in recomputed}
        | {str(times[i].date()) for i in status_changed}
    )
    touched_periods = {i for _, i in recomputed} | set(status_changed)
    closed = state is None or any(status[i] == 0 for i in touched_periods)
    new_state = {
        "layout": LAYOUT,
        "version": version,
        "digest": digest,
        "consumed": {p.input: files},
        "sources": {},
        "data_time": data_time.isoformat(),
        "status": status.tolist(),
        "log": _log(state, version, sorted(tiles) if compatible else None, closed),
    }
    _write_version(
        wf,
        out_dir,
        name,
        ctx,
        version,
        dims={"time": times.values},
        bounds=bounds,
        status=status,
        variables=variables,
        summary=summary,
        source_attrs=source_attrs,
        tasks=tasks,
        link=(lambda key: (_tile_of(key), key[0]) not in recomputed) if compatible else None,
        state=new_state,
        granules=granules,
        added=added,
        removed=removed,
        periods=changed_dates,
        check=[g.stamps for g in fresh],
        skipped=new_index.skipped,
    )
    action = "built" if state is None else "updated"
    log.info(
        "%s: %s: %d file(s) added, %d tile task(s), periods %s",
        name,
        action,
        len(added),
        len(tasks),
        ", ".join(changed_dates) or "none",
    )
    return ProductUpdate(
        name,
        action,
        store,
        len({t.tile.id for t, _ in tasks}),
        len(grid.tiles),
        changed_dates,
        len(added),
        [str(times[i].date()) for i in sorted(seeded)] if tiles else [],
    )


def _continued(periods, fresh, dropped, kept, times, step, rule, compatible, state) -> set[int]:
    """The periods whose stored composites the new granules can simply be added to: a rule
    whose pick from a pair is its pick from all (``max_ndvi``, ``nearest_time``), a period the
    published version holds, no file of it changed or removed, and every new granule later
    than the period's earlier ones (ties go to the earlier observation)."""
    if not compatible or rule == "median" or state is None:
        return set()
    held = len(state.get("status", []))
    gone = {period_index(times, g.start, step) for g in dropped}
    out = set()
    for i in periods:
        if i >= held or i in gone:
            continue
        old = [g.start for g in kept if period_index(times, g.start, step) == i]
        new = [g.start for g in fresh if period_index(times, g.start, step) == i]
        if new and (not old or min(new) > max(old)):
            out.add(i)
    return out


def _index_of(index, granules):
    """``index`` holding ``granules`` (all the product's granules, for its first plan)."""
    return replace(index, granules=list(granules))


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs ``(first, last)`` of sorted period indices."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _tile_of(key: tuple[int, ...]) -> str:
    """The tile id of a chunk key ``(*leading, row, col)`` (one tile per chunk)."""
    return f"{key[-2]}_{key[-1]}"


def _update_tiles(
    wf, out_dir: Path, name: str, listing: dict, version: str, retrain: bool = False
) -> ProductUpdate:
    """A product read from other products' stores (and inputs): the tiles whose sources
    changed, or every tile when it cannot share tiles or its own inputs changed."""
    product = wf.products[name]
    store = _store(out_dir, name)
    state = read_state(store) if store.exists() else None
    digest = cfg.product_hash(wf, name)
    if state is not None and state.get("digest") != digest:
        log.info("%s: its settings or sources changed since the last update; rebuilding it", name)
        state = None
    sources = product_names(product)
    src_states = {s: read_state(_store(out_dir, s)) for s in sources}
    direct = input_names(product)
    consumed = {i: listing[i] for i in direct}
    added, removed = [], []
    for i in direct:
        a, r = _input_delta(listing[i], (state or {}).get("consumed", {}).get(i, {}))
        added += a
        removed += r
    tiles: set[str] | None = set()
    closed = False
    for s in sources:
        since = (state or {}).get("sources", {}).get(s)
        found, source_closed = _tiles_since(src_states[s], since)
        tiles = None if found is None or tiles is None else tiles | found
        closed = closed or source_closed
    if state is not None and not added and not removed and not closed:
        # the sources changed provisional periods only: this product follows when one of
        # their periods closes (every tile changed meanwhile is recomputed then)
        log.info("%s: kept until a period of %s closes", name, ", ".join(sources))
        total = len(step_for(product.kind).grid(wf, product).tiles)
        return ProductUpdate(name, "kept", store, tiles_total=total)
    unchanged = state is not None and not added and not removed and tiles == set()
    if not unchanged and (state is None or added or removed or product.kind not in TILE_KINDS):
        tiles = None  # its own inputs changed, or it cannot share tiles: every tile
    times = [pd.Timestamp(st["data_time"]) for st in src_states.values() if st and st["data_time"]]
    data_time = max(times) if times else None
    if data_time is None and state is not None and state.get("data_time"):
        data_time = pd.Timestamp(state["data_time"])
    wfc = _clipped(wf, data_time)
    ctx = replace(make_context(wfc, out_dir, name, {}), reuse_model=not retrain)
    grid = ctx.grid
    step = step_for(product.kind)
    plan = step.plan(ctx)
    lead = next(iter(plan.dims), None)
    bounds = plan.time_bounds
    if lead == "time":
        ends = bounds[:, 1]
    elif lead == "year":
        ends = np.array([np.datetime64(f"{int(y) + 1}-01-01") for y in plan.dims["year"]])
    else:
        ends = None
    status = _status(ends, data_time, wf) if ends is not None else None
    old_status = (state or {}).get("status")
    compatible = (
        state is not None
        and tiles is not None
        and _compatible(store, plan.dims.get("time"), state, lead, plan.dims)
    )
    if not compatible:
        tiles = {t.id for t in grid.tiles}
    if compatible and not tiles and (status is None or status.tolist() == old_status):
        log.info("%s: nothing new", name)
        return ProductUpdate(name, "kept", store, tiles_total=len(grid.tiles))
    tasks = [(plan.make_task(t), None) for t in grid.tiles if t.id in tiles]
    periods = []
    if status is not None:
        labels = [
            str(pd.Timestamp(v).date()) if lead == "time" else str(v) for v in plan.dims[lead]
        ]
        periods = [
            label
            for i, label in enumerate(labels)
            if tiles or old_status is None or i >= len(old_status) or old_status[i] != status[i]
        ]
    newly_final = status is not None and any(
        status[i] == 0 and (old_status is None or i >= len(old_status) or old_status[i] != 0)
        for i in range(len(status))
    )
    closed = state is None or status is None or closed or newly_final
    new_state = {
        "layout": LAYOUT,
        "version": version,
        "digest": digest,
        "consumed": consumed,
        "sources": {s: (st or {}).get("version") for s, st in src_states.items()},
        "data_time": None if data_time is None else data_time.isoformat(),
        "status": None if status is None else status.tolist(),
        "log": _log(state, version, sorted(tiles) if compatible else None, closed),
    }
    _write_version(
        wf,
        out_dir,
        name,
        ctx,
        version,
        dims=plan.dims,
        bounds=bounds,
        status=status,
        variables=plan.variables,
        summary=plan.summary,
        source_attrs=plan.source_attrs,
        tasks=tasks,
        link=(lambda key: _tile_of(key) not in tiles) if compatible else None,
        state=new_state,
        granules=None,
        added=added,
        removed=removed,
        periods=periods,
        check=[],
        finish=plan.finish,
        plan_used=plan.used,
    )
    action = "built" if state is None else "updated"
    log.info("%s: %s: %d of %d tiles recomputed", name, action, len(tasks), len(grid.tiles))
    return ProductUpdate(name, action, store, len(tasks), len(grid.tiles), periods, len(added))


def _log(state: dict | None, version: str, tiles: list[str] | None, closed: bool) -> list[dict]:
    """The store's change log with this version: the tiles it changed (None: all) and
    whether it closed a period or changed a final one (``closed``)."""
    entry = {"version": version, "tiles": tiles, "closed": bool(closed)}
    return (list((state or {}).get("log", [])) + [entry])[-LOG_ENTRIES:]


def _attrs(store: Path) -> dict:
    import zarr

    return dict(zarr.open_group(str(store), mode="r").attrs)


def _compatible(store: Path, times, state: dict, lead: str | None, dims: dict | None = None):
    """True when the new version can share the chunk files of the published one: same
    layout, and the time axis only grew at its end (other leading dims unchanged)."""
    import xarray as xr

    try:
        with xr.open_zarr(store, consolidated=True) as old:
            if lead == "time":
                have = old["time"].values.astype("datetime64[ns]")
                new = np.asarray(times).astype("datetime64[ns]")
                return len(have) <= len(new) and bool(np.all(have == new[: len(have)]))
            for dim, values in (dims or {}).items():
                if dim not in old.dims or not np.array_equal(old[dim].values, np.asarray(values)):
                    return False
            return True
    except (OSError, ValueError, KeyError):
        return False


# -- writing a version -------------------------------------------------------------------------


def _write_version(
    wf,
    out_dir: Path,
    name: str,
    ctx,
    version: str,
    *,
    dims: dict,
    bounds,
    status,
    variables,
    summary: str,
    source_attrs: dict,
    tasks: list,
    link,
    state: dict,
    granules,
    added: list[str],
    removed: list[str],
    periods: list[str],
    check: list,
    finish=None,
    plan_used=(),
    skipped=(),
) -> None:
    """Build the product's next version in the building folder (chunks ``link`` says are
    unchanged hard-linked from the published version, ``tasks`` run and written), record
    its state and provenance, and publish it (atomic link swap, then the catalog)."""
    from fluxscape.catalog.publish import publish_store

    store, staging = _store(out_dir, name), Path(_staging(wf, out_dir, name))
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    lead = next(iter(dims), None)
    coords = {}
    if status is not None:
        coords["period_status"] = ((lead,), status, STATUS_ATTRS)
    old = store.resolve() if store.exists() else None
    old_attrs = _attrs(store) if old is not None else {}
    create_store(
        staging,
        ctx.grid.geobox,
        dims,
        variables,
        wf.tile_size,
        _creation_attrs(wf, name, summary),
        bounds,
        time_chunk=1 if "time" in dims else None,
        extra_coords=coords,
    )
    if link is not None and old is not None:
        _link_chunks(old, staging, [v.name for v in variables], link)
    record = TileInputs(skipped=list(skipped))
    step = step_for(ctx.product.kind)
    for task, tslice in tasks:
        result = step.run_tile(task)
        write_tile(staging, result.data, task.tile.rows, task.tile.cols, time=tslice)
        record.skipped += result.inputs.skipped
        record.used |= result.inputs.used
        record.observations += result.inputs.observations
    if finish is not None:
        finish(staging)
    for stamps in check:
        check_unchanged(stamps)
    attrs = _final(wf, name, old_attrs, record, removed, plan_used, dims)
    attrs |= source_attrs
    attrs["access"] = cfg.product_access(wf, name)
    attrs["run_id"] = version
    attrs["update_history"] = _history(old_attrs, added, periods)
    finalize_store(staging, attrs)
    (staging / STATE_FILE).write_text(json.dumps(state))
    if granules is not None:
        with open(staging / GRANULES_FILE, "wb") as fh:
            pickle.dump(granules, fh, protocol=pickle.HIGHEST_PROTOCOL)
    publish_version(staging, store, version)
    _mark_complete(out_dir, wf, name)
    publish_store(
        store,
        cfg.catalog_dir(wf, out_dir),
        wf.name,
        name,
        access=attrs["access"],
        run_id=version,
    )


def _link_chunks(old: Path, new: Path, variables: list[str], keep) -> int:
    """Hard-link into ``new`` every chunk file of ``variables`` in ``old`` whose key
    (integer chunk indices) ``keep`` accepts; returns the number linked. Zarr v2 keys:
    ``<var>/<i>.<j>...``."""
    linked = 0
    for var in variables:
        src, dst = old / var, new / var
        if not src.is_dir() or not (dst / ".zarray").exists():
            continue
        if _zarray(src) != _zarray(dst):
            continue
        shape = json.loads((dst / ".zarray").read_text())["shape"]
        chunks = json.loads((dst / ".zarray").read_text())["chunks"]
        counts = [-(-s // c) for s, c in zip(shape, chunks, strict=True)]
        for entry in os.scandir(src):
            if entry.name.startswith("."):
                continue
            try:
                key = tuple(int(k) for k in entry.name.split("."))
            except ValueError:
                continue
            if len(key) != len(counts) or any(k >= n for k, n in zip(key, counts, strict=True)):
                continue
            if keep(key):
                os.link(entry.path, dst / entry.name)
                linked += 1
    return linked


def _zarray(folder: Path) -> dict:
    """A variable's array metadata without its shape (which grows along time)."""
    meta = json.loads((folder / ".zarray").read_text())
    meta.pop("shape", None)
    return meta


def _final(wf, name, old_attrs: dict, record: TileInputs, removed, plan_used, dims) -> dict:
    """Provenance of the new version: the files used (old ones keep their recorded sums;
    only new files are hashed), skipped files, extents."""
    inputs = {e["path"]: e for e in old_attrs.get("inputs", []) if e["path"] not in removed}
    for f in sorted(record.used | set(plan_used)):
        if f not in inputs and (entry := input_record(f)) is not None:
            inputs[f] = entry
    skipped = {e["file"]: e for e in old_attrs.get("skipped_inputs", [])}
    skipped |= {s.path: s.to_json() for s in record.skipped}
    w, s, e, n = wf.region.lonlat_bbox
    attrs = {
        "inputs": [inputs[k] for k in sorted(inputs)],
        "skipped_inputs": [skipped[k] for k in sorted(skipped)],
        "geospatial_lon_min": w,
        "geospatial_lat_min": s,
        "geospatial_lon_max": e,
        "geospatial_lat_max": n,
        "partial": False,
        "inputs_without_data": [],
        "ignored_inputs": [],
    }
    if "time" in dims:
        times = pd.DatetimeIndex(dims["time"])
        attrs["time_coverage_start"] = str(times[0].date())
        attrs["time_coverage_end"] = str(times[-1].date())
    return attrs


def _history(old_attrs: dict, added: list[str], periods: list[str]) -> list[dict]:
    """The store's ``update_history`` with this update's entry appended."""
    entry = {
        "time": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "inputs_added": len(added),
        "files": [os.path.basename(f) for f in added[:HISTORY_FILES]],
        "periods_changed": periods,
    }
    return (list(old_attrs.get("update_history", [])) + [entry])[-LOG_ENTRIES:]


__all__ = ["update_workflow", "UpdateResult", "ProductUpdate", "read_state", "inside"]
