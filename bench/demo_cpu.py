"""The whole demo's CPU, before and after (issue #18, read floor: every non-reading cost counts).

    python bench/demo_cpu.py --sample demo-out/sample --before SRC [--after SRC]
                             [--rounds 2] [--side before|after] [--work DIR]

Runs ``fluxscape demo --out WORK`` (the sample world hard-linked into WORK, so nothing is
written again; the demo's two worker processes) as a process of its own, alternately with
fluxscape from ``SRC`` (e.g. ``git archive COMMIT | tar -x -C SRC``) and from this tree, and
prints wall time and the user + system CPU of the process and everything it waited for (the
driver and both workers: ``resource.getrusage(RUSAGE_CHILDREN)`` deltas). Alternating rounds
keep both sides under the same load on a shared machine (or run two processes, ``--side
before`` and ``--side after``, at the same time). Prints a JSON document; writes
nothing into bench/RESULTS.md (the figures are quoted by hand in ``## Demo profile``). With
both sides, the last outputs' products are compared value for value
(:func:`product_differences`, ``python -c`` it on two ``--side`` outputs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from profile_demo import _fresh  # bench/ is on sys.path

REPO = Path(__file__).resolve().parents[1]


def demo_cpu(work: Path, sample: Path, src: Path) -> dict:
    """One ``fluxscape demo --out WORK`` with fluxscape from ``src``: wall, user and system
    seconds (driver and workers)."""
    _fresh(work, sample)
    cmd = [sys.executable, "-m", "fluxscape.cli", "demo", "--out", str(work)]
    env = {**os.environ, "PYTHONPATH": str(src)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=src)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {
        "wall_s": round(wall, 1),
        "user_s": round(after.ru_utime - before.ru_utime, 1),
        "sys_s": round(after.ru_stime - before.ru_stime, 1),
        "load": os.getloadavg()[0],
    }


def product_differences(a: Path, b: Path) -> list[str]:
    """Where two demo outputs' products differ: every variable of every store under
    ``products/`` compared value for value (NaN equal to NaN), and the flux report's CSV
    tables (training table, out-of-fold predictions, skill) byte for byte. Empty: none."""
    import numpy as np
    import xarray as xr

    out = []
    for store in sorted((a / "products").glob("*.zarr")):
        other = b / "products" / store.name
        with xr.open_zarr(store) as x, xr.open_zarr(other) as y:
            for name in sorted(set(x.variables) | set(y.variables)):
                if name not in x.variables or name not in y.variables:
                    out.append(f"{store.name}/{name}: in one output only")
                elif not np.array_equal(
                    x[name].values, y[name].values, equal_nan=x[name].dtype.kind == "f"
                ):
                    out.append(f"{store.name}/{name}: values differ")
    for table in sorted((a / "reports").rglob("*.csv")):
        if table.read_bytes() != (b / table.relative_to(a)).read_bytes():
            out.append(f"{table.relative_to(a)}: differs")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sample", type=Path, required=True, help="a written demo sample world")
    ap.add_argument("--before", type=Path, required=True, help="the source tree to compare")
    ap.add_argument("--after", type=Path, default=REPO, help="the tree measured as after")
    ap.add_argument("--side", choices=("before", "after"), help="one side only")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "demo_cpu")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        for side, src in (("before", args.before), ("after", args.after)):
            if args.side not in (None, side):
                continue
            runs[side].append(demo_cpu(args.work / side, args.sample, src))
            print(side, runs[side][-1], file=sys.stderr, flush=True)
    if args.side is None:
        runs["product_differences"] = product_differences(args.work / "before", args.work / "after")
    print(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
