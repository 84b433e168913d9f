"""Inputs on object storage: URLs (``s3://bucket/key``, ``https://...``) listed through fsspec
and staged once to a local cache, so every reader (HDF4 included, which needs a local file)
reads them as it reads a local file.

Credentials and the endpoint come only from the environment that the storage library reads
itself (for S3: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``...): fluxscape passes no storage options, so no secret reaches a workflow,
store, log or catalog file.

The cache folder is ``$FLUXSCAPE_CACHE_DIR`` or else the user's cache folder
(``$XDG_CACHE_HOME/fluxscape/remote``, ``~/.cache/fluxscape/remote``): every Dask worker
finds it without being told the run's output folder (workers of a batch cluster start
elsewhere), and a rerun or ``--resume`` reads the objects it already staged. A staged copy
is named by the URL and the object's ETag (or modification time), so a changed object is a
new copy, and keeps the object's base name (readers parse granule names); an object served
without either (a plain HTTP server) is downloaded again by each process.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from fluxscape.errors import FluxscapeError

#: Local copies staged by this process: URL -> path, and path -> URL.
_local: dict[str, str] = {}
_urls: dict[str, str] = {}
_versions: dict[str, str] = {}  # URL -> ETag (or modification time) of its staged copy


#: URL schemes whose host part is a bucket (a missing bucket gets its own message).
BUCKET_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


class RemoteError(FluxscapeError):
    """A URL input that cannot be listed or read (missing bucket or object, no access)."""


def is_url(path: str | os.PathLike) -> bool:
    """True for a URL with a scheme other than ``file`` (``s3://``, ``https://``, ``gs://``)."""
    text = str(path)
    if "://" not in text:
        return False
    scheme = urlsplit(text).scheme
    return len(scheme) > 1 and scheme != "file"


def join(base: str, relative: str) -> str:
    """``relative`` (a glob or file name) under the URL ``base``; an absolute path or URL
    ``relative`` is returned as is."""
    if is_url(relative) or relative.startswith("/"):
        return relative
    parts = urlsplit(base)
    path = posixpath.normpath(posixpath.join(parts.path or "/", relative))
    return f"{parts.scheme}://{parts.netloc}{path}"


def _fs(url: str):
    """The fsspec file system of ``url`` and the path within it (no storage options: the
    library reads endpoint and credentials from the environment)."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:  # e.g. s3:// without s3fs
        raise RemoteError(
            f"{url}: reading {urlsplit(url).scheme}:// URLs needs a package that is not "
            f"installed ({exc}); hint: pip install 'fluxscape[s3]'"
        ) from None


def _as_url(url: str, fs, path: str) -> str:
    """The URL of ``path`` on ``fs``, with the scheme ``url`` was written with."""
    return path if is_url(path) else f"{urlsplit(url).scheme}://{path}"


def _version(info: dict) -> str:
    """The object's ETag (quotes stripped) or, failing that, its modification time."""
    for key in ("ETag", "etag"):
        if info.get(key):
            return str(info[key]).strip('"')
    for key in ("LastModified", "last_modified", "mtime", "modified"):
        if info.get(key) is not None:
            return str(info[key])
    return ""


def expand(pattern: str) -> list[str]:
    """Sorted URLs of the objects (not folders) that the glob URL ``pattern`` matches;
    RemoteError naming the URL when the bucket or server cannot be listed."""
    return [s[0] for s in expand_stamped(pattern)]


def expand_stamped(pattern: str) -> list[tuple[str, int, str]]:
    """(URL, size in bytes, ETag or modification time) of each object the glob URL
    ``pattern`` matches, sorted by URL, from the listing itself (no request per object);
    RemoteError naming the URL when the bucket or server cannot be listed."""
    fs, path = _fs(pattern)
    try:
        found = fs.glob(path, detail=True)
    except (OSError, ValueError) as exc:  # missing bucket, no access, bad endpoint
        raise RemoteError(f"{pattern}: cannot list ({_reason(exc)})") from None
    stamps = sorted(
        (_as_url(pattern, fs, p), int(info.get("size") or 0), _version(info))
        for p, info in found.items()
        if info.get("type") == "file"
    )
    bucket = urlsplit(pattern).netloc
    if not stamps and urlsplit(pattern).scheme in BUCKET_SCHEMES and not _exists(fs, bucket):
        raise RemoteError(
            f"{pattern}: bucket {bucket!r} not found or not readable at the configured endpoint"
        )
    return stamps


def _exists(fs, path: str) -> bool:
    try:
        return bool(fs.exists(path))
    except (OSError, ValueError):
        return False


def stamp(url: str) -> tuple[str, int, str]:
    """(URL, size in bytes, ETag or modification time) of an object, read from the server
    (not a cached listing). FileNotFoundError when the object is gone."""
    fs, path = _fs(url)
    fs.invalidate_cache(path)
    info = fs.info(path)
    return (url, int(info.get("size") or 0), _version(info))


def describe(url: str) -> dict:
    """Provenance of an object: base name, URL, size (bytes) and ETag or modification time
    (no content hash: that would read the whole object)."""
    _, size, version = stamp(url)
    return {
        "file": posixpath.basename(urlsplit(url).path),
        "path": url,
        "size": size,
        "etag": version,
    }


def check_object(url: str) -> None:
    """RemoteError naming ``url`` when no object is there (or it cannot be read)."""
    try:
        stamp(url)
    except FileNotFoundError:
        raise RemoteError(f"{url}: no such object") from None
    except OSError as exc:
        raise RemoteError(f"{url}: cannot read ({_reason(exc)})") from None


def find_up(url: str, name: str, levels: int = 3) -> str | None:
    """The URL of the object ``name`` in the folder of the object ``url`` or up to
    ``levels - 1`` parent folders (nearest first), else None; the remote counterpart of
    looking for a file beside a local one (e.g. a tower network's ``SitesList.csv``)."""
    parts = urlsplit(url)
    folder = posixpath.dirname(parts.path)
    for _ in range(levels):
        candidate = f"{parts.scheme}://{parts.netloc}{posixpath.join(folder, name)}"
        fs, path = _fs(candidate)
        if _exists(fs, path):
            return candidate
        if folder in ("", "/"):
            break
        folder = posixpath.dirname(folder)
    return None


def cache_dir() -> Path:
    """The folder of staged copies: ``$FLUXSCAPE_CACHE_DIR`` or the user's cache folder."""
    env = os.environ.get("FLUXSCAPE_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fluxscape" / "remote"


def local(path: str, version: str | None = None) -> str:
    """A local file holding ``path``: a local path as is; a URL's object staged once (per
    process, and kept across runs in :func:`cache_dir`) and its local copy. ``version``:
    the object's ETag or modification time when the caller has just read it (saves a
    request). A missing or unreadable object raises OSError naming the URL (the input is
    skipped like an unreadable local file)."""
    if not is_url(path):
        return path
    if path in _local:
        return _local[path]
    try:
        if version is None:
            _, _, version = stamp(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such object") from None
    except OSError as exc:
        raise OSError(f"{path}: cannot read ({_reason(exc)})") from None
    digest = hashlib.sha256(f"{path}\n{version}".encode()).hexdigest()[:24]
    name = posixpath.basename(urlsplit(path).path) or "object"
    target = cache_dir() / digest / name
    # without an ETag or modification time, a copy an earlier run made may be stale
    if not target.is_file() or not version:
        target.parent.mkdir(parents=True, exist_ok=True)
        fs, key = _fs(path)
        # download beside the target and rename: a worker never sees a half-written copy
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        os.close(fd)
        try:
            fs.get_file(key, tmp)
            os.replace(tmp, target)
        except OSError as exc:
            raise OSError(f"{path}: cannot read ({_reason(exc)})") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    _local[path] = str(target)
    _urls[str(target)] = path
    _versions[path] = version
    return str(target)


def staged(stamp: tuple) -> bool:
    """True when ``stamp`` (URL, size, version) is that of an object this process already
    staged: its copy holds that version, so reading it needs no new check of the object."""
    return is_url(stamp[0]) and _versions.get(stamp[0]) == stamp[2]


def copy_of(url: str) -> str | None:
    """The local copy of ``url`` staged by this process, if any."""
    return _local.get(url)


def original(path: str) -> str:
    """The URL a local copy made by :func:`local` was staged from; any other path as is."""
    return _urls.get(path, path)


def _reason(exc: BaseException) -> str:
    """A one-line reason from a storage library's exception."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
