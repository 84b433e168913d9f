"""Source adapters by reader name: ``index`` (headers -> granules) and ``read`` (granules ->
standard layers on a tile). See :mod:`fluxscape.pipeline.adapters.base`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fluxscape.errors import FluxscapeError


@dataclass(frozen=True)
class Adapter:
    index: Callable
    read: Callable
    #: LST layers on a tile (``lst`` K, ``view_time``, ``qc``, ``reliability``, ``usable``),
    #: for the ``lst`` product (MODIS MOD11, AHI P-Tree split window); None for sources that
    #: give no land surface temperature.
    read_lst: Callable | None = None


def adapter_for(reader: str) -> Adapter:
    """The adapter of a raster reader; FluxscapeError for readers no raster product can use."""
    from fluxscape.pipeline.adapters import ahi, modis, sgli

    adapters = {
        "modis_hdf4": Adapter(modis.index, modis.read, modis.read_lst),
        "sgli_l2": Adapter(sgli.index_l2, sgli.read_l2),
        "sgli_l1b": Adapter(sgli.index_l1b, sgli.read_l1b),
        "ahi_hsd": Adapter(ahi.index_hsd, ahi.read_hsd),
        "ahi_ptree": Adapter(ahi.index_ptree, ahi.read_ptree, ahi.read_lst_ptree),
    }
    if reader not in adapters:
        raise FluxscapeError(
            f"reader {reader!r} gives no raster for the vi product; use one "
            f"of {', '.join(sorted(adapters))}"
        )
    return adapters[reader]
