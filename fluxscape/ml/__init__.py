"""Machine learning for flux upscaling: targets from tower files, ensembles, site-grouped
validation, persistence with model cards, tile prediction and regional totals.

Modules: ``targets``, ``sitefeatures``, ``models``, ``validation``, ``persist``, ``predict``,
``regional``, ``timesteps``. Pure functions on pandas/xarray objects; no Dask and no pipeline
imports.
"""
