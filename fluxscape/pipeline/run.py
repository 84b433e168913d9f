"""``fluxscape run``: validate a workflow, then build each product tile by tile on Dask.

Order of work for each product: index the input headers (bad files are skipped and
recorded), create the store if needed, run the tiles that the manifest does not list as
finished, finalise the store's provenance, and only then publish it to the catalog.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from distributed import as_completed

import fluxscape
from fluxscape.errors import FluxscapeError
from fluxscape.pipeline import config as cfg
from fluxscape.pipeline.cluster import dask_client
from fluxscape.pipeline.grid import TargetGrid, target_grid
from fluxscape.pipeline.progress import progress
from fluxscape.pipeline.quicklook import write_quicklooks
from fluxscape.pipeline.report import record_run, write_report
from fluxscape.pipeline.sources import file_checksum
from fluxscape.pipeline.steps import step_for
from fluxscape.pipeline.steps.base import StepContext
from fluxscape.pipeline.store import Manifest, create_store, finalize_store

log = logging.getLogger(__name__)

STATE_DIR = ".fluxscape"


@dataclass
class ProductResult:
    """What a run did for one product."""

    name: str
    store: Path
    tiles_total: int
    tiles_run: int
    skipped_inputs: list[dict] = field(default_factory=list)
    published: Path | None = None


@dataclass
class RunResult:
    """What a run wrote: output folder, resolved workflow, products, wall time (s)."""

    out: Path
    workflow: cfg.Workflow
    products: list[ProductResult]
    seconds: float
    peak_memory_mib: float | None = None


def prepare(
    workflow_path: str | Path,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> cfg.Workflow:
    """Load, validate and resolve a workflow with command-line overrides (no work done)."""
    wf, base = cfg.load_workflow(workflow_path)
    wf = cfg.resolve_workflow(wf, base, out=out, data_dir=data_dir)
    dask_update = {}
    if scheduler:
        dask_update["scheduler"] = scheduler
    if workers:
        dask_update["workers"] = workers
    if dask_update:
        wf = wf.model_copy(update={"dask": wf.dask.model_copy(update=dask_update)})
    return wf


def run_workflow(
    workflow_path: str | Path,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    fresh: bool = False,
    catalog: str | Path | None = None,
) -> RunResult:
    """Run a workflow file. ``resume`` continues stores a previous run started (finished
    tiles are skipped, finished stores left untouched); ``fresh`` deletes them first; with
    neither, existing stores are an error so that nothing written is lost. ``catalog``
    overrides the workflow's catalog directory (e.g. one shared by several runs)."""
    started = time.monotonic()
    wf = prepare(workflow_path, out, data_dir, scheduler, workers)
    if catalog is not None:
        output = wf.output.model_copy(update={"catalog": str(Path(catalog).resolve())})
        wf = wf.model_copy(update={"output": output})
    run_id = new_run_id(wf.name)
    out_dir = Path(wf.output.dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_if_changed(out_dir / "workflow.yaml", cfg.workflow_yaml(wf))
    results = []
    with _lazy_client(wf.dask) as lazy:
        for name in cfg.run_order(wf.products):
            product = wf.products[name]
            step = step_for(product.kind)
            if hasattr(step, "grid"):
                grid = step.grid(wf.region, product, wf.tile_size)
            else:
                grid = target_grid(wf.region, wf.tile_size)
            results.append(
                _run_product(wf, name, product, grid, out_dir, lazy.get, resume, fresh, run_id)
            )
        workers_peak = lazy.peak_worker_mib()
    result = RunResult(out_dir, wf, results, time.monotonic() - started)
    result.peak_memory_mib = _peak_rss_mib() + workers_peak
    record_run(result, result.peak_memory_mib)
    write_report(result, result.peak_memory_mib)
    return result


def _peak_rss_mib() -> float:
    """Peak resident memory of this process (the driver), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _lazy_client:
    """Start the Dask cluster only when a product has tiles to run."""

    def __init__(self, settings: cfg.DaskSettings):
        self.settings, self._cm, self._client = settings, None, None

    def __enter__(self):
        return self

    def get(self):
        if self._client is None:
            self._cm = dask_client(self.settings)
            self._client = self._cm.__enter__()
        return self._client

    def peak_worker_mib(self) -> float:
        """Sum over the workers of each one's peak resident memory (MiB); 0 without a cluster.
        A scheduler we did not start reports its workers' lifetime peaks."""
        if self._client is None:
            return 0.0
        try:
            peaks = self._client.run(_peak_rss_mib)
        except Exception:  # a worker that cannot answer does not fail the run
            return 0.0
        return float(sum(peaks.values()))

    def __exit__(self, *exc):
        if self._cm is not None:
            self._cm.__exit__(*exc)
        return False


def _run_product(
    wf: cfg.Workflow,
    name: str,
    product,
    grid: TargetGrid,
    out_dir: Path,
    get_client,
    resume: bool,
    fresh: bool,
    run_id: str = "",
) -> ProductResult:
    from fluxscape.catalog.publish import publish_store, unpublish

    store = out_dir / "products" / f"{name}.zarr"
    manifest = Manifest(out_dir / STATE_DIR / f"{name}.manifest.jsonl")
    catalog_dir = _catalog_dir(wf, out_dir)
    digest = cfg.workflow_hash(wf)
    publish = {"access": cfg.product_access(wf, name), "run_id": run_id}
    if fresh:
        unpublish(catalog_dir, wf.name, name)
        shutil.rmtree(store, ignore_errors=True)
        manifest.path.unlink(missing_ok=True)
    state = manifest.read()
    exists = store.exists() or bool(state["tiles"])
    if exists and not resume:
        raise FluxscapeError(
            f"{store} already exists; use --resume to continue it or --fresh to start again"
        )
    if exists and state["workflow_hash"] not in (None, digest):
        raise FluxscapeError(
            f"{store} was made by a different workflow (digest {state['workflow_hash']}, now "
            f"{digest}); use --fresh to rebuild it"
        )
    if exists and not store.exists():
        raise FluxscapeError(
            f"{manifest.path} lists finished tiles but {store} is missing; use --fresh to "
            "start again"
        )
    total = len(grid.tiles)
    if state["complete"]:
        log.info("%s: complete already (%d tiles); nothing to do", name, total)
        published = publish_store(
            store, catalog_dir, wf.name, name, only_if_missing=True, **publish
        )
        return ProductResult(name, store, total, 0, published=published)

    plan = step_for(product.kind).plan(StepContext(wf, name, product, grid, store, out_dir))
    if not store.exists():
        store.parent.mkdir(parents=True, exist_ok=True)
        create_store(
            store,
            grid.geobox,
            plan.dims,
            plan.variables,
            wf.tile_size,
            _creation_attrs(wf, name, plan.summary),
        )
        manifest.start(digest)
        state = manifest.read()
    todo = [t for t in grid.tiles if t.id not in state["tiles"]]
    log.info(
        "%s: %d of %d tiles to run (%d inputs, %d skipped)",
        name,
        len(todo),
        total,
        len(plan.inputs),
        len(plan.skipped),
    )
    for s in plan.skipped:
        log.warning("skipped input %s: %s", s.path, s.reason)
    failures = []
    if todo:
        client = get_client()
        # Keep a few tasks per worker in flight rather than the whole region's: the driver's
        # memory then depends on the tile, not on the number of tiles.
        in_flight = 2 * max(1, len(client.scheduler_info().get("workers", {})) or wf.dask.workers)
        pending = iter(todo)

        def submit(tile):
            return client.submit(
                plan.run_tile,
                plan.make_task(tile),
                key=f"{name}-tile-{tile.id}-{digest}",
                pure=False,
            )

        queue = as_completed([submit(t) for _, t in zip(range(in_flight), pending, strict=False)])
        bar = progress(f"{name} tiles", len(todo))
        try:
            for future in queue:
                nxt = next(pending, None)
                if nxt is not None:
                    queue.add(submit(nxt))
                try:
                    result = future.result()
                except Exception as exc:
                    failures.append(f"{exc}")
                    log.error("%s: a tile failed: %s", name, exc)
                    continue
                for s in result["skipped"]:
                    log.warning("skipped input %s: %s", s["file"], s["reason"])
                manifest.append(result)
                bar.advance(f"tile {result['tile']}")
        finally:
            bar.close()
    if failures:
        raise FluxscapeError(
            f"{name}: {len(failures)} tile(s) failed (first: {failures[0]}); fix the cause and "
            "rerun with --resume"
        )
    state = manifest.read()
    all_skipped = _merge_skipped(
        [s.to_json() for s in plan.skipped],
        [s for e in state["tiles"].values() for s in e["skipped"]],
    )
    used = [f for f in plan.inputs if f not in {s["file"] for s in all_skipped}]
    if plan.finish is not None:
        plan.finish(store)
    finalize_store(store, _final_attrs(wf, used, all_skipped, plan) | plan.source_attrs | publish)
    write_quicklooks(store, out_dir / "quicklooks", name)
    manifest.append({"complete": True})
    published = publish_store(store, catalog_dir, wf.name, name, **publish)
    return ProductResult(name, store, total, len(todo), all_skipped, published)


def new_run_id(workflow: str) -> str:
    """A unique id for one execution of a workflow: name, UTC start time, random suffix."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{workflow}-{stamp}-{uuid.uuid4().hex[:6]}"


def _catalog_dir(wf: cfg.Workflow, out_dir: Path) -> Path:
    path = Path(wf.output.catalog)
    return path if path.is_absolute() else out_dir / path


def _merge_skipped(*lists: list[dict]) -> list[dict]:
    seen, merged = set(), []
    for entry in (e for lst in lists for e in lst):
        if entry["file"] not in seen:
            seen.add(entry["file"])
            merged.append(entry)
    return sorted(merged, key=lambda e: e["file"])


def _creation_attrs(wf: cfg.Workflow, product: str, summary: str) -> dict:
    created = datetime.now(UTC).replace(microsecond=0).isoformat()
    return {
        "title": f"fluxscape {product} product of workflow {wf.name}",
        "summary": summary,
        # the readers of the inputs this product is made from (through its source products)
        "source": ", ".join(sorted({wf.inputs[i].reader for i in cfg.product_inputs(wf, product)})),
        "history": f"{created} created by fluxscape {fluxscape.__version__} (workflow {wf.name})",
        "Conventions": "CF-1.10",
        "institution": "fluxscape",
        "product": product,
        "run": wf.name,
        "fluxscape_version": fluxscape.__version__,
        "workflow": cfg.workflow_yaml(wf),
        "workflow_hash": cfg.workflow_hash(wf),
        "date_created": created,
        "models": [],
        "inputs": [],
        "skipped_inputs": [],
    }


def _final_attrs(wf: cfg.Workflow, used: list[str], skipped: list[dict], plan) -> dict:
    w, s, e, n = wf.region.lonlat_bbox
    attrs = {
        "inputs": [
            {"file": os.path.basename(f), "path": f, "sha256": file_checksum(f)}
            for f in used
            if Path(f).is_file()
        ],
        "skipped_inputs": skipped,
        "geospatial_lon_min": w,
        "geospatial_lat_min": s,
        "geospatial_lon_max": e,
        "geospatial_lat_max": n,
    }
    if "time" in plan.dims:
        times = pd.DatetimeIndex(plan.dims["time"])
        attrs["time_coverage_start"] = str(times[0].date())
        attrs["time_coverage_end"] = str(times[-1].date())
    return attrs


def _write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


__all__ = ["run_workflow", "prepare", "RunResult", "ProductResult"]
