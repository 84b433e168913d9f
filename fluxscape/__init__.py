"""fluxscape: satellite and flux-tower data to gridded, catalogued Zarr products (NE Asia)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fluxscape")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
