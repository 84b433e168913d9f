"""``fluxscape run``: validate a workflow, then build each product tile by tile on Dask.

Order of work for each product: index the input headers (bad files are skipped and
recorded), create the store if needed, run the tiles that the manifest does not list as
finished, finalise the store's provenance, and only then publish it to the catalog.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from distributed import as_completed

import fluxscape
from fluxscape.errors import FluxscapeError, storage_message, storage_problem
from fluxscape.pipeline import config as cfg
from fluxscape.pipeline import progress, remote
from fluxscape.pipeline.archive import Mapper, dask_map
from fluxscape.pipeline.budget import check_budget
from fluxscape.pipeline.cluster import dashboard_link, dask_client
from fluxscape.pipeline.inputs import (
    InputChanged,
    check_indexes_unchanged,
    file_checksum,
    index_input,
    input_record,
)
from fluxscape.pipeline.noop import forget_record, invocation_key, noop_resume, write_record
from fluxscape.pipeline.outdir import (
    STATE_DIR,
    OutputLock,
    check_output_dir,
    inside,
    mark_output_dir,
)
from fluxscape.pipeline.outstore import Outputs, check_remote_output
from fluxscape.pipeline.quicklook import draw_quicklooks, quicklook_variables, write_quicklooks
from fluxscape.pipeline.report import product_sections, record_run, write_report
from fluxscape.pipeline.schema import input_names
from fluxscape.pipeline.steps import step_for
from fluxscape.pipeline.steps.base import StepContext
from fluxscape.pipeline.store import (
    Manifest,
    create_store,
    finalize_store,
    write_tile,
)
from fluxscape.pipeline.summary import ProductResult, RunResult, peak_rss_mib, store_facts
from fluxscape.readers.registry import get_reader

log = logging.getLogger(__name__)
#: Tracebacks of failed tiles: written to the run's log file only, never to the terminal.
trace_log = logging.getLogger("fluxscape_trace")
trace_log.propagate = False


def prepare(
    workflow_path: str | Path,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    catalog: str | Path | None = None,
) -> cfg.Workflow:
    """Load, validate and resolve a workflow with command-line overrides, and check its
    budget (:func:`fluxscape.pipeline.budget.check_budget`); no work done."""
    wf, base = cfg.load_workflow(workflow_path)
    wf = cfg.resolve_workflow(wf, base, out=out, data_dir=data_dir)
    dask_update = {}
    if scheduler:
        dask_update["scheduler"] = scheduler
    if workers:
        dask_update["workers"] = workers
    if dask_update:
        wf = wf.model_copy(update={"dask": wf.dask.model_copy(update=dask_update)})
    if catalog is not None:
        output = wf.output.model_copy(update={"catalog": str(Path(catalog).resolve())})
        wf = wf.model_copy(update={"output": output})
    check_budget(wf)
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
    allow_partial: bool = False,
    dashboard: Callable[[str], None] | None = None,
    started: float | None = None,
) -> RunResult:
    """Run a workflow file. ``resume`` continues stores a previous run started (finished
    tiles are skipped, finished stores left untouched); ``fresh`` rebuilds them (the published
    store stays readable until the new one replaces it); with neither, existing stores are an
    error so that nothing written is lost. ``catalog`` overrides the workflow's catalog
    directory (e.g. one shared by several runs). ``allow_partial`` publishes a product whose
    share of skipped inputs exceeds ``max_skipped_share``, marked as partial.
    ``dashboard``: called with the Dask dashboard's address when the cluster is up (a
    cluster started here serves one only then, on a free port). ``started``: when the
    command started (``time.monotonic()``), for the wall time.

    Every input the products read is indexed, and every product checked, before the first
    product runs. A ``--resume`` with nothing to do is decided before anything is loaded
    (:mod:`fluxscape.pipeline.noop`). The run's log (tracebacks of failed tiles included) is
    ``OUT/.fluxscape/run.log``."""
    started = time.monotonic() if started is None else started
    if resume and not fresh:
        done = noop_resume(workflow_path, out, data_dir, scheduler, workers, catalog, started)
        if done is not None:
            return done
    wf = prepare(workflow_path, out, data_dir, scheduler, workers, catalog)
    run_id = new_run_id(wf.name)
    outputs = Outputs.of(wf.output.dir)
    if outputs.remote:  # object storage: small files made in a local work folder, uploaded
        check_remote_output(outputs)
        outputs.pull()
        out_dir = outputs.out_dir
    else:
        out_dir = check_output_dir(Path(wf.output.dir), [Path(wf.data_dir)])
    with OutputLock(out_dir, command=f"fluxscape run {workflow_path}"):
        mark_output_dir(out_dir)
        outputs.claim(f"fluxscape run {workflow_path}")
        forget_record(out_dir)  # kept again only if this run succeeds
        _write_if_changed(out_dir / "workflow.yaml", cfg.workflow_yaml(wf))
        results = []
        with (
            _run_log(out_dir / STATE_DIR / "run.log"),
            _lazy_client(wf.dask, dashboard, out_dir / STATE_DIR / "jobs") as lazy,
        ):
            contexts = _contexts(wf, out_dir, resume, fresh, lazy.get)
            for ctx in contexts.values():
                if ctx is not None:
                    step_for(ctx.product.kind).check(ctx)
            finishing: list = []  # products whose quicklooks are drawn on a worker
            try:
                for name, ctx in contexts.items():
                    results.append(
                        _run_product(
                            wf, name, ctx, lazy.get, resume, fresh, run_id, allow_partial, finishing
                        )
                    )
                    _finish_published(finishing, wait=False)
                _finish_published(finishing, wait=True)
            except Exception:
                # products finished before the failure are catalogued, as they always were
                with contextlib.suppress(Exception):
                    _finish_published(finishing, wait=True)
                raise
            workers_peak = lazy.peak_worker_mib()
        result = RunResult(out_dir, wf, results, time.monotonic() - started, run_id=run_id)
        result.facts = _report_facts(wf, out_dir)
        result.cluster = lazy.started
        result.driver_peak_mib = peak_rss_mib()
        result.workers_peak_mib = workers_peak
        result.peak_memory_mib = result.driver_peak_mib + (workers_peak or 0.0)
        with progress.phase("writing the run report"):
            record_run(result, result.peak_memory_mib)
            write_report(result, result.peak_memory_mib)
        key = _invocation_key(wf, workflow_path, out, data_dir, scheduler, workers, catalog)
        inputs = [p for i in wf.inputs.values() for p in i.paths]
        write_record(result, key, str(wf.data_dir), inputs)
        outputs.upload_run_files()
    return result


def _invocation_key(wf, workflow_path, out, data_dir, scheduler, workers, catalog) -> str | None:
    """The key of the no-op record (:func:`fluxscape.pipeline.noop.invocation_key`) of these
    arguments as they read now, when they give the workflow this run made (the run may have
    written the workflow file itself: ``run OUT/workflow.yaml``); None when they do not
    (e.g. the file was edited during the run), and no record is kept."""
    key = invocation_key(workflow_path, out, data_dir, catalog, scheduler, workers)
    try:
        again = prepare(workflow_path, out, data_dir, scheduler, workers, catalog)
    except FluxscapeError:
        return None
    return key if cfg.workflow_yaml(again) == cfg.workflow_yaml(wf) else None


def _report_facts(wf: cfg.Workflow, out_dir: Path) -> dict:
    """What the run report's head shows of the workflow."""
    return {
        "name": wf.name,
        "description": wf.description,
        "bbox": list(wf.region.lonlat_bbox),
        "period": f"{wf.period.start} – {wf.period.end} ({wf.period.step})",
        "workflow": str(out_dir / "workflow.yaml"),
    }


def resume_action(wf: cfg.Workflow, out_dir: Path, name: str) -> tuple[str, str]:
    """What ``--resume`` does with product ``name`` in ``out_dir``, and why: ``keep`` (its
    store is complete and its digest, :func:`~fluxscape.pipeline.config.product_hash`, is
    unchanged), ``continue`` (an unfinished store of the same digest), ``rebuild`` (made
    with other settings, inputs or source products) or ``build`` (nothing there yet)."""
    outputs = _outputs(wf, out_dir)
    state = outputs.manifest(name).read()
    digest = cfg.product_hash(wf, name)
    made = state["workflow_hash"]
    if made is not None and made != digest:
        return "rebuild", (
            "its settings, inputs or source products changed since it was made "
            f"(digest {made}, now {digest})"
        )
    published = outputs.published(name) is not None
    if state["complete"] and published:
        return "keep", "complete, same digest"
    if state["tiles"] and outputs.exists(outputs.staging(name)):
        return "continue", f"{len(state['tiles'])} tile(s) finished"
    return "build", "store incomplete" if published else "no store yet"


#: Degrees added around the region before a file name's tile or segment box is compared with
#: it: a product grid's pixel edges may lie up to a pixel outside the region's bbox.
NAME_RULE_MARGIN_DEG = 0.5


def index_inputs(
    wf: cfg.Workflow,
    names,
    out_dir: Path | None = None,
    mapper: Mapper | None = None,
    *,
    reuse: bool = True,
    write_cache: bool = True,
) -> dict:
    """The input index of each named raster or sounding input (listings and headers only;
    unreadable files are skipped and logged), cached in ``OUT/.fluxscape/index/`` when
    ``out_dir`` is given (``reuse=False`` reads every header again, ``write_cache=False``
    leaves the cache as it is); header reads go through ``mapper`` (Dask workers or a process
    pool, :mod:`fluxscape.pipeline.archive`) when there are many. Files whose names place them
    outside the region are not opened. FluxscapeError when none of an input's files reads."""
    w, s, e, n = wf.region.lonlat_bbox
    m = NAME_RULE_MARGIN_DEG
    region = (max(-180.0, w - m), max(-90.0, s - m), min(180.0, e + m), min(90.0, n + m))
    cache_dir = None
    if out_dir is not None and (reuse or write_cache):
        cache_dir = inside(out_dir, out_dir / STATE_DIR / "index")
    index = {}
    for name in sorted(names):
        inp = wf.inputs[name]
        if get_reader(inp.reader).granule_info is None:
            continue
        found = index_input(
            name,
            inp.reader,
            inp.paths,
            region=region,
            cache_dir=cache_dir,
            mapper=mapper,
            content_hash=wf.provenance.content_hash,
            reuse_cache=reuse,
            write_cache=write_cache,
        )
        log.info(
            "input %s: %d file(s) listed, %d placed outside the region by name, %d header(s) read",
            name,
            len(found.files) + found.outside,
            found.outside,
            found.read,
        )
        if found.files and not found.granules and found.skipped:
            raise FluxscapeError(
                f"inputs.{name}: none of its {len(found.files)} file(s) could be read "
                f"(first: {found.skipped[0].path}: {found.skipped[0].reason})"
            )
        for s in found.skipped:
            log.warning("skipped input %s: %s", s.path, s.reason)
        index[name] = found
    return index


def make_context(wf: cfg.Workflow, out_dir: Path, name: str, index: dict) -> StepContext:
    """The StepContext of product ``name``: its grid, staging store and digest."""
    product = wf.products[name]
    grid = step_for(product.kind).grid(wf, product)
    return StepContext(
        wf,
        name,
        product,
        grid,
        _staging(wf, out_dir, name),
        out_dir,
        index,
        cfg.product_hash(wf, name),
    )


def _contexts(
    wf: cfg.Workflow, out_dir: Path, resume: bool, fresh: bool, get_client: Callable
) -> dict:
    """Per product in run order, its StepContext, or None when its store is complete and
    will be kept. The raster and sounding inputs of the products to run are indexed here,
    once; an input none of whose files can be read is an error before any product runs."""
    todo = {}
    for name in cfg.run_order(wf.products):
        action, why = resume_action(wf, out_dir, name) if resume and not fresh else ("", "")
        if action == "rebuild":
            log.info("%s: rebuilding: %s", name, why)
        todo[name] = None if action == "keep" else wf.products[name]
    names = {i for p in todo.values() if p is not None for i in input_names(p)}
    index = index_inputs(wf, names, out_dir, dask_map(get_client), reuse=not fresh)
    return {
        name: None if product is None else make_context(wf, out_dir, name, index)
        for name, product in todo.items()
    }


def _outputs(wf: cfg.Workflow, out_dir: Path) -> Outputs:
    """The store backend of the run: OUT ``out_dir`` itself, or the object-store prefix of
    ``output.dir`` (with ``out_dir`` its local work folder)."""
    outputs = Outputs.of(wf.output.dir)
    return outputs if outputs.remote else Outputs(out_dir)


def _store(out_dir: Path, name: str) -> Path:
    """Where a finished product store is published (a link to its current version)."""
    path = out_dir / "products" / f"{name}.zarr"
    inside(out_dir, path.parent)
    return path


def _staging(wf: cfg.Workflow, out_dir: Path, name: str) -> Path | str:
    """Where a product store is built until it is finished (readers never see it)."""
    outputs = _outputs(wf, out_dir)
    path = outputs.staging(name)
    if not outputs.remote:
        inside(out_dir, path)
    return path


def _manifest(out_dir: Path, name: str) -> Manifest:
    """The product's record of finished tiles (a local OUT's)."""
    return Manifest(inside(out_dir, out_dir / STATE_DIR / f"{name}.manifest.jsonl"))


class _Forward(logging.Handler):
    """Hands the records of ``level`` and above to ``target`` (not a StreamHandler, which
    distributed would silence)."""

    def __init__(self, target: logging.Handler, level: int):
        super().__init__(level)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


class _run_log:
    """Also write the fluxscape log (with tracebacks) to ``path`` during a run."""

    def __init__(self, path: Path):
        self.path = path
        self.handler = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handler = logging.FileHandler(self.path)
        self.handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        self.handler.setLevel(logging.INFO)
        root = logging.getLogger("fluxscape")
        root.addHandler(self.handler)
        # distributed's warnings too, those kept off the terminal (fluxscape.logs) included;
        # through a handler of its own: a LocalCluster silences the stream handlers of
        # distributed's logger (a FileHandler is one) while it runs
        self.dask_handler = _Forward(self.handler, logging.WARNING)
        logging.getLogger("distributed").addHandler(self.dask_handler)
        trace_log.addHandler(self.handler)
        trace_log.setLevel(logging.INFO)
        if root.getEffectiveLevel() > logging.INFO:
            self._level = root.level
            root.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        root = logging.getLogger("fluxscape")
        root.removeHandler(self.handler)
        logging.getLogger("distributed").removeHandler(self.dask_handler)
        trace_log.removeHandler(self.handler)
        if hasattr(self, "_level"):
            root.setLevel(self._level)
        self.handler.close()
        return False


def execute_tile(run_tile, task, store: str) -> dict:
    """Run one tile task on a worker and write its data into the store's region: the runner
    alone writes stores. Returns the manifest entry (tile id and what the tile read)."""
    result = run_tile(task)
    target = store if remote.is_url(store) else Path(store)
    write_tile(target, result.data, task.tile.rows, task.tile.cols)
    return {"tile": task.tile.id, **result.inputs.to_json()}


class _lazy_client:
    """Start the Dask cluster only when a product has tiles to run; ``dashboard`` (a
    callable) is given the dashboard's address once it is up."""

    def __init__(
        self,
        settings: cfg.DaskSettings,
        dashboard: Callable[[str], None] | None = None,
        job_logs: Path | None = None,
    ):
        self.settings, self.dashboard, self._cm, self._client = settings, dashboard, None, None
        self.job_logs = job_logs  # Slurm/PBS worker job logs (OUT/.fluxscape/jobs)

    def __enter__(self):
        return self

    @property
    def started(self) -> bool:
        return self._client is not None

    def get(self):
        if self._client is None:
            self._cm = dask_client(
                self.settings, dashboard=self.dashboard is not None, job_logs=self.job_logs
            )
            self._client = self._cm.__enter__()
            if self.dashboard is not None:
                self.dashboard(dashboard_link(self._client))
        return self._client

    def peak_worker_mib(self) -> float | None:
        """Sum over the workers of each one's peak resident memory (MiB); None without a
        cluster or when a worker cannot answer. A scheduler we did not start reports its
        workers' lifetime peaks."""
        if self._client is None:
            return None
        try:
            peaks = self._client.run(peak_rss_mib)
        except Exception:  # a worker that cannot answer does not fail the run
            return None
        return float(sum(peaks.values()))

    def __exit__(self, *exc):
        if self._cm is not None:
            self._cm.__exit__(*exc)
        return False


def _run_product(
    wf: cfg.Workflow,
    name: str,
    ctx: StepContext | None,
    get_client,
    resume: bool,
    fresh: bool,
    run_id: str = "",
    allow_partial: bool = False,
    finishing: list | None = None,
) -> ProductResult:
    """Run one product (``ctx`` None: kept as it is). Its quicklooks and catalog entry are
    appended to ``finishing`` (callables, in run order, see :func:`_finish_published`): the
    quicklooks are drawn on a worker while later products run; without ``finishing`` they
    are made before this returns."""
    from fluxscape.catalog.publish import publish_store

    outputs = Outputs.of(wf.output.dir)
    out_dir = outputs.out_dir
    if not outputs.remote:
        _store(out_dir, name)  # the products folder must lie inside OUT
    staging = _staging(wf, out_dir, name)
    store = outputs.published(name) or outputs.pointer(name)
    manifest = outputs.manifest(name)
    deferred = [] if finishing is None else finishing
    catalog_dir = cfg.catalog_dir(wf, out_dir)
    publish = {"access": cfg.product_access(wf, name), "run_id": run_id}
    if ctx is None:  # complete, and kept (--resume)
        total = len(step_for(wf.products[name].kind).grid(wf, wf.products[name]).tiles)
        log.info("%s: complete already (%d tiles); nothing to do", name, total)
        quicklooks = inside(out_dir, out_dir / "quicklooks")
        if not (quicklooks / name).exists():  # a run stopped before they were drawn
            write_quicklooks(store, quicklooks, name)
            outputs.upload_published(catalog_dir)
        # checks the catalog entry and repairs it if an earlier publication was cut short
        published = publish_store(
            store, catalog_dir, wf.name, name, only_if_missing=True, access=publish["access"]
        )
        skipped = _stored_skipped(store)
        version, variables = store_facts(store)
        kind = wf.products[name].kind
        return ProductResult(
            name, store, total, 0, skipped, published, kind, "reused", version, variables
        )
    replaces = outputs.published(name) is not None
    digest = ctx.digest
    if fresh:
        outputs.remove(staging)
        manifest.unlink(missing_ok=True)
    state = manifest.read()
    staged = outputs.exists(staging)
    if (replaces or staged or bool(state["tiles"])) and not (resume or fresh):
        raise FluxscapeError(
            f"{store if replaces else staging} already exists; use --resume to continue "
            "it or --fresh to start again"
        )
    if (staged or state["tiles"]) and state["workflow_hash"] not in (None, digest):
        log.log(
            logging.DEBUG if state["complete"] else logging.INFO,  # a rebuild is logged already
            "%s: starting again: the unfinished store was made with other settings, inputs or "
            "source products (digest %s, now %s)",
            name,
            state["workflow_hash"],
            digest,
        )
        outputs.remove(staging)
        manifest.unlink(missing_ok=True)
        state = manifest.read()
        staged = False
    if state["tiles"] and not staged:
        raise FluxscapeError(
            f"{manifest.path} lists finished tiles but {staging} is missing; use --fresh to "
            "start again"
        )
    if state["complete"] and replaces and not staged:
        state = {"workflow_hash": None, "tiles": {}, "complete": False}  # rebuilt: --fresh

    grid = ctx.grid
    action = "continued" if state["tiles"] else ("rebuilt" if replaces else "built")
    step = step_for(ctx.product.kind)
    ctx = dataclasses.replace(ctx, client=get_client)
    with progress.phase(f"{name}: planning"):
        plan = step.plan(ctx)
    if not staged:
        if not outputs.remote:
            staging.parent.mkdir(parents=True, exist_ok=True)
        create_store(
            staging,
            grid.geobox,
            plan.dims,
            plan.variables,
            wf.tile_size,
            _creation_attrs(wf, name, plan.summary),
            plan.time_bounds,
        )
        manifest.start(digest)
        state = manifest.read()
    total = len(grid.tiles)
    todo = [t for t in grid.tiles if t.id not in state["tiles"]]
    log.info(
        "%s: %d of %d tiles to run (%d candidate inputs, %d skipped, %d of other kinds)",
        name,
        len(todo),
        total,
        len(plan.inputs),
        len(plan.skipped),
        len(plan.ignored),
    )
    for s in plan.ignored:
        log.debug("%s ignores %s: %s", name, s.path, s.reason)
    if todo:
        _run_tiles(wf, name, plan, step, todo, staging, manifest, get_client, digest)
    state = manifest.read()
    entries = list(state["tiles"].values())
    all_skipped = _merge_skipped(
        [s.to_json() for s in plan.skipped], [s for e in entries for s in e["skipped"]]
    )
    skipped_files = {s["file"] for s in all_skipped}
    if not any(e.get("observations", 0) for e in entries):
        raise FluxscapeError(
            f"products.{name}: its tiles read no usable observation from "
            f"{len(plan.inputs)} candidate input file(s)"
            + (
                f"; {len(all_skipped)} skipped (first: {all_skipped[0]['file']}: "
                f"{all_skipped[0]['reason']})"
                if all_skipped
                else ""
            )
            + "; nothing was published"
        )
    opened = {f for e in entries for f in e.get("opened", [])}
    from_tiles = {f for e in entries for f in e.get("used", [])}
    used = sorted((from_tiles | set(plan.used)) - skipped_files)
    no_data = sorted(opened - from_tiles - skipped_files)
    for f in no_data:
        log.warning("input %s gave no usable value over the region; not counted as used", f)
    considered = len(set(plan.inputs) | skipped_files)
    share = len(skipped_files) / considered if considered else 0.0
    partial = share > wf.max_skipped_share
    if partial and not allow_partial:
        raise FluxscapeError(
            f"products.{name}: {len(skipped_files)} of {considered} input file(s) "
            f"({share:.0%}) were skipped, more than max_skipped_share {wf.max_skipped_share:g} "
            f"(first: {all_skipped[0]['file']}: {all_skipped[0]['reason']}); fix the inputs "
            "and rerun with --resume, or publish it marked partial with --allow-partial"
        )
    with progress.phase(f"{name}: finishing (metadata, quicklooks, catalog)"):
        if plan.finish is not None:
            plan.finish(staging)
        attrs = _final_attrs(wf, used, all_skipped, plan, ctx.inputs) | plan.source_attrs | publish
        attrs |= {
            "partial": partial,
            "inputs_without_data": no_data,
            # files of the product's inputs that hold other layers (e.g. MOD13 tiles for lst)
            "ignored_inputs": [s.to_json() for s in plan.ignored],
        }
        try:  # after the inputs' checksums above: the recorded sums are of the indexed files
            check_indexes_unchanged(
                ctx.inputs[i] for i in input_names(ctx.product) if i in ctx.inputs
            )
        except InputChanged as exc:
            raise _input_changed(name, exc) from None
        finalize_store(staging, attrs)
        store = outputs.publish(name, run_id or new_run_id(wf.name))
        manifest.append({"complete": True})
    version, variables = store_facts(store)
    result = ProductResult(
        name,
        store,
        total,
        len(todo),
        all_skipped,
        None,
        ctx.product.kind,
        action,
        version,
        variables,
    )
    quicklooks = inside(out_dir, out_dir / "quicklooks")
    client = get_client() if todo else None  # the cluster is up when tiles ran
    drawn = sections = None
    if client is not None:
        # below the tiles' priority: drawn when a worker has no tile to run (while the driver
        # plans the next product, or at the end), never ahead of the next product's tiles
        later = {"pure": False, "priority": -10}
        drawn = [
            client.submit(draw_quicklooks, store, quicklooks, name, [v], **later)
            for v in quicklook_variables(store)
        ]
        # the run report's sections of the product, rendered into its cache after the maps
        kind = ctx.product.kind
        sections = client.submit(product_sections, out_dir, name, kind, store, *drawn, **later)

    def publish_product() -> None:
        """Quicklooks drawn (on a worker, while later products run), then catalogued."""
        if drawn is None:
            write_quicklooks(store, quicklooks, name)
        else:
            client.gather(drawn)
            # the folder even for a store without maps (what a --resume looks for)
            (quicklooks / name).mkdir(parents=True, exist_ok=True)
        result.published = publish_store(store, catalog_dir, wf.name, name, **publish)
        outputs.upload_published(catalog_dir)
        if sections is not None:
            sections.result()

    publish_product.ready = lambda: sections is None or sections.done()
    deferred.append(publish_product)
    if finishing is None:
        _finish_published(deferred, wait=True)
    return result


def _finish_published(finishing: list, wait: bool) -> None:
    """Run the products' deferred finishing (quicklooks, catalog entry) in run order: all of
    them with ``wait``, else those whose quicklooks are drawn already, up to the first still
    drawing."""
    while finishing and (wait or finishing[0].ready()):
        finishing.pop(0)()


def _run_tiles(wf, name, plan, step, todo, staging, manifest, get_client, digest) -> None:
    """Run the tiles on Dask, appending each finished one to the manifest; the first tile
    that fails stops the product (its traceback goes to the log)."""
    client = get_client()
    # Keep a few tasks per worker in flight rather than the whole region's: the driver's
    # memory then depends on the tile, not on the number of tiles.
    in_flight = 2 * max(1, len(client.scheduler_info().get("workers", {})) or wf.dask.workers)
    pending = iter(todo)

    def submit(tile):
        return client.submit(
            execute_tile,
            step.run_tile,
            plan.make_task(tile),
            str(staging),
            key=f"{name}-tile-{tile.id}-{digest}",
            pure=False,
        )

    queue = as_completed([submit(t) for _, t in zip(range(in_flight), pending, strict=False)])
    bar = progress.progress(f"{name} tiles", len(todo))
    logged: set[str] = set()
    try:
        for future in queue:
            try:
                result = future.result()
            except Exception as exc:
                tb = "".join(traceback.format_exception(exc))
                trace_log.error("%s: tile %s failed:\n%s", name, future.key, tb)
                for other in list(queue.futures):
                    other.cancel()
                if isinstance(exc, InputChanged):
                    raise _input_changed(name, exc) from None
                if storage_problem(exc):
                    message = f"products.{name}: {storage_message(exc, staging)}"
                    raise FluxscapeError(message) from None
                raise FluxscapeError(
                    f"{name}: a tile failed: {type(exc).__name__}: {exc} (traceback in "
                    f"{Path(wf.output.dir) / STATE_DIR / 'run.log'}); fix the cause and rerun "
                    "with --resume"
                ) from None
            nxt = next(pending, None)
            if nxt is not None:
                queue.add(submit(nxt))
            for s in result["skipped"]:
                if s["file"] not in logged:
                    logged.add(s["file"])
                    log.warning("skipped input %s: %s", s["file"], s["reason"])
            manifest.append(result)
            bar.advance(f"tile {result['tile']}")
    finally:
        bar.close()


def _input_changed(name: str, exc: InputChanged) -> FluxscapeError:
    """The run's error for an input that changed while product ``name`` was made."""
    return FluxscapeError(f"products.{name}: {exc}; nothing was published: rerun with --fresh")


def _stored_skipped(store: Path) -> list[dict]:
    """The skipped inputs a finished store records (for the summary of a kept product)."""
    import zarr

    try:
        return list(zarr.open_group(str(store), mode="r").attrs.get("skipped_inputs", []))
    except (OSError, ValueError, KeyError):
        return []


def new_run_id(workflow: str) -> str:
    """A unique id for one execution of a workflow: name, UTC start time, random suffix."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{workflow}-{stamp}-{uuid.uuid4().hex[:6]}"


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
        "product_hash": cfg.product_hash(wf, product),
        "date_created": created,
        "models": [],
        "inputs": [],
        "skipped_inputs": [],
        **({"license": wf.output.license} if wf.output.license else {}),
    }


def _final_attrs(
    wf: cfg.Workflow, used: list[str], skipped: list[dict], plan, indexes: dict
) -> dict:
    w, s, e, n = wf.region.lonlat_bbox
    stamps, hashes = {}, {}
    for index in indexes.values():
        stamps |= index.stamps()
        hashes |= index.hashes
    attrs = {
        "inputs": [r for r in map(_provenance(wf, stamps, hashes), used) if r is not None],
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


def _provenance(wf: cfg.Workflow, stamps: dict, hashes: dict) -> Callable[[str], dict | None]:
    """The provenance record of a used input file: its stamp from the index (no new request
    or stat), and its SHA-256 when ``provenance.content_hash`` asks for one (computed on the
    workers while indexing; in the driver for the few files no index lists, e.g. tower
    tables)."""

    def record(path: str) -> dict | None:
        sha = hashes.get(path)
        if sha is None and wf.provenance.content_hash and path not in stamps:
            try:
                sha = file_checksum(path)
            except OSError:
                return None
        return input_record(path, stamps.get(path), sha)

    return record


def _write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


__all__ = ["run_workflow", "prepare", "RunResult", "ProductResult"]
