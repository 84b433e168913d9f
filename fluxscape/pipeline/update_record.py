"""The quick answer of ``fluxscape update`` when nothing arrived: decided from a listing.

After each update, ``OUT/.fluxscape/update.json`` records how it was invoked
(:func:`fluxscape.pipeline.noop.invocation_key`: the workflow file, overrides, current folder,
fluxscape's code), the resolved input globs, every matched file's size and modification time
(ns) and the version each product store links to. A later update invoked the same way lists
the globs again (``glob`` + ``stat``: no file is opened, read or hashed) and, when every file,
every store link and the workflow are as recorded, answers "nothing new" without loading the
workflow, numpy, xarray or Dask and without taking the output lock: a cron job every few
minutes costs a fraction of a second. Any difference, or any doubt, goes the ordinary way.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

from fluxscape.pipeline.noop import _output_dir, _readlink, invocation_key
from fluxscape.pipeline.outdir import STATE_DIR

RECORD = "update.json"


def list_inputs(patterns) -> dict[str, list[int]]:
    """``{path: [size, mtime_ns]}`` of the files the glob ``patterns`` match (sorted)."""
    found = {}
    for pattern in patterns:
        for path in glob.glob(pattern):
            try:
                st = os.stat(path)
            except OSError:
                continue  # removed between the listing and the stat
            if os.path.isfile(path):
                found[path] = [st.st_size, st.st_mtime_ns]
    return dict(sorted(found.items()))


def nothing_new(
    workflow_path: str | Path,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    catalog: str | Path | None = None,
) -> Path | None:
    """OUT when an update invoked with these arguments has nothing to do (see the module
    docstring), else None."""
    out_dir = _output_dir(workflow_path, out)
    if out_dir is None:
        return None
    try:
        record = json.loads((out_dir / STATE_DIR / RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    key = invocation_key(workflow_path, out, data_dir, catalog)
    if key is None or record.get("key") != key:
        return None
    for store, target in record.get("links", {}).items():
        if _readlink(Path(store)) != target:
            return None
    if list_inputs(record.get("patterns", [])) != record.get("listing"):
        return None
    return out_dir


def write_record(
    workflow_path: str | Path,
    out: str | Path | None,
    data_dir: str | Path | None,
    catalog: str | Path | None,
    out_dir: Path,
    patterns,
    listing: dict,
    stores: list[Path],
) -> None:
    """Record a finished update (written last, by rename: a killed update leaves none, and
    the next one goes the ordinary way)."""
    path = Path(out_dir) / STATE_DIR / RECORD
    record = {
        "key": invocation_key(workflow_path, out, data_dir, catalog),
        "patterns": sorted(patterns),
        "listing": dict(sorted(listing.items())),
        "links": {str(s): _readlink(Path(s)) for s in stores},
    }
    tmp = path.with_name(RECORD + ".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def forget(out_dir: Path) -> None:
    """Remove the record (a ``fluxscape run`` changes the stores the ordinary way)."""
    (Path(out_dir) / STATE_DIR / RECORD).unlink(missing_ok=True)
