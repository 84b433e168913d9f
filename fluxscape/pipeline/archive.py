"""An input archive seen from its listing: each file's stamp (name, size, modification time
or ETag) without opening it, the files whose names alone place them outside the region, the
mappers that run header reads in parallel batches, and the index cache kept in
``OUT/.fluxscape/index/`` between runs.

The index loop itself (:func:`fluxscape.pipeline.inputs.index_input`) puts these together:
an unchanged listing reuses the cached index without opening any file; a changed one reads
only the new or changed files.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import marshal
import os
import pickle
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from fluxscape.pipeline import remote

log = logging.getLogger(__name__)

#: A file's stamp: (path or URL, size in bytes, modification time in ns or ETag).
Stamp = tuple[str, int, int | str]

#: ``mapper(fn, batches)``: ``fn`` applied to each batch, results in any order.
Mapper = Callable[[Callable, list], Iterable]

#: Version of the cache file's layout; a cache of another version is ignored.
CACHE_FORMAT = 1

#: Files read per batch (one task of a worker).
BATCH = 64

#: Fewer files than this to read are read in the driver (a pool costs more than it saves).
PARALLEL_MIN = 256


def list_stamped(patterns: Sequence[str]) -> list[Stamp]:
    """Sorted unique stamps of the files matched by the glob ``patterns``: a local file's
    (path, size, modification time in ns) from ``os.stat``; an object's (URL, size, ETag or
    modification time) from the bucket's listing (one request per listed prefix, not per
    object). No file is opened."""
    found: dict[str, Stamp] = {}
    for pattern in patterns:
        if remote.is_url(pattern):
            found.update((s[0], s) for s in remote.expand_stamped(pattern))
            continue
        for path in glob.glob(pattern):
            try:
                st = os.stat(path)
            except OSError:  # vanished between the listing and the stat
                continue
            if os.path.isfile(path):
                found[path] = (path, st.st_size, st.st_mtime_ns)
    return [found[p] for p in sorted(found)]


def bbox_meets(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when the lon/lat boxes [W, S, E, N] (degrees) meet (touching counts); a box with
    W > E crosses the date line."""
    if a[1] > b[3] or b[1] > a[3]:
        return False
    return any(w1 <= e2 and w2 <= e1 for w1, e1 in _lon_ranges(a) for w2, e2 in _lon_ranges(b))


def _lon_ranges(box: Sequence[float]) -> list[tuple[float, float]]:
    west, east = box[0], box[2]
    return [(west, east)] if west <= east else [(west, 180.0), (-180.0, east)]


def outside_by_name(
    name_bbox: Callable[[str], Sequence[float] | None] | None,
    stamps: list[Stamp],
    region: Sequence[float] | None,
) -> tuple[list[Stamp], int]:
    """The stamps of files that may meet the lon/lat ``region`` [W, S, E, N] and the number
    left out because the source's ``name_bbox`` rule places them elsewhere (no file is
    opened); all stamps when there is no rule or no region."""
    if name_bbox is None or region is None:
        return stamps, 0
    meets: dict = {None: True}  # box -> meets the region (an archive has few distinct boxes)
    keep = []
    for stamp in stamps:
        path = stamp[0]
        box = name_bbox(path[path.rfind("/") + 1 :])
        key = None if box is None else tuple(box)
        hit = meets.get(key)
        if hit is None:
            hit = meets[key] = bbox_meets(key, region)
        if hit:
            keep.append(stamp)
    return keep, len(stamps) - len(keep)


def listing_key(stamps: list[Stamp], *extra) -> str:
    """A digest of a listing (every file's stamp) and ``extra`` settings (region, reader,
    whether content hashes are kept): equal keys mean the cached index holds as is."""
    digest = hashlib.blake2b(repr(extra).encode(), digest_size=20)
    digest.update(marshal.dumps(stamps))  # tuples of str and int: marshal is the fastest
    return digest.hexdigest()


def batches(items: list, size: int = BATCH) -> list[list]:
    """``items`` cut into lists of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def serial_map(fn: Callable, work: list) -> Iterable:
    """The mapper that runs every batch in this process, in order."""
    return map(fn, work)


def pool_map(fn: Callable, work: list) -> Iterable:
    """The mapper of a run without a Dask cluster: a pool of fresh processes (spawned, not
    forked: HDF4 and HDF5 libraries are not fork- or thread-safe), one per core."""
    workers = max(1, min(len(work), os.cpu_count() or 1))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        yield from pool.map(fn, work)


def dask_map(get_client: Callable) -> Mapper:
    """The mapper that runs batches as tasks on the Dask cluster ``get_client()`` gives (a
    cluster started only when there is enough to read, see :data:`PARALLEL_MIN`)."""

    def mapper(fn: Callable, work: list) -> Iterable:
        from distributed import as_completed

        client = get_client()
        futures = client.map(fn, work, pure=False)
        for future in as_completed(futures):
            yield future.result()
            future.release()

    return mapper


class IndexCache:
    """The cached index of one input in ``OUT/.fluxscape/index/``: ``<input>.pkl`` holds the
    whole index of the last listing with that listing's key (all a reuse reads);
    ``<input>.files.pkl`` holds, per file read, its stamp and what its header gave (granule,
    nothing, or the reason it was skipped, and its SHA-256 when content hashes are kept),
    read only when the listing changed. Written by the driver only (pickle: files this program
    wrote into its own output folder; an unreadable or foreign cache is ignored)."""

    def __init__(self, path: Path | None, reader: str):
        self.path, self.reader = path, reader
        self._files: dict[str, tuple] | None = None
        self.last: dict = self._load(path) or {}

    def _load(self, path: Path | None) -> dict | None:
        if path is None or not path.is_file():
            return None
        try:
            with open(path, "rb") as fh:
                doc = pickle.load(fh)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            log.warning("index cache %s unreadable (%s); indexing again", path, exc)
            return None
        if doc.get("format") != CACHE_FORMAT or doc.get("reader") != self.reader:
            return None
        return doc["data"]

    @property
    def files_path(self) -> Path | None:
        return None if self.path is None else self.path.with_suffix(".files.pkl")

    @property
    def files(self) -> dict[str, tuple]:
        """Path -> (stamp, what its header gave), loaded on first use."""
        if self._files is None:
            self._files = self._load(self.files_path) or {}
        return self._files

    def forget(self) -> None:
        """Use nothing cached (every header is read again)."""
        self._files, self.last = {}, {}

    def entry(self, stamp: Stamp) -> tuple | None:
        """What the header of the file of ``stamp`` gave when it had that stamp, or None."""
        found = self.files.get(stamp[0])
        return found[1] if found is not None and found[0] == stamp else None

    def save(self, files: dict[str, tuple] | None, last: dict) -> None:
        """Replace the cache (each file written beside it and renamed: a killed run leaves
        the old one); ``files`` None keeps the per-file entries as they are."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if files is not None:
            self._write(self.files_path, files)
        self._write(self.path, last)

    def _write(self, path: Path, data) -> None:
        tmp = path.with_suffix(".tmp")
        doc = {"format": CACHE_FORMAT, "reader": self.reader, "data": data}
        with open(tmp, "wb") as fh:
            pickle.dump(doc, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
