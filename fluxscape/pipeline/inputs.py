"""Inputs: glob expansion, the one index loop (listing -> name rule -> headers, read in
parallel batches and cached between runs -> granules -> tiles), the one read loop (granules
-> observations on a tile), skipped-input records and provenance.

Every raster source goes through the same two loops, so failure semantics live here once:
only format and I/O problems (:class:`~fluxscape.errors.ReaderError`, ``OSError``) make a
skipped input; any other exception is a bug and propagates (the tile fails, the run stops).
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
from odc.geo.geobox import GeoBox

from fluxscape.errors import FluxscapeError, ReaderError
from fluxscape.pipeline import remote
from fluxscape.pipeline.archive import (
    CACHE_FORMAT,
    PARALLEL_MIN,
    IndexCache,
    Mapper,
    Stamp,
    batches,
    list_stamped,
    listing_key,
    outside_by_name,
    serial_map,
)
from fluxscape.readers.ontile import Granule, in_hours, merge
from fluxscape.readers.registry import ReaderSpec, get_reader

#: The exceptions that make an input skipped rather than the run failed.
READ_ERRORS = (ReaderError, OSError)


@dataclass(frozen=True)
class Skipped:
    """An input that could not be used, and why."""

    path: str
    reason: str

    def to_json(self) -> dict:
        return {"file": self.path, "reason": self.reason}


def skipped_from(path: str, exc: BaseException) -> Skipped:
    """The record of a file that failed to read (the reason without the path prefix; for a
    URL, the reason names the URL, not its local copy)."""
    reason = str(exc)
    copy = remote.copy_of(path)
    if copy:
        reason = reason.replace(copy, path)
    return Skipped(path, reason.replace(f"{path}: ", ""))


class InputChanged(FluxscapeError):
    """An input file changed (or vanished) after the run indexed it."""


def file_stamp(path: str) -> tuple[str, int, int | str]:
    """(path, size in bytes, modification time in ns) of a file; (URL, size, ETag or
    modification time) of an object on object storage (:mod:`fluxscape.pipeline.remote`)."""
    if remote.is_url(path):
        return remote.stamp(path)
    st = os.stat(path)
    return (path, st.st_size, st.st_mtime_ns)


def check_unchanged(stamps: Iterable[tuple[str, int, int]]) -> None:
    """InputChanged naming the first file whose size or modification time differs from its
    stamp (:func:`file_stamp`), or that is gone."""
    for path, size, mtime in stamps:
        try:
            now = file_stamp(path)
        except OSError:
            raise InputChanged(f"input {path} was removed after the run indexed it") from None
        if now[1:] != (size, mtime):
            raise InputChanged(
                f"input {path} changed after the run indexed it (size {size} -> {now[1]} "
                "bytes or modification time)"
            )


def expand_paths(patterns: list[str]) -> list[str]:
    """Sorted unique files matched by the glob patterns (URL patterns list objects)."""
    found = set()
    for pattern in patterns:
        if remote.is_url(pattern):
            found.update(remote.expand(pattern))
        else:
            found.update(p for p in glob.glob(pattern) if Path(p).is_file())
    return sorted(found)


def on_disk(granule: Granule) -> Granule:
    """``granule`` with its URL files replaced by local copies (:func:`remote.local`), so a
    reader opens them as local files; a granule of local files as is."""
    if not any(remote.is_url(f) for f in granule.files):
        return granule
    versions = {s[0]: s[2] for s in granule.stamps}
    return replace(
        granule,
        path=remote.local(granule.path, versions.get(granule.path)),
        paths=tuple(remote.local(p, versions.get(p)) for p in granule.paths),
    )


def _granule_info(spec: ReaderSpec, path: str, stamp: tuple) -> Granule | None:
    """``spec.granule_info`` of a file or URL (``stamp``: its :func:`file_stamp`); a URL's
    granule names the URL, not the copy."""
    if not remote.is_url(path):
        return spec.granule_info(path)
    granule = spec.granule_info(remote.local(path, stamp[2]))
    if granule is None:
        return None
    return replace(
        granule,
        path=remote.original(granule.path),
        paths=tuple(remote.original(p) for p in granule.paths),
    )


def file_checksum(path: str) -> str:
    """SHA-256 of a file (hex); a URL's object is hashed from its staged local copy."""
    digest = hashlib.sha256()
    with open(remote.local(path), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_record(path: str, stamp: tuple | None = None, sha256: str | None = None) -> dict | None:
    """Provenance of an input file from its listing, without reading it: base name, path,
    size (bytes) and modification time (ISO 8601, UTC) of a local file, or size and ETag (or
    modification time) of an object on object storage; ``sha256`` added when given (a content
    hash, kept only where the workflow asks: ``provenance.content_hash``). ``stamp``: the
    file's :func:`file_stamp` from the index (else stat'ed here). None when a local path is
    no file."""
    if stamp is None:
        if remote.is_url(path):
            return remote.describe(path) | ({"sha256": sha256} if sha256 else {})
        if not Path(path).is_file():
            return None
        stamp = file_stamp(path)
    _, size, version = stamp
    if remote.is_url(path):
        record = {"file": os.path.basename(path), "path": path, "size": size, "etag": version}
    else:
        modified = datetime.fromtimestamp(int(version) / 1e9, UTC)
        record = {
            "file": os.path.basename(path),
            "path": path,
            "size": size,
            "modified": modified.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        }
    return record | ({"sha256": sha256} if sha256 else {})


@dataclass
class InputIndex:
    """The granules of one workflow input (headers only).

    ``granules``: merged granules (e.g. the bands and segments of one Himawari scene);
    ``skipped``: files whose headers could not be read, with the reason;
    ``ignored``: files that hold nothing the pipeline reads (e.g. the IRS file of an SGLI
    scene, a segment off the Earth's disc), with the reason;
    ``files``: the listed files that may meet the region; ``outside``: the number of listed
    files whose names alone place them outside it (never opened, not in ``files``);
    ``hashes``: file -> SHA-256 when the workflow keeps content hashes;
    ``read``: the number of file headers this indexing read (0 when its cache held)."""

    name: str
    reader: str
    files: list[str]
    granules: list[Granule] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ignored: list[Skipped] = field(default_factory=list)
    outside: int = 0
    hashes: dict[str, str] = field(default_factory=dict)
    read: int = 0

    def stamps(self) -> dict[str, tuple]:
        """File -> its stamp when indexed (:func:`file_stamp`), over the granules' files."""
        return {s[0]: s for g in self.granules for s in g.stamps}

    @property
    def spec(self) -> ReaderSpec:
        return get_reader(self.reader)


def select(
    index: InputIndex, needs: Callable[[frozenset[str]], frozenset[str] | None], hours=None
) -> tuple[list[Granule], list[Skipped]]:
    """The granules of ``index`` for which ``needs(granule.layers)`` gives the layers to read
    (and, for sources seen many times a day, observed within ``hours`` [first, last) UTC),
    and the files of the others with the reason (they hold nothing this product uses)."""
    keep, other = [], []
    many = index.spec.many_per_day
    for g in index.granules:
        if many and not in_hours(g.start, hours):
            continue
        if needs(g.layers) is None:
            what = f"a {g.product} file" if g.product else "the file"
            gives = ", ".join(sorted(g.layers)) or "no layer fluxscape reads"
            other += [
                Skipped(f, f"{what} gives {gives}, not what the product needs") for f in g.files
            ]
            continue
        keep.append(g)
    return keep, other


def giving_all(*layers: str) -> Callable[[frozenset[str]], frozenset[str] | None]:
    """The ``needs`` of :func:`select` for a product that reads exactly ``layers``."""
    wanted = frozenset(layers)
    return lambda have: wanted if wanted <= have else None


def coverage_error(name: str, index: InputIndex, usable: list, in_period: list, wf) -> str:
    """One line saying why no granule of input ``name`` meets the region or period, with the
    inputs' extent: ``usable`` are its granules that give what the product needs,
    ``in_period`` those also in the period."""
    if not index.granules and not index.files and index.outside:
        return (
            f"inputs.{name}: none of its {index.outside} file(s) covers the region "
            f"{list(wf.region.lonlat_bbox)} (their names' tile or segment numbers place them "
            "elsewhere); hint: check region.bbox (W, S, E, N in degrees) or the input paths"
        )
    if not index.granules:
        return f"inputs.{name}: none of its {len(index.files)} file(s) could be read (see the log)"
    if not usable:
        kinds = sorted({g.product or index.reader for g in index.granules})
        return (
            f"inputs.{name}: none of its {len(index.files)} file(s) gives what the product "
            f"needs (they are {', '.join(kinds)})"
        )
    if not in_period:
        first = min(g.start for g in usable).date()
        last = max(g.start for g in usable).date()
        return (
            f"inputs.{name}: its {len(usable)} granule(s) span {first} to {last}, outside "
            f"period {wf.period.start} to {wf.period.end}; hint: change period or the input paths"
        )
    w = min(g.bbox[0] for g in in_period)
    s = min(g.bbox[1] for g in in_period)
    e = max(g.bbox[2] for g in in_period)
    n = max(g.bbox[3] for g in in_period)
    return (
        f"inputs.{name}: none of its {len(index.files)} file(s) covers the region "
        f"{list(wf.region.lonlat_bbox)} (their headers span [{w:.2f}, {s:.2f}, {e:.2f}, {n:.2f}]); "
        "hint: check region.bbox (W, S, E, N in degrees) or `fluxscape inspect` the files"
    )


def read_headers(reader: str, content_hash: bool, stamps: list[Stamp]) -> list[tuple]:
    """The header reads of one batch of files, run on a worker (or in the driver): for each
    stamp, ``(stamp, (kind, value, sha256))`` with kind ``granule`` (value the Granule, its
    ``stamps`` set), ``none`` (the file holds nothing the pipeline reads) or ``skipped``
    (value the reason: a format or I/O error); ``sha256`` the file's content hash when
    ``content_hash``, else None. Any other exception is a bug and propagates."""
    spec = get_reader(reader)
    out = []
    for stamp in stamps:
        path = stamp[0]
        try:
            granule = _granule_info(spec, path, stamp)
            sha = file_checksum(path) if content_hash else None
        except READ_ERRORS as exc:
            out.append((stamp, ("skipped", skipped_from(path, exc).reason, None)))
            continue
        if granule is None:
            out.append((stamp, ("none", None, sha)))
        else:
            out.append((stamp, ("granule", replace(granule, stamps=(stamp,)), sha)))
    return out


def index_input(
    name: str,
    reader: str,
    paths: list[str],
    *,
    region: tuple[float, float, float, float] | None = None,
    cache_dir: Path | None = None,
    mapper: Mapper | None = None,
    content_hash: bool = False,
    listing: list[Stamp] | None = None,
    reuse_cache: bool = True,
    write_cache: bool = True,
) -> InputIndex:
    """Index one input from its listing and file headers.

    The files matched by the globs ``paths`` are listed with their stamps (size,
    modification time or ETag; ``listing`` gives them instead); with a lon/lat ``region``
    [W, S, E, N], files whose names alone place them elsewhere (the source's ``name_bbox``)
    are left unopened; the headers of the others are read (``granule_info``; format and I/O
    errors skip the file) in batches through ``mapper`` (see
    :mod:`fluxscape.pipeline.archive`; in this process when None or when fewer than
    ``PARALLEL_MIN`` files are to be read), with their SHA-256 when ``content_hash``; files of
    one group are merged into one granule. With ``cache_dir``, the index is cached there
    (``<name>.pkl``): an unchanged listing reuses it without opening any file, a changed one
    reads only the new and changed files; a file is read again only when its stamp changes,
    so one skipped as unreadable stays skipped until then (``reuse_cache=False``, as
    ``fluxscape run --fresh`` does, reads every header again; ``write_cache=False`` leaves the
    cache as it is). FluxscapeError when the source has no granules (no raster or sounding)."""
    spec = get_reader(reader)
    if spec.granule_info is None:
        raise FluxscapeError(f"inputs.{name}: reader {reader} gives no granules to index")
    listed = list_stamped(paths) if listing is None else listing
    cache = IndexCache(None if cache_dir is None else Path(cache_dir) / f"{name}.pkl", reader)
    if not reuse_cache:
        cache.forget()
    region = None if region is None else tuple(float(v) for v in region)
    key = listing_key(listed, CACHE_FORMAT, reader, region, content_hash)
    if cache.last.get("key") == key:
        return replace(cache.last["index"], name=name)
    stamps, outside = outside_by_name(spec.name_bbox, listed, region)
    known: dict[str, tuple] = {}
    todo: list[Stamp] = []
    for stamp in stamps:
        entry = cache.entry(stamp)
        if entry is None or (content_hash and entry[0] != "skipped" and entry[2] is None):
            todo.append(stamp)
        else:
            known[stamp[0]] = (stamp, entry)
    if todo:
        run = mapper if mapper is not None and len(todo) >= PARALLEL_MIN else serial_map
        work = batches(todo) if run is not serial_map else [todo]
        for results in run(partial(read_headers, reader, content_hash), work):
            known.update((stamp[0], (stamp, entry)) for stamp, entry in results)
    index = InputIndex(name, reader, [s[0] for s in stamps], outside=outside, read=len(todo))
    groups: dict = {}
    for stamp in stamps:
        path = stamp[0]
        kind, value, sha = known[path][1]
        if kind == "skipped":
            index.skipped.append(Skipped(path, value))
            continue
        if sha is not None:
            index.hashes[path] = sha
        if kind == "none":
            index.ignored.append(Skipped(path, "holds no observation the pipeline reads"))
            continue
        groups.setdefault(value.group if value.group is not None else path, []).append(value)
    merged = [
        replace(merge(parts), stamps=tuple(s for p in parts for s in p.stamps))
        for parts in groups.values()
    ]
    index.granules = sorted(merged, key=lambda g: (g.start, g.path))
    if write_cache:
        cache.save(
            {p: entry for p, entry in known.items()}
            if todo or len(known) != len(cache.files)
            else None,
            {"key": key, "index": replace(index, read=0)},
        )
    return index


def check_indexes_unchanged(indexes: Iterable[InputIndex]) -> None:
    """InputChanged naming the first file of the indexes that changed since it was indexed."""
    for index in indexes:
        for g in index.granules:
            check_unchanged(g.stamps)


def granules_per_tile(granules: list[Granule], tiling, tiles) -> dict[str, list[Granule]]:
    """The granules that meet each tile (by tile id), from each granule's footprint through
    odc-geo's tile-by-geometry query (not tiles x granules); ``tiling`` is the grid's
    GeoboxTiles, ``tiles`` its Tile list."""
    ids = {t.index: t.id for t in tiles}
    out: dict[str, list[Granule]] = {t.id: [] for t in tiles}
    for g in granules:
        for idx in tiling.tiles(g.geometry()):
            if idx in ids:
                out[ids[idx]].append(g)
    return out


@dataclass
class TileInputs:
    """What a tile read: skipped files with reasons, files opened, files that gave at least
    one usable value on the tile, and the number of usable observations."""

    skipped: list[Skipped] = field(default_factory=list)
    opened: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)
    observations: int = 0

    def to_json(self) -> dict:
        return {
            "skipped": [s.to_json() for s in self.skipped],
            "opened": sorted(self.opened),
            "used": sorted(self.used),
            "observations": self.observations,
        }


def read_onto_tile(
    reader: str,
    granules: Iterable[Granule],
    tile: GeoBox,
    layers: Iterable[str],
    options: dict,
    record: TileInputs,
) -> Iterator[tuple[Granule, dict]]:
    """Each granule's ``layers`` on the tile, as the source reads them (see ReaderSpec.read):
    granules on one native grid share the source's ``prepare`` (e.g. a nearest-pixel index).
    A granule whose read raises a format or I/O error is recorded in ``record.skipped`` and
    left out; a file changed since it was indexed raises :class:`InputChanged` (the tile
    fails); ``usable`` is false where a requested float layer is not finite; files that gave a
    usable value are added to ``record.used``."""
    spec = get_reader(reader)
    layers = frozenset(layers)
    groups: dict = {}
    for g in granules:
        groups.setdefault(g.key, []).append(g)
    for members in groups.values():
        for granule in members:
            # an object this process staged at the indexed version is read from its copy
            check_unchanged(s for s in granule.stamps if not remote.staged(s))
        context = spec.prepare(on_disk(members[0]), tile, options)
        if context is None:
            continue
        for granule in members:
            try:
                out = spec.read(on_disk(granule), tile, layers, options, context)
            except READ_ERRORS as exc:
                record.skipped.append(skipped_from(granule.path, exc))
                continue
            if out is None:
                continue
            files = [remote.original(f) for f in out.pop("files", list(granule.files))]
            for name in layers & out.keys():  # a value the QA calls good but that is fill
                if np.issubdtype(np.asarray(out[name]).dtype, np.floating):
                    out["usable"] = out["usable"] & np.isfinite(out[name])
            record.opened.update(files)
            if np.any(out["usable"]):
                record.used.update(files)
                record.observations += 1
            yield granule, out
