"""Source registry: one :class:`ReaderSpec` per source, registered by its own module.

A spec says everything the rest of fluxscape needs about a source: how to recognise its files
(file-name patterns, then a content check), how to open and summarise one file, which standard
layers it gives (``capabilities``, the vocabulary of :data:`fluxscape.readers.ontile.LAYERS`),
whether it sees a place many times a day, and, for raster sources, ``granule_info`` (headers
only) and ``prepare``/``read`` (a granule onto a tile's GeoBox). Steps ask for capabilities,
never for reader names.

``detect(path)`` picks the reader whose file-name pattern matches and whose content check
accepts the file; a file that matches nothing gets a :class:`~fluxscape.errors.ReaderError`
naming the file and the readers tried. Third-party packages add sources through the
``fluxscape.sources`` entry-point group (each entry a module that registers on import, or a
ReaderSpec), as xarray backends do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from fluxscape.errors import ReaderError


@dataclass(frozen=True)
class FileSummary:
    """What ``fluxscape inspect`` prints for one file.

    bbox is [W, S, E, N] in degrees (EPSG:4326) or None when the file carries no location;
    time is [start, end] as ISO 8601 strings or None.
    """

    path: str
    reader: str
    variables: list[str]
    bbox: list[float] | None
    time: list[str] | None
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "reader": self.reader,
            "variables": self.variables,
            "bbox": self.bbox,
            "time": self.time,
            **({"details": self.details} if self.details else {}),
        }


@dataclass(frozen=True)
class ReaderSpec:
    """One source: its name, file-name regexes (matched on the base name), a content check,
    an ``open`` returning an xarray Dataset and a ``summarize`` for ``inspect``; what it gives.

    - ``capabilities``: the standard layers files of this source may give (a single file may
      give fewer: :attr:`fluxscape.readers.ontile.Granule.layers` says which);
    - ``many_per_day``: the source sees a place many times a day (geostationary); its
      observations carry ``solar_time`` and ``sza``;
    - ``granule_info(path) -> Granule | None``: headers only; None for a file of the source
      that holds no observation for the pipeline (e.g. an SGLI L1B IRS file);
    - ``prepare(granule, tile, options) -> context | None``: what every granule on the same
      native grid (``Granule.key``) shares on one tile (e.g. a nearest-pixel index); None when
      that grid does not meet the tile;
    - ``read(granule, tile, layers, options, context) -> dict | None``: the requested layers
      (and ``reliability``, ``usable``, ``doy``, ``files``: the files opened) as (y, x) arrays
      on the tile, or None when the granule has nothing over the tile. A format or I/O problem
      raises ReaderError or OSError (the granule is skipped); anything else is a bug.
    - ``quality``: one line on the QA / cloud mask used, for product summaries;
    - ``folder``: the source's unit is a folder of tables (e.g. a COSORE dataset), not a file;
      ``detect`` offers a directory only to such readers;
    - ``name_bbox(name) -> [W, S, E, N] | None``: the lon/lat box (degrees) that a file's base
      name alone places it in (a MODIS ``hHHvVV`` tile, an AHI full-disk segment, an SGLI
      tile), an envelope of everything the file can hold; None when the name does not say.
      The input index leaves files whose box misses the region unopened.
    """

    name: str
    patterns: tuple[str, ...]
    sniff: Callable[[Path], bool]
    open: Callable[[Path], xr.Dataset]
    summarize: Callable[[Path], FileSummary]
    description: str = ""
    capabilities: frozenset[str] = frozenset()
    many_per_day: bool = False
    granule_info: Callable | None = None
    prepare: Callable | None = None
    read: Callable | None = None
    quality: str = ""
    folder: bool = False
    name_bbox: Callable[[str], Sequence[float] | None] | None = None

    def gives(self, *layers: str) -> bool:
        """True when the source may give every one of ``layers``."""
        return set(layers) <= self.capabilities

    def matches_name(self, path: Path) -> bool:
        return any(re.fullmatch(p, path.name) for p in self.patterns)


_READERS: dict[str, ReaderSpec] = {}


def register(spec: ReaderSpec) -> ReaderSpec:
    """Add a reader to the registry (idempotent by name)."""
    _READERS[spec.name] = spec
    return spec


def extend_capabilities(name: str, layers) -> None:
    """Add ``layers`` to the capabilities of the registered source ``name`` (a module adding
    a product to a format family, e.g. a MODIS product); no-op before it is registered."""
    from dataclasses import replace

    spec = _READERS.get(name)
    if spec is not None:
        _READERS[name] = replace(spec, capabilities=spec.capabilities | frozenset(layers))


def readers() -> dict[str, ReaderSpec]:
    """All registered readers by name."""
    _load_builtin()
    return dict(_READERS)


def sources_giving(*layers: str) -> list[str]:
    """Names of the registered sources that may give all of ``layers`` (for messages)."""
    return sorted(name for name, spec in readers().items() if spec.gives(*layers))


def get_reader(name: str) -> ReaderSpec:
    """The reader called ``name``; ReaderError listing the known names otherwise."""
    known = readers()
    if name not in known:
        raise ReaderError(f"unknown reader {name!r}; known readers: {', '.join(sorted(known))}")
    return known[name]


def detect(path: str | Path) -> ReaderSpec:
    """Pick the reader for ``path``: name pattern first, then the content check.

    A sniff returns True, or raises ReaderError saying why the content is not its format
    (returning False is allowed too; the reason is then only what the file is). Raises
    ReaderError naming the file, each reader whose name pattern matched with its reason, and
    the readers tried, when none accepts it. A directory is offered to folder readers
    (``ReaderSpec.folder``, e.g. a COSORE dataset) only; none accepting it is ``is a
    directory, not a file``, with the reason of a folder reader whose name pattern matched.
    """
    from fluxscape.readers.magic import describe, kind_of

    path = Path(path)
    if not path.exists():
        raise ReaderError(f"{path}: no such file")
    known = readers()
    if path.is_dir():
        return _detect_folder(path, known)
    by_name = [r for r in known.values() if r.matches_name(path)]
    problems = []
    for spec in by_name:
        try:
            if spec.sniff(path):
                return spec
            problems.append(
                f"{spec.name}: name matches but content does not "
                f"(the file is {describe(kind_of(path))})"
            )
        except Exception as exc:  # a content check that fails is a reason, not a crash
            problems.append(f"{spec.name}: {_reason(exc, path)}")
    for spec in known.values():
        if spec in by_name:
            continue
        try:
            if spec.sniff(path):
                return spec
        except Exception:
            continue
    tried = ", ".join(sorted(known))
    if not problems:
        problems.append(
            f"no reader's file-name pattern matches; the file is {describe(kind_of(path))}"
        )
    raise ReaderError(
        f"{path}: no reader recognises this file ({'; '.join(problems)}); readers tried: {tried}"
    )


def _detect_folder(path: Path, known: dict[str, ReaderSpec]) -> ReaderSpec:
    """The folder reader accepting ``path``; ReaderError (``is a directory, not a file``, with
    the folder readers' reasons when the name matched one) otherwise."""
    problems = []
    for spec in (r for r in known.values() if r.folder):
        try:
            if spec.sniff(path):
                return spec
        except Exception as exc:
            if spec.matches_name(path):
                problems.append(f"{spec.name}: {_reason(exc, path)}")
    why = f" ({'; '.join(problems)})" if problems else ""
    raise ReaderError(f"{path}: is a directory, not a file{why}")


def _reason(exc: Exception, path: Path) -> str:
    """A sniff's exception as a reason: its message without the leading ``<path>: ``."""
    msg = str(exc) or type(exc).__name__
    for prefix in (f"{path}: ", f"{path.name}: "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def open_file(path: str | Path, reader: str | None = None) -> xr.Dataset:
    """Open ``path`` with the named reader, or the detected one."""
    spec = get_reader(reader) if reader else detect(path)
    return spec.open(Path(path))


def inspect_file(path: str | Path) -> FileSummary:
    """Reader, variables, lon/lat bbox and time span of one file."""
    return detect(path).summarize(Path(path))


_NOT_READERS = {"registry", "xarray_backends", "ontile", "qa", "split_window", "magic"}
ENTRY_POINT_GROUP = "fluxscape.sources"
_loaded = False


def _load_builtin() -> None:
    """Import every reader module of this package (importing one registers it, satpy-style:
    one module per source), then the ``fluxscape.sources`` entry points of installed
    packages."""
    global _loaded
    if _loaded:
        return
    _loaded = True  # before importing: a reader module may look at the registry
    import importlib
    import pkgutil
    from importlib.metadata import entry_points

    import fluxscape.readers as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in _NOT_READERS and not info.name.startswith("_"):
            importlib.import_module(f"fluxscape.readers.{info.name}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        loaded = ep.load()
        if isinstance(loaded, ReaderSpec):
            register(loaded)
