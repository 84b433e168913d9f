#!/usr/bin/env python
"""Read floor: how far a run's CPU is from reading and decoding its inputs once (issue #18).

For a demo output's sample world (``--demo``, default ``/work/demo-s8``) and its resolved
``workflow.yaml``, restricted to the products named by ``--products`` (default ``vi``, the
product that reads the MODIS granules):

* **floor**: every granule of the products' raster inputs opened once in this process and
  every layer a tile read asks for (the source's layers for the product, QA, day of year)
  read and decoded over the whole grid; CPU seconds (``time.process_time``) and syscall read
  bytes (``rchar`` of ``/proc/self/io`` through psutil);
* **run**: ``fluxscape run WORKFLOW --fresh --out WORK/run`` as a subprocess; its CPU is user
  + system of the process and every descendant (the Dask nanny and worker processes), its
  syscall read bytes their ``rchar``, each polled every 0.1 s (see :func:`run`).

For ``ahi_ptree`` inputs (the ``disturbance-fire`` recipe's ``lst_ahi``: ``--demo`` a finished
run of it, ``--products lst_ahi``) the floor opens each P-Tree file once and decodes the
variables an ``lst`` tile read asks for (albedo_03/04, SOZ, tbb_13/15) over the whole grid.
``--count-opens`` counts the run's netCDF4 file opens in every process (through
``bench/count_opens/sitecustomize.py``). ``--env PYTHONPATH=/other/checkout`` runs the
``fluxscape run`` on other code (e.g. the code before a change) while the floor is read
with this checkout.

The ratio run / floor is the issue's figure (45x before issue #18; target 5x). Results go to
the ``## Read floor`` section of ``bench/RESULTS.md`` with ``--write`` (``--label`` names the
row, e.g. ``before``/``after``; rows of other labels are kept), raw numbers to
``bench/out/readfloor-<label>.json``. Run with the code under test first on ``PYTHONPATH``
(``PYTHONPATH=. python bench/readfloor.py``). A benchmark to run on demand, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

BENCH_DIR = Path(__file__).resolve().parent
MIB = 1024 * 1024


def _rchar() -> int:
    return psutil.Process().io_counters().read_chars


def workflow_for(demo: Path, products: list[str], out: Path, in_process: bool) -> dict:
    """The demo's resolved workflow with only ``products``; ``in_process``: one Dask worker
    thread in the driver's process (no worker processes to start: the tiles' own CPU)."""
    wf = yaml.safe_load((demo / "workflow.yaml").read_text())
    wf["products"] = {k: v for k, v in wf["products"].items() if k in products}
    wf["output"]["dir"] = str(out)
    if in_process:
        wf["dask"] |= {"processes": False, "workers": 1, "threads_per_worker": 1}
    return wf


def read_floor(wf_path: Path) -> dict:
    """CPU seconds and read bytes of decoding every raster granule of the workflow's products
    once (whole grids, the layers a tile read asks for)."""
    from fluxscape.pipeline.config import load_workflow
    from fluxscape.pipeline.inputs import index_input
    from fluxscape.readers import ahi_ptree, modis_hdf4

    wf, _ = load_workflow(wf_path)
    cpu = 0.0
    rchar = 0
    files = 0
    nbytes = 0
    for product in wf.products.values():
        name = getattr(product, "input", None)
        if name is None or name not in wf.inputs:
            continue
        spec = wf.inputs[name]
        index = index_input(name, spec.reader, [str(p) for p in spec.paths])
        if spec.reader == "ahi_ptree":
            ahi_ptree._META.clear()  # indexing parsed the headers: the floor parses them again
        layers = {"ndvi", "evi", "red", "nir", "swir22"}
        for g in index.granules:
            if spec.reader == "ahi_ptree":
                r0, c0 = _rchar(), time.process_time()
                nbytes += ptree_floor(g.path)
                cpu += time.process_time() - c0
                rchar += _rchar() - r0
                files += 1
                continue
            family = modis_hdf4.product_family(g.product) if spec.reader == "modis_hdf4" else None
            if family is None:
                continue
            names = list(
                dict.fromkeys(
                    [family.layers[k] for k in layers if k in family.layers]
                    + list(family.extra.values())
                    + list(family.qa)
                    + list(family.checks)
                    + ([family.doy] if family.doy else [])
                )
            )
            r0, c0 = _rchar(), time.process_time()
            ds = modis_hdf4.open_modis_tile(g.path, names)
            nbytes += sum(v.nbytes for v in ds.data_vars.values())
            cpu += time.process_time() - c0
            rchar += _rchar() - r0
            files += 1
    return {"cpu_s": cpu, "read_mib": rchar / MIB, "files": files, "decoded_mib": nbytes / MIB}


#: Variables an ``lst`` tile read of a P-Tree file decodes.
PTREE_LST = ["albedo_03", "albedo_04", "SOZ", "tbb_13", "tbb_15"]


def ptree_floor(path: str) -> int:
    """Open a P-Tree file once (header and data through one handle, no block cache) and
    decode :data:`PTREE_LST` over its whole grid; bytes decoded."""
    from fluxscape.readers import ahi_ptree
    from fluxscape.readers.granule_cache import ByteLRU

    cache, ahi_ptree.BLOCKS = ahi_ptree.BLOCKS, ByteLRU(0)
    try:
        _, _, _, arrays = ahi_ptree.read_window(path, PTREE_LST)
    finally:
        ahi_ptree.BLOCKS = cache
    return sum(a.nbytes for a in arrays.values())


def count_opens(log: Path) -> dict:
    """netCDF4 opens of a run from the ``--count-opens`` log: total, distinct files, and
    the most any one file was opened."""
    lines = log.read_text().splitlines() if log.exists() else []
    paths = [line.split(" ", 1)[1] for line in lines]
    per_file: dict[str, int] = {}
    for p in paths:
        per_file[p] = per_file.get(p, 0) + 1
    return {
        "opens": len(paths),
        "distinct": len(per_file),
        "max_per_file": max(per_file.values(), default=0),
        "processes": len({line.split(" ", 1)[0] for line in lines}),
    }


def run(wf_path: Path, out: Path, env: dict) -> dict:
    """CPU and syscall read bytes of one ``fluxscape run`` and every process it starts.

    The process tree is polled every 0.1 s and each process's own user + system time and
    ``rchar`` kept as last seen (Dask's nannies kill their workers at the end without
    reaping them through the driver, so ``RUSAGE_CHILDREN`` misses the workers); what a
    process does in its last 0.1 s is lost."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        *[sys.executable, "-c", "from fluxscape.cli import main; main()"],
        *["run", str(wf_path), "--fresh", "--out", str(out)],
    ]
    seen: dict[int, tuple[float, int]] = {}
    t0 = time.perf_counter()
    # cwd: a child started with -c puts its working folder first on sys.path, which must not
    # be a checkout other than the one PYTHONPATH names
    proc = subprocess.Popen(
        cmd, env=env, cwd=wf_path.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        for p in procs:
            try:
                with p.oneshot():
                    c = p.cpu_times()
                    seen[p.pid] = (c.user + c.system, p.io_counters().read_chars)
            except psutil.Error:
                pass
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    _, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"fluxscape run failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    return {
        "cpu_s": sum(c for c, _ in seen.values()),
        "read_mib": sum(r for _, r in seen.values()) / MIB,
        "wall_s": wall,
        "processes": len(seen),
    }


def recorded(results: Path) -> tuple[dict[str, str], str]:
    """The rows already in ``results``' ``## Read floor`` table, by label (their raw JSON may
    be gone: ``bench/out/`` is not committed), and the text after the table (notes written by
    hand)."""
    text = results.read_text() if results.exists() else ""
    start = text.find("\n## Read floor\n")
    if start < 0:
        return {}, ""
    body = text[start + 1 :]
    end = body.find("\n## ", 1)
    body = body[: end + 1] if end >= 0 else body
    rows: dict[str, str] = {}
    tail: list[str] = []
    in_table = False
    for line in body.splitlines():
        if line.startswith("| label |") or line.startswith("|---"):
            in_table = True
        elif in_table and line.startswith("| "):
            rows[line.split("|")[1].strip()] = line
        elif in_table:
            tail.append(line)
    return rows, "\n".join(tail).strip()


def section(rows: dict, kept: dict[str, str] | None = None, notes: str = "") -> str:
    """The ``## Read floor`` section from rows by label (raw results), then the ``kept`` rows
    (table lines by label) of labels without raw results, then ``notes``."""
    lines = [
        "## Read floor",
        "",
        "`PYTHONPATH=. python bench/readfloor.py --label L --write` (issue #18): CPU of a "
        "`fluxscape run --fresh` of the demo's `vi` product (driver + 2 Dask workers, "
        "each process polled) against reading and decoding each of its MODIS granules once "
        "(whole grids, every layer a tile read asks for); syscall read bytes (`rchar`).",
        "",
        "Modes: `2 worker processes` (the demo's Dask settings: driver, 2 nannies, 2 workers, "
        "each importing the stack) and `--in-process` (one worker thread in the driver: the "
        "tiles' own CPU plus one process's start).",
        "",
        "The `lst_ahi` rows (`--demo` a finished `disturbance-fire` run, `--products lst_ahi`, "
        "`--count-opens`) read the 1096 P-Tree files of its 4 tiles; `opens` counts the run's "
        "netCDF4 file opens (indexing included) over all processes.",
        "",
        "| label | mode | date | files | floor CPU s | floor read MiB | run CPU s | run read MiB "
        "| run wall s | CPU / floor | read / floor | opens (max per file) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows.items():
        f, x = r["floor"], r["run"]
        lines.append(
            f"| {label} | {r.get('mode', '2 worker processes')} "
            f"| {r['date']} | {f['files']} | {f['cpu_s']:.2f} | {f['read_mib']:.1f} "
            f"| {x['cpu_s']:.1f} | {x['read_mib']:.1f} | {x['wall_s']:.1f} "
            f"| {x['cpu_s'] / f['cpu_s']:.1f}x | {x['read_mib'] / max(f['read_mib'], 1e-9):.1f}x "
            + (
                f"| {r['opens']['opens']} ({r['opens']['max_per_file']}) |"
                if "opens" in r
                else "| |"
            )
        )
    lines += [line for label, line in (kept or {}).items() if label not in rows]
    if notes:
        lines += ["", notes]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", type=Path, default=Path("/work/demo-s8"))
    ap.add_argument("--products", nargs="+", default=["vi"])
    ap.add_argument("--work", type=Path, default=BENCH_DIR / "out" / "readfloor")
    ap.add_argument("--label", default="now")
    ap.add_argument("--write", action="store_true")
    ap.add_argument(
        "--in-process", action="store_true", help="one worker thread in the driver process"
    )
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the run")
    ap.add_argument("--count-opens", action="store_true", help="count the run's netCDF4 file opens")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    wf_path = args.work / "workflow.yaml"
    out = args.work / "run"
    wf_path.write_text(yaml.safe_dump(workflow_for(args.demo, args.products, out, args.in_process)))
    env = dict(os.environ) | dict(e.split("=", 1) for e in args.env)
    log = args.work / "opens.log"
    if args.count_opens:
        log.unlink(missing_ok=True)
        tool = str(BENCH_DIR / "count_opens")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (tool, env.get("PYTHONPATH")) if p)
        env["FLUXSCAPE_BENCH_OPENS_LOG"] = str(log)
    result = {
        "mode": "in-process, 1 thread" if args.in_process else "2 worker processes",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "products": args.products,
        "floor": read_floor(wf_path),
        "run": run(wf_path, out, env),
    }
    if args.count_opens:
        result["opens"] = count_opens(log)
    print(json.dumps(result, indent=1))
    raw = BENCH_DIR / "out" / f"readfloor-{args.label}.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(result, indent=1))
    if args.write:
        rows = {}
        for p in sorted((BENCH_DIR / "out").glob("readfloor-*.json")):
            rows[p.stem.removeprefix("readfloor-")] = json.loads(p.read_text())
        from results import write_section

        kept, notes = recorded(BENCH_DIR / "RESULTS.md")
        write_section(BENCH_DIR / "RESULTS.md", "Read floor", section(rows, kept, notes))


if __name__ == "__main__":
    main()
