"""Compiled inference (the flat numba kernel of fluxscape.ml.forest; treelite + tl2cgen for
members it cannot take): equal to the skops reference on every target (bit for bit for the
kernel, including NaN rows and rows exactly at the thresholds), compiled once per model
card, a corrupted cache rebuilt, the reference as the fallback.

The models are tiny and compiled once per module (``saved``); the cache tests use a
one-member model. A tl2cgen compile costs about a second per member.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from mlcases import FEATS, sites_table
from test_ml_predict import cube

from fluxscape.ml import compiled, forest, persist
from fluxscape.ml.models import FluxModel
from fluxscape.ml.predict import predict_tile

TARGETS = ("gpp", "reco", "nee")
TINY = {
    "rf": {"n_estimators": 6, "min_samples_leaf": 5},
    "hgb": {"max_iter": 6},
    "lgbm": {"n_estimators": 6, "num_leaves": 8},
}


def _card(targets) -> dict:
    return {
        "targets": list(targets),
        "features": FEATS,
        "sites": ["S0"],
        "period": ["2021-01-01", "2021-12-31"],
        "cv_skill": {},
    }


def _table() -> pd.DataFrame:
    t = sites_table()
    t["nee"] = t["reco"] - t["gpp"]
    return t


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A FluxModel of one RandomForest, HistGradientBoosting and LightGBM member per target,
    saved with its card, and its compiled cache."""
    t = _table()
    model = FluxModel(FEATS, TARGETS, ("rf", "hgb", "lgbm"), n_splits=1, method_params=TINY)
    model.fit(t, t[list(TARGETS)], groups=t["site"])
    path = tmp_path_factory.mktemp("model") / "flux_model.skops"
    card = persist.save_model(model, path, _card(TARGETS))
    assert compiled.prepare(path, model) == "compiled"
    return model, path, card


@pytest.fixture()
def one_member(tmp_path):
    """A one-target, one-member (LightGBM) model: quick to compile again."""
    t = _table()
    model = FluxModel(FEATS, ("gpp",), ("lgbm",), n_splits=1, method_params=TINY)
    model.fit(t, t[["gpp"]], groups=t["site"])
    path = tmp_path / "small.skops"
    card = persist.save_model(model, path, _card(("gpp",)))
    return model, path, card


def test_every_member_type_is_compiled(saved):
    model, path, card = saved
    got = compiled.load_compiled(path, card)
    assert got is not None and got.targets == TARGETS
    assert all(r == ["numba"] * 3 for r in got.runtimes.values())
    assert got.flat is not None and len(got.flat.members) == 9
    assert got.folder.parent == path.with_name(path.name + ".compiled")


def test_compiled_tile_equals_reference_on_every_target(saved):
    model, path, card = saved
    fast = compiled.load_compiled(path, card)
    ds = cube(seed=3, nt=4, ny=9, nx=11)
    ref = predict_tile(model, ds)
    out = predict_tile(fast, ds)
    assert set(out.data_vars) == {v for t in TARGETS for v in (t, f"{t}_sd")}
    for v in out.data_vars:
        a, b = out[v].values, ref[v].values
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        ok = np.isfinite(b)
        assert ok.sum() == a.size - 2  # the cube's NaN and inf pixels
        # float32 outputs of the same float64 values: equal to float32 rounding, and the
        # float64 predictions themselves to 1e-6 (next test)
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-6, atol=1e-6)


def test_members_equal_reference_at_their_own_thresholds(saved):
    """Rows whose features sit exactly on split thresholds (as float32) take the same branch
    in the compiled code as in scikit-learn and LightGBM."""
    model, path, card = saved
    fast = compiled.load_compiled(path, card)
    rf = model.ensembles_["gpp"].members_[0]
    thresholds = [
        np.unique(e.tree_.threshold[e.tree_.feature == j])
        for j in range(3)
        for e in [rf.estimators_[0]]
    ]
    rng = np.random.default_rng(1)
    X = np.stack([rng.choice(th, 500) for th in thresholds], axis=1).astype(np.float32)
    X[::3] = np.nextafter(X[::3], np.float32(np.inf))  # and one float32 step above
    for t in TARGETS:
        ens = model.ensembles_[t]
        want = np.stack([m.predict(X.astype(np.float64)) for m in ens.members_])
        got = fast.member_predictions(t, X)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
        mean, sd = fast.predict_with_sd(X)[t]
        ref_mean, ref_sd = model.predict_with_sd(X)[t]
        np.testing.assert_allclose(mean, ref_mean, rtol=0, atol=1e-9)
        np.testing.assert_allclose(sd, ref_sd, rtol=0, atol=1e-9)


def test_cache_is_reused_and_loaded_once_per_process(saved, monkeypatch):
    model, path, card = saved
    before = compiled.compile_count
    assert compiled.prepare(path) == "compiled"  # neither compiles nor loads the skops model
    compiled._inference_model.cache_clear()

    def no_skops(*a, **k):
        raise AssertionError("the skops model was loaded though every member is compiled")

    monkeypatch.setattr(persist, "load_model", no_skops)
    first = compiled.inference_model(path, "compiled")
    assert isinstance(first, compiled.CompiledFluxModel)
    assert compiled.inference_model(path, "compiled") is first
    assert compiled.compile_count == before


def test_corrupted_or_missing_cache_is_compiled_again(one_member, capsys):
    model, path, card = one_member
    before = compiled.compile_count
    folder = compiled.compile_model(model, path, card)
    assert compiled.compile_count == before + 1
    assert capsys.readouterr().out == ""  # tl2cgen's native log kept off stdout (--json)
    lib = folder / compiled.FOREST_FILE
    lib.write_bytes(lib.read_bytes()[:100])  # truncated arrays
    assert compiled.load_compiled(path, card) is None
    fast = compiled.inference_model(path, "compiled")
    assert isinstance(fast, compiled.CompiledFluxModel)
    assert compiled.compile_count == before + 2
    X = np.asarray(_table()[FEATS], np.float32)
    np.testing.assert_allclose(
        fast.predict_with_sd(X)["gpp"][0], model.predict(X)["gpp"], atol=1e-9
    )
    (folder / "manifest.json").unlink()
    compiled.compile_model(model, path, card)
    assert compiled.compile_count == before + 3


def _no_kernel(est):
    raise forest.UnsupportedModel("not for the kernel (test)")


def test_no_compiler_needed_for_the_kernel(one_member, monkeypatch):
    model, path, card = one_member
    monkeypatch.setenv("CC", "no-such-compiler-fluxscape")
    compiled._environment.cache_clear()
    try:
        assert compiled.prepare(path) == "compiled"
        got = compiled.inference_model(path, "compiled")
        assert got.runtimes == {"gpp": ["numba"]}
    finally:
        compiled._environment.cache_clear()


def test_no_compiler_falls_back_to_reference(one_member, monkeypatch, caplog):
    """A member the kernel cannot take needs tl2cgen, and tl2cgen a C compiler."""
    model, path, card = one_member
    monkeypatch.setenv("CC", "no-such-compiler-fluxscape")
    monkeypatch.setattr(forest, "flatten", _no_kernel)
    compiled._environment.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="fluxscape.ml.compiled"):
            assert compiled.prepare(path) == "reference"
            got = compiled.inference_model(path, "compiled")
        assert "no C compiler 'no-such-compiler-fluxscape'" in caplog.text
        assert isinstance(got, FluxModel)
    finally:
        compiled._environment.cache_clear()


def test_unsupported_members_go_to_tl2cgen_or_keep_the_reference(tmp_path, monkeypatch):
    """A member the kernel cannot take is compiled by tl2cgen, or, over MAX_NODES nodes,
    kept on the reference predictor; the others stay in the kernel."""
    t = _table()
    model = FluxModel(FEATS, ("gpp",), ("rf", "lgbm"), n_splits=1, method_params=TINY)
    model.fit(t, t[["gpp"]], groups=t["site"])
    path = tmp_path / "mixed.skops"
    card = persist.save_model(model, path, _card(("gpp",)))
    flatten = forest.flatten

    def rf_only(est):
        return _no_kernel(est) if type(est).__name__ == "LGBMRegressor" else flatten(est)

    monkeypatch.setattr(forest, "flatten", rf_only)
    X = np.asarray(t[FEATS], np.float32)
    want = model.predict_with_sd(X)["gpp"]
    got = (compiled.compile_model(model, path, card), compiled.load_compiled(path, card))[1]
    assert got.runtimes == {"gpp": ["numba", "tl2cgen"]}
    np.testing.assert_allclose(got.predict_with_sd(X)["gpp"], want, rtol=0, atol=1e-9)
    monkeypatch.setattr(compiled, "MAX_NODES", 0)
    compiled._environment.cache_clear()  # MAX_NODES is part of the key
    try:
        compiled.compile_model(model, path, card)
        assert compiled.load_compiled(path, card) is None  # needs the reference model
        got = compiled.load_compiled(path, card, reference=model)
        assert got.runtimes == {"gpp": ["numba", "reference"]}
        np.testing.assert_array_equal(got.predict_with_sd(X)["gpp"], want)
    finally:
        compiled._environment.cache_clear()


def test_caches_of_a_retrained_model_are_removed(one_member):
    model, path, card = one_member
    old = compiled.compile_model(model, path, card)
    new_card = persist.save_model(model, path, _card(("gpp",)) | {"sites": ["S9"]})
    assert new_card["card_id"] != card["card_id"]
    new = compiled.compile_model(model, path, new_card)
    assert new.is_dir() and not old.exists()


def test_auto_compiles_only_where_the_saved_time_beats_the_compile_time(one_member):
    model, path, card = one_member
    trees = sum(compiled._tree_count(e) for ens in model.ensembles_.values() for e in ens.members_)
    nodes = sum(compiled._node_count(e) for ens in model.ensembles_.values() for e in ens.members_)
    # break-even rows: trees x rows x saving = nodes x compile cost
    even = nodes * compiled.COMPILE_S_PER_NODE / (trees * compiled.SAVED_S_PER_TREE_ROW)
    few, why = compiled.worth_compiling(path, int(even / 2), model)
    assert not few and why.startswith("not compiling") and f"{nodes:,} nodes" in why
    many, why = compiled.worth_compiling(path, int(even * 2) + 1, model)
    assert many and why.startswith("compiling")
    compiled.compile_model(model, path, card)  # once cached, compiling costs nothing
    assert compiled.worth_compiling(path, 1, model) == (True, "its compiled libraries are cached")


def _thresholds(est, j: int) -> np.ndarray:
    """The float64 split thresholds of feature ``j`` in one member."""
    kind = type(est).__name__
    if kind == "RandomForestRegressor":
        return np.concatenate([e.tree_.threshold[e.tree_.feature == j] for e in est.estimators_])
    if kind == "HistGradientBoostingRegressor":
        nodes = np.concatenate([p[0].nodes for p in est._predictors])
        return nodes["num_threshold"][(nodes["is_leaf"] == 0) & (nodes["feature_idx"] == j)]
    df = est.booster_.trees_to_dataframe()
    return df["threshold"][df["split_feature"] == FEATS[j]].to_numpy(np.float64)


def _edge_rows(model, n: int = 400) -> np.ndarray:
    """float32 rows on every member's thresholds (rounded to float32, and one float32 step
    either side), with NaN and infinities mixed in."""
    rng = np.random.default_rng(7)
    members = [m for ens in model.ensembles_.values() for m in ens.members_]
    cols = []
    for j in range(len(FEATS)):
        th = np.unique(np.concatenate([_thresholds(m, j) for m in members])).astype(np.float32)
        col = rng.choice(th, n)
        step = rng.integers(-1, 2, n)
        col[step < 0] = np.nextafter(col[step < 0], np.float32(-np.inf))
        col[step > 0] = np.nextafter(col[step > 0], np.float32(np.inf))
        cols.append(col)
    X = np.stack(cols, axis=1)
    for j in range(len(FEATS)):
        X[j::11, j] = np.nan
    X[5, :] = np.nan
    return X


def test_kernel_equals_reference_bit_for_bit_on_thresholds_and_nan(saved):
    """Every member of every target (RandomForest, HistGradientBoosting, LightGBM) in the
    kernel gives the library's own prediction exactly, for rows on the split thresholds
    and rows with missing features (each library's missing-value rule)."""
    model, path, card = saved
    fast = compiled.load_compiled(path, card)
    X = _edge_rows(model)
    assert np.isnan(X).any(axis=1).sum() > 40
    for t in TARGETS:
        want = np.stack([m.predict(X.astype(np.float64)) for m in model.ensembles_[t].members_])
        np.testing.assert_array_equal(fast.member_predictions(t, X), want)


@pytest.mark.parametrize("kind", ["rf", "hgb", "lgbm"])
def test_kernel_follows_learned_missing_directions(kind):
    """Members trained with missing values: NaN takes the learned direction of each split
    (LightGBM's default_left, scikit-learn's missing_go_to_left)."""
    t = _table()
    X = t[FEATS].to_numpy(np.float64, copy=True)
    rng = np.random.default_rng(3)
    X[rng.random(X.shape) < 0.2] = np.nan
    from fluxscape.ml.models import make_estimator

    est = make_estimator(kind, random_state=0, **TINY[kind]).fit(X, t["gpp"])
    Xt = np.where(rng.random(X.shape) < 0.3, np.nan, X).astype(np.float32)
    flat = forest.FlatEnsemble.build([forest.flatten(est)])
    np.testing.assert_array_equal(flat.predict(0, Xt), est.predict(Xt.astype(np.float64)))


def test_kernel_refuses_categorical_splits():
    """A LightGBM member with a categorical split is not for the kernel (it goes to
    tl2cgen or keeps the reference)."""
    import lightgbm as lgb

    t = _table()
    X = t[FEATS].to_numpy(np.float64, copy=True)
    X[:, 0] = np.arange(len(X)) % 4
    est = lgb.LGBMRegressor(n_estimators=5, min_child_samples=5, verbose=-1)
    est.fit(X, X[:, 0] * 3 + t["gpp"], categorical_feature=[0])
    with pytest.raises(forest.UnsupportedModel, match="categorical"):
        forest.flatten(est)


def test_malformed_tree_is_refused_before_the_kernel():
    b = forest._Builder()
    with pytest.raises(forest.FluxscapeError, match="out of range"):
        b.add([1, 7, -1], [2, -1, -1], [0, 0, 0], [0.5, 0, 0], [0, 1, 2], [True] * 3)
    with pytest.raises(forest.FluxscapeError, match="unreachable or shared"):
        b.add([1, 1, -1], [1, 2, -1], [0, 0, 0], [0.5, 0, 0], [0, 1, 2], [True] * 3)
