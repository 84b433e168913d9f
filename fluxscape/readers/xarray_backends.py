"""xarray backends, so analysts can open our formats with plain xarray:

>>> xr.open_dataset("MOD13A2.A2021193.h29v05.061.2021210034215.hdf", engine="fluxscape_modis")
>>> xr.open_dataset("FLX_JP-S01_FLUXNET2015_FULLSET_DD_2021-2022_1-4.csv",
...                 engine="fluxscape_fluxnet")

Registered through the ``xarray.backends`` entry point group in ``pyproject.toml``.
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr
from xarray.backends import BackendEntrypoint


class ModisHdf4Backend(BackendEntrypoint):
    """MODIS HDF4-EOS sinusoidal tiles (:func:`fluxscape.readers.modis_hdf4.open_modis_tile`)."""

    description = "MODIS HDF4-EOS grid tiles (fluxscape)"
    open_dataset_parameters = ("filename_or_obj", "drop_variables")

    def open_dataset(self, filename_or_obj, *, drop_variables=None) -> xr.Dataset:
        from fluxscape.readers.modis_hdf4 import open_modis_tile

        ds = open_modis_tile(Path(filename_or_obj))
        return ds.drop_vars(drop_variables or [], errors="ignore")

    def guess_can_open(self, filename_or_obj) -> bool:
        from fluxscape.readers.modis_hdf4 import parse_filename

        try:
            return parse_filename(Path(filename_or_obj)) is not None
        except TypeError:
            return False


class FluxnetBackend(BackendEntrypoint):
    """FLUXNET / ONEFlux CSV files through :func:`fluxscape.readers.fluxnet.read_fluxnet`."""

    description = "FLUXNET2015 / ONEFlux FULLSET and SUBSET CSV (fluxscape)"
    open_dataset_parameters = ("filename_or_obj", "drop_variables")

    def open_dataset(self, filename_or_obj, *, drop_variables=None) -> xr.Dataset:
        from fluxscape.readers.fluxnet import read_fluxnet

        ds = read_fluxnet(Path(filename_or_obj))
        return ds.drop_vars(drop_variables or [], errors="ignore")

    def guess_can_open(self, filename_or_obj) -> bool:
        from fluxscape.readers.fluxnet import parse_fluxnet_name

        try:
            return parse_fluxnet_name(Path(filename_or_obj)) is not None
        except TypeError:
            return False
