"""Regressors for flux upscaling and an ensemble (methods x site-grouped CV folds).

Multi-target design: one :class:`EnsembleRegressor` per target, held in a :class:`FluxModel`
(a dict wrapper that knows the feature names, in order, and the target names). Each target's
ensemble is trained on the rows where that target is finite, so a missing NEE does not cost a
GPP row.
"""

from __future__ import annotations

import uuid
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.model_selection import GroupKFold, KFold
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from fluxscape.errors import FluxscapeError

__all__ = [
    "METHODS",
    "EnsembleRegressor",
    "FluxModel",
    "check_params",
    "effective_params",
    "leaking_features",
    "make_estimator",
]

#: Defaults per method: single-threaded (the pipeline parallelises over tiles), seeded.
_DEFAULTS: dict[str, dict] = {
    "rf": {"n_estimators": 200, "min_samples_leaf": 3, "max_features": 0.6, "n_jobs": 1},
    "hgb": {"max_iter": 300, "learning_rate": 0.05, "min_samples_leaf": 20},
    "lgbm": {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 20,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "n_jobs": 1,
        "verbose": -1,
    },
}
METHODS = tuple(_DEFAULTS)


def make_estimator(method: str, random_state: int | None = 0, **params) -> BaseEstimator:
    """A fresh, unfitted regressor: "rf" (RandomForestRegressor), "hgb"
    (HistGradientBoostingRegressor) or "lgbm" (lightgbm.LGBMRegressor).

    ``params`` override the defaults in ``_DEFAULTS`` (single-threaded, seeded by
    ``random_state``). Raises FluxscapeError for an unknown method.
    """
    if method not in _DEFAULTS:
        raise FluxscapeError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    kwargs = {**effective_params(method, params), "random_state": random_state}
    if method == "rf":
        return RandomForestRegressor(**kwargs)
    if method == "hgb":
        return HistGradientBoostingRegressor(**kwargs)
    from lightgbm import LGBMRegressor

    return LGBMRegressor(**kwargs)


def effective_params(method: str, params: dict | None = None) -> dict:
    """The hyperparameters a member of ``method`` is built with: the defaults overridden by
    ``params`` (without ``random_state``, which each member derives from the ensemble's)."""
    if method not in _DEFAULTS:
        raise FluxscapeError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return {**_DEFAULTS[method], **(params or {})}


def check_params(method: str, params: dict) -> list[str]:
    """Names in ``params`` that the estimator of ``method`` does not take (``random_state``
    included: the ensemble sets it)."""
    known = set(make_estimator(method).get_params()) - {"random_state"}
    return [name for name in params if name not in known]


def fit_member(
    X: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    method: str,
    seed: int,
    params: dict,
    n_threads: int | None = 1,
) -> BaseEstimator:
    """One ensemble member: a fresh ``method`` estimator (``params``, ``random_state=seed``)
    fitted on the rows ``train`` of ``X`` (n_rows, n_features, float64) and ``y``; pure and
    deterministic, so it runs the same on the driver or a Dask worker."""
    est = make_estimator(method, random_state=seed, **params)
    with threadpool_limits(n_threads, user_api="openmp"):
        est.fit(X[train], y[train])
    return est


def _as_matrix(X) -> np.ndarray:
    return np.asarray(X.to_numpy() if isinstance(X, pd.DataFrame) else X, dtype=np.float64)


class EnsembleRegressor(RegressorMixin, BaseEstimator):
    """Ensemble of ``methods`` x ``n_splits`` members; the spread across members is the
    uncertainty (FLUXCOM-style).

    Each member is one method fitted on the training part of one fold of a site-grouped
    ``GroupKFold`` (``groups`` = site ids; ``KFold`` when no groups are given). With
    ``n_splits=1`` each method is fitted once on all rows. Members are fitted on a float64
    matrix; when ``X`` is a DataFrame its column names are kept in ``feature_names_in_`` and
    checked at predict time.

    Parameters: ``methods`` (tuple of "rf", "hgb", "lgbm"), ``n_splits`` (folds per method),
    ``method_params`` ({method: {param: value}}), ``random_state`` (int; member seeds derive
    from it, so results are deterministic), ``n_threads`` (OpenMP threads while fitting and
    predicting, default 1: the pipeline parallelises over tiles, and HistGradientBoosting's
    OpenMP pool on a shared, loaded machine is many times slower than one thread).
    """

    def __init__(
        self,
        methods: tuple[str, ...] = ("rf", "hgb", "lgbm"),
        n_splits: int = 5,
        method_params: dict | None = None,
        random_state: int = 0,
        n_threads: int | None = 1,
    ):
        self.methods = methods
        self.n_splits = n_splits
        self.method_params = method_params
        self.random_state = random_state
        self.n_threads = n_threads

    def _folds(self, n: int, groups) -> list[np.ndarray]:
        if self.n_splits <= 1:
            return [np.arange(n)]
        if groups is None:
            splitter = KFold(self.n_splits, shuffle=True, random_state=self.random_state)
            return [train for train, _ in splitter.split(np.zeros(n))]
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise FluxscapeError("EnsembleRegressor: site-grouped folds need >= 2 sites")
        splitter = GroupKFold(min(self.n_splits, n_groups))
        return [train for train, _ in splitter.split(np.zeros(n), groups=groups)]

    def n_members(self, groups=None) -> int:
        """How many members :meth:`fit` fits with these groups (site ids of the rows)."""
        if self.n_splits <= 1:
            return len(self.methods)
        if groups is None:
            return len(self.methods) * self.n_splits
        return len(self.methods) * min(self.n_splits, len(np.unique(groups)))

    def member_plan(self, n: int, groups=None) -> list[tuple[str, str, int, dict, np.ndarray]]:
        """The members :meth:`fit` fits on ``n`` rows: (label, method, seed, params, training
        row indices) each, in order."""
        params = self.method_params or {}
        plan = []
        for m_i, method in enumerate(self.methods):
            for f_i, train in enumerate(self._folds(n, groups)):
                seed = self.random_state * 1000 + m_i * 100 + f_i
                plan.append((f"{method}/fold{f_i}", method, seed, params.get(method, {}), train))
        return plan

    def _checked(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        Xm = _as_matrix(X)
        ym = np.asarray(y, dtype=np.float64).ravel()
        if Xm.ndim != 2 or len(Xm) != len(ym):
            raise FluxscapeError(f"EnsembleRegressor.fit: X {Xm.shape} and y {ym.shape} differ")
        if not (np.isfinite(Xm).all() and np.isfinite(ym).all()):
            raise FluxscapeError("EnsembleRegressor.fit: X and y must be finite (drop rows first)")
        return Xm, ym

    def fit(self, X, y, groups=None, on_member=None) -> EnsembleRegressor:
        """Fit all members. X (n_rows, n_features), y (n_rows,), groups (n_rows,) site ids;
        ``on_member(label)`` is called after each member is fitted (progress)."""
        Xm, ym = self._checked(X, y)
        self.members_: list[BaseEstimator] = []
        self.member_labels_: list[str] = []
        for label, method, seed, params, train in self.member_plan(len(ym), groups):
            self.members_.append(fit_member(Xm, ym, train, method, seed, params, self.n_threads))
            self.member_labels_.append(label)
            if on_member is not None:
                on_member(label)
        self.n_features_in_ = Xm.shape[1]
        return self

    def submit_fit(self, client, X, y, groups=None) -> list:
        """Start :meth:`fit` on a Dask ``client``'s workers: one task of :func:`fit_member`
        per member (``X`` and ``y`` scattered once); returns the futures for
        :meth:`collect_fit`. The members are the ones :meth:`fit` makes (same seeds)."""
        Xm, ym = self._checked(X, y)
        Xf, yf = client.scatter([Xm, ym])
        self.n_features_in_ = Xm.shape[1]
        run = uuid.uuid4().hex[:8]
        return [
            (
                label,
                client.submit(
                    fit_member,
                    Xf,
                    yf,
                    train,
                    method,
                    seed,
                    params,
                    self.n_threads,
                    pure=False,
                    key=f"fit-{method}-{seed}-{run}",
                ),
            )
            for label, method, seed, params, train in self.member_plan(len(ym), groups)
        ]

    def collect_fit(self, futures: list, on_member=None) -> EnsembleRegressor:
        """Wait for the members started by :meth:`submit_fit` and keep them, in order."""
        self.members_, self.member_labels_ = [], []
        for label, future in futures:
            self.members_.append(future.result())
            self.member_labels_.append(label)
            if on_member is not None:
                on_member(label)
        return self

    def _check_X(self, X) -> np.ndarray:
        check_is_fitted(self, "members_")
        if isinstance(X, pd.DataFrame) and hasattr(self, "feature_names_in_"):
            if list(X.columns) != list(self.feature_names_in_):
                raise FluxscapeError(
                    f"features {list(X.columns)} differ from the trained ones "
                    f"{list(self.feature_names_in_)}"
                )
        Xm = _as_matrix(X)
        if Xm.ndim != 2 or Xm.shape[1] != self.n_features_in_:
            raise FluxscapeError(
                f"X has shape {Xm.shape}; the model was trained on {self.n_features_in_} features"
            )
        return Xm

    def member_predictions(self, X) -> np.ndarray:
        """Predictions of every member, shape (n_members, n_rows)."""
        Xm = self._check_X(X)
        with warnings.catch_warnings(), threadpool_limits(self.n_threads, user_api="openmp"):
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            return np.stack([m.predict(Xm) for m in self.members_])

    def predict(self, X) -> np.ndarray:
        """Ensemble mean, shape (n_rows,)."""
        return self.member_predictions(X).mean(axis=0)

    def predict_with_sd(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(mean, sd): ensemble mean and the standard deviation across members (ddof=1; 0
        with a single member), each shape (n_rows,)."""
        p = self.member_predictions(X)
        sd = p.std(axis=0, ddof=1) if len(p) > 1 else np.zeros(p.shape[1])
        return p.mean(axis=0), sd


class FluxModel(BaseEstimator):
    """One :class:`EnsembleRegressor` per target on a shared, ordered feature list.

    ``fit(X, Y, groups)``: X a DataFrame with (at least) ``features`` as columns, Y a
    DataFrame with one column per target (NaN allowed: each target uses its finite rows).
    ``predict_with_sd(X)`` -> {target: (mean, sd)}. Attributes after fit: ``ensembles_``
    ({target: EnsembleRegressor}), ``n_train_`` ({target: rows used}).
    """

    def __init__(
        self,
        features: tuple[str, ...] = (),
        targets: tuple[str, ...] = ("gpp", "reco", "nee"),
        methods: tuple[str, ...] = ("rf", "hgb", "lgbm"),
        n_splits: int = 5,
        method_params: dict | None = None,
        random_state: int = 0,
        n_threads: int | None = 1,
    ):
        self.features = features
        self.targets = targets
        self.methods = methods
        self.n_splits = n_splits
        self.method_params = method_params
        self.random_state = random_state
        self.n_threads = n_threads

    def _rows(self, X: pd.DataFrame, Y: pd.DataFrame, target: str) -> np.ndarray:
        """The rows a target's ensemble is fitted on: that target and all features finite."""
        ok_x = np.isfinite(X[list(self.features)].to_numpy(dtype=np.float64)).all(axis=1)
        return ok_x & np.isfinite(Y[target].to_numpy(dtype=np.float64))

    def n_members(self, X: pd.DataFrame, Y: pd.DataFrame, groups=None) -> int:
        """How many members :meth:`fit` fits on these rows, over all targets."""
        g = None if groups is None else np.asarray(groups)
        total = 0
        for t in self.targets:
            ok = self._rows(X, Y, t)
            ens = EnsembleRegressor(self.methods, self.n_splits)
            total += ens.n_members(None if g is None else g[ok])
        return total

    def fit(self, X: pd.DataFrame, Y: pd.DataFrame, groups=None, on_member=None) -> FluxModel:
        """Fit one ensemble per target on rows where that target and all features are finite;
        ``on_member(label)`` is called after each member is fitted (progress)."""
        for t, ens, Xt, yt, gt in self._per_target(X, Y, groups):
            label = (lambda m, t=t: on_member(f"{t} {m}")) if on_member is not None else None
            ens.fit(Xt, yt, gt, on_member=label)
        return self

    def _per_target(self, X: pd.DataFrame, Y: pd.DataFrame, groups):
        """Check the columns; per target its unfitted ensemble and its rows (X, y, groups);
        sets ``ensembles_`` and ``n_train_``."""
        features = list(self.features)
        leaks = leaking_features(features)
        if leaks:
            raise FluxscapeError(f"features include tower flux columns (leakage): {leaks}")
        missing = [c for c in features if c not in X.columns]
        missing += [t for t in self.targets if t not in Y.columns]
        if missing:
            raise FluxscapeError(f"FluxModel.fit: columns missing: {missing}")
        Xf = X[features].to_numpy(dtype=np.float64)
        ok_x = np.isfinite(Xf).all(axis=1)
        g = None if groups is None else np.asarray(groups)
        self.ensembles_: dict[str, EnsembleRegressor] = {}
        self.n_train_: dict[str, int] = {}
        out = []
        for t in self.targets:
            ok = ok_x & np.isfinite(Y[t].to_numpy(dtype=np.float64))
            if ok.sum() < 2:
                raise FluxscapeError(f"FluxModel.fit: fewer than 2 usable rows for {t!r}")
            ens = EnsembleRegressor(
                self.methods,
                self.n_splits,
                self.method_params,
                self.random_state,
                self.n_threads,
            )
            y_t = Y[t].to_numpy(dtype=np.float64)[ok]
            self.ensembles_[t] = ens
            self.n_train_[t] = int(ok.sum())
            out.append((t, ens, Xf[ok], y_t, None if g is None else g[ok]))
        return out

    def submit_fit(self, client, X: pd.DataFrame, Y: pd.DataFrame, groups=None) -> dict:
        """Start :meth:`fit` on a Dask ``client``'s workers (one task per member, see
        :meth:`EnsembleRegressor.submit_fit`) and return at once; :meth:`collect_fit` waits.
        The fitted model equals the one :meth:`fit` makes."""
        return {
            t: ens.submit_fit(client, Xt, yt, gt)
            for t, ens, Xt, yt, gt in self._per_target(X, Y, groups)
        }

    def collect_fit(self, futures: dict, on_member=None) -> FluxModel:
        """Wait for the members :meth:`submit_fit` started; returns the fitted model."""
        for t, ens in self.ensembles_.items():
            label = (lambda m, t=t: on_member(f"{t} {m}")) if on_member is not None else None
            ens.collect_fit(futures[t], on_member=label)
        return self

    def predict_with_sd(self, X) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{target: (mean, sd)} for X (DataFrame with the features, or an array whose
        columns are ``features`` in order)."""
        check_is_fitted(self, "ensembles_")
        Xm = X[list(self.features)] if isinstance(X, pd.DataFrame) else X
        Xm = _as_matrix(Xm)
        return {t: e.predict_with_sd(Xm) for t, e in self.ensembles_.items()}

    def predict(self, X) -> pd.DataFrame:
        """Ensemble means as a DataFrame with one column per target."""
        return pd.DataFrame({t: m for t, (m, _) in self.predict_with_sd(X).items()})


_FLUX_PREFIXES = ("GPP", "NEE", "RECO", "LE", "H", "FCH4", "G", "NETRAD", "EBC", "FC")


def leaking_features(features: list[str]) -> list[str]:
    """Feature names that are tower flux columns (GPP/NEE/RECO/LE/H/FCH4/... or targets).

    A name leaks when its first ``_``-separated part (case-insensitive) is one of
    GPP, NEE, RECO, LE, H, FCH4, G, NETRAD, EBC, FC.
    """
    return [f for f in features if f.split("_")[0].upper() in _FLUX_PREFIXES]
