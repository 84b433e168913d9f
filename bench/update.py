"""Cost of one ``fluxscape update`` (issue #15) against a batch run of the whole period.

    python bench/update.py --sample demo-out/sample [--work bench/out/update] [--repeat 3]
                           [--write]

The sample world's Himawari P-Tree scenes of 2021 (one 02:30 UTC scene every 4th day, the
demo preset) are the near-real-time input of a workflow with a 16-day ``vi`` (ndvi, evi2) and
its ``phenology`` over 0.5 x 0.5 degree (4 tiles of 25 x 25 pixels), period 2021:

1. **batch**: ``fluxscape run`` over the whole year (every scene in the inbox), as its own
   process: wall time and peak memory (``--json``: driver + Dask workers);
2. **updates, early**: an inbox holding January's scenes gets its first ``fluxscape update``
   (the build), then ``--repeat`` single new scenes, one update each (wall time from starting
   the process to its exit, Python's start-up included; the process's peak RSS);
3. **updates, late**: the scenes up to the end of November delivered in one catch-up update,
   then ``--repeat`` single new scenes again: the same one-scene update with eleven months of
   history instead of one. Equal costs mean an update grows with the new data, not the
   history;
4. **nothing new**: ``--repeat`` updates with nothing delivered.

Target: one single-scene update (the update itself, after the imports: a tick of ``fluxscape
watch``) costs at most 1/20 of the batch run over the year; the whole process is reported too.
Writes the ``## Update`` section of bench/RESULTS.md (``--write``) and bench/out/update.json.
Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from results import write_section

REPO = Path(__file__).resolve().parents[1]
TARGET = 1 / 20

WORKFLOW = """\
name: nrt
region:
  bbox: [138.0, 35.5, 138.5, 36.0]
  crs: EPSG:4326
  resolution: 0.01
tile_size: 25
period: {{start: 2021-01-01, end: 2021-12-31, step: 16D}}
data_dir: {inbox}
inputs:
  ahi:
    reader: ahi_ptree
    paths: ["*.nc"]
products:
  vi:
    kind: vi
    input: ahi
    variables: [ndvi, evi2]
  phenology:
    kind: phenology
    source: vi
    method: whittaker
    seasons: 1
output:
  dir: {out}
dask:
  workers: 2
  threads_per_worker: 1
"""

#: run in a child process: one update; prints the seconds of the update itself (after the
#: imports: what a tick of `fluxscape watch` costs, the imports being paid once) and the
#: process's peak RSS (MiB)
CHILD = (
    "import resource, sys, time\n"
    "from fluxscape.pipeline.update import update_workflow\n"
    "t0 = time.perf_counter()\n"
    "result = update_workflow(sys.argv[1])\n"
    "print('WORK', time.perf_counter() - t0)\n"
    "print('ACTIONS', ' '.join(p.action for p in result.products) or 'nothing-new')\n"
    "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
)


def scenes(sample: Path) -> list[Path]:
    """The 2021 P-Tree scenes of the sample world, in time order."""
    files = sorted((sample / "ahi" / "ptree").rglob("NC_H0*_2021*.nc"), key=lambda f: f.name)
    if not files:
        raise SystemExit(f"no 2021 P-Tree scenes under {sample}/ahi/ptree (the demo preset)")
    return files


def setup(folder: Path) -> tuple[Path, Path, Path]:
    shutil.rmtree(folder, ignore_errors=True)
    inbox, out = folder / "inbox", folder / "out"
    inbox.mkdir(parents=True)
    wf = folder / "nrt.yaml"
    wf.write_text(WORKFLOW.format(inbox=inbox, out=out))
    return wf, inbox, out


def deliver(files: list[Path], inbox: Path) -> None:
    for f in files:
        shutil.copy2(f, inbox / f.name)


def update(wf: Path) -> dict:
    """One update as its own process: wall time (s), peak RSS (MiB), what it printed."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(wf)], capture_output=True, text=True, env=env, cwd=REPO
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"update failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    said = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines() if " " in line)
    return {
        "wall_s": round(wall, 3),
        "work_s": round(float(said["WORK"]), 3),
        "actions": said["ACTIONS"],
        "peak_mib": round(float(said["PEAK"])),
    }


def nothing_new(wf: Path) -> dict:
    """``fluxscape update`` as a command with nothing delivered: wall time (s)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fluxscape.cli", "update", str(wf)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or proc.stdout.strip() != "nothing new":
        raise SystemExit(f"expected nothing new ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return {"wall_s": round(wall, 3)}


def batch(wf: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "fluxscape.cli", "run", str(wf), "--out", str(out), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"batch run failed ({proc.returncode}):\n{proc.stderr}")
    peak = json.loads(proc.stdout)["peak_memory_mib"]
    return {"wall_s": round(wall, 3), "peak_mib": peak["driver"] + (peak["workers"] or 0)}


def measure(sample: Path, work: Path, repeat: int) -> dict:
    files = scenes(sample)
    jan = [f for f in files if "_202101" in f.name]
    to_nov = [f for f in files if f.name[7:13] <= "202111"]
    rest = [f for f in files if f.name[7:13] == "202112"]
    if len(rest) < repeat or len(files) - len(jan) < repeat:
        raise SystemExit("not enough scenes for --repeat")
    wf, inbox, out = setup(work / "batch")
    deliver(files, inbox)
    result = {"scenes": len(files), "batch": batch(wf, out)}
    wf, inbox, out = setup(work / "replay")
    deliver(jan, inbox)
    result["build"] = update(wf)
    early = []
    for f in files[len(jan) : len(jan) + repeat]:
        deliver([f], inbox)
        early.append({"scene": f.name, **update(wf)})
    deliver([f for f in to_nov if not (inbox / f.name).exists()], inbox)
    result["catch_up"] = update(wf)
    late = []
    for f in rest[:repeat]:
        deliver([f], inbox)
        late.append({"scene": f.name, **update(wf)})
    result["nothing_new"] = [nothing_new(wf) for _ in range(repeat)]
    result |= {"early": early, "late": late, "history_early": len(jan), "history_late": len(to_nov)}
    one = statistics.median([u["work_s"] for u in early + late])
    result["ratio"] = one / result["batch"]["wall_s"]
    result["ratio_process"] = (
        statistics.median([u["wall_s"] for u in early + late]) / result["batch"]["wall_s"]
    )
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load": round(os.getloadavg()[0], 1),
    }
    result["date"] = datetime.now(UTC).replace(microsecond=0).isoformat()
    return result


def _closing(r: dict, what: str) -> str:
    """The time of the first update of ``what`` (early, late) that closed a period."""
    hit = [u for u in r[what] if u["actions"] == "updated updated"]
    return f"{hit[0]['work_s']:.1f} s" if hit else "n/a"


def section(r: dict) -> str:
    ups = r["early"] + r["late"]
    work = {k: statistics.median([u["work_s"] for u in r[k]]) for k in ("early", "late")}
    wall = statistics.median([u["wall_s"] for u in ups])
    none = statistics.median([u["wall_s"] for u in r["nothing_new"]])
    peak = max(u["peak_mib"] for u in ups)
    verdict = "within" if r["ratio"] <= TARGET else "**missing**"
    rows = "\n".join(
        f"| {what} | {u['scene'][7:15]} | {u['actions']} | {u['work_s']:.1f} | "
        f"{u['wall_s']:.1f} | {u['peak_mib']} |"
        for what in ("early", "late")
        for u in r[what]
    )
    b = r["batch"]
    return f"""## Update

Written by `python bench/update.py --write` (see `bench/README.md`) on {r["date"]}.

**What was measured.** The sample world's {r["scenes"]} Himawari P-Tree scenes of 2021 (one
every 4th day) feed a workflow with a 16-day `vi` (ndvi, evi2) and its `phenology` over
0.5 x 0.5 degree (4 tiles). The batch: `fluxscape run` over the year, as its own process.
The updates: `fluxscape update` after each new scene, each as its own process, with
{r["history_early"]} scenes of history (early) and with {r["history_late"]} (late, after a
catch-up update); for each, the update itself (after the imports: what a tick of
`fluxscape watch` costs) and the whole process (Python's start-up and imports included).
Target (issue #15): an update of one new day costs at most 1/20 of the batch over a year, and
grows with the new data, not with the history.

**Result: an update {statistics.median([u["work_s"] for u in ups]):.1f} s (median early
{work["early"]:.1f} s with one month of history, late {work["late"]:.1f} s with eleven)
against {b["wall_s"]:.0f} s for the batch: {r["ratio"]:.3f} of it, {verdict} the 1/20
target.** As a process of its own (a cron job) an update takes {wall:.1f} s
({r["ratio_process"]:.2f} of the batch): the imports of the pipeline (pandas, xarray, zarr,
dask, every step module) cost more than the update itself; `fluxscape watch` pays them once.
"Nothing new" answers in {none:.2f} s (the command, listing only). Peak memory of an update
{peak} MiB (one process: it runs the tiles itself); the batch {b["peak_mib"]:.0f} MiB (driver
+ Dask workers). The first update (the build from January's scenes) took
{r["build"]["wall_s"]:.1f} s, the catch-up of February to November
{r["catch_up"]["wall_s"]:.1f} s. A scene in the open 16-day period is added to the stored
composites (one scene read per tile) and the phenology waits (`updated kept`): these grow
with the new scene only. A scene that opens a new period closes the previous one and the
year's phenology is recomputed (`updated updated`: {_closing(r, "early")} early,
{_closing(r, "late")} late), which grows with the periods of the year so far.

| update | new scene | products (vi, phenology) | update (s) | process (s) | peak RSS (MiB) |
|---|---|---|---:|---:|---:|
{rows}

**Machine:** {r["machine"]["cpus"]} CPUs, Python {r["machine"]["python"]},
{r["machine"]["platform"]}; load average (1 min) {r["machine"]["load"]} (other jobs ran).
Raw numbers: `bench/out/update.json`.
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sample", type=Path, default=Path("demo-out/sample"), help="the demo's sample world"
    )
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "update")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    ap.add_argument(
        "--report-only", action="store_true", help="rewrite the section from update.json"
    )
    args = ap.parse_args()
    raw = REPO / "bench" / "out" / "update.json"
    if args.report_only:
        result = json.loads(raw.read_text())
    else:
        result = measure(args.sample.resolve(), args.work.resolve(), args.repeat)
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps(result, indent=1))
    text = section(result)
    print(text)
    if args.write:
        write_section(REPO / "bench" / "RESULTS.md", "Update", text)
    return 0 if result["ratio"] <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
