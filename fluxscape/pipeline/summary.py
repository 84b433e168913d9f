"""What a run did: the results the terminal, ``--json``, the run report and the no-op resume
share. Light imports only, so that a ``run --resume`` with nothing to do reads and prints
them without loading numpy, xarray or Dask.

The ``--json`` document (:func:`summary_json`) is described in ``docs/workflow.md``
("Machine-readable summary"); its ``schema`` field names its version.
"""

from __future__ import annotations

import json
import resource
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Version of the ``--json`` document; a change that removes or renames a field bumps it.
SCHEMA = "fluxscape.run/1"


@dataclass
class ProductResult:
    """What a run did for one product. ``action``: ``built`` (a new store), ``continued``
    (an unfinished store of the same digest), ``rebuilt`` (replaced a store made with other
    settings, or ``--fresh``) or ``reused`` (complete already: kept as it was)."""

    name: str
    store: Path
    tiles_total: int
    tiles_run: int
    skipped_inputs: list[dict] = field(default_factory=list)
    published: Path | None = None
    kind: str = ""
    action: str = "built"
    version: str = ""
    variables: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    """What a run wrote: output folder, resolved workflow (None when a no-op resume loaded
    none), products, wall time (s) and peak memory (MiB: the driver's, the workers' and
    their sum; None when unknown). ``facts``: what the run report's head shows of the
    workflow (name, description, bbox, period, workflow file). ``noop``: nothing was to do
    and no workflow was loaded (:mod:`fluxscape.pipeline.noop`); ``cluster``: a Dask
    cluster was started or joined."""

    out: Path
    workflow: Any
    products: list[ProductResult]
    seconds: float
    peak_memory_mib: float | None = None
    driver_peak_mib: float | None = None
    workers_peak_mib: float | None = None
    facts: dict = field(default_factory=dict)
    run_id: str = ""
    noop: bool = False
    cluster: bool = False


def peak_rss_mib() -> float:
    """Peak resident memory of this process, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def store_facts(store: Path) -> tuple[str, list[str]]:
    """(version, data variables) of a published store, read from its link and consolidated
    metadata (no Zarr library): the version is the name its link points to (the run id of
    the run that made it), the variables its arrays other than coordinates and
    ``spatial_ref``. ("", []) for what cannot be read."""
    arrays: dict[str, list[str]] = {}
    from fluxscape.pipeline import remote

    if remote.is_url(store):  # a version on object storage: its name is the version
        import fsspec

        try:
            with fsspec.open(f"{str(store).rstrip('/')}/.zmetadata") as fh:
                meta = json.load(fh)["metadata"]
        except (OSError, ValueError, KeyError):
            return "", []
        version = str(store).rstrip("/").rsplit("/", 1)[-1].removesuffix(".zarr")
        for key, value in meta.items():
            if key.endswith("/.zattrs") and f"{key[:-8]}/.zarray" in meta:
                arrays[key[:-8]] = list(value.get("_ARRAY_DIMENSIONS", []))
        dims = {d for names in arrays.values() for d in names}
        return version, sorted(a for a in arrays if a not in dims and a != "spatial_ref")
    store = Path(store)
    version = store.resolve().name.removesuffix(".zarr") if store.exists() else ""
    try:
        v2 = store / ".zmetadata"
        if v2.is_file():
            meta = json.loads(v2.read_text())["metadata"]
            for key, value in meta.items():
                if key.endswith("/.zattrs") and f"{key[:-8]}/.zarray" in meta:
                    arrays[key[:-8]] = list(value.get("_ARRAY_DIMENSIONS", []))
        else:
            doc = json.loads((store / "zarr.json").read_text())
            for key, value in doc["consolidated_metadata"]["metadata"].items():
                if value.get("node_type") == "array" and "/" not in key:
                    arrays[key] = list(value.get("dimension_names") or [])
    except (OSError, ValueError, KeyError, TypeError):
        return version, []
    dims = {d for names in arrays.values() for d in names}
    return version, sorted(a for a in arrays if a not in dims and a != "spatial_ref")


def summary_json(
    result: RunResult | None,
    *,
    command: str,
    wall_seconds: float,
    exit_status: int = 0,
    error: str | None = None,
) -> dict:
    """The ``--json`` document of ``run`` or ``demo`` (``command``): status, stores, skipped
    inputs, wall time and peak memory. ``result`` None: the run stopped before it had one
    (``error`` says why)."""
    status = "ok" if exit_status == 0 else ("interrupted" if exit_status >= 128 else "error")
    doc: dict = {
        "schema": SCHEMA,
        "command": command,
        "status": status,
        "exit_status": exit_status,
        "error": error,
        "wall_time_s": round(wall_seconds, 2),
    }
    if result is None:
        doc["peak_memory_mib"] = {"driver": round(peak_rss_mib(), 1), "workers": None}
        return doc | {"out": None, "stores": [], "skipped_inputs": []}
    workers = result.workers_peak_mib
    doc |= {
        "workflow": result.facts.get("name"),
        "out": str(result.out),
        "resolved_workflow": str(Path(result.out) / "workflow.yaml"),
        "run_id": result.run_id or None,
        "nothing_to_do": result.noop,
        "dask_cluster": result.cluster,
        "peak_memory_mib": {
            "driver": round(result.driver_peak_mib or peak_rss_mib(), 1),
            "workers": None if workers is None else round(workers, 1),
        },
        "stores": [
            {
                "name": p.name,
                "kind": p.kind,
                "path": str(p.store),
                "version": p.version or None,
                "variables": p.variables,
                "tiles": {"done": p.tiles_total, "total": p.tiles_total, "run": p.tiles_run},
                "action": p.action,
                "catalog_entry": None if p.published is None else str(p.published),
            }
            for p in result.products
        ],
        "skipped_inputs": [
            {"product": p.name, "file": s.get("file"), "reason": s.get("reason")}
            for p in result.products
            for s in p.skipped_inputs
        ],
    }
    return doc
