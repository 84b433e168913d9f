"""Gridded prediction of one tile: feature cube -> target and ensemble-spread cubes."""

from __future__ import annotations

import numpy as np
import xarray as xr

from fluxscape.errors import FluxscapeError
from fluxscape.ml.targets import TARGET_UNITS

__all__ = ["predict_tile"]

#: Rows predicted per call; bounds the working memory to a few times rows x features x 8 B.
DEFAULT_BATCH = 262_144


def predict_tile(
    model,
    predictors: xr.Dataset,
    batch_rows: int = DEFAULT_BATCH,
    mask: xr.DataArray | np.ndarray | None = None,
) -> xr.Dataset:
    """Predict every target of a :class:`~fluxscape.ml.models.FluxModel` on one tile.

    Parameters
    ----------
    model:
        A fitted FluxModel or a :class:`~fluxscape.ml.compiled.CompiledFluxModel`
        (``features``: ordered names, ``targets``, ``predict_with_sd`` -> {target: (mean,
        sd)}).
    predictors:
        Dataset holding each of ``model.features`` as a variable, all with the same dims (e.g.
        ``(time, y, x)``), in the units the model was trained with. Other variables are ignored.
    batch_rows:
        Valid rows predicted per call (memory bound; results do not depend on it).
    mask:
        Optional boolean array of the pixels to predict (e.g. land, or the land-cover classes
        of the product), broadcastable to the features' shape (a DataArray is broadcast by
        dims, e.g. ``(y, x)`` over ``(time, y, x)``); other pixels are NaN and never reach
        the model.

    Returns
    -------
    Dataset with ``<target>`` (ensemble mean) and ``<target>_sd`` (spread across members) for
    each target, float32, same dims and coords as the features, NaN wherever any feature is
    missing (non-finite, or beyond the float32 range) or outside ``mask``; units gC m-2 d-1
    (fch4 nmolCH4 m-2 s-1). Pure numpy, no Dask.

    The feature matrix is built once per tile, float32 and C-ordered, from the valid pixels
    only: every model sees the features rounded to float32 (scikit-learn's forests round to
    float32 anyway; LightGBM and HistGradientBoosting compare the widened float32 values with
    their float64 thresholds), so the compiled and the reference model agree to float64
    rounding.
    """
    features = list(model.features)
    missing = [f for f in features if f not in predictors.data_vars]
    if missing:
        raise FluxscapeError(
            f"predictors lack feature(s) {missing} that the model needs ({features})"
        )
    first = predictors[features[0]]
    dims, shape = first.dims, first.shape
    for f in features[1:]:
        if predictors[f].dims != dims:
            raise FluxscapeError(
                f"feature {f!r} has dims {predictors[f].dims}, expected {dims} like {features[0]!r}"
            )
    n = int(np.prod(shape))
    valid = np.ones(n, bool)
    if mask is not None:
        if isinstance(mask, xr.DataArray):
            mask = mask.broadcast_like(first).transpose(*dims).values
        valid &= np.broadcast_to(np.asarray(mask, bool), shape).reshape(n)
    f32max = float(np.finfo(np.float32).max)
    for f in features:
        values = predictors[f].values.reshape(n)
        valid &= np.isfinite(values) & (np.abs(values) <= f32max)
    rows = np.flatnonzero(valid)
    # One (n_valid, n_features) float32 C-order matrix: the only full copy of the predictors.
    X = np.empty((rows.size, len(features)), dtype=np.float32)
    for j, f in enumerate(features):
        X[:, j] = predictors[f].values.reshape(n)[rows]

    targets = list(model.targets)
    out = {t: np.full(n, np.nan, np.float32) for t in targets}
    out |= {f"{t}_sd": np.full(n, np.nan, np.float32) for t in targets}
    for start in range(0, rows.size, max(1, batch_rows)):
        sl = slice(start, start + batch_rows)
        for t, (mean, sd) in model.predict_with_sd(X[sl]).items():
            out[t][rows[sl]] = mean
            out[f"{t}_sd"][rows[sl]] = sd

    coords = {k: v for k, v in first.coords.items() if set(v.dims) <= set(dims)}
    data_vars = {}
    for t in targets:
        units = TARGET_UNITS.get(t, "")
        data_vars[t] = xr.DataArray(
            out[t].reshape(shape),
            dims=dims,
            coords=coords,
            attrs={"units": units, "long_name": f"{t} (ensemble mean)"},
        )
        data_vars[f"{t}_sd"] = xr.DataArray(
            out[f"{t}_sd"].reshape(shape),
            dims=dims,
            coords=coords,
            attrs={"units": units, "long_name": f"{t} ensemble spread (sd across members)"},
        )
    return xr.Dataset(data_vars)
