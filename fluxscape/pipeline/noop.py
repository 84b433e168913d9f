"""A ``run --resume`` with nothing to do, decided in a fraction of a second.

Every successful run leaves a record, ``OUT/.fluxscape/noop.json`` (a run going the ordinary
way removes the last one first): a digest of how it was invoked (:func:`invocation_key`: the
workflow file's text, the command-line overrides, the current folder and fluxscape's own
code) and the size and modification time of every file that says the products are finished
and published (manifests, store links and metadata, collection files, the catalog's root and
index, the resolved workflow). A later ``--resume`` invoked the same way whose files are all
as recorded would keep every product as it is (:func:`fluxscape.pipeline.run.resume_action`
says ``keep`` for each: same digests, complete stores), so it does what such a run does
without loading the workflow, numpy, xarray or Dask: takes the output lock, records the run
in ``OUT/.fluxscape/runs.jsonl`` and rewrites the report from its cached sections. Anything
else, or any doubt (no record, another key, a file changed, an input glob that matches
nothing any more), goes the ordinary way.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import fluxscape
from fluxscape.pipeline.outdir import STATE_DIR, OutputLock, check_output_dir
from fluxscape.pipeline.summary import ProductResult, RunResult, peak_rss_mib

log = logging.getLogger(__name__)
RECORD = "noop.json"
_VERSION = 1


def invocation_key(
    workflow_path: str | Path,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    catalog: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> str | None:
    """A digest of what decides the resolved workflow of a run invoked with these arguments;
    None when the workflow file cannot be read (the ordinary path reports it)."""
    text = _workflow_bytes(workflow_path)
    if text is None:
        return None
    payload = {
        "record": _VERSION,
        "fluxscape": fluxscape.__version__,
        "code": _code_stamp(),
        "workflow": [str(Path(workflow_path).resolve()), hashlib.sha256(text).hexdigest()],
        "cwd": os.getcwd(),  # a shipped recipe's relative paths start here
        "out": _resolved(out),
        "data_dir": _resolved(data_dir),
        "catalog": _resolved(catalog),
        "scheduler": scheduler,
        "workers": workers,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def noop_resume(
    workflow_path: str | Path,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    catalog: str | Path | None = None,
    started: float | None = None,
) -> RunResult | None:
    """The result of a ``--resume`` run with nothing to do, done the quick way (see the
    module's docstring), or None when the ordinary run must decide. ``started``: when the
    command started (``time.monotonic()``), for its wall time."""
    started = time.monotonic() if started is None else started
    key = invocation_key(workflow_path, out, data_dir, catalog, scheduler, workers)
    out_dir = _output_dir(workflow_path, out)
    if key is None or out_dir is None:
        return None
    record = _read_record(out_dir)
    if record is None or record.get("key") != key or _stale(record) is not None:
        if record is not None:
            log.debug("resume: checking every product (%s)", _stale(record) or "another key")
        return None
    check_output_dir(out_dir, [Path(record["data_dir"])])
    from fluxscape.pipeline.report import record_run, write_report

    with OutputLock(out_dir, command=f"fluxscape run {workflow_path}"):
        if _stale(record) is not None:  # changed while we waited for the lock
            return None
        products = []
        for p in record["products"]:
            log.info("%s: complete already (%d tiles); nothing to do", p["name"], p["tiles"])
            products.append(
                ProductResult(
                    p["name"],
                    Path(p["store"]),
                    p["tiles"],
                    0,
                    p["skipped_inputs"],
                    Path(p["published"]) if p["published"] else None,
                    kind=p["kind"],
                    action="reused",
                    version=p["version"],
                    variables=p["variables"],
                )
            )
        result = RunResult(
            out_dir,
            None,
            products,
            time.monotonic() - started,
            facts=record["facts"],
            noop=True,
        )
        result.driver_peak_mib = result.peak_memory_mib = peak_rss_mib()
        record_run(result, result.peak_memory_mib)
        write_report(result, result.peak_memory_mib)
    return result


def write_record(result: RunResult, key: str | None, data_dir: str, input_globs: list[str]):
    """After a successful run (its report written, the lock still held): the record a later
    no-op ``--resume`` checks. ``key``: :func:`invocation_key` of this run's arguments."""
    path = Path(result.out) / STATE_DIR / RECORD
    if key is None:
        forget_record(result.out)
        return
    products = [
        {
            "name": p.name,
            "kind": p.kind,
            "store": str(p.store),
            "version": p.version,
            "variables": p.variables,
            "tiles": p.tiles_total,
            "skipped_inputs": p.skipped_inputs,
            "published": str(p.published) if p.published else None,
        }
        for p in result.products
    ]
    record = {
        "key": key,
        "out": str(result.out),
        "data_dir": data_dir,
        "inputs": sorted(input_globs),
        "facts": result.facts,
        "products": products,
        "links": {p.name: _readlink(p.store) for p in result.products},
    }
    record["stamps"] = {f: _stamp(f) for f in _watched(record)}
    tmp = path.with_name(RECORD + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def forget_record(out_dir: Path) -> None:
    """Remove the record (a run going the ordinary way: only its success writes a new one)."""
    (Path(out_dir) / STATE_DIR / RECORD).unlink(missing_ok=True)


def _watched(record: dict) -> list[str]:
    """The files whose size and modification time a no-op resume checks (absent ones too:
    an unfinished rebuild's staging store must still be absent)."""
    out = Path(record["out"])
    files = [out / "workflow.yaml"]
    catalogs = set()
    for p in record["products"]:
        store = Path(p["store"])
        files += [
            out / STATE_DIR / f"{p['name']}.manifest.jsonl",
            out / STATE_DIR / "building" / f"{p['name']}.zarr",
            store / ".zmetadata",
            store / ".zattrs",
            store / "zarr.json",
        ]
        if p["published"]:
            files.append(Path(p["published"]))
            catalogs.add(Path(p["published"]).parent.parent)
    for catalog in sorted(catalogs):
        files += [catalog / "catalog.json", catalog / "index.parquet"]
    return [str(f) for f in files]


def _stale(record: dict) -> str | None:
    """What changed since the record was written, or None."""
    for name, link in record["links"].items():
        store = next(Path(p["store"]) for p in record["products"] if p["name"] == name)
        if _readlink(store) != link:
            return f"{store} now links to another version"
    for f, stamp in record["stamps"].items():
        if _stamp(f) != stamp:
            return f"{f} changed"
    for pattern in record["inputs"]:
        if next(glob.iglob(pattern), None) is None:
            return f"input {pattern!r} matches no file"
    return None


def _read_record(out_dir: Path) -> dict | None:
    try:
        record = json.loads((out_dir / STATE_DIR / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _output_dir(workflow_path: str | Path, out: str | Path | None) -> Path | None:
    """OUT as the run would resolve it: ``--out``, else the workflow file's ``output.dir``
    (relative to the file's folder); None when that takes more than reading the file (a
    shipped recipe named without ``--out``, an unreadable file)."""
    from fluxscape.pipeline.remote import is_url

    if out is not None:
        # the no-op record is a local shortcut: an output on object storage always checks
        return None if is_url(out) else Path(out).resolve()
    path = Path(workflow_path)
    if not path.is_file():
        return None
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
        folder = doc["output"]["dir"]
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError):
        return None
    if not isinstance(folder, str) or is_url(folder):
        return None
    return (path.resolve().parent / folder).resolve()


def _workflow_bytes(workflow_path: str | Path) -> bytes | None:
    path = Path(workflow_path)
    try:
        if path.is_file():
            return path.read_bytes()
        from fluxscape.pipeline.recipes import shipped_recipe

        recipe = shipped_recipe(str(workflow_path))
        return None if recipe is None else recipe.read_bytes()
    except OSError:
        return None


def _code_stamp() -> str:
    """Sizes and modification times of fluxscape's own files: changed code is never
    trusted to agree with a record an older one wrote."""
    root = Path(fluxscape.__file__).resolve().parent
    digest = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        st = f.stat()
        digest.update(f"{f.relative_to(root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return digest.hexdigest()


def _resolved(path: str | Path | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def _stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _readlink(store: Path) -> str | None:
    try:
        return os.readlink(store)
    except OSError:
        return None
