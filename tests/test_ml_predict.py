"""predict_tile: gridded prediction equals the model's on the same rows, NaN where data miss."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from mlcases import FEATS, SMALL, sites_table

from fluxscape.errors import FluxscapeError
from fluxscape.ml.models import FluxModel
from fluxscape.ml.predict import predict_tile


@pytest.fixture(scope="module")
def model():
    t = sites_table()
    m = FluxModel(FEATS, ("gpp", "reco"), ("rf", "lgbm"), n_splits=2, method_params=SMALL)
    return m.fit(t, t[["gpp", "reco"]], groups=t["site"])


def cube(seed=0, nt=3, ny=5, nx=7) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    coords = {
        "time": pd.date_range("2021-01-01", periods=nt, freq="16D"),
        "y": 36.0 - 0.01 * np.arange(ny),
        "x": 138.0 + 0.01 * np.arange(nx),
    }
    shape = (nt, ny, nx)
    ds = xr.Dataset(
        {
            "VPD_F": (("time", "y", "x"), rng.uniform(0, 15, shape)),
            "TA_F": (("time", "y", "x"), rng.uniform(-5, 25, shape).astype(np.float32)),
            "SW_IN_F": (("time", "y", "x"), rng.uniform(20, 300, shape)),
            "other": (("time", "y", "x"), np.zeros(shape)),
        },
        coords=coords,
    )
    ds["TA_F"][0, 1, 2] = np.nan
    ds["SW_IN_F"][2, 4, 6] = np.inf
    return ds


def test_tile_prediction_equals_model_on_same_rows(model):
    ds = cube()
    out = predict_tile(model, ds)
    assert set(out.data_vars) == {"gpp", "gpp_sd", "reco", "reco_sd"}
    assert out["gpp"].dims == ("time", "y", "x")
    xr.testing.assert_equal(out["gpp"]["x"], ds["x"])
    assert out["gpp"].attrs["units"] == "gC m-2 d-1"
    X = np.stack([ds[f].values.ravel().astype(float) for f in FEATS], axis=1)
    ok = np.isfinite(X).all(axis=1)
    ref = model.predict_with_sd(X[ok].astype(np.float32))  # features are float32 (documented)
    np.testing.assert_allclose(out["gpp"].values.ravel()[ok], ref["gpp"][0], rtol=1e-6)
    np.testing.assert_allclose(out["reco_sd"].values.ravel()[ok], ref["reco"][1], rtol=1e-5)
    assert np.isnan(out["gpp"].values[0, 1, 2]) and np.isnan(out["reco_sd"].values[2, 4, 6])
    assert int(np.isnan(out["gpp"].values).sum()) == 2


def test_batches_do_not_change_results(model):
    ds = cube(seed=4)
    a = predict_tile(model, ds)
    b = predict_tile(model, ds, batch_rows=17)
    xr.testing.assert_identical(a, b)


def test_missing_feature_named(model):
    with pytest.raises(FluxscapeError, match="VPD_F"):
        predict_tile(model, cube().drop_vars("VPD_F"))


def test_mask_pixels_never_reach_the_model(model):
    ds = cube(seed=5)
    land = np.ones((5, 7), bool)
    land[:, :3] = False
    seen = []

    class Spy:
        features, targets = model.features, model.targets

        def predict_with_sd(self, X):
            seen.append(X)
            return model.predict_with_sd(X)

    out = predict_tile(Spy(), ds, mask=xr.DataArray(land, dims=("y", "x")))
    X = seen[0]
    assert X.dtype == np.float32 and X.flags["C_CONTIGUOUS"]
    assert len(X) == 3 * 5 * 4 - 1  # land pixels of 3 steps less the inf one (NaN: at sea)
    assert np.isnan(out["gpp"].values[:, :, :3]).all()
    assert np.isfinite(out["reco_sd"].values[:, :, 3:]).sum() == len(X)
    same = predict_tile(model, ds, mask=land)  # a plain array broadcast over time
    xr.testing.assert_identical(out, same)


def test_values_beyond_float32_are_missing(model):
    ds = cube(seed=6)
    ds["VPD_F"][1, 0, 0] = 1e300
    out = predict_tile(model, ds)
    assert np.isnan(out["gpp"].values[1, 0, 0])
