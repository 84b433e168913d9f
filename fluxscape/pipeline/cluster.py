"""Dask clusters: an existing scheduler, a LocalCluster, or Slurm/PBS through dask-jobqueue.

The same tile tasks run unchanged on each; only how the client is made differs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import dask
from distributed import Client, LocalCluster

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.schema import DaskSettings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(settings: DaskSettings) -> Iterator[Client]:
    """A connected Client for ``settings``; clusters it starts are closed on exit."""
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
        with cls(**kwargs) as cluster:
            cluster.scale(jobs=settings.workers)
            with Client(cluster) as client:
                yield client
        return
    # Workers sample their stacks every 10 ms and keep the call trees (~0.2 MiB per tile):
    # nobody reads them without a dashboard, and they make worker memory grow with run time.
    with (
        dask.config.set({"distributed.worker.profile.enabled": False}),
        LocalCluster(
            n_workers=settings.workers,
            threads_per_worker=settings.threads_per_worker,
            memory_limit=settings.memory_limit,
            processes=settings.processes,
            dashboard_address=None,
            # a failed task is logged by the runner (its traceback in the run log), not here
            silence_logs=logging.CRITICAL,
        ) as cluster,
    ):
        log.info("started a LocalCluster with %d worker(s)", settings.workers)
        with Client(cluster) as client:
            yield client
