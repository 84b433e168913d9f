#!/usr/bin/env python
"""Upscaling benchmark: predictions per second per core of ``predict_tile`` on one gridded
tile, with the reference (skops-loaded) model and with its compiled members
(``fluxscape.ml.compiled``: the flat numba kernel of ``fluxscape.ml.forest``; treelite +
tl2cgen for members it cannot take), against the bare model's ``predict_with_sd``
on the same rows; the largest difference between the two paths; compile and load times.

Two ensembles, each a :class:`fluxscape.ml.models.FluxModel` for gpp, reco and nee:

- ``demo``: what ``workflows/demo.yaml``'s flux product trains (RandomForest of 100 trees,
  leaf 5, and LightGBM of 300 trees x 3 site-grouped folds: 18 members). With
  ``--demo-out DIR`` the demo's own saved model (``DIR/models/flux/flux_model.skops``, copied:
  the cache is written beside the copy) and rows drawn from its training table (jittered by
  +-5 %); otherwise the same settings trained on 12 synthetic sites x 46 rows.
- ``large``: RandomForest of 200 trees (leaf 3) and LightGBM of 500 trees x 2 folds (12
  members), trained on 20 synthetic sites x 200 rows of six drivers.

The tile: ``--time`` x ``--tile`` x ``--tile`` float32 driver cubes (default 23 x 64 x 64),
5 % of the pixels missing (NaN) in one driver. Tile generation, training and compiling are
not timed in the rates (compile wall time reported apart).

Bare: ``model.predict_with_sd(X)`` on the valid rows already stacked (float32 widened to
float64). Tile: ``predict_tile(model, tile)`` (stack the valid rows as float32 C-order,
predict, scatter into float32 cubes) with the reference model and with the compiled one.
CPU time (``time.process_time``, threadpools at one thread, so "per core"); the best of
``--repeat`` interleaved runs. Load: wall time of ``persist.load_model`` (skops, what a
worker did per process) and of ``compiled.load_compiled`` (the libraries only).

Run on demand: ``PYTHONPATH=. python bench/upscale.py [--demo-out DIR] [--write]``;
``--write`` replaces the ``## Upscaling`` section of ``bench/RESULTS.md``; raw numbers go to
``bench/out/upscale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import yaml
from results import write_section  # noqa: E402  (bench/ is on sys.path)
from threadpoolctl import threadpool_limits

from fluxscape.ml import compiled, persist
from fluxscape.ml.models import FluxModel
from fluxscape.ml.predict import predict_tile

BENCH_DIR = Path(__file__).resolve().parent
FEATURES = ["TA_F", "SW_IN_F", "VPD_F", "P_F", "ndvi", "lst"]
LARGE = {"rf": {"n_estimators": 200}, "lgbm": {"n_estimators": 500}}
TARGETS = ("gpp", "reco", "nee")


def drivers(rng: np.random.Generator, shape) -> dict[str, np.ndarray]:
    """Plausible monthly-mean drivers (units as FULLSET / products)."""
    ta = rng.uniform(-10, 28, shape)
    return {
        "TA_F": ta,
        "SW_IN_F": rng.uniform(20, 320, shape),
        "VPD_F": np.clip(0.4 * ta + rng.normal(0, 2, shape), 0, None),
        "P_F": rng.gamma(1.5, 2.0, shape),
        "ndvi": rng.uniform(0.05, 0.9, shape),
        "lst": ta + rng.normal(3, 2, shape),
    }


def synthetic_table(rng: np.random.Generator, n_sites: int, per_site: int) -> pd.DataFrame:
    n = n_sites * per_site
    X = pd.DataFrame(drivers(rng, n))
    gpp = np.clip(12 * X.ndvi * X.SW_IN_F / 320 * np.exp(-X.VPD_F / 20), 0, None)
    reco = 1.0 + 0.6 * np.exp(0.06 * X.TA_F) + rng.normal(0, 0.3, n)
    X["gpp"] = gpp + rng.normal(0, 0.5, n)
    X["reco"] = reco
    X["nee"] = reco - gpp
    X["site"] = np.repeat(np.arange(n_sites), per_site)
    return X


def demo_settings() -> dict:
    """methods, ensemble_folds and method_params of workflows/demo.yaml's flux product."""
    doc = yaml.safe_load((BENCH_DIR.parent / "workflows" / "demo.yaml").read_text())
    flux = next(p for p in doc["products"].values() if p["kind"] == "flux")
    return {
        "methods": tuple(flux["methods"]),
        "n_splits": flux["ensemble_folds"],
        "method_params": flux.get("method_params", {}),
    }


def fit(table: pd.DataFrame, features, methods, n_splits, method_params) -> FluxModel:
    model = FluxModel(tuple(features), TARGETS, methods, n_splits, method_params, 0)
    return model.fit(table, table[list(TARGETS)], groups=table["site"])


def save(model: FluxModel, folder: Path, name: str) -> Path:
    path = folder / f"{name}.skops"
    card = {
        "targets": list(TARGETS),
        "features": list(model.features),
        "sites": [],
        "period": [],
        "cv_skill": {},
    }
    persist.save_model(model, path, card)
    return path


def ensembles(rng, folder: Path, demo_out: Path | None):
    """(name, model path, training rows to draw tile values from) of each ensemble."""
    if demo_out is not None:
        src = demo_out / "models" / "flux" / "flux_model.skops"
        demo = folder / "demo.skops"
        shutil.copy(src, demo)
        shutil.copy(persist.card_path(src), persist.card_path(demo))
        features = persist.read_card(demo)["features"]
        rows = pd.read_csv(demo_out / "reports" / "flux" / "training_table.csv")[features]
    else:
        table = synthetic_table(rng, 12, 46)
        demo = save(fit(table, FEATURES, **demo_settings()), folder, "demo")
        rows = table[FEATURES]
    yield "demo", demo, rows
    table = synthetic_table(rng, 20, 200)
    yield (
        "large",
        save(fit(table, FEATURES, ("rf", "lgbm"), 2, LARGE), folder, "large"),
        (table[FEATURES]),
    )


def make_tile(rng: np.random.Generator, rows: pd.DataFrame, nt: int, size: int) -> xr.Dataset:
    """A tile of rows drawn from ``rows``, continuous features jittered by +-5 %."""
    shape = (nt, size, size)
    pick = rows.to_numpy(np.float64)[rng.integers(0, len(rows), nt * size * size)]
    binary = np.isin(rows.to_numpy(), (0.0, 1.0)).all(axis=0)  # one-hot land cover
    pick[:, ~binary] *= rng.uniform(0.95, 1.05, (len(pick), int((~binary).sum())))
    data = {f: pick[:, j].reshape(shape).astype(np.float32) for j, f in enumerate(rows.columns)}
    data[rows.columns[0]][rng.random(shape) < 0.05] = np.nan
    coords = {
        "time": pd.Timestamp("2021-01-01") + pd.to_timedelta(16 * np.arange(nt), unit="D"),
        "y": 40.0 - 0.01 * np.arange(size),
        "x": 130.0 + 0.01 * np.arange(size),
    }
    return xr.Dataset({k: (("time", "y", "x"), v) for k, v in data.items()}, coords=coords)


def stacked(tile: xr.Dataset, features) -> np.ndarray:
    X = np.stack([tile[f].values.ravel() for f in features], axis=1)
    return np.ascontiguousarray(X[np.isfinite(X).all(axis=1)], dtype=np.float32)


def timed(fn) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def wall(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ensemble(name, path, rows, rng, args) -> dict:
    (reference, card), skops_s = wall(lambda: persist.load_model(path))
    _, compile_s = wall(lambda: compiled.compile_model(reference, path, card))
    fast, load_s = wall(lambda: compiled.load_compiled(path, card, reference))
    manifest = json.loads((fast.folder / "manifest.json").read_text())
    members = [m for ms in manifest["members"].values() for m in ms]
    tile = make_tile(rng, rows, args.time, args.tile)
    X = stacked(tile, reference.features)
    bare, ref_tile, comp_tile = [], [], []
    for _ in range(args.repeat):
        bare.append(timed(lambda: reference.predict_with_sd(X)))
        ref_tile.append(timed(lambda: predict_tile(reference, tile)))
        comp_tile.append(timed(lambda: predict_tile(fast, tile)))
    a, b = predict_tile(fast, tile), predict_tile(reference, tile)
    diff = {v: float(np.nanmax(np.abs(a[v].values - b[v].values))) for v in a.data_vars}
    same_nan = all(np.array_equal(np.isnan(a[v].values), np.isnan(b[v].values)) for v in a)
    ref64 = reference.predict_with_sd(X)
    got64 = fast.predict_with_sd(X)
    diff64 = max(float(np.max(np.abs(got64[t][k] - ref64[t][k]))) for t in TARGETS for k in (0, 1))
    # where the compiled path's time goes: quantising the rows, the members' kernels, the rest
    # of predict_tile (stacking the valid pixels, mean and spread, scattering into cubes)
    Xc = np.ascontiguousarray(X, dtype=np.float32)
    parts = {"quantise": [], "members": []}
    for _ in range(args.repeat):
        Xq = None
        if fast.flat is not None:
            parts["quantise"].append(timed(lambda: fast.flat.quantise(Xc))[0])
            Xq = fast.flat.quantise(Xc)
        parts["members"].append(
            timed(lambda Xq=Xq: [fast.member_predictions(t, Xc, Xq) for t in fast.targets])[0]
        )
    breakdown = {k: min(v) if v else 0.0 for k, v in parts.items()}
    tracemalloc.start()
    predict_tile(fast, tile)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    def rate(runs):
        cpu, w = min(runs)
        return {"cpu_s": cpu, "wall_s": w, "rate": len(X) / cpu}

    out = {
        "shape": [args.time, args.tile, args.tile],
        "members": len(members),
        "trees": _trees(reference),
        "runtimes": {
            f"{m['type']} {m['runtime']}": sum(
                (x["type"], x["runtime"]) == (m["type"], m["runtime"]) for x in members
            )
            for m in members
        },
        "nodes": {m["type"]: m.get("nodes") for m in members},
        "valid_rows": int(len(X)),
        "bare": rate(bare),
        "tile_reference": rate(ref_tile),
        "tile_compiled": rate(comp_tile),
        "compiled_breakdown_cpu_s": breakdown,
        "max_abs_diff_float32_outputs": diff,
        "max_abs_diff_float64": diff64,
        "same_missing": bool(same_nan),
        "compile_wall_s": compile_s,
        "skops_load_wall_s": skops_s,
        "compiled_load_wall_s": load_s,
        "model_mib": path.stat().st_size / 2**20,
        "libraries_mib": sum(f.stat().st_size for f in fast.folder.iterdir()) / 2**20,
        "tracemalloc_peak_mib": peak / 2**20,
    }
    out["speedup"] = out["tile_compiled"]["rate"] / out["bare"]["rate"]
    out["speedup_reference_tile"] = out["tile_compiled"]["rate"] / out["tile_reference"]["rate"]
    return out


def _trees(model: FluxModel) -> int:
    """Trees of all members of all targets."""
    n = 0
    for ens in model.ensembles_.values():
        for est in ens.members_:
            if hasattr(est, "booster_"):
                n += est.booster_.num_trees()
            elif hasattr(est, "estimators_"):
                n += len(est.estimators_)
            else:
                n += len(est._predictors)
    return n


def _ns(e: dict, key: str) -> str:
    return f"{1e9 * e[key]['cpu_s'] / (e['valid_rows'] * e['trees']):.0f}"


def _breakdown(e: dict) -> str:
    b = e.get("compiled_breakdown_cpu_s")
    if not b:
        return ""
    total = e["tile_compiled"]["cpu_s"]
    rest = max(0.0, total - b["quantise"] - b["members"])
    return (
        f" Compiled tile CPU: quantising {b['quantise']:.2f} s, member kernels "
        f"{b['members']:.2f} s, the rest of `predict_tile` (stack, mean and sd, scatter) "
        f"{rest:.2f} s (the parts timed apart: within run-to-run noise)."
    )


def markdown(r: dict) -> str:
    rows = []
    for name, e in r["ensembles"].items():
        for key, label in (
            ("bare", "bare `predict_with_sd`, stacked rows"),
            ("tile_reference", "`predict_tile`, reference model"),
            ("tile_compiled", "`predict_tile`, compiled members"),
        ):
            rows.append(
                f"| {name} | {label} | {e[key]['cpu_s']:.2f} | ({e[key]['wall_s']:.2f}) | "
                f"{e[key]['rate']:,.0f} |"
            )
    table = "\n".join(rows)
    per = []
    for name, e in r["ensembles"].items():
        runtimes = ", ".join(f"{n} x {k}" for k, n in e["runtimes"].items())
        per.append(
            f"- **{name}** ({e['members']} members: {runtimes}; tile "
            f"{' x '.join(map(str, e.get('shape', r['shape'])))}, {e['valid_rows']:,} valid rows): "
            f"compiled `predict_tile` **{e['speedup']:.2f}x** the bare predict "
            f"({e['speedup_reference_tile']:.2f}x the reference `predict_tile`). Largest "
            f"difference compiled - reference: {e['max_abs_diff_float64']:.1e} on the float64 "
            f"means and sds, {max(e['max_abs_diff_float32_outputs'].values()):.1e} on the "
            f"float32 output cubes; missing pixels identical: {e['same_missing']}. Compile "
            f"{e['compile_wall_s']:.0f} s wall (once per model card); load per worker: skops "
            f"{e['skops_load_wall_s']:.1f} s ({e['model_mib']:.0f} MiB) vs compiled members "
            f"{e['compiled_load_wall_s']:.2f} s ({e['libraries_mib']:.1f} MiB; a member left "
            f"on the reference still needs the skops model). Peak NumPy memory of one "
            f"compiled tile {e['tracemalloc_peak_mib']:.0f} MiB. Per tree and row: bare "
            f"{_ns(e, 'bare')} ns, compiled {_ns(e, 'tile_compiled')} ns ({e['trees']:,} "
            "trees)." + _breakdown(e)
        )
    return f"""## Upscaling

Written by `python bench/upscale.py --write` (see `bench/README.md`) on {r["date"]}.

**What was measured.** Predictions per second per core of the gridded application
`fluxscape.ml.predict.predict_tile(model, tile)` with the reference (skops-loaded) model and
with its members compiled by `fluxscape.ml.compiled` (the flat kernel of
`fluxscape.ml.forest`, numba {r.get("numba", "?")}: 8 rows in lockstep, branch-free, features
as ranks among the thresholds; treelite {r["treelite"]} + tl2cgen {r["tl2cgen"]} for members
it cannot take), against the bare model's
`model.predict_with_sd(X)` on the same rows. Models: FluxModels for gpp, reco and nee;
`demo` = the demo workflow's flux ensemble ({r["demo_source"]}), `large` = RandomForest 200
trees + LightGBM 500 trees x 2 site-grouped folds on six drivers. Tile: {r["shape"][0]} x
{r["shape"][1]} x {r["shape"][2]} (time x y x x) float32 feature cubes, 5 % NaN in one
feature. A prediction = one pixel-step with all three targets and their ensemble spread.
CPU time with threadpools at one thread (wall in brackets); best of {r["repeat"]} interleaved
runs (load average at the end: {r["load"]}).

| ensemble | path | CPU s | wall s | predictions / s / core |
|---|---|---|---|---|
{table}

{chr(10).join(per)}

{r.get("note", "")}

**Where the time went.** Before this kernel, tl2cgen's nested if-else C code reached
2.3-2.5x: each split a data-dependent branch the CPU guesses wrong about half the time, and
deep forests (> {r["max_nodes"]:,} nodes a member) had to stay on scikit-learn because gcc took
minutes on them and their code outgrew the instruction cache. The flat kernel has no
data-dependent branch: every tree is walked its depth in steps (leaves loop on themselves;
on the demo's forests that is about 10 steps where a row needs 6.3 on average, the price of
having no branch), eight rows in lockstep so their load chains overlap, each step one
64-bit node word and one 32-bit rank. Measured on the demo's members alone (40 000 rows, one
loaded core): the same kernel with indices into arrays instead of eight register lanes ran
2.0x the libraries' predict; written-out lanes 2.8x; threshold ranks instead of float
compares in one node word 3.9x; unsigned indices (numba then drops its negative-index
wraparound on every load) 6.4x. Per-step early exit when all eight lanes sit on leaves, 6 or
12 lanes and 1024-row blocks did not help.

**Machine.** {r["machine"]}. Raw numbers: `bench/out/upscale.json`.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tile", type=int, default=64, help="tile side in pixels (64)")
    parser.add_argument("--time", type=int, default=23, help="time steps (23)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--demo-out", type=Path, help="a finished demo output (read only)")
    parser.add_argument("--only", choices=("demo", "large"), help="one ensemble only")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the section from bench/out/upscale.json"
    )
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args(argv)

    if args.render:
        section = markdown(json.loads((BENCH_DIR / "out" / "upscale.json").read_text()))
        print(section)
        if args.write:
            write_section(args.results, "Upscaling", section)
        return 0
    rng = np.random.default_rng(args.seed)
    result = {"ensembles": {}}
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        for name, path, rows in ensembles(rng, Path(tmp), args.demo_out):
            if args.only in (None, name):
                result["ensembles"][name] = run_ensemble(name, path, rows, rng, args)
                print(name, json.dumps(result["ensembles"][name], indent=1), flush=True)
    from importlib.metadata import version

    result |= {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "shape": [args.time, args.tile, args.tile],
        "repeat": args.repeat,
        "treelite": version("treelite"),
        "numba": version("numba"),
        "tl2cgen": version("tl2cgen"),
        "max_nodes": compiled.MAX_NODES,
        "demo_source": "the demo's saved model and training rows"
        if args.demo_out
        else "its settings trained on synthetic rows",
        "rss_peak_mib": rss_mib(),
        "load": ", ".join(f"{v:.1f}" for v in os.getloadavg()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
    }
    (BENCH_DIR / "out").mkdir(exist_ok=True)
    (BENCH_DIR / "out" / "upscale.json").write_text(json.dumps(result, indent=2))
    section = markdown(result)
    print(section)
    if args.write:
        write_section(args.results, "Upscaling", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
