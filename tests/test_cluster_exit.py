"""A LocalCluster's worker processes end as soon as their worker has closed (no interpreter
teardown, which made the nanny wait 4 s and kill them at the end of every run)."""

from __future__ import annotations

import atexit
import os

from fluxscape.pipeline import cluster
from fluxscape.pipeline.schema import DaskSettings


def test_local_cluster_workers_carry_the_exit_plugin():
    with cluster.dask_client(DaskSettings(workers=1, memory_limit="1GiB")) as client:
        plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
        pids = client.run(os.getpid)
    assert [cluster.ExitWhenClosed.name in p for p in plugins.values()] == [True]
    assert list(pids.values()) != [os.getpid()]


def test_threads_of_this_process_keep_the_normal_exit(monkeypatch):
    """With ``dask.processes: false`` no plugin is registered, and the plugin itself never
    cuts short the exit of a main process (its exit status is the run's)."""
    registered = []
    monkeypatch.setattr(atexit, "register", lambda *a: registered.append(a))
    cluster.ExitWhenClosed().teardown(None)
    assert registered == []
    settings = DaskSettings(workers=1, processes=False, memory_limit="1GiB")
    with cluster.dask_client(settings) as client:
        plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert not any(cluster.ExitWhenClosed.name in p for p in plugins.values())


def test_in_a_worker_process_the_plugin_ends_the_process_at_exit(monkeypatch):
    registered = []
    monkeypatch.setattr(atexit, "register", lambda *a: registered.append(a))
    monkeypatch.setattr(cluster.multiprocessing, "parent_process", lambda: object())
    cluster.ExitWhenClosed().teardown(None)
    assert registered == [(os._exit, 0)]
