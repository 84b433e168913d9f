"""Readers: one module per data source, each returning xarray objects with geolocation."""

from fluxscape.readers.registry import (
    FileSummary,
    ReaderSpec,
    detect,
    get_reader,
    inspect_file,
    open_file,
    readers,
    register,
)

__all__ = [
    "FileSummary",
    "ReaderSpec",
    "detect",
    "get_reader",
    "inspect_file",
    "open_file",
    "readers",
    "register",
]
