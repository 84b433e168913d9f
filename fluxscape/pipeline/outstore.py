"""Where a run's product stores and their state live: a local OUT folder or an object-store
prefix (``output.dir: s3://bucket/prefix``, issue #17). One mechanism, two backends.

Both backends keep the same layout and the same life of a store:

- built in ``OUT/.fluxscape/building/<product>.zarr`` (workers write their tile regions
  straight there: on object storage through zarr/fsspec, no local copy);
- finished tiles recorded in the product's manifest (:class:`~fluxscape.pipeline.store.Manifest`
  locally, an append-only JSON-lines file; :class:`ObjectManifest` on object storage, which has
  no append: one small object per finished tile);
- published as the immutable version ``OUT/products/.versions/<product>/<run id>.zarr`` and made
  current in ONE atomic step: locally the rename of the symbolic link
  ``OUT/products/<product>.zarr``; on object storage the PUT of the pointer object
  ``OUT/products/<product>.zarr.current`` (a JSON document naming the version; a single PUT is
  atomic on S3). Object stores have no rename of folders, so the version is a server-side copy
  of the building prefix, made before the pointer names it: a reader never sees it half made.

On object storage the small files a run writes beside the stores (run log, lock, workflow,
quicklooks, reports, models, catalog, run report) are made in a local work folder
(:func:`work_dir`, in the per-user cache) and uploaded by :meth:`Outputs.upload` after each
publication; the catalog's root ``catalog.json`` is uploaded last, in one PUT.

Credentials and endpoint come from the storage library's own environment (``AWS_*`` variables
or a profile): no storage option is passed or written anywhere.

Single writer on object storage: S3 offers no lock that dies with its holder, so one run at a
time writes an output prefix (documented rule; the local work folder's ``flock`` stops a second
run on the same machine, and ``OUT/.fluxscape/lock.json`` names the last writer).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from fluxscape.pipeline import remote
from fluxscape.pipeline.store import VERSIONS_DIR, Manifest, publish_version

#: Suffix of the pointer object naming a product's current version on object storage.
POINTER_SUFFIX = ".current"
STATE_DIR = ".fluxscape"


def work_dir(url: str) -> Path:
    """The local work folder of the output URL ``url``: ``<cache>/outputs/<sha256 of URL>`` (the
    per-user cache of :mod:`fluxscape.pipeline.remote`); holds the small files a run writes
    before they are uploaded, never a store."""
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return remote.cache_dir() / "outputs" / digest


def _url_join(base: str, *parts: str) -> str:
    return base.rstrip("/") + "/" + "/".join(p.strip("/") for p in parts)


class Outputs:
    """The product stores of one OUT: ``url`` None for a local folder ``out_dir``; else the
    object-store prefix, with ``out_dir`` its local work folder."""

    def __init__(self, out_dir: Path, url: str | None = None):
        self.out_dir, self.url = Path(out_dir), (url.rstrip("/") if url else None)

    @classmethod
    def of(cls, output_dir: str | Path) -> Outputs:
        """The backend of a resolved ``output.dir`` (a folder or a URL)."""
        if remote.is_url(output_dir):
            return cls(work_dir(str(output_dir)), str(output_dir))
        return cls(Path(output_dir))

    @property
    def remote(self) -> bool:
        return self.url is not None

    def _fs(self):
        return remote._fs(self.url)[0]

    @staticmethod
    def _path(url: str) -> str:
        return remote._fs(url)[1]

    # -- locations ------------------------------------------------------------------------
    def staging(self, name: str) -> Path | str:
        """Where product ``name``'s store is built (readers never look there)."""
        if self.url:
            return _url_join(self.url, STATE_DIR, "building", f"{name}.zarr")
        return self.out_dir / STATE_DIR / "building" / f"{name}.zarr"

    def pointer(self, name: str) -> Path | str:
        """What readers open to find the current version: the link (local) or the pointer
        object (object storage)."""
        if self.url:
            return _url_join(self.url, "products", f"{name}.zarr{POINTER_SUFFIX}")
        return self.out_dir / "products" / f"{name}.zarr"

    def published(self, name: str) -> Path | str | None:
        """The current version of product ``name`` to open (the link locally, the version's
        URL on object storage), or None when none is published."""
        if not self.url:
            link = self.out_dir / "products" / f"{name}.zarr"
            return link if link.exists() else None
        fs = self._fs()
        where = self._path(self.pointer(name))
        fs.invalidate_cache(where)
        try:
            doc = json.loads(fs.cat_file(where))
        except FileNotFoundError:
            return None
        return _url_join(self.url, "products", doc["store"])

    def exists(self, location: Path | str) -> bool:
        """True when a store (or state object) exists at ``location``."""
        if isinstance(location, Path):
            return location.exists()
        fs = self._fs()
        path = self._path(location)
        fs.invalidate_cache(path)
        return bool(fs.exists(path))

    def remove(self, location: Path | str) -> None:
        """Remove a store or state prefix (nothing when absent)."""
        if isinstance(location, Path):
            shutil.rmtree(location, ignore_errors=True)
            return
        fs = self._fs()
        path = self._path(location)
        fs.invalidate_cache(path)
        if fs.exists(path):
            fs.rm(path, recursive=True)

    def manifest(self, name: str) -> Manifest | ObjectManifest:
        """Product ``name``'s record of finished tiles."""
        if self.url:
            return ObjectManifest(self, _url_join(self.url, STATE_DIR, "manifests", name))
        return Manifest(self.out_dir / STATE_DIR / f"{name}.manifest.jsonl")

    def claim(self, command: str) -> None:
        """Name this run as the writer of the output prefix (``OUT/.fluxscape/lock.json``:
        pid, host, start time, command); nothing for a local OUT, whose ``flock`` does it."""
        if not self.url:
            return
        import os
        import socket
        from datetime import UTC, datetime

        doc = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "command": command,
        }
        self._fs().pipe_file(
            self._path(_url_join(self.url, STATE_DIR, "lock.json")), json.dumps(doc).encode()
        )

    def pull(self) -> None:
        """Before a run on a machine whose work folder is new (object storage only): copy the
        catalog, models and quicklooks an earlier run uploaded into the work folder, so this
        run adds to that catalog and a ``flux`` product finds its saved model."""
        if not self.url or (self.out_dir / STATE_DIR).is_dir():
            return
        fs = self._fs()
        for name in ("catalog", "models", "quicklooks"):
            where = self._path(_url_join(self.url, name))
            fs.invalidate_cache(where)
            if fs.exists(where):
                (self.out_dir / name).mkdir(parents=True, exist_ok=True)
                fs.get(where + "/", str(self.out_dir / name) + "/", recursive=True)

    def upload_published(self, catalog_dir: Path) -> None:
        """After a product's publication: upload the quicklooks, models, reports and (when it
        is the run's own, inside the work folder) the catalog (object storage only)."""
        if not self.url:
            return
        for name in ("quicklooks", "models", "reports", "alerts"):
            self.upload(self.out_dir / name, name)
        catalog = Path(catalog_dir)
        if catalog.is_relative_to(self.out_dir):
            self.upload(catalog, catalog.relative_to(self.out_dir).as_posix())

    def upload_run_files(self) -> None:
        """At the end of a run: the resolved workflow, the run log, the run record and the
        run report (object storage only)."""
        if not self.url:
            return
        for rel in ("workflow.yaml", "report.html", "reports", f"{STATE_DIR}/run.log"):
            self.upload(self.out_dir / rel, rel)

    # -- publication -----------------------------------------------------------------------
    def publish(self, name: str, version: str) -> Path | str:
        """Make the finished store in the building folder product ``name``'s current version
        ``version`` (see the module doc); returns what readers open."""
        if not self.url:
            store = self.out_dir / "products" / f"{name}.zarr"
            publish_version(Path(self.staging(name)), store, version)
            return store
        fs = self._fs()
        rel = posixpath.join(VERSIONS_DIR, name, f"{version}.zarr")
        target = _url_join(self.url, "products", rel)
        staging = self._path(self.staging(name))
        self.remove(target)
        # No rename of folders on object storage: a server-side copy of each object, then
        # the one PUT of the pointer (atomic) makes it current.
        fs.invalidate_cache(staging)
        fs.copy(staging, self._path(target), recursive=True)
        previous = self.published(name)
        fs.pipe_file(
            self._path(self.pointer(name)),
            json.dumps({"version": version, "store": rel}).encode(),
        )
        keep = {target.rstrip("/"), (previous or "").rstrip("/")}
        versions = _url_join(self.url, "products", VERSIONS_DIR, name)
        fs.invalidate_cache(self._path(versions))
        for old in fs.ls(self._path(versions), detail=False):
            url = f"{urlsplit(self.url).scheme}://{old}".rstrip("/")
            if url not in keep:
                fs.rm(old, recursive=True)
        fs.rm(staging, recursive=True)
        return target

    def upload(self, local: Path, relative: str) -> None:
        """Copy the local work folder's file or folder ``local`` to ``OUT/<relative>`` (object
        storage only); a folder's ``catalog.json`` files are put last, the root one very last,
        so a reader meets a complete catalog."""
        if not self.url or not local.exists():
            return
        fs = self._fs()
        base = self._path(_url_join(self.url, relative))
        if local.is_file():
            fs.put_file(str(local), base)
            return
        # not the catalog's lock file: object storage has no flock (single writer, see above);
        # not a file still being written (``NAME.tmp``, ``NAME.tmp.png``, renamed when done):
        # a worker may be drawing another product's maps into this folder meanwhile, and
        # that product's own publication uploads them once renamed
        files = sorted(
            p
            for p in local.rglob("*")
            if p.is_file() and p.name != ".lock" and ".tmp" not in p.suffixes
        )
        last = [p for p in files if p.name == "catalog.json"]
        last.sort(key=lambda p: -len(p.parts))  # deepest first: the root catalog.json last
        for path in [p for p in files if p.name != "catalog.json"] + last:
            fs.put_file(str(path), posixpath.join(base, path.relative_to(local).as_posix()))


class ObjectManifest:
    """A product's record of finished tiles on object storage (no append there): the
    objects ``<prefix>/start.json`` (``{"workflow_hash": digest}``), one
    ``<prefix>/tiles/<tile>.json`` per finished tile and ``<prefix>/complete.json``. Same
    interface as :class:`~fluxscape.pipeline.store.Manifest`."""

    def __init__(self, outputs: Outputs, prefix: str):
        self.outputs, self.prefix = outputs, prefix
        self.path = prefix  # what messages name

    def _p(self, *parts: str) -> str:
        return Outputs._path(_url_join(self.prefix, *parts))

    def read(self) -> dict:
        """{"workflow_hash": str | None, "tiles": {id: entry}, "complete": bool}."""
        fs = self.outputs._fs()
        state = {"workflow_hash": None, "tiles": {}, "complete": False}
        root = self._p()
        fs.invalidate_cache(root)
        found = fs.find(root)
        docs = fs.cat([p for p in found if p.endswith(".json")]) if found else {}
        for path, raw in docs.items():
            entry = json.loads(raw)
            if path.endswith("/start.json"):
                state["workflow_hash"] = entry["workflow_hash"]
            elif path.endswith("/complete.json"):
                state["complete"] = True
            elif "tile" in entry:
                state["tiles"][entry["tile"]] = entry
        return state

    def start(self, workflow_hash: str) -> None:
        """Forget every earlier record and start one for ``workflow_hash``."""
        self.unlink()
        self.outputs._fs().pipe_file(
            self._p("start.json"), json.dumps({"workflow_hash": workflow_hash}).encode()
        )

    def append(self, entry: dict) -> None:
        """Record a finished tile (``{"tile": id, ...}``) or ``{"complete": True}``."""
        name = f"tiles/{entry['tile']}.json" if "tile" in entry else "complete.json"
        self.outputs._fs().pipe_file(self._p(name), json.dumps(entry).encode())

    def unlink(self, missing_ok: bool = True) -> None:
        """Remove the record."""
        self.outputs.remove(self.prefix)


def check_remote_output(outputs: Outputs) -> None:
    """FluxscapeError when the output prefix holds objects no fluxscape run wrote (the
    object-store form of :func:`fluxscape.pipeline.outdir.check_output_dir`), or its bucket
    cannot be listed."""
    from fluxscape.errors import FluxscapeError
    from fluxscape.pipeline.outdir import RUN_ENTRIES

    fs = outputs._fs()
    path = Outputs._path(outputs.url)
    bucket = path.split("/", 1)[0]
    try:
        fs.invalidate_cache(path)
        if not fs.exists(bucket):
            raise FluxscapeError(
                f"output.dir: {outputs.url}: bucket {bucket!r} not found or not writable at "
                "the configured endpoint"
            )
        entries = fs.ls(path, detail=False) if fs.exists(path) else []
    except OSError as exc:
        raise FluxscapeError(f"output.dir: {outputs.url}: cannot list ({exc})") from None
    names = {posixpath.basename(e.rstrip("/")) for e in entries}
    foreign = sorted(names - RUN_ENTRIES)
    if foreign and STATE_DIR not in names:
        raise FluxscapeError(
            f"output.dir: {outputs.url} holds objects that no fluxscape run wrote (first: "
            f"{foreign[0]}); use an empty or new prefix, or the output of an earlier run"
        )


def location_exists(location: Path | str) -> bool:
    """True when a folder or file, or an object or prefix at a URL, exists."""
    if not remote.is_url(location):
        return Path(location).exists()
    fs, path = remote._fs(str(location))
    fs.invalidate_cache(path)
    return bool(fs.exists(path))
