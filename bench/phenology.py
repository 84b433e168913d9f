#!/usr/bin/env python
"""Phenology benchmark: pixel-years per second per core of the default phenology method
against a per-pixel ``scipy.optimize.curve_fit`` double-logistic baseline, and the peak
memory of one tile.

The cube: ``--tiles`` tiles of ``--tile`` x ``--tile`` pixels, two years of 16-day MODIS-like
composites (46 dates) exactly as the ``vi`` store holds them (``ndvi``, ``qa`` 0 good / 1
marginal / 3 cloudy, ``doy`` the observation's day of year, random inside its period): 80 %
single-season pixels (a double logistic with random dates, rates and levels), 20 % double
cropping (wheat then rice), noise s.d. 0.015, 25 % cloudy composites with low values and 10 %
marginal ones. Tiles are generated one at a time and are not timed.

Ours: :func:`fluxscape.products.phenology.phenology` on each tile with every method of
``--methods`` (default: ``whittaker`` and the workflow's default, ``double_logistic``), i.e. the
full method from the ``vi`` variables (QA weights, observation days, QA-weighted Whittaker
smoothing with upper-envelope iterations, season division with up to two seasons a year, for
``double_logistic`` the two fits per season, all 16 dates, metrics and uncertainties and the
two quality layers). Every method runs on the same tiles in the same run as the baseline, so
the ratios are side by side (issue #18: >= 1000 x the unbounded baseline).

Baseline: "the way many users do it": a Python loop over a random sample of the same cube's
pixel-years, each fitted with ``curve_fit`` (one double logistic to the good and marginal
observations of that year, initial values from the data, ``maxfev=2000``) and sos/eos taken as
the fitted inflection days. Two variants: unbounded (Levenberg-Marquardt, scipy's default and
the fastest) and bounded (``bounds=`` -> trust-region reflective, common to keep parameters
physical). It computes one season and two dates per pixel-year, i.e. less than ours.

Speed is CPU time of this process (``time.process_time``) with BLAS/OpenMP limited to one
thread, so "per core"; wall times are reported too. The baseline runs interleaved with our
tiles (one slice of the sample after each tile) so that both see the same machine load.
Peak memory of one tile: ``tracemalloc`` peak (NumPy reports its buffers to it) over one
``phenology()`` call on a tile whose inputs were already in memory, plus the process's peak
RSS growth during that call.

Run on demand: ``python bench/phenology.py [--tiles 8] [--tile 256] [--write]``; ``--write``
puts the results under ``## Phenology`` in ``bench/RESULTS.md`` (only that section is
replaced). Raw numbers go to ``bench/out/phenology.json``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402
import xarray as xr  # noqa: E402
from results import write_section  # noqa: E402  (bench/ is on sys.path)
from scipy.optimize import OptimizeWarning, curve_fit  # noqa: E402

from fluxscape.pipeline.steps.phenology import PhenologyConfig  # noqa: E402
from fluxscape.products import kernels  # noqa: E402
from fluxscape.products import phenology as ph  # noqa: E402
from fluxscape.products import smoothing as sm  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
YEARS = (2021, 2022)
MIB = 1024 * 1024


# --- the synthetic cube ------------------------------------------------------------------------


def make_tile(rng: np.random.Generator, size: int) -> tuple[xr.Dataset, dict[str, np.ndarray]]:
    """One tile (time, y, x) of vi-like variables and its truth: per pixel and year, the
    inflection days ``sos``/``eos`` of the (first) season and whether it is double-cropped."""
    npix = size * size
    starts = pd.DatetimeIndex(
        [pd.Timestamp(y, 1, 1) + pd.Timedelta(days=d) for y in YEARS for d in range(0, 365, 16)]
    )
    start_doy = starts.day_of_year.to_numpy()
    span = np.minimum(16, 365 - start_doy + 1)
    doy = start_doy + (rng.random((npix, starts.size)) * span).astype(int)
    year = np.repeat(np.arange(len(YEARS)), starts.size // len(YEARS))[None, :]
    double = rng.random(npix) < 0.2
    vmin = rng.uniform(0.1, 0.3, (npix, 1))
    ndvi = np.zeros((npix, starts.size))
    sos = np.zeros((npix, len(YEARS)))
    eos = np.zeros((npix, len(YEARS)))
    for i in range(len(YEARS)):
        s1 = np.where(double, rng.uniform(70, 90, npix), rng.uniform(100, 160, npix))
        e1 = np.where(double, rng.uniform(145, 160, npix), rng.uniform(240, 295, npix))
        amp1 = np.where(double, rng.uniform(0.35, 0.5, npix), rng.uniform(0.3, 0.7, npix))
        k1, k2 = rng.uniform(0.06, 0.12, (2, npix))
        season1 = sm.double_logistic(doy, 0, 1, s1[:, None], k1[:, None], e1[:, None], k2[:, None])
        rice = sm.double_logistic(
            doy,
            0,
            1,
            rng.uniform(185, 200, (npix, 1)),
            0.09,
            rng.uniform(255, 275, (npix, 1)),
            0.07,
        )
        amp2 = np.where(double, rng.uniform(0.5, 0.65, npix), 0.0)[:, None]
        this_year = year == i
        ndvi = np.where(this_year, vmin + amp1[:, None] * season1 + amp2 * rice, ndvi)
        sos[:, i], eos[:, i] = s1, e1
    ndvi += rng.normal(0, 0.015, ndvi.shape)
    roll = rng.random(ndvi.shape)
    cloudy, marginal = roll < 0.25, (roll >= 0.25) & (roll < 0.35)
    ndvi = np.where(cloudy, rng.uniform(-0.05, 0.25, ndvi.shape), ndvi)
    ndvi = np.where(marginal, ndvi + rng.normal(0, 0.03, ndvi.shape), ndvi)
    qa = np.where(cloudy, 3, np.where(marginal, 1, 0)).astype(np.uint8)

    def cube(a: np.ndarray, dtype) -> np.ndarray:
        # C order (time, y, x), as a tile is read from its store
        return np.ascontiguousarray(a.T.reshape(starts.size, size, size), dtype=dtype)

    coords = {"time": starts, "y": np.arange(size, dtype=float), "x": np.arange(size, dtype=float)}
    dims = ("time", "y", "x")
    ds = xr.Dataset(
        {
            "ndvi": (dims, cube(ndvi, np.float32)),
            "qa": (dims, cube(qa, np.uint8)),
            "doy": (dims, cube(doy, np.float32)),
        },
        coords=coords,
    )
    return ds, {"sos": sos, "eos": eos, "double": double}


# --- ours and the baseline ---------------------------------------------------------------------


#: What each method does, for the report.
METHOD_TEXT = {
    "whittaker": "QA-weighted Whittaker smoothing with one upper-envelope iteration on an "
    "8-day grid",
    "double_logistic": "a rough QA-weighted Whittaker curve to divide the seasons, then per "
    "season two weighted double-logistic fits at the observation days (the second with the "
    "pixel's other years' rates and levels as priors; `fluxscape.products.dlfit`), dates on "
    "the fitted curve",
    "savgol": "Savitzky-Golay smoothing with upper-envelope iterations",
}
METHOD = PhenologyConfig.model_fields["method"].default
#: Methods timed by default: the fastest one and the workflow's default.
METHODS = tuple(dict.fromkeys(("whittaker", METHOD)))


def run_ours(tile: xr.Dataset, method: str) -> xr.Dataset:
    return ph.phenology(tile["ndvi"], tile["qa"], tile["doy"], method=method)


def _dl(t, vmin, vmax, sos, k1, eos, k2):
    return vmin + (vmax - vmin) * (
        1 / (1 + np.exp(-k1 * (t - sos))) + 1 / (1 + np.exp(k2 * (t - eos))) - 1
    )


def run_baseline(tile: xr.Dataset, sample: np.ndarray, bounded: bool) -> tuple[np.ndarray, int]:
    """The per-pixel loop: for each (pixel, year index) of ``sample``, fit a double logistic
    to that year's good and marginal observations. Returns (sos, eos) per sample row (NaN on
    failure) and the number of failed fits."""
    size = tile.sizes["y"]
    ndvi = tile["ndvi"].values.reshape(-1, size * size)
    qa = tile["qa"].values.reshape(-1, size * size)
    doy = tile["doy"].values.reshape(-1, size * size)
    year = tile["time"].dt.year.values
    lower = [-0.5, -0.5, 1, 0.001, 1, 0.001]
    upper = [1.0, 1.5, 366, 1.0, 366, 1.0]
    out = np.full((len(sample), 2), np.nan)
    failed = 0
    for row, (pixel, y) in enumerate(sample):
        sel = (year == YEARS[y]) & (qa[:, pixel] <= 1) & np.isfinite(ndvi[:, pixel])
        t, v = doy[sel, pixel].astype(float), ndvi[sel, pixel].astype(float)
        p0 = [v.min(), v.max(), 120.0, 0.1, 270.0, 0.1]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                if bounded:
                    p, _ = curve_fit(_dl, t, v, p0=p0, bounds=(lower, upper), maxfev=2000)
                else:
                    p, _ = curve_fit(_dl, t, v, p0=p0, maxfev=2000)
            out[row] = p[2], p[4]
        except (RuntimeError, ValueError):
            failed += 1
    return out, failed


def tile_memory(tile: xr.Dataset, method: str) -> dict[str, float]:
    """Peak traced allocation and peak RSS growth of one ``phenology()`` call on ``tile``."""
    process = psutil.Process()
    rss_before = process.memory_info().rss
    tracemalloc.start()
    run_ours(tile, method)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    hwm = _vm_hwm()
    return {
        "tracemalloc_peak_mib": peak / MIB,
        "input_mib": sum(v.nbytes for v in tile.data_vars.values()) / MIB,
        "rss_before_mib": rss_before / MIB,
        "process_vmhwm_mib": hwm / MIB if hwm else float("nan"),
    }


def _vm_hwm() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    d = np.asarray(a, float) - np.asarray(b, float)
    d = d[np.isfinite(d)]
    return float(np.sqrt(np.mean(d**2))) if d.size else float("nan")


# --- report ------------------------------------------------------------------------------------


def _row(label: str, m: dict, speedup: str) -> str:
    failed = str(m.get("failed", "—"))
    return (
        f"| {label} | {m['pixel_years']:,} | {m['cpu_s']:.1f} ({m['wall_s']:.1f}) "
        f"| {m['rate']:,.0f} ({m['rate_wall']:,.0f}) | {speedup} "
        f"| {m['sos_rmse']:.1f} / {m['eos_rmse']:.1f} | {failed} |"
    )


def markdown(r: dict) -> str:
    """The ``## Phenology`` section of bench/RESULTS.md."""
    lm, trf, tile = r["baseline_lm"], r["baseline_trf"], r["tile"]
    lines = [
        "| method | pixel-years | CPU s (wall) | pixel-years / s / core (wall) "
        "| x unbounded `curve_fit` | sos / eos RMSE, days | failed fits |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    verdicts = []
    for method in r["methods"]:
        ours = r["ours"][method]
        x_lm, x_trf = ours["rate"] / lm["rate"], ours["rate"] / trf["rate"]
        default = " (the workflow's default)" if method == METHOD else ""
        label = f"ours: `{method}`{default} (<= 2 seasons, 16 variables + QA)"
        lines.append(_row(label, ours, f"**{x_lm:,.0f} x** (bounded: {x_trf:,.0f} x)"))
        verdicts.append(
            f"`{method}`{default}: {ours['rate']:,.0f} pixel-years/s/core, **{x_lm:,.0f} x** "
            f"the unbounded fit: **{'met' if x_lm >= 1000 else 'not met'}**"
        )
    lines.append(_row("baseline: `curve_fit` unbounded (LM), 1 season", lm, "1"))
    lines.append(_row("baseline: `curve_fit` bounded (TRF), 1 season", trf, "—"))
    rows = "\n".join(lines)
    memory = "; ".join(
        f"`{m}` **{mem['tracemalloc_peak_mib']:.0f} MiB** (process peak RSS "
        f"{mem['process_vmhwm_mib']:.0f} MiB)"
        for m, mem in r["memory"].items()
    )
    input_mib = next(iter(r["memory"].values()))["input_mib"]
    return f"""## Phenology

Written by `python bench/phenology.py --write` (see `bench/README.md`) on {r["date"]}.

**What was measured.** Pixel-years per second per core of the phenology methods
{", ".join(f"`{m}`" for m in r["methods"])}, each the full
`fluxscape.products.phenology.phenology(ndvi, qa, doy, method=...)` on `vi`-like tiles (QA
weights, observation days, the method's smoothing or fit, season division with up to two
seasons a year, all 16 variables and the per-date QA), against a per-pixel
`scipy.optimize.curve_fit` double-logistic loop over a random sample of the same cube's
single-season pixel-years, all in one run on the same tiles. Methods:
{"; ".join(f"`{m}`: {METHOD_TEXT[m]}" for m in r["methods"])}. Cube: {r["tiles"]} tiles of
{tile} x {tile} pixels x 2 years of 16-day composites (46 dates) =
{r["pixel_years"]:,} pixel-years per method; 80 % single season, 20 % wheat then rice;
noise s.d. 0.015, 25 % cloudy (QA 3, low values), 10 % marginal.
Speed = CPU time of the process with BLAS/OpenMP at 1 thread, i.e. per core (wall time in
brackets; numba kernels compiled, or loaded from their on-disk cache, by a warm-up call
before timing). The baseline runs interleaved with our tiles, so all see the same load on
this shared 2-core machine (load average at the end: {r["load_average"]}). RMSE: first-season
sos / eos against the true inflection days of the single-season pixels.

{rows}

Target (issue #18) >= 1000 x the unbounded baseline (scipy's fastest path,
{1000 / lm["rate"]:.2f} ms per pixel-year; the bounded fit takes {1000 / trf["rate"]:.2f} ms):
{"; ".join(verdicts)}. The baseline does less than ours: one season, no smoothing, two dates
taken from the fitted parameters.

**Memory of one tile** ({tile} x {tile} pixels x 46 dates; inputs {input_mib:.0f} MiB), peak
allocation during one `phenology()` call (`tracemalloc`, NumPy buffers included): {memory}.
The Whittaker smoothing and the date extraction run {r["kernel_lanes"]} pixels at a time inside
compiled numba kernels (`fluxscape.products.kernels`); the double-logistic fits hold one
season's observations at a time (`fluxscape.products.dlfit`) but keep a few arrays per season
of the tile (observations, parameters, the fitted curves on the 8-day grid).

**Machine.** {r["machine"]}. Raw numbers: `bench/out/phenology.json`.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiles", type=int, default=8, help="tiles to time (default 8)")
    parser.add_argument("--tile", type=int, default=256, help="tile side in pixels (256)")
    parser.add_argument(
        "--sample",
        type=int,
        default=3000,
        help="baseline pixel-years (3000: its rate within a few %%)",
    )
    parser.add_argument("--sample-bounded", type=int, default=240, help="bounded fits (240)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated phenology methods to time ({','.join(METHODS)})",
    )
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(ph.METHODS))
    if unknown or not methods:
        parser.error(f"--methods: expected some of {', '.join(ph.METHODS)}, got {args.methods!r}")

    rng = np.random.default_rng(args.seed)
    npix = args.tile * args.tile
    slices = {
        "lm": np.array_split(np.arange(args.sample), args.tiles),
        "trf": np.array_split(np.arange(args.sample_bounded), args.tiles),
    }
    acc = {k: {"cpu": 0.0, "wall": 0.0, "est": [], "truth": [], "failed": 0} for k in slices}
    for method in methods:
        acc[method] = {"cpu": 0.0, "wall": 0.0, "est": [], "truth": []}
    memory: dict[str, dict] = {}
    for i in range(args.tiles):
        tile, truth = make_tile(rng, args.tile)
        single = ~truth["double"]
        for method in methods:
            if method not in memory:
                run_ours(tile, method)  # warm-up: imports, cache loads, first-touch allocations
                memory[method] = tile_memory(tile, method)
            c0, w0 = time.process_time(), time.perf_counter()
            ds = run_ours(tile, method)
            acc[method]["cpu"] += time.process_time() - c0
            acc[method]["wall"] += time.perf_counter() - w0
            for name in ("sos", "eos"):
                est = ds[name].sel(season=1).values.reshape(len(YEARS), -1).T
                acc[method]["est"].append((name, est[single]))
                acc[method]["truth"].append((name, truth[name][single]))
        for kind, bounded in (("lm", False), ("trf", True)):
            n = len(slices[kind][i])
            pixels = rng.choice(np.flatnonzero(single), n)
            sample = np.column_stack([pixels, rng.integers(0, len(YEARS), n)])
            c0, w0 = time.process_time(), time.perf_counter()
            est, failed = run_baseline(tile, sample, bounded)
            acc[kind]["cpu"] += time.process_time() - c0
            acc[kind]["wall"] += time.perf_counter() - w0
            acc[kind]["failed"] += failed
            for j, name in enumerate(("sos", "eos")):
                acc[kind]["est"].append((name, est[:, j]))
                acc[kind]["truth"].append((name, truth[name][sample[:, 0], sample[:, 1]]))
        so_far = ", ".join(f"{m} {acc[m]['cpu']:.1f} s" for m in methods)
        print(f"tile {i + 1}/{args.tiles}: CPU so far {so_far}", flush=True)

    def summary(kind: str, pixel_years: int) -> dict:
        a = acc[kind]
        out = {
            "pixel_years": pixel_years,
            "cpu_s": a["cpu"],
            "wall_s": a["wall"],
            "rate": pixel_years / a["cpu"],
            "rate_wall": pixel_years / a["wall"],
        }
        for name in ("sos", "eos"):
            est = np.concatenate([e.ravel() for n, e in a["est"] if n == name])
            tru = np.concatenate([t.ravel() for n, t in a["truth"] if n == name])
            out[f"{name}_rmse"] = rmse(est, tru)
        if "failed" in a:
            out["failed"] = a["failed"]
        return out

    pixel_years = args.tiles * npix * len(YEARS)
    results = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tiles": args.tiles,
        "tile": args.tile,
        "methods": methods,
        "pixel_years": pixel_years,
        "kernel_lanes": kernels.LANES,
        "ours": {m: summary(m, pixel_years) for m in methods},
        "baseline_lm": summary("lm", args.sample),
        "baseline_trf": summary("trf", args.sample_bounded),
        "memory": memory,
        "load_average": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        "machine": (
            f"{psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.1f} GiB RAM, "
            f"Python {platform.python_version()}, NumPy {np.__version__}, "
            f"{platform.platform()}"
        ),
    }
    out_dir = BENCH_DIR / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "phenology.json").write_text(json.dumps(results, indent=2))
    section = markdown(results)
    print(section)
    if args.write:
        write_section(args.results, "Phenology", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
