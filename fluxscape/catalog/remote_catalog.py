"""A catalog on object storage (``OUT/catalog`` of a run whose ``output.dir`` is a URL), read
through a local copy of its small files (issue #17).

The catalog folder holds JSON documents and the search indexes (a few kB to MB); the product
stores it names are absolute URLs and stay on object storage. The copy lives in the per-user
cache (``<cache>/catalogs/<sha256 of URL>``, beside the staged inputs) and is taken anew at
each open. Every collection names an immutable store version, published before the catalog
files were written (the root ``catalog.json`` last), so whatever entry the copy holds opens a
complete store; a copy taken while a run publishes may hold the previous entry of a product.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline import remote


def local_copy(url: str) -> Path:
    """A local folder holding the catalog at ``url`` (a folder URL or its ``catalog.json``);
    FluxscapeError naming the URL when it holds no catalog."""
    url = url.rstrip("/").removesuffix("/catalog.json")
    fs, path = remote._fs(url)
    fs.invalidate_cache(path)
    if not fs.exists(f"{path}/catalog.json"):
        raise FluxscapeError(f"{url}: no catalog.json here (run a workflow first)")
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    target = remote.cache_dir() / "catalogs" / digest
    fresh = target.with_name(digest + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    fs.get(path + "/", str(fresh) + "/", recursive=True)
    shutil.rmtree(target, ignore_errors=True)
    fresh.rename(target)
    return target
