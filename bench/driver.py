"""The driver's cost per tile at 10^3 and 10^4 tiles (issue #17).

    PYTHONPATH=. python bench/driver.py [--sides 32 100] [--sample demo-out/sample]
                                        [--work bench/out/driver] [--write]

A cheap product on a synthetic region: the demo's ``vi`` (ndvi only, one 16-day period,
2021-01-01) from the sample world's MODIS tiles, at 0.01 degrees with ``tile_size: 8`` (the
smallest allowed) on a square region of ``side`` x ``side`` tiles centred on the sample
world (138.5 E, 36 N): 32 x 32 = 1 024 and 100 x 100 = 10 000 tiles. Only the tiles over the
sample world (about 156) read granules; the others are planned, scheduled, run (an empty
read), written and recorded like any tile, which is the driver's share of a continental run.

Each size runs ``fluxscape run --fresh`` in its own Python process (run_workflow in-process,
LocalCluster of 2 workers x 1 thread): wall time, the driver process's CPU time (client,
scheduler, manifest, finalising, catalog; ``getrusage(RUSAGE_SELF)``) and peak RSS
(``ru_maxrss``), the workers' CPU (``RUSAGE_CHILDREN`` after they exit), the manifest's size.
The cost per tile is the marginal one between the two sizes ((B - A) / (tiles B - tiles A)),
which removes the fixed costs (imports, cluster start, catalog). Writes ``## Driver`` of
bench/RESULTS.md with ``--write``; raw numbers in ``<work>/driver.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKFLOW = """\
name: driver{side}
region:
  bbox: [{w}, {s}, {e}, {n}]
  crs: EPSG:4326
  resolution: 0.01
tile_size: 8
period: {{start: 2021-01-01, end: 2021-01-16, step: 16D}}
data_dir: {sample}
inputs:
  modis_vi:
    reader: modis_hdf4
    paths: ["modis/MOD13A2.A*.h*v*.061.*.hdf"]
products:
  vi:
    kind: vi
    input: modis_vi
    variables: [ndvi]
    max_pixel_reliability: 1
output:
  dir: {out}
dask:
  workers: 2
  threads_per_worker: 1
"""

CHILD = """\
import json, resource, sys, time
t0 = time.perf_counter()
from fluxscape.pipeline.run import run_workflow
t1 = time.perf_counter()
result = run_workflow(sys.argv[1], fresh=True)
t2 = time.perf_counter()
me = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "import_s": t1 - t0,
    "run_s": t2 - t1,
    "driver_cpu_s": me.ru_utime + me.ru_stime,
    "driver_peak_rss_mib": me.ru_maxrss / 1024,
    "workers_cpu_s": kids.ru_utime + kids.ru_stime,
    "workers_peak_mib": result.workers_peak_mib,
}))
"""


def run_size(side: int, sample: Path, work: Path) -> dict:
    """One run of ``side`` x ``side`` tiles; its measurements."""
    d = side * 8 * 0.01
    folder = work / f"side{side}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    text = WORKFLOW.format(
        side=side,
        w=round(138.5 - d / 2, 2),
        s=round(36.0 - d / 2, 2),
        e=round(138.5 + d / 2, 2),
        n=round(36.0 + d / 2, 2),
        sample=sample,
        out=folder / "out",
    )
    wf = folder / "workflow.yaml"
    wf.write_text(text)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    load = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(wf)], capture_output=True, text=True, env=env
    )
    if proc.returncode:
        raise SystemExit(proc.stderr[-4000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    manifest = folder / "out" / ".fluxscape" / "vi.manifest.jsonl"
    store = folder / "out" / "products" / "vi.zarr"
    out |= {
        "side": side,
        "tiles": side * side,
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "manifest_bytes": manifest.stat().st_size if manifest.exists() else 0,
        "store_files": sum(1 for _ in store.resolve().rglob("*")) if store.exists() else 0,
    }
    shutil.rmtree(folder / "out", ignore_errors=True)
    return out


def section(results: dict) -> str:
    """The ``## Driver`` section of bench/RESULTS.md."""
    a, b = results["sizes"][0], results["sizes"][-1]
    dt = b["tiles"] - a["tiles"]

    def per(key: str) -> float:
        return (b[key] - a[key]) / dt

    lines = [
        "## Driver",
        "",
        f"Written by `python bench/driver.py` (see its docstring) on {results['date']}; "
        f"{results['machine']['cpus']} CPUs shared with other jobs, Python "
        f"{results['machine']['python']}.",
        "",
        "The demo's `vi` (ndvi, one 16-day period) at 0.01° with `tile_size: 8` on square "
        "regions centred on the sample world; LocalCluster of 2 workers x 1 thread; each size "
        "its own process.",
        "",
        "| tiles | run wall (s) | driver CPU (s) | driver peak RSS (MiB) | workers CPU (s) "
        "| manifest (KiB) | store files | load avg before / after |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results["sizes"]:
        lines.append(
            f"| {r['tiles']:,} | {r['run_s']:.0f} | {r['driver_cpu_s']:.0f} | "
            f"{r['driver_peak_rss_mib']:.0f} | {r['workers_cpu_s']:.0f} | "
            f"{r['manifest_bytes'] / 1024:.0f} | {r['store_files']:,} | "
            f"{r['load_before']:.1f} / {r['load_after']:.1f} |"
        )
    lines += [
        "",
        f"Marginal cost per tile ({a['tiles']:,} → {b['tiles']:,} tiles): wall "
        f"{per('run_s') * 1000:.0f} ms, driver CPU {per('driver_cpu_s') * 1000:.1f} ms, driver "
        f"memory {per('driver_peak_rss_mib') * 1024:.1f} KiB, workers' CPU "
        f"{per('workers_cpu_s') * 1000:.0f} ms, manifest {per('manifest_bytes'):.0f} bytes.",
        "",
        results.get("notes", "").strip(),
        "",
    ]
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sides", type=int, nargs="+", default=[32, 100])
    ap.add_argument("--sample", type=Path, default=REPO.parent / "demo-s8" / "sample")
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "driver")
    ap.add_argument("--notes", type=Path)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    raw = args.work / "driver.json"
    if args.report_only:
        results = json.loads(raw.read_text())
    else:
        results = {
            "date": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "sizes": [],
        }
        for side in args.sides:
            r = run_size(side, args.sample, args.work)
            results["sizes"].append(r)
            raw.write_text(json.dumps(results, indent=1))
            print(
                f"{r['tiles']:>6,} tiles: wall {r['run_s']:.0f} s, driver CPU "
                f"{r['driver_cpu_s']:.0f} s, driver peak {r['driver_peak_rss_mib']:.0f} MiB",
                flush=True,
            )
    if args.notes:
        results["notes"] = args.notes.read_text()
        raw.write_text(json.dumps(results, indent=1))
    if args.write:
        sys.path.insert(0, str(REPO / "bench"))
        from results import write_section

        write_section(REPO / "bench" / "RESULTS.md", "Driver", section(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
