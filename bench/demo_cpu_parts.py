"""CPU of the demo's non-reading parts this change touched, before and after, side by side.

    python bench/demo_cpu_parts.py --demo DEMO_OUT --before SRC [--after SRC] [--rounds 2]

For each tree (``SRC``: e.g. ``git archive COMMIT | tar -x -C SRC``; after: this tree) a
process of its own, with fluxscape from that tree, measures the CPU seconds
(``time.process_time``, after one warm-up call) of what a demo run does on a finished demo
output ``DEMO_OUT`` (read only; maps written to a temporary folder):

- the quicklooks of every product store (``write_quicklooks``; the demo's 65 maps);
- the run report's flux section (``report._flux_section``: OOF and tower plots);
- the meteorology per period of the demo's 16 tiles and 12 towers (``meteo_periods`` on
  the sample world's ERA5-like files, the tiles' and towers' boxes);
- the vi gap filling of 16 tiles (``fill_time_gaps`` on (46, 25, 25) series with gaps).

The trees alternate (before, after, before, ...) so both meet the same load. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cpu(fn) -> float:
    fn()  # warm-up: imports, first-call caches
    t0 = time.process_time()
    fn()
    return round(time.process_time() - t0, 3)


def measure(demo: Path) -> dict:
    """CPU seconds of each part with the fluxscape on ``sys.path`` (run in the child)."""
    import glob

    import numpy as np
    import pandas as pd
    import xarray as xr

    from fluxscape.pipeline import predictors, report
    from fluxscape.pipeline.quicklook import write_quicklooks

    stores = sorted((demo / "products").glob("*.zarr"))
    tmp = Path(tempfile.mkdtemp(prefix="demo_cpu_parts-"))

    def quicklooks():
        for store in stores:
            write_quicklooks(store, tmp, store.stem)

    def flux_section():
        report._flux_section(demo, "flux", demo / "products" / "flux.zarr")

    files = sorted(glob.glob(str(demo / "sample" / "meteo" / "*.nc")))
    times = pd.date_range("2021-01-01", "2022-12-31", freq="16D")
    ends = pd.DatetimeIndex(
        [min(t + pd.Timedelta(days=16), pd.Timestamp(t.year + 1, 1, 1)) for t in times]
    )
    boxes = [
        (138.0 + 0.25 * i, 35.5 + 0.25 * j, 138.25 + 0.25 * i, 35.75 + 0.25 * j)
        for i in range(4)
        for j in range(4)
    ]
    rng = np.random.default_rng(0)
    points = [(138.0 + rng.random(), 35.5 + rng.random()) for _ in range(12)]
    boxes += [(x, y, x, y) for x, y in points]
    variables = ["ta", "sw_in", "vpd", "precip"]

    def meteo():
        for box in boxes:
            predictors.meteo_periods(files, times, ends, variables, box, reader="cf_meteo")

    cube = rng.normal(0.5, 0.2, (len(times), 25, 25))
    cube[rng.random(cube.shape) < 0.3] = np.nan
    da = xr.DataArray(cube, dims=("time", "y", "x"))

    def fill():
        for _ in range(16):
            predictors.fill_time_gaps(da)

    try:
        return {
            "quicklooks (65 maps)": _cpu(quicklooks),
            "report flux section": _cpu(flux_section),
            "meteo_periods (16 tiles + 12 towers)": _cpu(meteo),
            "fill_time_gaps (16 tiles)": _cpu(fill),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", type=Path, required=True, help="a finished demo output")
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, default=REPO)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.demo)))
        return
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        for side, src in (("before", args.before), ("after", args.after)):
            cmd = [sys.executable, __file__, "--child", "--demo", str(args.demo)]
            cmd += ["--before", str(args.before)]
            env = {**os.environ, "PYTHONPATH": str(src)}
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
            runs[side][-1]["load"] = os.getloadavg()[0]
            print(side, runs[side][-1], file=sys.stderr, flush=True)
    print(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
