"""Site-grouped cross-validation and skill at the scales FLUXCOM reports.

Scales (Tramontana et al. 2016, Biogeosciences 13:4291; Jung et al. 2020, Biogeosciences
17:1343): the product step, monthly means, the mean seasonal cycle (MSC: each site's mean by
calendar month), anomalies (each month minus its site's MSC) and across sites (each site's
mean). Metrics per target and scale: ``r2`` (squared Pearson correlation), ``nse``
(Nash-Sutcliffe efficiency, 1 - SSE/SST, the "modelling efficiency" MEF), ``rmse`` and
``bias`` (mean of predicted - observed) in the target's units, and ``n`` (pairs).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut
from threadpoolctl import threadpool_limits

from fluxscape.errors import FluxscapeError
from fluxscape.figlayout import set_margins
from fluxscape.ml.models import EnsembleRegressor, leaking_features

__all__ = ["CVResult", "cross_validate", "metrics", "skill", "write_report"]

SCALES = ("step", "monthly", "msc", "anomaly", "across_site")
#: The scale of :func:`daily_pairs`: each held-out day against its period's prediction.
DAILY = "daily"


@dataclass
class CVResult:
    """Out-of-fold predictions (long table) and how they were made.

    ``predictions`` columns: ``target``, ``site``, ``time``, ``obs``, ``pred``, ``pred_sd``
    (ensemble spread), ``fold`` (outer fold number).
    """

    predictions: pd.DataFrame
    features: list[str]
    targets: list[str]
    cv: str
    n_splits: int
    methods: list[str]
    inner_splits: int
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)

    def skill(self) -> dict:
        """Skill per target and scale (see :func:`skill`)."""
        return skill(self.predictions)


def cross_validate(
    table: pd.DataFrame,
    features: list[str],
    target: str | list[str],
    site_col: str = "site",
    time_col: str = "time",
    methods: tuple[str, ...] = ("rf", "hgb", "lgbm"),
    cv: str = "loso",
    n_splits: int = 5,
    inner_splits: int = 1,
    method_params: dict | None = None,
    random_state: int = 0,
    units: dict[str, str] | None = None,
    on_member=None,
    client=None,
) -> CVResult:
    """Out-of-fold predictions with whole sites held out.

    ``cv="loso"`` uses sklearn's LeaveOneGroupOut (one fold per site), ``"group_kfold"``
    GroupKFold(n_splits) with sites as groups. In each outer fold an
    :class:`EnsembleRegressor` (``methods`` x ``inner_splits`` site-grouped folds of the
    training sites) is fitted and predicts the held-out sites with its spread;
    ``on_member(label)`` is called after each member is fitted (progress). With a Dask
    ``client`` every outer fold is one task on the workers (the training matrices scattered
    once per target, the fold function :func:`fold_predictions` pure and seeded): the same
    out-of-fold predictions as without, ``on_member`` called for a fold's members when it
    comes back. Rows with a
    missing target or feature are dropped per target and counted in ``result.dropped``.
    Raises FluxscapeError on leaking features (tower flux columns) or missing columns.
    """
    targets = [target] if isinstance(target, str) else list(target)
    leaks = leaking_features(features) + [f for f in features if f in targets]
    if leaks:
        raise FluxscapeError(f"features include tower flux columns (leakage): {leaks}")
    missing = [c for c in [*features, *targets, site_col, time_col] if c not in table.columns]
    if missing:
        raise FluxscapeError(f"training table has no column(s) {missing}")
    if cv == "loso":
        splitter = LeaveOneGroupOut()
    elif cv == "group_kfold":
        splitter = GroupKFold(n_splits)
    else:
        raise FluxscapeError(f"cv must be 'loso' or 'group_kfold', got {cv!r}")

    parts, dropped, folds = [], {}, []
    for t in targets:
        X_all = table[features].to_numpy(dtype=np.float64)
        y_all = table[t].to_numpy(dtype=np.float64)
        ok_y = np.isfinite(y_all)
        ok = ok_y & np.isfinite(X_all).all(axis=1)
        dropped[t] = {
            "rows": len(table),
            "missing_target": int((~ok_y).sum()),
            "missing_features": int((ok_y & ~ok).sum()),
            "kept": int(ok.sum()),
        }
        sub = table.loc[ok]
        X, y = X_all[ok], y_all[ok]
        groups = sub[site_col].to_numpy()
        if len(np.unique(groups)) < 2:
            raise FluxscapeError(f"cross-validation of {t!r} needs >= 2 sites with data")
        splits = list(splitter.split(X, y, groups))
        folds.append((t, X, y, groups, splits))
        parts.append(
            pd.DataFrame(
                {
                    "target": t,
                    "site": groups,
                    "time": pd.DatetimeIndex(sub[time_col]),
                    "obs": y,
                    "pred": np.full(len(y), np.nan),
                    "pred_sd": np.full(len(y), np.nan),
                    "fold": np.full(len(y), -1),
                }
            )
        )
    fit = (methods, inner_splits, method_params, random_state)
    if client is None:
        for (t, X, y, groups, splits), part in zip(folds, parts, strict=True):
            for k, (train, test) in enumerate(splits):
                label = None
                if on_member is not None:
                    label = lambda m, t=t, k=k: on_member(f"{t} fold {k} {m}")  # noqa: E731
                pred, sd = fold_predictions(X, y, groups, train, test, *fit, on_member=label)
                _fill(part, test, k, pred, sd)
    else:
        _folds_on_workers(client, folds, parts, fit, on_member)
    return CVResult(
        predictions=pd.concat(parts, ignore_index=True),
        features=list(features),
        targets=targets,
        cv=cv,
        n_splits=int(splitter.get_n_splits(groups=table[site_col])),
        methods=list(methods),
        inner_splits=inner_splits,
        dropped=dropped,
        units=dict(units or {}),
    )


def fold_predictions(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    methods: tuple[str, ...],
    inner_splits: int,
    method_params: dict | None,
    random_state: int,
    on_member=None,
) -> tuple[np.ndarray, np.ndarray]:
    """One outer fold: an :class:`EnsembleRegressor` fitted on the rows ``train`` of ``X``
    (n_rows, n_features), ``y`` (n_rows,) and ``groups`` (site ids) predicts the rows
    ``test``; returns (mean, sd across members), each shape (len(test),), in ``y``'s units.
    Pure and deterministic (seeded by ``random_state``): the same on the driver or a worker;
    one OpenMP/BLAS thread per fit."""
    ens = EnsembleRegressor(methods, inner_splits, method_params, random_state)
    with threadpool_limits(limits=1):
        ens.fit(X[train], y[train], groups[train], on_member=on_member)
        return ens.predict_with_sd(X[test])


def _fill(part: pd.DataFrame, test: np.ndarray, k: int, pred, sd) -> None:
    """Put one fold's held-out predictions into its target's out-of-fold table."""
    part.iloc[test, part.columns.get_loc("pred")] = pred
    part.iloc[test, part.columns.get_loc("pred_sd")] = sd
    part.iloc[test, part.columns.get_loc("fold")] = k


def _folds_on_workers(client, folds: list, parts: list[pd.DataFrame], fit: tuple, on_member):
    """Every (target, outer fold) as one task of :func:`fold_predictions` on ``client``'s
    workers, each target's matrices scattered once; results put in ``parts`` as they come
    back, ``on_member`` called once per member of a finished fold (progress)."""
    from distributed import as_completed

    methods, inner_splits = fit[0], fit[1]
    run = uuid.uuid4().hex[:8]  # task keys unique on a scheduler shared by several runs
    futures = {}
    for i, (t, X, y, groups, splits) in enumerate(folds):
        Xf, yf, gf = client.scatter([X, y, groups])
        for k, (train, test) in enumerate(splits):
            future = client.submit(
                fold_predictions, Xf, yf, gf, train, test, *fit, pure=False, key=f"cv-{t}-{k}-{run}"
            )
            members = EnsembleRegressor(methods, inner_splits).n_members(groups[train])
            futures[future] = (i, t, k, test, members)
    try:
        for future in as_completed(list(futures)):
            i, t, k, test, members = futures[future]
            pred, sd = future.result()
            _fill(parts[i], test, k, pred, sd)
            if on_member is not None:
                for _ in range(members):
                    on_member(f"{t} fold {k}")
    finally:
        client.cancel(list(futures))


def n_members(
    table: pd.DataFrame,
    features: list[str],
    target: str | list[str],
    site_col: str = "site",
    methods: tuple[str, ...] = ("rf", "hgb", "lgbm"),
    cv: str = "loso",
    n_splits: int = 5,
    inner_splits: int = 1,
) -> int:
    """How many ensemble members :func:`cross_validate` with these arguments fits (to show
    its progress: outer folds x methods x inner folds, per target)."""
    total = 0
    for t in [target] if isinstance(target, str) else list(target):
        columns = table[[*features, t]].to_numpy(dtype=np.float64)
        groups = table.loc[np.isfinite(columns).all(axis=1), site_col].to_numpy()
        n_sites = len(np.unique(groups))
        folds = n_sites if cv == "loso" else min(n_splits, n_sites)
        if inner_splits <= 1:
            total += folds * len(methods)
            continue
        splitter = LeaveOneGroupOut() if cv == "loso" else GroupKFold(n_splits)
        for train, _ in splitter.split(groups, groups=groups):
            inner = EnsembleRegressor(methods, inner_splits)
            total += inner.n_members(groups[train])
    return total


def metrics(obs: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """r2 (squared Pearson r), nse, rmse, bias (pred - obs) and n over finite pairs."""
    obs, pred = np.asarray(obs, float), np.asarray(pred, float)
    ok = np.isfinite(obs) & np.isfinite(pred)
    o, p = obs[ok], pred[ok]
    n = int(ok.sum())
    if n < 2:
        return {"r2": np.nan, "nse": np.nan, "rmse": np.nan, "bias": np.nan, "n": n}
    err = p - o
    sst = float(((o - o.mean()) ** 2).sum())
    r = np.corrcoef(o, p)[0, 1] if o.std() > 0 and p.std() > 0 else np.nan
    return {
        "r2": float(r**2),
        "nse": float(1.0 - (err**2).sum() / sst) if sst > 0 else np.nan,
        "rmse": float(np.sqrt((err**2).mean())),
        "bias": float(err.mean()),
        "n": n,
    }


def scale_tables(pred: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """obs/pred pairs at each scale for one target's out-of-fold table (site, time, obs, pred).

    ``monthly``: mean per site and calendar month (equal to ``step`` for monthly data);
    ``msc``: mean per site and month of year; ``anomaly``: monthly minus the site's MSC;
    ``across_site``: mean per site over its months.
    """
    d = pred[["site", "time", "obs", "pred"]].dropna()
    month = pd.DatetimeIndex(d["time"]).to_period("M").to_timestamp()
    monthly = d.assign(time=month).groupby(["site", "time"], as_index=False)[["obs", "pred"]]
    monthly = monthly.mean()
    monthly["moy"] = pd.DatetimeIndex(monthly["time"]).month
    msc = monthly.groupby(["site", "moy"], as_index=False)[["obs", "pred"]].mean()
    anom = monthly.merge(msc, on=["site", "moy"], suffixes=("", "_msc"))
    anom = anom.assign(obs=anom["obs"] - anom["obs_msc"], pred=anom["pred"] - anom["pred_msc"])
    sites = monthly.groupby("site", as_index=False)[["obs", "pred"]].mean()
    return {"step": d, "monthly": monthly, "msc": msc, "anomaly": anom, "across_site": sites}


def daily_pairs(predictions: pd.DataFrame, daily: pd.DataFrame, target: str) -> pd.DataFrame:
    """Each site's daily observations of ``target`` against the out-of-fold prediction of the
    product period holding the day: ``daily`` has columns ``site``, ``time`` (start of the
    period holding the day), ``date`` and the target's daily values; returns ``site``,
    ``time``, ``date``, ``obs`` (the daily value) and ``pred`` (the period's held-out
    prediction), days without either dropped. The day-to-day variation within a period is
    what a model on period means cannot give, so this skill is at most the step's."""
    if target not in daily:
        return pd.DataFrame(columns=["site", "time", "date", "obs", "pred"])
    pred = predictions.loc[predictions["target"] == target, ["site", "time", "pred"]]
    days = daily[["site", "time", "date", target]].rename(columns={target: "obs"})
    days = days.assign(time=pd.DatetimeIndex(days["time"]), site=days["site"].astype(str))
    pred = pred.assign(time=pd.DatetimeIndex(pred["time"]), site=pred["site"].astype(str))
    return days.merge(pred, on=["site", "time"]).dropna(subset=["obs", "pred"])


def skill(predictions: pd.DataFrame, daily: pd.DataFrame | None = None) -> dict:
    """{target: {scale: metrics}} for an out-of-fold table (columns target, site, time, obs,
    pred), plus ``{target: {"per_site": {site: metrics at the step}}}``. With ``daily``
    (site, time, date and daily target values, see :func:`daily_pairs`), also the
    ``daily`` scale: each held-out day against its period's prediction."""
    out: dict = {}
    for t, sub in predictions.groupby("target", sort=False):
        tables = scale_tables(sub)
        out[t] = {s: metrics(tables[s]["obs"], tables[s]["pred"]) for s in SCALES}
        if daily is not None:
            pairs = daily_pairs(predictions, daily, str(t))
            out[t][DAILY] = metrics(pairs["obs"], pairs["pred"])
        out[t]["per_site"] = {
            str(site): metrics(g["obs"], g["pred"]) for site, g in sub.groupby("site")
        }
    return out


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return None if not np.isfinite(obj) else round(float(obj), 6)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _markdown(result: CVResult, sk: dict, plots: list[str]) -> str:
    lines = [
        "# Cross-validation report",
        "",
        f"- cross-validation: {result.cv} ({result.n_splits} folds, whole sites held out)",
        f"- ensemble: {', '.join(result.methods)} x {result.inner_splits} inner fold(s)",
        f"- features: {', '.join(result.features)}",
        "",
        "r2 = squared Pearson correlation, nse = Nash-Sutcliffe efficiency, bias = pred - obs.",
    ]
    for t in result.targets:
        unit = result.units.get(t, "")
        lines += [
            "",
            f"## {t}" + (f" ({unit})" if unit else ""),
            "",
            f"Rows: {result.dropped.get(t, {})}",
            "",
            "| scale | r2 | nse | rmse | bias | n |",
            "|---|---|---|---|---|---|",
        ]
        for s in [*SCALES, DAILY]:
            if s not in sk[t]:
                continue
            m = sk[t][s]
            lines.append(
                f"| {s} | {m['r2']:.3f} | {m['nse']:.3f} | {m['rmse']:.3f} | "
                f"{m['bias']:+.3f} | {m['n']} |"
            )
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _plots(result: CVResult, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for t, sub in result.predictions.groupby("target", sort=False):
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(sub["obs"], sub["pred"], s=4, alpha=0.4)
        lo = float(np.nanmin([sub["obs"].min(), sub["pred"].min()]))
        hi = float(np.nanmax([sub["obs"].max(), sub["pred"].max()]))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel(f"observed {t}")
        ax.set_ylabel(f"predicted {t} (out of fold)")
        ax.set_title(f"{t}: {result.cv}")
        name = f"scatter_{t}.png"
        set_margins(fig, left=0.75, right=0.2, bottom=0.6, top=0.4)
        fig.savefig(out_dir / name, dpi=90)
        plt.close(fig)
        names.append(name)

        sites = sorted(sub["site"].unique())
        ncol = min(4, len(sites))
        nrow = int(np.ceil(len(sites) / ncol))
        fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 2.2 * nrow), squeeze=False)
        for ax, site in zip(axes.ravel(), sites, strict=False):
            g = sub[sub["site"] == site].sort_values("time")
            ax.plot(g["time"], g["obs"], ".", ms=3, label="obs")
            ax.plot(g["time"], g["pred"], "-", lw=1, label="pred")
            ax.fill_between(
                g["time"], g["pred"] - g["pred_sd"], g["pred"] + g["pred_sd"], alpha=0.3
            )
            ax.set_title(str(site), fontsize=8)
            ax.tick_params(labelsize=6)
        for ax in axes.ravel()[len(sites) :]:
            ax.set_visible(False)
        axes[0, 0].legend(fontsize=6)
        set_margins(fig, left=0.45, right=0.15, bottom=0.3, top=0.25, wgap=0.45, hgap=0.55)
        name = f"timeseries_{t}.png"
        fig.savefig(out_dir / name, dpi=80)
        plt.close(fig)
        names.append(name)
    return names


def write_report(
    result: CVResult, out_dir: str | Path, daily: pd.DataFrame | None = None
) -> dict[str, Path]:
    """Write ``skill.json``, ``report.md``, ``predictions.csv`` and PNG plots (per target:
    predicted vs observed scatter, time series at each site with the ensemble spread) into
    ``out_dir``; with ``daily`` site values (:func:`skill`) the ``daily`` scale too.
    Returns {"json", "markdown", "predictions", "plots": [...]} paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sk = skill(result.predictions, daily)
    doc = {
        "cv": result.cv,
        "n_splits": result.n_splits,
        "methods": result.methods,
        "inner_splits": result.inner_splits,
        "features": result.features,
        "targets": result.targets,
        "units": result.units,
        "rows": result.dropped,
        "sites": sorted(map(str, result.predictions["site"].unique())),
        "skill": sk,
    }
    (out / "skill.json").write_text(json.dumps(_json_safe(doc), indent=2))
    result.predictions.to_csv(out / "predictions.csv", index=False)
    plots = _plots(result, out)
    (out / "report.md").write_text(_markdown(result, sk, plots))
    return {
        "json": out / "skill.json",
        "markdown": out / "report.md",
        "predictions": out / "predictions.csv",
        "plots": [out / p for p in plots],
    }
