"""The compiled phenology kernels are cached on disk (issue #18): every numba kernel of
``fluxscape.products.kernels`` and ``fluxscape.products.dlfit`` is compiled with
``cache=True`` into a writable cache directory (next to the module, or numba's user-wide
cache, or ``NUMBA_CACHE_DIR``), and a second process loads them from there instead of
compiling again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from numba.core.caching import FunctionCache
from numba.core.dispatcher import Dispatcher

import fluxscape
from fluxscape.products import dlfit, kernels
from fluxscape.products import phenology as ph

MODULES = (kernels, dlfit)
#: The kernels called from Python (the others are compiled into them).
ENTRY_POINTS = (
    "kernels._run",
    "kernels._date_quality",
    "kernels._tile",
    "dlfit.fit_rows",
    "dlfit.curves",
)


def dispatchers() -> dict[str, Dispatcher]:
    return {
        f"{m.__name__.rsplit('.', 1)[-1]}.{name}": obj
        for m in MODULES
        for name, obj in vars(m).items()
        if isinstance(obj, Dispatcher)
    }


def small_run() -> None:
    """Both phenology methods on a few synthetic pixels: calls every entry point."""
    rng = np.random.default_rng(0)
    days = np.arange(0, 730, 16.0) + rng.uniform(0, 15, (12, 46))
    values = (
        0.2 + 0.5 * np.exp(-((((days % 365) - 190) / 50) ** 2)) + rng.normal(0, 0.01, days.shape)
    )
    weights = np.ones_like(values)
    for method in ("whittaker", "double_logistic"):
        res = ph.phenology_metrics(values, weights, days, [2021, 2022], method=method)
        ph.season_quality(res, days, weights, [0.0, 365.0])
    # The vi store's types: the one-pass kernel of method="whittaker".
    starts = pd.DatetimeIndex(
        [
            pd.Timestamp(y, 1, 1) + pd.Timedelta(days=d)
            for y in (2021, 2022)
            for d in range(0, 365, 16)
        ]
    )
    cube = xr.DataArray(values.T.reshape(46, 3, 4).astype(np.float32), dims=("time", "y", "x"))
    cube = cube.assign_coords(time=starts)
    doy = xr.full_like(cube, 8.0)
    ph.phenology(cube, xr.zeros_like(cube, dtype=np.uint8), doy, method="whittaker")


def last_json_line(code: str):
    """Run ``code`` in a fresh Python process (this checkout first on its path) and return the
    JSON document of its last output line."""
    env = dict(os.environ)
    root = str(Path(fluxscape.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_kernel_is_cached_in_a_writable_directory():
    found = dispatchers()
    assert set(ENTRY_POINTS) <= set(found)
    for name, d in found.items():
        assert isinstance(d._cache, FunctionCache), f"{name}: compiled without cache=True"
        path = Path(d._cache._cache_path)
        path.mkdir(parents=True, exist_ok=True)
        assert os.access(path, os.W_OK), f"{name}: cache directory {path} is not writable"


def test_second_process_loads_the_kernels_instead_of_compiling():
    small_run()  # compiles (first run of this install) or loads, and saves to the cache
    code = f"""
import json, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import test_numba_cache as t
t.small_run()
print(json.dumps({{n: [sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values())]
                  for n, d in t.dispatchers().items()}}))
"""
    stats = last_json_line(code)
    compiled = {n: s for n, s in stats.items() if s[1]}
    assert not compiled, f"kernels compiled again in a second process: {compiled}"
    for name in ENTRY_POINTS:
        assert stats[name][0] > 0, f"{name}: not loaded from the cache ({stats[name]})"


def test_the_drivers_warm_up_compiles_every_kernel_signature_a_tile_uses():
    """The phenology step's plan runs ``warm_kernels(method)`` on the driver so that workers
    load kernels instead of all compiling them at once: a tile as the workers read it (float32
    values, uint8 QA, int16 days; two years, some cloudy dates) must then need no kernel
    signature the warm-up did not compile."""
    code = f"""
import json, sys
import numpy as np, pandas as pd, xarray as xr
sys.path.insert(0, {str(Path(__file__).parent)!r})
import test_numba_cache as t
from fluxscape.pipeline.steps.phenology import warm_kernels
from fluxscape.products import phenology as ph

def signatures():
    return {{n: sorted(map(str, d.signatures)) for n, d in t.dispatchers().items()}}

out = {{}}
for method in ("whittaker", "double_logistic"):
    warm_kernels(method)
    before = signatures()
    rng = np.random.default_rng(1)
    time = pd.DatetimeIndex([f"{{y}}-01-01" for y in (2021, 2022)])
    time = np.concatenate([s + pd.to_timedelta(16 * np.arange(23), "D") for s in time])
    doy = pd.DatetimeIndex(time).day_of_year.to_numpy()[:, None, None]
    doy = doy + rng.integers(0, 16, (46, 4, 5))
    season = np.exp(-(((doy - 190) / 50.0) ** 2))
    ndvi = (0.2 + 0.5 * season + rng.normal(0, 0.02, doy.shape)).astype("float32")
    qa = rng.choice(np.array([0, 1, 3], "uint8"), size=doy.shape, p=[0.7, 0.1, 0.2])
    dims = ("time", "y", "x")
    da = lambda a: xr.DataArray(a, dims=dims, coords={{"time": time}})
    ph.phenology(da(ndvi), da(qa), da(doy.astype("int16")), method=method, years=[2021, 2022])
    after = signatures()
    out[method] = {{n: sorted(set(after[n]) - set(before.get(n, []))) for n in after}}
print(json.dumps(out))
"""
    new = last_json_line(code)
    for method, added in new.items():
        missed = {n: s for n, s in added.items() if s}
        assert not missed, f"{method}: a tile compiled signatures the warm-up did not: {missed}"
