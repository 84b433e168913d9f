"""Where the demo's time goes (issue #18, "work off the critical path", "warm starts").

    python bench/profile_demo.py --sample demo-out/sample [--work bench/out/profile]
                                 [--before SRC] [--write]

Runs the demo recipe on a sample world that is already written (the case of ``fluxscape
demo`` run a second time into a fresh output folder) with the demo's settings (two worker
processes, one thread each), in one process with fluxscape from this tree and, with
``--before SRC``, from the source tree SRC (e.g. ``git archive COMMIT | tar -x -C SRC``):

- the wall time of ``fluxscape demo --out WORK`` as a process of its own (the sample world
  linked into WORK, so nothing is written again), from the process start to its exit;
- a profile of one more run in this process: a LocalCluster started here as the demo starts
  it (its start timed), ``fluxscape run`` of the recipe on it (``--scheduler``) inside
  ``distributed.performance_report`` (an HTML file in the work folder, not committed) and
  cProfile of the driver. Thread-seconds by phase: the workers' task stream grouped by task
  name (tiles per product, cross-validation folds, ensemble members, CV report, quicklooks),
  the driver's time in each stage (cProfile: planning per product, finishing, quicklooks,
  catalog, run report) and the import of the pipeline.

Writes bench/out/profile_demo.json and, with ``--write``, the ``## Demo profile`` section of
bench/RESULTS.md. Exit status 1 when the demo's wall time is 120 s or more.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from results import write_section

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 120.0
#: driver functions whose cumulative time is a phase (cProfile, by function name and file)
DRIVER_PHASES = {
    "planning (flux training included)": ("plan", "pipeline/steps/", "_run_product"),
    "waiting for tiles": ("_run_tiles", "pipeline/run.py", None),
    "quicklooks drawn on the driver": ("write_quicklooks", "pipeline/quicklook.py", None),
    "catalog publication": ("publish_store", "catalog/publish.py", None),
    "store finalising": ("finalize_store", "pipeline/store.py", None),
    "run report": ("write_report", "pipeline/report.py", "run_workflow"),
    "indexing inputs": ("index_inputs", "pipeline/run.py", None),
}


def _fresh(work: Path, sample: Path) -> Path:
    """An empty output folder with a hard-linked copy of the written sample world in
    ``sample`` (a symbolic link is refused: a folder no fluxscape run wrote)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copytree(sample, work / "sample", copy_function=_link_or_copy)
    return work


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)


def demo_wall(work: Path, sample: Path, src: Path) -> dict:
    """``fluxscape demo --out WORK`` as a process with fluxscape from ``src``: wall time and
    the phase lines of its log ("done in", tile counts)."""
    out = _fresh(work, sample)
    cmd = [sys.executable, "-m", "fluxscape.cli", "demo", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=src)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    reused = "using the sample world already" in proc.stdout + proc.stderr
    phases = re.findall(r"INFO (.+?): done in (.+)$", proc.stderr, re.M)
    return {"wall_s": round(wall, 1), "sample_reused": reused, "phases": phases}


def _task_phase(key: str) -> str:
    """A task stream key -> its phase name."""
    key = key.strip("()'\" ")
    if "-tile-" in key:
        return f"tiles: {key.split('-tile-')[0]}"
    name = key.split("-")[0]
    return {
        "cv": "cross-validation folds",
        "fit": "final ensemble members",
        "write_report": "CV report (plots)",
        "draw_quicklooks": "quicklooks",
        "product_sections": "run report sections",
    }.get(name, name)


def profile_run(work: Path, sample: Path) -> dict:
    """One demo run in this process on a cluster started here, profiled (see the module
    docstring): thread-seconds per phase of the workers and the driver."""
    out = _fresh(work, sample)
    t0 = time.perf_counter()
    from distributed import Client, LocalCluster, performance_report

    import fluxscape
    from fluxscape.pipeline.recipes import shipped_recipe
    from fluxscape.pipeline.run import run_workflow

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},
    )
    client = Client(cluster)
    t_cluster = time.perf_counter() - t0
    report = work.parent / f"{work.name}-dask-report.html"
    prof = cProfile.Profile()
    recipe = shipped_recipe("demo.yaml")
    start = time.time()
    with client.as_current(), performance_report(filename=str(report)):
        t0 = time.perf_counter()
        prof.enable()
        run_workflow(recipe, out=out, data_dir=out / "sample", scheduler=cluster.scheduler_address)
        prof.disable()
        t_run = time.perf_counter() - t0
    workers: dict[str, float] = defaultdict(float)
    for task in client.get_task_stream(start=start):
        for part in task.get("startstops", ()):
            if part["action"] == "compute":
                workers[_task_phase(str(task["key"]))] += part["stop"] - part["start"]
    client.close()
    cluster.close()
    stats = pstats.Stats(prof)
    driver = {}
    for phase, (func, file, caller) in DRIVER_PHASES.items():
        total = 0.0
        for (path, _line, name), (_cc, _nc, _tt, ct, callers) in stats.stats.items():
            if name != func or file not in path:
                continue
            if caller is None:
                total += ct
            else:  # only the calls from the runner (a step's plan calls other plans)
                total += sum(v[3] for k, v in callers.items() if k[2] == caller)
        driver[phase] = round(total, 1)
    return {
        "import_s": round(t_import, 1),
        "cluster_start_s": round(t_cluster, 1),
        "run_s": round(t_run, 1),
        "workers": {k: round(v, 1) for k, v in sorted(workers.items(), key=lambda kv: -kv[1])},
        "driver": driver,
        "dask_report": str(report),
        "fluxscape": fluxscape.__file__,
    }


def profile_children(runs: dict[str, tuple[Path, Path]], sample: Path, together: bool) -> dict:
    """:func:`profile_run` per label in a process of its own with fluxscape from its source
    tree (``runs``: label -> (work folder, source tree)); with ``together`` all at once, so
    that they share the machine's load (a loaded machine's load changes by the minute)."""
    procs, out = {}, {}
    for label, (work, src) in runs.items():
        cmd = [sys.executable, __file__, "--sample", str(sample), "--profile-child", str(work)]
        env = {**os.environ, "PYTHONPATH": str(src)}
        procs[label] = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=src
        )
        if not together:
            out[label] = _collect(procs.pop(label), src)
    for label, proc in procs.items():
        out[label] = _collect(proc, runs[label][1])
    return out


def _collect(proc: subprocess.Popen, src: Path) -> dict:
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"profiling with {src} failed:\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def section(result: dict) -> str:
    lines = [
        "## Demo profile",
        "",
        f"`bench/profile_demo.py` ({result['date']}, {result['machine']}, load average at "
        f"start {result['load']}): the demo recipe on a sample world already written, two "
        "worker processes of one thread each.",
        "",
    ]
    if result["walls"]:
        lines += ["| code | `fluxscape demo` wall time (sample reused) |", "|---|---|"]
    for label, r in result["walls"].items():
        lines.append(f"| {label} | {r['wall_s']:.0f} s |")
    profiles = result.get("profiles") or {}
    if profiles:
        labels = list(profiles)
        rows = {}
        for label, p in profiles.items():
            cells = {"driver: imports of the pipeline (s)": p["import_s"]}
            cells["driver: cluster start (s)"] = p["cluster_start_s"]
            cells |= {f"driver: {k}": v for k, v in p["driver"].items()}
            cells |= {f"workers: {k}": v for k, v in p["workers"].items()}
            cells["run wall time (s)"] = p["run_s"]
            for k, v in cells.items():
                rows.setdefault(k, {})[label] = v
        lines += [
            "",
            (
                "Profiled runs, at the same time (sharing the load), "
                if result.get("together")
                else "Profiled runs, one after the other, "
            )
            + "one process each (the cluster started first, then the run on it; "
            "driver seconds from cProfile, worker thread-seconds from the Dask task stream; "
            "the Dask performance report is written beside the work folder, not committed):",
            "",
            "| where | " + " | ".join(labels) + " |",
            "|---|" + "---|" * len(labels),
        ]
        for k, v in rows.items():
            lines.append(f"| {k} | " + " | ".join(str(v.get(lb, "")) for lb in labels) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sample", type=Path, required=True, help="a written demo sample world")
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "profile")
    ap.add_argument("--before", type=Path, help="the fluxscape source tree to compare with")
    ap.add_argument("--no-profile", action="store_true", help="wall times only")
    ap.add_argument("--no-walls", action="store_true", help="profiled runs only")
    ap.add_argument("--together", action="store_true", help="the profiled runs at the same time")
    ap.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    ap.add_argument("--profile-child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.profile_child:  # one profiled run, in this process; its JSON on stdout
        print(json.dumps(profile_run(args.profile_child, args.sample)))
        return 0
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}",
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "walls": {},
    }
    if args.before and not args.no_walls:
        result["walls"]["before"] = demo_wall(args.work / "before", args.sample, args.before)
        print("before", result["walls"]["before"], flush=True)
    if not args.no_walls:
        result["walls"]["after"] = demo_wall(args.work / "after", args.sample, REPO)
        print("after", result["walls"]["after"], flush=True)
    if not args.no_profile:
        trees = ({"before": args.before} if args.before else {}) | {"after": REPO}
        runs = {label: (args.work / f"profiled-{label}", src) for label, src in trees.items()}
        result["profiles"] = profile_children(runs, args.sample, args.together)
        result["together"] = args.together
        print(json.dumps(result["profiles"], indent=1), flush=True)
    result["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    (REPO / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "out" / "profile_demo.json").write_text(json.dumps(result, indent=2))
    if args.write:
        write_section(REPO / "bench" / "RESULTS.md", "Demo profile", section(result))
    after = result["walls"].get("after") or {}
    wall = after.get("wall_s")
    if wall is None:  # from the profiled run: imports, cluster start and the run
        p = result["profiles"]["after"]
        wall = p["import_s"] + p["cluster_start_s"] + p["run_s"]
    return 0 if wall < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
