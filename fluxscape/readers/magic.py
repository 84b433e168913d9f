"""What a file is, from its first bytes: the generic checks every reader's sniff shares.

``kind_of(path)`` names the container (``"hdf4"``, ``"hdf5"``, ``"netcdf3"``, ``"gzip"``,
``"html"``, ``"text"``, ...) or the state (``"missing"``, ``"directory"``, ``"empty"``)
without any format library. ``require(path, kinds, what)`` raises a
:class:`~fluxscape.errors.ReaderError` saying what the file actually is when it is not one of
``kinds`` (``"is an HTML page, not a Himawari HSD segment (a failed download?)"``), and, for
HDF5, when the file is shorter than its superblock says (``"truncated: header says N bytes,
file has M"``). Each reader's sniff calls ``require`` first, then checks its own layout.

This module registers no reader (importing it, as the registry does for every module of
``fluxscape.readers``, has no effect).
"""

from __future__ import annotations

import json
from pathlib import Path

from fluxscape.errors import ReaderError

__all__ = ["KINDS", "describe", "hdf5_truncation", "kind_of", "require"]

_HEAD_BYTES = 4096
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

#: Every kind ``kind_of`` returns, with the phrase ``require`` uses for it ("is <phrase>").
KINDS: dict[str, str] = {
    "missing": "missing (no such file)",
    "directory": "a directory, not a file",
    "unreadable": "unreadable",
    "empty": "empty (0 bytes)",
    "hdf4": "an HDF4 file",
    "hdf5": "an HDF5 file",
    "netcdf3": "a NetCDF classic (netCDF-3) file",
    "gzip": "gzip-compressed",
    "bz2": "bzip2-compressed",
    "xz": "xz-compressed",
    "zstd": "zstd-compressed",
    "zip": "a ZIP archive",
    "pdf": "a PDF document",
    "html": "an HTML page",
    "xml": "an XML document",
    "json": "a JSON document",
    "text": "a text file",
    "binary": "binary data",
}

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (_HDF5_SIGNATURE, "hdf5"),
    (b"\x0e\x03\x13\x01", "hdf4"),
    (b"CDF\x01", "netcdf3"),
    (b"CDF\x02", "netcdf3"),
    (b"CDF\x05", "netcdf3"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"PK\x03\x04", "zip"),
    (b"%PDF-", "pdf"),
)

#: A hint after the message for kinds that usually mean a known mistake.
_HINTS = {
    "html": " (a failed download?)",
    "xml": " (an error response from a failed download?)",
    "json": " (an API error from a failed download?)",
    "gzip": " (decompress it first)",
    "bz2": " (decompress it first)",
    "xz": " (decompress it first)",
    "zstd": " (decompress it first)",
    "zip": " (unpack it first)",
}


def _head(path: Path) -> bytes | str:
    """The first bytes of the file, or the state kind when there are none to read."""
    if not path.exists():
        return "missing"
    if path.is_dir():
        return "directory"
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError:
        return "unreadable"
    return head if head else "empty"


def _text_kind(head: bytes) -> str | None:
    """html / xml / json / text for a head that decodes as text, None for binary."""
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a multi-byte character cut at the end of the head
            text = head[: exc.start].decode("utf-8-sig")
        else:  # Latin-1 text is still text; binary data fails the printable test below
            text = head.decode("latin-1")
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    if not text or printable < 0.95 * len(text):
        return None
    start = text.lstrip().lower()
    if start.startswith(("<!doctype html", "<html")) or "<html" in start[:1024]:
        return "html"
    if start.startswith("<?xml") or start.startswith("<"):
        return "xml"
    if start.startswith(("{", "[")):
        try:
            json.loads(text)
            return "json"
        except ValueError:
            if len(head) == _HEAD_BYTES:  # a longer document cut by the head: still JSON-like
                return "json"
    return "text"


def kind_of(path: str | Path) -> str:
    """The kind of ``path`` from its first bytes: one of :data:`KINDS`' keys."""
    head = _head(Path(path))
    if isinstance(head, str):
        return head
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return _text_kind(head) or "binary"


def describe(kind: str) -> str:
    """The phrase for ``kind`` ("an HTML page", "empty (0 bytes)", ...)."""
    return KINDS.get(kind, kind)


def hdf5_truncation(path: str | Path) -> tuple[int, int] | None:
    """(bytes the HDF5 superblock's end-of-file address says, bytes the file has) when the file
    is shorter than its superblock says; None when it is complete or not HDF5 at byte 0."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            sb = fh.read(128)
        size = path.stat().st_size
    except OSError:
        return None
    if not sb.startswith(_HDF5_SIGNATURE) or len(sb) < 16:
        return None
    version = sb[8]
    if version in (0, 1):
        n_offsets = sb[13]
        pos = 24 + (4 if version == 1 else 0)  # base address follows the fixed fields
        eof_at = pos + 2 * n_offsets  # base, free-space, end-of-file address
    elif version in (2, 3):
        n_offsets = sb[9]
        pos = 12
        eof_at = pos + 2 * n_offsets  # base, superblock extension, end-of-file address
    else:
        return None
    if n_offsets not in (2, 4, 8) or len(sb) < eof_at + n_offsets:
        return None
    base = int.from_bytes(sb[pos : pos + n_offsets], "little")
    eof = int.from_bytes(sb[eof_at : eof_at + n_offsets], "little")
    undefined = (1 << (8 * n_offsets)) - 1
    if base != 0 or eof == undefined:
        return None
    return (eof, size) if size < eof else None


def require(path: str | Path, kinds: str | tuple[str, ...], what: str, note: str = "") -> str:
    """The file's kind when it is one of ``kinds``; otherwise ReaderError
    ``"<path>: is <what it is>, not <what>[ (<note>)][<hint>]"``.

    ``what`` names what the reader expects ("a Himawari HSD segment", "HDF4"); ``note`` is
    said in parentheses after it ("MODIS HDF-EOS files are HDF4"). An HDF5 file shorter than
    its superblock says is rejected as ``"truncated: header says N bytes, file has M"``.
    """
    path = Path(path)
    accepted = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    kind = kind_of(path)
    if kind in ("missing", "directory", "empty", "unreadable"):
        raise ReaderError(f"{path}: is {describe(kind)}")
    if kind not in accepted:
        extra = f" ({note})" if note else ""
        raise ReaderError(f"{path}: is {describe(kind)}, not {what}{extra}{_HINTS.get(kind, '')}")
    if kind == "hdf5":
        cut = hdf5_truncation(path)
        if cut is not None:
            raise ReaderError(f"{path}: truncated: header says {cut[0]} bytes, file has {cut[1]}")
    return kind
