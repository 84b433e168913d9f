#!/usr/bin/env python
"""Scaling benchmark: does a run's memory stay bounded by the tile when the region grows?

Runs ``workflows/demo.yaml`` over the sample worlds of the ``demo`` (1 x 1 degree) and
``demo-4x`` (2 x 2 degrees) presets, each as a separate ``fluxscape run --fresh`` process, and
measures for each run:

* the wall time of the whole ``fluxscape run`` process;
* the peak memory of the WHOLE run: every ~0.1 s the memory of the ``fluxscape run`` process
  and all its descendants (the Dask worker processes the LocalCluster spawns, the
  multiprocessing resource tracker, ...) is summed and the maximum of those sums kept. The
  summed quantity is PSS (proportional set size, from ``/proc/PID/smaps_rollup`` through
  psutil's ``memory_full_info()``), so that shared library pages are not counted once per
  process; where PSS is not available USS is used, and failing that RSS. RSS and USS sums are
  recorded too;
* the peak of the largest single process (PSS by polling), and its kernel high-water mark
  (``VmHWM`` in ``/proc/PID/status``, and ``ru_maxrss`` of the run from ``wait4``), which a
  0.1 s poll cannot miss;
* the number of tiles and pixels it wrote, read back from ``OUT/products/vi.zarr``.

Each run is repeated ``--repeat`` times (median wall time, maximum of the peaks). The results
go to ``bench/RESULTS.md`` (table), stdout, and ``WORK/scaling.json`` (raw numbers, with a
memory timeline per run under ``WORK/timelines/``). Exit status 0 when the 4x region's peak
memory is within the budget (default 15 %) of the 1x region's, 1 otherwise.

This is a benchmark to run on demand (``python bench/scaling.py``), not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEMO_WORKFLOW = REPO / "workflows" / "demo.yaml"
PRESET_NAMES = ("demo", "demo-4x")
MIB = 1024 * 1024


# --- helpers -------------------------------------------------------------------------------


def fluxscape_command() -> list[str]:
    """The ``fluxscape`` console script next to this interpreter, or ``python -m``."""
    script = Path(sys.executable).with_name("fluxscape")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "fluxscape.cli"]


def preset_bbox(name: str) -> tuple[float, float, float, float]:
    from fluxscape.sample.world import PRESETS

    return tuple(float(v) for v in PRESETS[name].bbox)


def bbox_area(bbox) -> float:
    w, s, e, n = bbox
    return (e - w) * (n - s)


def ensure_sample(directory: Path, preset: str, seed: int) -> str:
    """Write the preset's sample world into ``directory`` unless the one there matches."""
    world = directory / "truth" / "world.json"
    if world.exists():
        info = json.loads(world.read_text())
        if (
            info.get("preset") == preset
            and info.get("seed") == seed
            and tuple(info.get("bbox", ())) == preset_bbox(preset)
        ):
            return "reused"
    shutil.rmtree(directory, ignore_errors=True)
    cmd = fluxscape_command() + ["sample-data", str(directory), "--preset", preset]
    cmd += ["--seed", str(seed)]
    print(f"writing sample world {preset!r} to {directory} ...", flush=True)
    subprocess.run(cmd, check=True)
    return "written"


def write_workflow(path: Path, preset: str, sample: Path, out: Path) -> dict:
    """``workflows/demo.yaml`` with the preset's bbox, ``data_dir`` and ``output.dir``
    changed; tile size, resolution and Dask settings are kept."""
    wf = yaml.safe_load(DEMO_WORKFLOW.read_text())
    wf["name"] = f"bench-{preset}"
    wf["region"]["bbox"] = list(preset_bbox(preset))
    wf["data_dir"] = str(sample.resolve())
    wf["output"]["dir"] = str(out.resolve())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(wf, sort_keys=False))
    return wf


# --- memory sampling -----------------------------------------------------------------------


def _role(proc: psutil.Process, root_pid: int) -> str:
    if proc.pid == root_pid:
        return "driver"
    try:
        cmdline = " ".join(proc.cmdline())
    except psutil.Error:
        return "other"
    if "resource_tracker" in cmdline:
        return "resource_tracker"
    if "spawn_main" in cmdline or "forkserver" in cmdline:
        return "worker"
    return "other"


def _vm_hwm(pid: int) -> int:
    """Kernel peak RSS (VmHWM) of a process in bytes, 0 if unavailable."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class MemorySampler:
    """Samples the memory of a process tree; keeps the peaks and a timeline."""

    def __init__(self, root_pid: int):
        self.root_pid = root_pid
        self.procs: dict[int, psutil.Process] = {}
        self.roles: dict[int, str] = {}
        self.metric = None  # "pss", "uss" or "rss": what the whole-run sum uses
        self.peak = {"pss": 0, "uss": 0, "rss": 0}
        self.peak_single = 0  # largest single process, in the chosen metric
        self.peak_single_role = None
        self.peak_by_role: dict[str, int] = {}
        self.hwm: dict[int, int] = {}
        self.max_processes = 0
        self.timeline: list[dict] = []
        self.samples = 0
        self.t0 = time.monotonic()

    def _tree(self) -> list[psutil.Process]:
        try:
            root = self.procs.setdefault(self.root_pid, psutil.Process(self.root_pid))
            children = root.children(recursive=True)
        except psutil.Error:
            return []
        tree = [root]
        for child in children:
            # reuse Process objects so psutil keeps its per-process state (and pid reuse
            # is detected by create_time)
            proc = self.procs.get(child.pid)
            if proc is None or not proc.is_running():
                proc = self.procs[child.pid] = child
            tree.append(proc)
        return tree

    def sample(self) -> None:
        tree = self._tree()
        sums = {"pss": 0, "uss": 0, "rss": 0}
        by_role: dict[str, int] = {}
        alive = 0
        for proc in tree:
            try:
                rss = proc.memory_info().rss
                try:
                    full = proc.memory_full_info()
                    pss = getattr(full, "pss", None)
                    uss = getattr(full, "uss", None)
                except (psutil.AccessDenied, NotImplementedError):
                    pss = uss = None
            except psutil.Error:
                continue  # exited between listing and reading
            alive += 1
            if self.metric is None:
                self.metric = "pss" if pss is not None else "uss" if uss is not None else "rss"
            value = {"pss": pss, "uss": uss, "rss": rss}[self.metric] or rss
            sums["rss"] += rss
            sums["pss"] += pss if pss is not None else rss
            sums["uss"] += uss if uss is not None else rss
            if proc.pid not in self.roles:
                self.roles[proc.pid] = _role(proc, self.root_pid)
            role = self.roles[proc.pid]
            by_role[role] = by_role.get(role, 0) + value
            self.peak_by_role[role] = max(self.peak_by_role.get(role, 0), value)
            if value > self.peak_single:
                self.peak_single, self.peak_single_role = value, role
            hwm = _vm_hwm(proc.pid)
            if hwm:
                self.hwm[proc.pid] = max(self.hwm.get(proc.pid, 0), hwm)
        if not alive:
            return
        self.samples += 1
        self.max_processes = max(self.max_processes, alive)
        for key, value in sums.items():
            self.peak[key] = max(self.peak[key], value)
        self.timeline.append(
            {
                "t": round(time.monotonic() - self.t0, 2),
                "processes": alive,
                "total_mib": round(sums[self.metric or "rss"] / MIB, 1),
                **{f"{k}_mib": round(v / MIB, 1) for k, v in sorted(by_role.items())},
            }
        )

    def hwm_by_role(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for pid, hwm in self.hwm.items():
            role = self.roles.get(pid, "other")
            out[role] = max(out.get(role, 0), hwm)
        return out


def run_measured(cmd: list[str], log_path: Path, interval: float) -> dict:
    """Run ``cmd``, sampling its process tree every ``interval`` seconds."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        sampler = MemorySampler(proc.pid)
        status = None
        rusage = None
        while True:
            sampler.sample()
            # wait4 instead of Popen.poll: it also returns the run's ru_maxrss
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(interval)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "returncode": proc.returncode,
        "wall_s": wall,
        "sampler": sampler,
        # Linux: kilobytes; the largest RSS of the run process or any descendant it reaped
        "ru_maxrss": rusage.ru_maxrss * 1024 if sys.platform != "darwin" else rusage.ru_maxrss,
    }


# --- reading the product -------------------------------------------------------------------


def store_size(store: Path, tile_size: int) -> dict:
    import xarray as xr

    ds = xr.open_zarr(store)
    try:
        ny, nx, nt = int(ds.sizes["y"]), int(ds.sizes["x"]), int(ds.sizes["time"])
    finally:
        ds.close()
    tiles = math.ceil(ny / tile_size) * math.ceil(nx / tile_size)
    return {"tiles": tiles, "ny": ny, "nx": nx, "nt": nt, "pixels": ny * nx}


# --- the benchmark -------------------------------------------------------------------------


def bench_preset(preset: str, work: Path, args) -> dict:
    sample = work / "samples" / preset
    sample_state = ensure_sample(sample, preset, args.seed)
    out = work / "runs" / preset
    workflow = work / "workflows" / f"{preset}.yaml"
    wf = write_workflow(workflow, preset, sample, out)
    runs = []
    for i in range(args.repeat):
        shutil.rmtree(out, ignore_errors=True)  # a fresh output folder for every run
        cmd = fluxscape_command() + ["run", str(workflow), "--fresh"]
        print(f"[{preset}] run {i + 1}/{args.repeat}: {' '.join(cmd)}", flush=True)
        res = run_measured(cmd, work / "logs" / f"{preset}-{i + 1}.log", args.interval)
        s = res["sampler"]
        if res["returncode"] != 0:
            log = (work / "logs" / f"{preset}-{i + 1}.log").read_text()
            sys.exit(f"[{preset}] fluxscape run failed ({res['returncode']}):\n{log[-3000:]}")
        size = store_size(out / "products" / "vi.zarr", int(wf["tile_size"]))
        timeline = work / "timelines" / f"{preset}-{i + 1}.json"
        timeline.parent.mkdir(parents=True, exist_ok=True)
        timeline.write_text(json.dumps(s.timeline))
        run = {
            "wall_s": round(res["wall_s"], 2),
            "metric": s.metric,
            "peak_total_mib": round(s.peak[s.metric] / MIB, 1),
            "peak_total_rss_mib": round(s.peak["rss"] / MIB, 1),
            "peak_total_pss_mib": round(s.peak["pss"] / MIB, 1),
            "peak_total_uss_mib": round(s.peak["uss"] / MIB, 1),
            "peak_single_mib": round(s.peak_single / MIB, 1),
            "peak_single_role": s.peak_single_role,
            "peak_by_role_mib": {k: round(v / MIB, 1) for k, v in s.peak_by_role.items()},
            "hwm_rss_by_role_mib": {k: round(v / MIB, 1) for k, v in s.hwm_by_role().items()},
            "ru_maxrss_mib": round(res["ru_maxrss"] / MIB, 1),
            "processes": s.max_processes,
            "samples": s.samples,
            "timeline": str(timeline),
            **size,
        }
        print(
            f"[{preset}] {run['wall_s']:.1f} s, peak {run['peak_total_mib']:.0f} MiB "
            f"({s.metric} sum of {s.max_processes} processes), largest process "
            f"{run['peak_single_mib']:.0f} MiB ({s.peak_single_role}), by role "
            f"{run['peak_by_role_mib']}",
            flush=True,
        )
        runs.append(run)
    roles = sorted({r for run in runs for r in run["peak_by_role_mib"]})
    return {
        "preset": preset,
        "bbox": list(preset_bbox(preset)),
        "area_deg2": bbox_area(preset_bbox(preset)),
        "sample": sample_state,
        "workflow": str(workflow),
        "tile_size": wf["tile_size"],
        "resolution": wf["region"]["resolution"],
        "dask": wf["dask"],
        "tiles": runs[0]["tiles"],
        "pixels": runs[0]["pixels"],
        "shape_tyx": [runs[0]["nt"], runs[0]["ny"], runs[0]["nx"]],
        "wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
        "peak_total_mib": max(r["peak_total_mib"] for r in runs),
        "peak_total_rss_mib": max(r["peak_total_rss_mib"] for r in runs),
        "peak_single_mib": max(r["peak_single_mib"] for r in runs),
        "peak_by_role_mib": {
            role: max(r["peak_by_role_mib"].get(role, 0) for r in runs) for role in roles
        },
        "hwm_rss_by_role_mib": {
            role: max(r["hwm_rss_by_role_mib"].get(role, 0) for r in runs)
            for role in sorted({k for r in runs for k in r["hwm_rss_by_role_mib"]})
        },
        "ru_maxrss_mib": max(r["ru_maxrss_mib"] for r in runs),
        "runs": runs,
    }


def machine_info() -> dict:
    import fluxscape

    return {
        "cpus": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "fluxscape": fluxscape.__version__,
        "date": dt.datetime.now().astimezone().replace(microsecond=0).isoformat(),
    }


def render(results: list[dict], summary: dict, machine: dict, args) -> tuple[str, str]:
    """The markdown table (also printed) and the whole RESULTS.md text."""
    metric = results[0]["runs"][0]["metric"].upper()
    head = (
        "| region | area (deg²) | tiles | pixels | wall time (s) | peak memory whole run (MiB) "
        "| peak largest process (MiB) |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = "".join(
        f"| {r['preset']} {r['bbox']} | {r['area_deg2']:g} | {r['tiles']} | {r['pixels']:,} "
        f"| {r['wall_s']:.1f} | {r['peak_total_mib']:.0f} | {r['peak_single_mib']:.0f} "
        f"({r['runs'][0]['peak_single_role']}) |\n"
        for r in results
    )
    ratio = (
        f"| ratio 4x / 1x | {summary['area_ratio']:.2f} | {summary['tiles_ratio']:.2f} "
        f"| {summary['pixels_ratio']:.2f} | {summary['wall_ratio']:.2f} "
        f"| {summary['peak_ratio']:.2f} | {summary['single_ratio']:.2f} |\n"
    )
    table = head + rows + ratio
    growth = summary["peak_growth"] * 100
    verdict = (
        f"**Within budget:** the 4x region's peak memory is {growth:+.1f} % of the 1x region's "
        f"(budget {args.budget * 100:.0f} %): memory is bounded by the tile, not the region."
        if summary["within_budget"]
        else f"**Over budget:** the 4x region's peak memory is {growth:+.1f} % of the 1x "
        f"region's (budget {args.budget * 100:.0f} %): memory is NOT bounded by the tile "
        "alone; it grows with the region."
    )
    roles = sorted({k for r in results for k in r["peak_by_role_mib"]})
    role_head = (
        "| region | "
        + " | ".join(f"{role} peak {metric} (MiB)" for role in roles)
        + " | largest process VmHWM RSS (MiB) | wait4 ru_maxrss (MiB) | sum of RSS (MiB) "
        "| processes |\n|---|" + "---:|" * (len(roles) + 4) + "\n"
    )
    role_rows = "".join(
        f"| {r['preset']} | "
        + " | ".join(f"{r['peak_by_role_mib'].get(role, 0):.0f}" for role in roles)
        + f" | {max(r['hwm_rss_by_role_mib'].values(), default=0):.0f} "
        f"| {r['ru_maxrss_mib']:.0f} | {r['peak_total_rss_mib']:.0f} "
        f"| {max(run['processes'] for run in r['runs'])} |\n"
        for r in results
    )
    dask = results[0]["dask"]
    text = f"""# Scaling benchmark results

Written by `python bench/scaling.py` (see `bench/README.md`) on {machine["date"]}.

**What was measured.** `workflows/demo.yaml` (tile size {results[0]["tile_size"]} pixels,
resolution {results[0]["resolution"]} degrees, {dask.get("workers")} Dask workers x
{dask.get("threads_per_worker")} thread, memory limit {dask.get("memory_limit")}) run with
`fluxscape run WORKFLOW --fresh` as a separate process over the sample worlds of the presets
`demo` (1 x 1 degree) and `demo-4x` (2 x 2 degrees), with only `region.bbox`, `data_dir` and
`output.dir` changed. Each run: {args.repeat} time(s); median wall time, maximum of the peaks.

**How.** Wall time: from starting the `fluxscape run` process to its exit (Python start-up,
indexing the inputs, starting the LocalCluster, all tiles, catalog). Peak memory of the whole
run: every {args.interval} s the benchmark lists the `fluxscape run` process and all its
descendants (recursively: the Dask worker processes, the multiprocessing resource tracker)
and sums their **{metric}** (`psutil.Process.memory_full_info()`, i.e.
`/proc/PID/smaps_rollup`; PSS counts a page shared by n processes as 1/n in each, so shared
libraries are not counted n times); the table gives the maximum of those sums. The "peak
largest process" is the largest {metric} of a single process at any sample (its role in
brackets: `driver` = the `fluxscape run` process, which also hosts the scheduler and
nannies; `worker` = a Dask worker process). Spikes shorter than the poll interval can be
missed by polling; the kernel's per-process high-water marks (`VmHWM`, and `ru_maxrss` from
`wait4`, both RSS) are listed below as a cross-check. The benchmark process itself is not
counted.

**Machine.** {machine["cpus"]} CPUs, {machine["ram_gib"]} GiB RAM, Python {machine["python"]},
{machine["platform"]}, fluxscape {machine["fluxscape"]}.

{table}
{verdict}

Peak memory by process role (maximum over the samples of the role's {metric}, summed over
the role's processes at each sample):

{role_head}{role_rows}
Raw numbers: `bench/out/scaling.json`; memory timelines (MiB per role every sample):
`bench/out/timelines/`.
"""
    return table + "\n" + verdict, text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--work", type=Path, default=BENCH_DIR / "out", help="work folder (default bench/out)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per region (default 1)")
    parser.add_argument("--seed", type=int, default=42, help="sample world seed (default 42)")
    parser.add_argument(
        "--interval", type=float, default=0.1, help="memory poll interval in s (default 0.1)"
    )
    parser.add_argument(
        "--budget", type=float, default=0.15, help="allowed peak memory growth (default 0.15)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=BENCH_DIR / "RESULTS.md",
        help="markdown file to write (default bench/RESULTS.md)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    machine = machine_info()
    results = [bench_preset(preset, work, args) for preset in PRESET_NAMES]
    small, large = results
    summary = {
        "area_ratio": large["area_deg2"] / small["area_deg2"],
        "tiles_ratio": large["tiles"] / small["tiles"],
        "pixels_ratio": large["pixels"] / small["pixels"],
        "wall_ratio": large["wall_s"] / small["wall_s"],
        "peak_ratio": large["peak_total_mib"] / small["peak_total_mib"],
        "single_ratio": large["peak_single_mib"] / small["peak_single_mib"],
    }
    summary["peak_growth"] = summary["peak_ratio"] - 1
    summary["budget"] = args.budget
    summary["within_budget"] = summary["peak_growth"] <= args.budget

    table, text = render(results, summary, machine, args)
    print()
    print(table)
    args.results.write_text(text)
    raw = {"machine": machine, "summary": summary, "results": results}
    (work / "scaling.json").write_text(json.dumps(raw, indent=2, default=str))
    print(f"\nwrote {args.results} and {work / 'scaling.json'}")
    return 0 if summary["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
