"""The STAC catalog of product stores: publish, search, open lazily, extract."""

from fluxscape.catalog.api import Catalog, Entry, open_catalog

__all__ = ["Catalog", "Entry", "open_catalog"]
