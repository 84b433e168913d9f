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
