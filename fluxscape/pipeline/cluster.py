"""Dask clusters: an existing scheduler, a LocalCluster, or Slurm/PBS through dask-jobqueue.

The same tile tasks run unchanged on each; only how the client is made differs.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import dask
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from fluxscape.errors import FluxscapeError
from fluxscape.logs import tame_dask_loggers
from fluxscape.pipeline.schema import DaskSettings

log = logging.getLogger(__name__)
tame_dask_loggers()  # importing distributed just reset its loggers' levels


def dashboard_link(client: Client) -> str:
    """The address of the Dask dashboard of ``client``'s cluster (a hint appended when the
    page cannot show plots: the dashboard needs bokeh)."""
    import importlib.util

    link = client.dashboard_link
    if importlib.util.find_spec("bokeh") is None:
        link += " (its plots need bokeh: pip install 'bokeh>=3.1')"
    return link


@contextlib.contextmanager
def dask_client(
    settings: DaskSettings, dashboard: bool = False, job_logs: Path | None = None
) -> Iterator[Client]:
    """A connected Client for ``settings``; clusters it starts are closed on exit. A cluster
    started here serves the Dask dashboard only with ``dashboard`` (on a free port: never a
    fixed one another cluster may hold). Slurm/PBS worker jobs write their logs into
    ``job_logs`` (the run's ``OUT/.fluxscape/jobs``) unless ``dask.jobqueue.log_directory`` or
    the site's Dask configuration names a folder: without one, the scheduler writes them into
    the folder the run was started from."""
    if settings.scheduler:
        try:
            client = Client(settings.scheduler, timeout="20s")
        except OSError as exc:
            raise FluxscapeError(
                f"cannot reach the Dask scheduler at {settings.scheduler} ({exc})"
            ) from exc
        log.info("using the Dask scheduler at %s", settings.scheduler)
        with client:
            yield client
        return
    if settings.cluster in ("slurm", "pbs"):
        try:
            import dask_jobqueue
        except ImportError as exc:
            raise FluxscapeError(
                "dask.cluster: slurm/pbs needs dask-jobqueue (pip install 'fluxscape[cluster]')"
            ) from exc
        cls = (
            dask_jobqueue.SLURMCluster if settings.cluster == "slurm" else dask_jobqueue.PBSCluster
        )
        kwargs = {
            "cores": settings.threads_per_worker,
            "memory": settings.memory_limit,
            **settings.jobqueue,
        }
        configured = dask.config.get(f"jobqueue.{settings.cluster}.log-directory", None)
        if job_logs is not None and "log_directory" not in kwargs and not configured:
            job_logs.mkdir(parents=True, exist_ok=True)
            kwargs["log_directory"] = str(job_logs)
        options = dict(kwargs.get("scheduler_options") or {})
        options.setdefault("dashboard_address", ":0")  # a free port, not 8787
        options.setdefault("dashboard", dashboard)
        kwargs["scheduler_options"] = options
        with cls(**kwargs) as cluster:
            log.debug("%s job script:\n%s", settings.cluster, cluster.job_script())
            cluster.scale(jobs=settings.workers)
            log.info(
                "submitting %d %s worker job(s) (logs in %s); tiles run as they start",
                settings.workers,
                settings.cluster,
                kwargs.get("log_directory") or configured or "the current folder",
            )
            with Client(cluster) as client:
                yield client
        return
    _quiet_resource_tracker()
    # Workers sample their stacks every 10 ms and keep the call trees (~0.2 MiB per tile):
    # nobody reads them without a dashboard, and they make worker memory grow with run time.
    with (
        dask.config.set({"distributed.worker.profile.enabled": False}),
        _quiet_start() as deliver_deferred,
    ):
        cluster = LocalCluster(
            n_workers=settings.workers,
            threads_per_worker=settings.threads_per_worker,
            memory_limit=settings.memory_limit,
            processes=settings.processes,
            dashboard_address=":0" if dashboard else None,
            # the scheduler's HTTP server (health checks, and the dashboard if asked for) on
            # a free port, not 8787
            scheduler_kwargs={"dashboard_address": ":0"},
            # a failed task is logged by the runner (its traceback in the run log), not here
            silence_logs=logging.CRITICAL,
        )
    with cluster:
        deliver_deferred()
        log.info("started a LocalCluster with %d worker(s)", settings.workers)
        with Client(cluster) as client:
            if settings.processes:
                client.register_plugin(ExitWhenClosed())
            yield client


class ExitWhenClosed(WorkerPlugin):
    """A worker process of a LocalCluster this module started ends as soon as its worker has
    closed, without Python's interpreter teardown.

    With fluxscape's libraries imported (xarray, zarr, scikit-learn, LightGBM, ...) that
    teardown takes 1-4 s, longer than the nanny's 4 s wait on a busy machine, after which the
    nanny kills the process anyway: every run spent up to 4 s closing its cluster. Nothing is
    left to write by then (tiles and logs are written and flushed while tasks run). Not
    registered on workers of a scheduler the user runs (``dask.scheduler``) or of batch jobs."""

    name = "fluxscape-exit-when-closed"

    def teardown(self, worker) -> None:
        if multiprocessing.parent_process() is None:
            return  # a worker thread of this very process (dask.processes: false)
        # atexit runs last-registered first: this ends the process at the start of the
        # interpreter's exit, after multiprocessing's own exit handling has run
        atexit.register(os._exit, 0)


@contextlib.contextmanager
def _quiet_start() -> Iterator[Callable[[], None]]:
    """While the cluster starts: SIGINT is ignored and a SIGTERM is held back; yields a
    function that sends the held-back SIGTERM again (call it once the started cluster will be
    closed on the way out: a half-started one prints tracebacks when Python exits).

    The worker processes spawned meanwhile inherit the ignored SIGINT and keep it (Python
    leaves an ignored SIGINT ignored): Ctrl-C in a terminal signals the whole process group,
    and only the driver should react, closing the cluster; workers hit by KeyboardInterrupt
    print tracebacks. A Ctrl-C during the few seconds of the start is lost."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    held: list[int] = []
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda signum, frame: held.append(signum)),
    }

    def deliver() -> None:
        if held:
            signal.raise_signal(held[0])

    try:
        yield deliver
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _quiet_resource_tracker() -> None:
    """Keep multiprocessing's resource tracker from warning about "leaked semaphore objects"
    when a run is stopped (Ctrl-C, SIGTERM) and workers killed mid-tile: the tracker cleans
    them up itself. The tracker and the workers are separate interpreters; they take their
    warning filters from this one's ``sys.warnoptions`` when they are spawned."""
    option = "ignore:resource_tracker:UserWarning"
    if option not in sys.warnoptions:
        sys.warnoptions.append(option)
