"""A per-process cache of array blocks read from input files, bounded by bytes (issue #18).

Tiles of one product running on one worker process read the same granules again and again
(every tile of a region meets the same MODIS tile); a source keeps what it read here, keyed
by what identifies the file's content (path, size, modification time in ns) and the part it
read (layer, window), so a changed file is never served from the cache. Least recently used
entries are evicted once the total passes the bound: ``FLUXSCAPE_GRANULE_CACHE_MIB``
(environment, read when the module is imported; default 256 MiB per process, 0 disables the
cache). ``functools.lru_cache`` bounds by count, not bytes, and cachetools is not a
dependency for one small class, hence this one.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np

MIB = 1024 * 1024
DEFAULT_MIB = 256


def file_stamp(path: str | Path) -> tuple[str, int, int]:
    """(path, size in bytes, modification time in ns): the part of a cache key that changes
    when the file does. OSError when the file cannot be stat'ed."""
    st = os.stat(path)
    return str(path), st.st_size, st.st_mtime_ns


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, tuple | list):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    return 64  # small Python objects (attributes): a nominal size


class ByteLRU:
    """Least-recently-used mapping bounded by the bytes of its values (numpy arrays counted
    by ``nbytes``, nested tuples/lists/dicts summed). A value larger than the bound is not
    kept. Thread-safe: a Dask worker may run several tiles in threads."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: Hashable) -> Any | None:
        """The value stored under ``key`` (now the most recently used) or None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value``; evict the least recently used entries beyond the bound."""
        size = _nbytes(value)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.nbytes -= old[1]
            self._items[key] = (value, size)
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.nbytes -= dropped
                self.evictions += 1

    def clear(self) -> None:
        """Forget every entry and reset the counters."""
        with self._lock:
            self._items.clear()
            self.nbytes = self.hits = self.misses = self.evictions = 0

    def __len__(self) -> int:
        return len(self._items)


def _configured_bytes() -> int:
    text = os.environ.get("FLUXSCAPE_GRANULE_CACHE_MIB", str(DEFAULT_MIB))
    try:
        mib = float(text)
    except ValueError:
        mib = DEFAULT_MIB
    return max(0, int(mib * MIB))


#: The process's cache of raw blocks of input files (shared by the sources that use it).
BLOCKS = ByteLRU(_configured_bytes())


# -- windows read through cached square blocks --------------------------------------------
# A window [r0, r1) x [c0, c1) of a 2-D layer is served from `block`-pixel square blocks
# kept in a ByteLRU (BLOCKS) under (*key, i, j); the blocks not cached are read with one hyperslab.


def window_blocks(
    cache: ByteLRU, key: tuple, r0: int, r1: int, c0: int, c1: int, block: int
) -> dict:
    """(i, j) -> the block in ``cache`` (or None) of each block the window meets."""
    rows = range(r0 // block, -(-r1 // block)) if r1 > r0 else range(0)
    cols = range(c0 // block, -(-c1 // block)) if c1 > c0 else range(0)
    return {(i, j): cache.get((*key, i, j)) for i in rows for j in cols}


def missing_span(missing: list, block: int, nrows: int, ncols: int) -> tuple[int, int, int, int]:
    """Rows y0:y1 and columns x0:x1 of the one hyperslab holding every ``missing`` block of a
    layer of ``nrows`` x ``ncols`` pixels."""
    i0, i1 = min(b[0] for b in missing), max(b[0] for b in missing) + 1
    j0, j1 = min(b[1] for b in missing), max(b[1] for b in missing) + 1
    return i0 * block, min(nrows, i1 * block), j0 * block, min(ncols, j1 * block)


def keep_blocks(
    cache: ByteLRU,
    key: tuple,
    part: np.ndarray,
    y0: int,
    x0: int,
    missing: list,
    blocks: dict,
    block: int,
) -> None:
    """Cut the ``missing`` blocks out of ``part`` (the hyperslab starting at row ``y0``,
    column ``x0``) into ``blocks`` and ``cache``."""
    for i, j in missing:
        cut = part[
            i * block - y0 : (i + 1) * block - y0, j * block - x0 : (j + 1) * block - x0
        ].copy()  # a copy: a view would keep the whole hyperslab alive in the cache
        blocks[(i, j)] = cut
        cache.put((*key, i, j), cut)


def assemble(blocks: dict, r0: int, r1: int, c0: int, c1: int, block: int, dtype) -> np.ndarray:
    """The window [r0, r1) x [c0, c1) put together from its ``blocks``."""
    out = np.empty((max(r1 - r0, 0), max(c1 - c0, 0)), dtype)
    for (i, j), cut in blocks.items():
        by, bx = i * block, j * block
        ys, ye = max(r0, by), min(r1, by + cut.shape[0])
        xs, xe = max(c0, bx), min(c1, bx + cut.shape[1])
        out[ys - r0 : ye - r0, xs - c0 : xe - c0] = cut[ys - by : ye - by, xs - bx : xe - bx]
    return out
