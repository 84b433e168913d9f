#!/usr/bin/env python
"""Scaling benchmark: does a run's memory stay bounded by the tile when the region grows?

Runs ``workflows/demo.yaml`` over the sample worlds of the ``demo`` (1 x 1 degree) and
``demo-4x`` (2 x 2 degrees) presets, each as a separate ``fluxscape run --fresh`` process, and
measures for each run:

* the wall time of the whole ``fluxscape run`` process (and its CPU time, user + system of
  the process and every descendant, from ``wait4``: steadier than wall time on a busy host);
* the peak memory of the WHOLE run: every ~0.1 s the memory of the ``fluxscape run`` process
  and all its descendants (the Dask worker processes the LocalCluster spawns, the
  multiprocessing resource tracker, ...) is summed and the maximum of those sums kept. The
  summed quantity is PSS (proportional set size, from ``/proc/PID/smaps_rollup`` through
  psutil's ``memory_full_info()``), so that shared library pages are not counted once per
  process; where PSS is not available USS is used, and failing that RSS. RSS and USS sums are
  recorded too;
* the peak of the largest single process (PSS by polling), and the kernel's per-process
  high-water marks (``VmHWM`` in ``/proc/PID/status``, and ``ru_maxrss`` from ``wait4``),
  which a 0.1 s poll cannot miss;
* the number of tiles and pixels of the ``vi`` product, read back from
  ``OUT/products/vi.zarr``.

Each run is repeated ``--repeat`` times (median wall time, maximum of the peaks). The results
go to the ``## Scaling`` section of ``bench/RESULTS.md`` (other sections are left alone), to
stdout, and to ``WORK/scaling.json`` (raw numbers; a memory timeline per run is written under
``WORK/timelines/`` and the run logs under ``WORK/logs/``). Exit status 0 when the 4x region's
whole-run peak memory is within the budget (default 15 %) of the 1x region's, 1 otherwise.

This is a benchmark to run on demand (``python bench/scaling.py``), not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import math
import os
import platform
import re
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


# --- sample worlds and workflows -----------------------------------------------------------


def fluxscape_command() -> list[str]:
    """The ``fluxscape`` console script next to this interpreter, or ``python -m``."""
    script = Path(sys.executable).with_name("fluxscape")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "fluxscape.cli"]


def preset_bbox(name: str) -> tuple[float, ...]:
    from fluxscape.sample.world import PRESETS

    return tuple(float(v) for v in PRESETS[name].bbox)


def bbox_area(bbox) -> float:
    w, s, e, n = bbox
    return (e - w) * (n - s)


def input_globs(wf: dict) -> list[str]:
    """The workflow's input globs (relative to its ``data_dir`` or absolute)."""
    return [p for inp in wf["inputs"].values() for p in inp["paths"]]


def ensure_sample(directory: Path, preset: str, seed: int, globs: list[str]) -> str:
    """Write the preset's sample world into ``directory`` unless the one there matches: its
    ``truth/world.json`` names the same preset, seed and bbox, and every input glob of the
    workflow finds a file (a world written by an older generator may lack a source)."""
    world = directory / "truth" / "world.json"
    if world.exists():
        info = json.loads(world.read_text())
        if (
            info.get("preset") == preset
            and info.get("seed") == seed
            and tuple(info.get("bbox", ())) == preset_bbox(preset)
            and all(glob.glob(str(directory / g)) for g in globs)
        ):
            return "reused"
    shutil.rmtree(directory, ignore_errors=True)
    cmd = fluxscape_command() + ["sample-data", str(directory), "--preset", preset]
    cmd += ["--seed", str(seed)]
    print(f"writing sample world {preset!r} to {directory} ...", flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    return "written"


def derive_workflow(preset: str, sample: Path, out: Path, products: list[str] | None) -> dict:
    """``workflows/demo.yaml`` with the preset's bbox, ``data_dir`` and ``output.dir``
    changed; tile size, resolution and Dask settings are kept. ``products`` keeps only
    those products (None: all)."""
    wf = yaml.safe_load(DEMO_WORKFLOW.read_text())
    wf["region"]["bbox"] = list(preset_bbox(preset))
    wf["data_dir"] = str(sample.resolve())
    wf["output"]["dir"] = str(out.resolve())
    if products:
        unknown = sorted(set(products) - set(wf["products"]))
        if unknown:
            sys.exit(f"unknown product(s) {unknown}; {DEMO_WORKFLOW} has {list(wf['products'])}")
        wf["products"] = {k: v for k, v in wf["products"].items() if k in products}
    return wf


# --- memory sampling -----------------------------------------------------------------------


def _role(proc: psutil.Process, root_pid: int) -> str:
    if proc.pid == root_pid:
        return "driver"
    try:
        cmdline = " ".join(proc.cmdline())
    except psutil.Error:
        return "other"
    # workers first: their command line may carry a "-Wignore:resource_tracker..." option
    if "spawn_main" in cmdline or "forkserver" in cmdline:
        return "worker"
    if "resource_tracker import" in cmdline:
        return "resource_tracker"
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
        self.metric: str | None = None  # "pss", "uss" or "rss": what the sums use
        self.peak = {"pss": 0, "uss": 0, "rss": 0}  # whole tree
        self.peak_single = 0  # largest single process (metric)
        self.peak_single_role: str | None = None
        self.peak_role_sum: dict[str, int] = {}  # sum over a role's processes
        self.peak_role_single: dict[str, int] = {}  # largest process of a role
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
            # reuse Process objects (psutil detects pid reuse through the create time)
            proc = self.procs.get(child.pid)
            if proc is None or not proc.is_running():
                proc = self.procs[child.pid] = child
            tree.append(proc)
        return tree

    def sample(self) -> None:
        sums = {"pss": 0, "uss": 0, "rss": 0}
        by_role: dict[str, int] = {}
        alive = 0
        for proc in self._tree():
            try:
                rss = proc.memory_info().rss
                try:
                    full = proc.memory_full_info()
                    pss, uss = getattr(full, "pss", None), getattr(full, "uss", None)
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
            self.peak_role_single[role] = max(self.peak_role_single.get(role, 0), value)
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
        for role, value in by_role.items():
            self.peak_role_sum[role] = max(self.peak_role_sum.get(role, 0), value)
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


def run_measured(cmd: list[str], log_path: Path, interval: float, env: dict) -> dict:
    """Run ``cmd`` (with ``env`` added to the environment), sampling its process tree every
    ``interval`` seconds."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **env}
        )
        sampler = MemorySampler(proc.pid)
        while True:
            tick = time.perf_counter()
            sampler.sample()
            # wait4 instead of Popen.poll: it also gives the run's rusage (max RSS, CPU)
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(max(0.0, interval - (time.perf_counter() - tick)))
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    return {
        "returncode": proc.returncode,
        "wall_s": wall,
        "cpu_s": rusage.ru_utime + rusage.ru_stime,
        "sampler": sampler,
        "ru_maxrss": rusage.ru_maxrss * scale,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg()[0],
    }


# --- reading the products ------------------------------------------------------------------


def store_sizes(products_dir: Path, tile_size: int) -> dict:
    """Dimensions, tiles and pixels of every store in ``products_dir``."""
    import xarray as xr

    out = {}
    for store in sorted(products_dir.glob("*.zarr")):
        with xr.open_zarr(store) as ds:
            sizes = {k: int(v) for k, v in ds.sizes.items()}
        ny, nx = sizes["y"], sizes["x"]
        out[store.stem] = {
            "sizes": sizes,
            "tiles": math.ceil(ny / tile_size) * math.ceil(nx / tile_size),
            "pixels": ny * nx,
        }
    return out


# --- the benchmark -------------------------------------------------------------------------


def bench_preset(preset: str, work: Path, args) -> dict:
    sample = work / "samples" / preset
    out = work / "runs" / preset
    wf = derive_workflow(preset, sample, out, args.products)
    sample_state = ensure_sample(sample, preset, args.seed, input_globs(wf))
    workflow = work / "workflows" / f"{preset}.yaml"
    workflow.parent.mkdir(parents=True, exist_ok=True)
    workflow.write_text(yaml.safe_dump(wf, sort_keys=False))
    tile_size = int(wf["tile_size"])
    runs = []
    for i in range(args.repeat):
        shutil.rmtree(out, ignore_errors=True)  # a fresh output folder for every run
        cmd = fluxscape_command() + ["run", str(workflow), "--fresh"]
        print(f"[{preset}] run {i + 1}/{args.repeat}: {' '.join(cmd)}", flush=True)
        log_path = work / "logs" / f"{preset}-{i + 1}.log"
        res = run_measured(cmd, log_path, args.interval, args.env)
        s = res["sampler"]
        if res["returncode"] != 0:
            tail = log_path.read_text()[-3000:]
            sys.exit(f"[{preset}] fluxscape run failed ({res['returncode']}):\n{tail}")
        stores = store_sizes(out / "products", tile_size)
        if "vi" not in stores:
            sys.exit(f"[{preset}] the run wrote no {out / 'products' / 'vi.zarr'}")
        timeline = work / "timelines" / f"{preset}-{i + 1}.json"
        timeline.parent.mkdir(parents=True, exist_ok=True)
        timeline.write_text(json.dumps(s.timeline))
        run = {
            "wall_s": round(res["wall_s"], 2),
            "cpu_s": round(res["cpu_s"], 1),
            "loadavg_before": round(res["loadavg_before"], 2),
            "loadavg_after": round(res["loadavg_after"], 2),
            "metric": s.metric,
            "peak_total_mib": round(s.peak[s.metric] / MIB, 1),
            "peak_total_rss_mib": round(s.peak["rss"] / MIB, 1),
            "peak_total_pss_mib": round(s.peak["pss"] / MIB, 1),
            "peak_total_uss_mib": round(s.peak["uss"] / MIB, 1),
            "peak_single_mib": round(s.peak_single / MIB, 1),
            "peak_single_role": s.peak_single_role,
            "peak_role_sum_mib": {k: round(v / MIB, 1) for k, v in s.peak_role_sum.items()},
            "peak_role_single_mib": {k: round(v / MIB, 1) for k, v in s.peak_role_single.items()},
            "hwm_rss_by_role_mib": {k: round(v / MIB, 1) for k, v in s.hwm_by_role().items()},
            "ru_maxrss_mib": round(res["ru_maxrss"] / MIB, 1),
            "processes": s.max_processes,
            "samples": s.samples,
            "timeline": str(timeline),
            "log": str(log_path),
            "tiles": stores["vi"]["tiles"],
            "pixels": stores["vi"]["pixels"],
            "stores": stores,
        }
        print(
            f"[{preset}] {run['wall_s']:.1f} s (cpu {run['cpu_s']:.0f} s, load "
            f"{run['loadavg_before']:.1f}), peak {run['peak_total_mib']:.0f} MiB "
            f"({s.metric} sum of {s.max_processes} processes), largest process "
            f"{run['peak_single_mib']:.0f} MiB ({s.peak_single_role}), peak by role "
            f"{run['peak_role_sum_mib']}",
            flush=True,
        )
        runs.append(run)

    def role_max(key: str) -> dict:
        roles = sorted({r for run in runs for r in run[key]})
        return {role: max(run[key].get(role, 0) for run in runs) for role in roles}

    biggest = max(runs, key=lambda r: r["peak_single_mib"])
    return {
        "preset": preset,
        "bbox": list(preset_bbox(preset)),
        "area_deg2": bbox_area(preset_bbox(preset)),
        "sample": sample_state,
        "workflow": str(workflow),
        "products": list(wf["products"]),
        "tile_size": tile_size,
        "resolution": wf["region"]["resolution"],
        "dask": wf["dask"],
        "tiles": runs[0]["tiles"],
        "pixels": runs[0]["pixels"],
        "stores": runs[0]["stores"],
        "wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
        "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 1),
        "loadavg_max": max(max(r["loadavg_before"], r["loadavg_after"]) for r in runs),
        "metric": runs[0]["metric"],
        "peak_total_mib": max(r["peak_total_mib"] for r in runs),
        "peak_total_rss_mib": max(r["peak_total_rss_mib"] for r in runs),
        "peak_total_uss_mib": max(r["peak_total_uss_mib"] for r in runs),
        "peak_single_mib": biggest["peak_single_mib"],
        "peak_single_role": biggest["peak_single_role"],
        "peak_role_sum_mib": role_max("peak_role_sum_mib"),
        "peak_role_single_mib": role_max("peak_role_single_mib"),
        "hwm_rss_by_role_mib": role_max("hwm_rss_by_role_mib"),
        "ru_maxrss_mib": max(r["ru_maxrss_mib"] for r in runs),
        "processes": max(r["processes"] for r in runs),
        "runs": runs,
    }


def source_state() -> str:
    """The commit of the source tree, and whether the package or workflows differ from it
    (read-only git commands; empty if git is unavailable)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "diff", "--name-only", "HEAD", "--", "fluxscape", "workflows"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.split()
    except OSError:
        return ""
    if not head:
        return ""
    return f"commit {head}" + (
        f" with uncommitted changes in {', '.join(changed)}" if changed else ""
    )


def machine_info() -> dict:
    import fluxscape

    return {
        "cpus": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "fluxscape": fluxscape.__version__,
        "source": source_state(),
        "date": dt.datetime.now().astimezone().replace(microsecond=0).isoformat(),
    }


def summarize(small: dict, large: dict, budget: float) -> dict:
    def uss(r: dict) -> float:
        return max(run["peak_total_uss_mib"] for run in r["runs"])

    summary = {
        "area_ratio": large["area_deg2"] / small["area_deg2"],
        "tiles_ratio": large["tiles"] / small["tiles"],
        "pixels_ratio": large["pixels"] / small["pixels"],
        "wall_ratio": large["wall_s"] / small["wall_s"],
        "cpu_ratio": large["cpu_s"] / small["cpu_s"],
        "peak_ratio": large["peak_total_mib"] / small["peak_total_mib"],
        "uss_ratio": uss(large) / uss(small),
        "single_ratio": large["peak_single_mib"] / small["peak_single_mib"],
    }
    summary["peak_growth"] = summary["peak_ratio"] - 1
    summary["budget"] = budget
    summary["within_budget"] = summary["peak_growth"] <= budget
    return summary


def render(results: list[dict], summary: dict, machine: dict, args) -> tuple[str, str]:
    """The markdown table and verdict (also printed) and the ``## Scaling`` section of
    RESULTS.md."""
    metric = results[0]["metric"].upper()
    table = (
        "| region | area (deg²) | tiles | pixels | wall time (s) | peak memory whole run (MiB) "
        "| peak largest process (MiB) |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
    )
    for r in results:
        w, s, e, n = r["bbox"]
        table += (
            f"| {r['preset']} ({w:g}–{e:g} E, {s:g}–{n:g} N) | {r['area_deg2']:g} | {r['tiles']} "
            f"| {r['pixels']:,} | {r['wall_s']:.1f} | {r['peak_total_mib']:.0f} "
            f"| {r['peak_single_mib']:.0f} ({r['peak_single_role']}) |\n"
        )
    table += (
        f"| **ratio 4x / 1x** | {summary['area_ratio']:.2f} | {summary['tiles_ratio']:.2f} "
        f"| {summary['pixels_ratio']:.2f} | **{summary['wall_ratio']:.2f}** "
        f"| **{summary['peak_ratio']:.2f}** | {summary['single_ratio']:.2f} |\n"
    )
    growth = summary["peak_growth"] * 100
    budget = args.budget * 100
    if summary["within_budget"]:
        verdict = (
            f"**Within budget:** the 4x region's whole-run peak memory is {growth:+.1f} % of "
            f"the 1x region's (budget {budget:.0f} %): memory is bounded by the tile, not the "
            "region."
        )
    else:
        verdict = (
            f"**Over budget:** the 4x region's whole-run peak memory is {growth:+.1f} % of the "
            f"1x region's (budget {budget:.0f} %): memory is not bounded by the tile alone; it "
            "grows with the region."
        )
    verdict += (
        f" (Sum of USS, memory private to the run's processes: "
        f"{(summary['uss_ratio'] - 1) * 100:+.1f} %.)"
    )
    roles = sorted({k for r in results for k in r["peak_role_sum_mib"]})
    role_table = (
        "| region | "
        + " | ".join(f"{role} (MiB)" for role in roles)
        + " | largest worker (MiB) | largest VmHWM RSS (MiB) | wait4 ru_maxrss (MiB) "
        "| whole run, sum of USS (MiB) | whole run, sum of RSS (MiB) | processes | CPU time (s) "
        "| load avg |\n|---|" + "---:|" * (len(roles) + 8) + "\n"
    )
    for r in results:
        role_table += (
            f"| {r['preset']} | "
            + " | ".join(f"{r['peak_role_sum_mib'].get(role, 0):.0f}" for role in roles)
            + f" | {r['peak_role_single_mib'].get('worker', 0):.0f} "
            f"| {max(r['hwm_rss_by_role_mib'].values(), default=0):.0f} "
            f"| {r['ru_maxrss_mib']:.0f} "
            f"| {max(run['peak_total_uss_mib'] for run in r['runs']):.0f} "
            f"| {r['peak_total_rss_mib']:.0f} | {r['processes']} "
            f"| {r['cpu_s']:.0f} | {r['loadavg_max']:.1f} |\n"
        )
    dask = results[0]["dask"]
    source = f" ({machine['source']})" if machine.get("source") else ""
    env = " ".join(f"`{k}={v}`" for k, v in args.env.items())
    env_note = f" Environment of the runs: {env}." if env else ""
    products = ", ".join(f"`{p}`" for p in results[0]["products"])
    notes = f"\n### Findings\n\n{args.notes.read_text().strip()}\n" if args.notes else ""
    text = f"""## Scaling

Written by `python bench/scaling.py` (see `bench/README.md`) on {machine["date"]}.

### What was measured

`workflows/demo.yaml` (products {products}; tile size {results[0]["tile_size"]} pixels,
resolution {results[0]["resolution"]} degrees, {dask.get("workers")} Dask workers x
{dask.get("threads_per_worker")} thread, memory limit {dask.get("memory_limit")}) run as
`fluxscape run WORKFLOW --fresh` in its own process over the sample worlds of the presets
`demo` (1 x 1 degree) and `demo-4x` (2 x 2 degrees); only `region.bbox`, `data_dir` and
`output.dir` differ from the repository's workflow. Each region was run {args.repeat}
time(s): median wall time, maximum of the peaks. Tiles and pixels are those of the `vi`
store (`OUT/products/vi.zarr`).{env_note}

### How

* **Wall time:** from starting the `fluxscape run` process to its exit (Python start-up,
  indexing the inputs, starting the LocalCluster, every tile, finalising and cataloguing).
* **Peak memory, whole run:** every {args.interval} s the benchmark lists the `fluxscape run`
  process and all its descendants (recursively: the Dask worker processes and the
  multiprocessing resource tracker), sums their **{metric}** (proportional set size,
  `psutil.Process.memory_full_info()`, read from `/proc/PID/smaps_rollup`; a page shared by
  n processes counts 1/n in each, so shared libraries are not counted n times) and keeps the
  largest sum. The benchmark's own process is not counted. On a shared host PSS also
  depends on other processes mapping the same library files (their share lowers ours), so
  the sums of USS (private pages only: immune to that, but without shared libraries) and of
  RSS (shared pages counted once per process) are given too.
* **Peak largest process:** the largest {metric} of one process at any sample; in brackets
  its role: `driver` = the `fluxscape run` process (which also hosts the Dask scheduler and
  the nannies), `worker` = a Dask worker process. When the workers exit, the pages they
  shared with the driver count in full for the driver, so its PSS can peak in the last
  second of a run, when the whole run's sum is already low.
* Polling can miss spikes shorter than the interval; the kernel's per-process high-water
  marks (`VmHWM`, and `ru_maxrss` from `wait4`; both RSS, which counts shared pages in full)
  are listed below as a cross-check.

**Machine:** {machine["cpus"]} CPUs, {machine["ram_gib"]} GiB RAM, Python {machine["python"]},
{machine["platform"]}, fluxscape {machine["fluxscape"]}{source}. Wall times depend on what else the
host runs: the load average (1 min) around the runs is in the last column below.

### Results

{table}
{verdict}

Peak {metric} by process role (maximum over the samples of the sum over the role's
processes), with the cross-checks:

{role_table}
Raw numbers: `bench/out/scaling.json`; {metric} per role at every sample:
`bench/out/timelines/`; run logs: `bench/out/logs/`.
{notes}"""
    return table + "\n" + verdict, text


def write_section(path: Path, section: str) -> None:
    """Replace the ``## Scaling`` section of ``path`` (up to the next ``## `` heading) and
    leave the other benchmarks' sections alone; without one, add it after the title."""
    text = path.read_text() if path.exists() else ""
    section = section.rstrip() + "\n"
    pattern = re.compile(r"^## Scaling\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    elif text.startswith("# "):
        title, _, rest = text.partition("\n")
        text = f"{title}\n\n{section}\n{rest.lstrip()}"
    else:
        text = f"# Benchmark results\n\n{section}\n{text.lstrip()}"
    path.write_text(text.rstrip() + "\n")


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
        "--products",
        nargs="+",
        default=None,
        metavar="NAME",
        help="run only these products of the demo workflow (default: all; vi is required)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add to the environment of the runs (repeatable), e.g. a DASK_* setting",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: rewrite the results from WORK/scaling.json of an earlier run",
    )
    parser.add_argument(
        "--notes",
        type=Path,
        default=None,
        metavar="FILE",
        help="markdown put under '### Findings' in the section (e.g. a diagnosis of this run)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=BENCH_DIR / "RESULTS.md",
        help="markdown file whose '## Scaling' section is written (default bench/RESULTS.md)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        args.env = dict(item.split("=", 1) for item in args.env)
    except ValueError:
        parser.error("--env takes KEY=VALUE")
    if args.products and "vi" not in args.products:
        parser.error("--products must include vi (tiles and pixels are read from vi.zarr)")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    if args.report_only:
        raw = json.loads((work / "scaling.json").read_text())
        machine, results = raw["machine"], raw["results"]
        for key in ("repeat", "interval", "env"):  # describe the run as it was made
            setattr(args, key, raw.get("args", {}).get(key, getattr(args, key)))
    else:
        machine = machine_info()
        results = [bench_preset(preset, work, args) for preset in PRESET_NAMES]
    summary = summarize(*results, args.budget)

    table, text = render(results, summary, machine, args)
    print()
    print(table)
    write_section(args.results, text)
    if not args.report_only:
        raw = {"machine": machine, "args": vars(args), "summary": summary, "results": results}
        (work / "scaling.json").write_text(json.dumps(raw, indent=2, default=str))
    print(f"\nwrote {args.results}" + ("" if args.report_only else f" and {work / 'scaling.json'}"))
    return 0 if summary["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
