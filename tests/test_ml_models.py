"""Estimators, the methods x folds ensemble and the multi-target FluxModel."""

from __future__ import annotations

import numpy as np
import pytest
from lightgbm import LGBMRegressor
from mlcases import FEATS, SMALL, sites_table
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor

from fluxscape.errors import FluxscapeError
from fluxscape.ml.models import EnsembleRegressor, FluxModel, leaking_features, make_estimator


@pytest.mark.parametrize(
    ("method", "cls"),
    [("rf", RandomForestRegressor), ("hgb", HistGradientBoostingRegressor),
     ("lgbm", LGBMRegressor)],
)
def test_make_estimator_types_and_overrides(method, cls):
    est = make_estimator(method, random_state=3, n_jobs=1) if method != "hgb" else \
        make_estimator(method, random_state=3, max_iter=7)
    assert isinstance(est, cls)
    assert est.get_params()["random_state"] == 3


def test_unknown_method_is_a_clear_error():
    with pytest.raises(FluxscapeError, match="unknown method 'xgb'"):
        make_estimator("xgb")


def test_ensemble_members_are_methods_times_group_folds_and_deterministic():
    t = sites_table()
    ens = EnsembleRegressor(("rf", "hgb", "lgbm"), n_splits=3, method_params=SMALL)
    ens.fit(t[FEATS], t["gpp"], groups=t["site"])
    assert len(ens.members_) == 9
    assert ens.member_labels_[:3] == ["rf/fold0", "rf/fold1", "rf/fold2"]
    assert list(ens.feature_names_in_) == FEATS
    mean, sd = ens.predict_with_sd(t[FEATS])
    assert mean.shape == sd.shape == (len(t),)
    assert (sd > 0).all()
    np.testing.assert_allclose(mean, ens.predict(t[FEATS]))
    again = clone(ens).fit(t[FEATS], t["gpp"], groups=t["site"])
    np.testing.assert_array_equal(again.predict(t[FEATS]), mean)


def test_ensemble_recovers_known_function_on_unseen_sites():
    train, test = sites_table(seed=1), sites_table(n_sites=2, seed=2)
    ens = EnsembleRegressor(("hgb", "lgbm"), n_splits=2, method_params=SMALL)
    ens.fit(train[FEATS], train["gpp"], groups=train["site"])
    pred = ens.predict(test[FEATS])
    truth = 2 + 0.3 * test.TA_F + 0.01 * test.SW_IN_F - 0.2 * test.VPD_F
    r2 = 1 - ((pred - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum()
    assert r2 > 0.9


def test_ensemble_follows_estimator_contract():
    ens = EnsembleRegressor(("rf",), n_splits=2)
    assert ens.get_params() == {"methods": ("rf",), "n_splits": 2, "method_params": None,
                                "random_state": 0, "n_threads": 1}
    ens.set_params(n_splits=4)
    assert clone(ens).n_splits == 4
    with pytest.raises(FluxscapeError, match="must be finite"):
        ens.fit(np.array([[1.0], [np.nan]]), [1.0, 2.0])


def test_ensemble_refuses_other_feature_order():
    t = sites_table(n_sites=3)
    ens = EnsembleRegressor(("lgbm",), n_splits=1, method_params=SMALL).fit(t[FEATS], t["gpp"])
    with pytest.raises(FluxscapeError, match="differ from the trained"):
        ens.predict(t[FEATS[::-1]])


def test_flux_model_trains_each_target_on_its_finite_rows():
    t = sites_table()
    t.loc[:99, "reco"] = np.nan
    model = FluxModel(FEATS, ("gpp", "reco"), ("lgbm",), n_splits=2, method_params=SMALL)
    model.fit(t, t[["gpp", "reco"]], groups=t["site"])
    assert model.n_train_ == {"gpp": len(t), "reco": len(t) - 100}
    out = model.predict_with_sd(t)
    assert set(out) == {"gpp", "reco"} and out["reco"][0].shape == (len(t),)
    assert list(model.predict(t).columns) == ["gpp", "reco"]


def test_flux_model_refuses_leaking_features():
    assert leaking_features(["TA_F", "GPP_NT_VUT_REF", "LE_F_MDS", "H_CORR", "ndvi"]) == [
        "GPP_NT_VUT_REF", "LE_F_MDS", "H_CORR"]
    t = sites_table().assign(NEE_VUT_REF=1.0)
    with pytest.raises(FluxscapeError, match="leakage"):
        FluxModel([*FEATS, "NEE_VUT_REF"], ("gpp",)).fit(t, t[["gpp"]])


def test_effective_params_and_unknown_names():
    from fluxscape.ml.models import check_params, effective_params

    rf = effective_params("rf", {"n_estimators": 50})
    assert rf["n_estimators"] == 50 and rf["min_samples_leaf"] == 3  # default kept
    assert make_estimator("rf", **{"n_estimators": 50}).n_estimators == 50
    assert check_params("rf", {"n_estimators": 5, "n_estimator": 5, "random_state": 1}) == [
        "n_estimator",
        "random_state",
    ]
    assert check_params("lgbm", {"num_leaves": 15}) == []


def test_flux_product_method_params_errors_name_the_key(tmp_path):
    from fluxscape.pipeline.config import parse_workflow
    from fluxscape.pipeline.steps.base import StepContext
    from fluxscape.pipeline.steps.flux import _check_method_params

    def ctx(params: str):
        wf = parse_workflow(
            f"""
name: t
region: {{bbox: [138.0, 35.5, 139.0, 36.5]}}
period: {{start: 2021-01-01, end: 2021-12-31}}
inputs:
  modis: {{reader: modis_hdf4, paths: [x]}}
  towers: {{reader: fluxnet, paths: [y]}}
products:
  vi: {{kind: vi, input: modis}}
  flux: {{kind: flux, source: vi, towers: towers, methods: [rf, lgbm], method_params: {params}}}
"""
        )
        return StepContext(wf, "flux", wf.products["flux"], None, tmp_path, tmp_path)

    _check_method_params(ctx("{rf: {n_estimators: 10}, lgbm: {num_leaves: 7}}"))
    with pytest.raises(FluxscapeError, match=r"method_params\.rf\.n_estimator: .*'n_estimators'"):
        _check_method_params(ctx("{rf: {n_estimator: 10}}"))
    with pytest.raises(FluxscapeError, match=r"method_params\.hgb: hgb is not one of the methods"):
        _check_method_params(ctx("{hgb: {max_iter: 10}}"))
    from fluxscape.errors import WorkflowError

    with pytest.raises(WorkflowError, match=r"method_params\.xgb"):
        ctx("{xgb: {n: 1}}")
