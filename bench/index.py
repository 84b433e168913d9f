"""The input index of archives of 10^5 and 10^6 granules (issue #17).

    PYTHONPATH=. python bench/index.py [--sizes 100000 1000000] [--work bench/out/index]
                                       [--headers 40] [--write]

**What is indexed.** A synthetic archive of granule *names* with sizes and modification
times, fed as a listing (``index_input(..., listing=...)``) to the same index code a run
uses: per size N, 50 % MODIS MOD13A2 names (every hHHvVV of the sinusoidal grid, 16-day
composites from 2001), 40 % Himawari full-disk HSD segment names (16 bands x 10 segments,
every 10 minutes from 2024-01-01) and 10 % SGLI L2 VGI tile names (every EQA tile, daily
from 2018), as three inputs. The region is Northeast Asia (100-150 E, 20-55 N), so each
source's name rule (``ReaderSpec.name_bbox``) leaves most files unopened.

**Header reads.** The names are not backed by files: the header read of a kept name is the
reader's own name parsing (``parse_filename`` / the name rule) turned into a Granule, so the
driver's whole machinery (listing, name rules, batches, merging AHI bands and segments into
scenes, the cache) runs at full scale without 10^5 real reads. The cost of a real header
read is measured separately, serially, on the sample world's files (``--headers`` per
reader, from ``--sample``), and the time to read the kept headers on W workers is projected
from it (kept x per-file cost / W).

**Measured per size, each in its own process:** listing built (the stamps, as a glob + stat
or a bucket listing would give them), first index (name rules + header reads + merge +
cache written to ``OUT/.fluxscape/index``), reuse of the unchanged index (a second process:
cache read, listing compared, no file opened), an incremental update (0.1 % of the names
new), the cache's size and the driver's peak RSS (``ru_maxrss``) and Python heap peak
(``tracemalloc``, a separate pass). ``--folder N`` also lists a real folder tree of N empty
files (glob + stat) to give the listing's cost on a local file system.

Targets: 10^6 names listed and matched in under a minute, driver memory under 1 GiB, reuse
under 5 % of the first index. Writes ``## Index`` of bench/RESULTS.md with ``--write``; raw
numbers in ``<work>/index.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

REGION = (100.0, 20.0, 150.0, 55.0)
SHARES = {"modis_hdf4": 0.5, "ahi_hsd": 0.4, "sgli_l2": 0.1}


def names(reader: str, count: int, root: str) -> list[tuple[str, int, int]]:
    """``count`` synthetic (path, size, mtime_ns) stamps of ``reader``'s archive layout."""
    out = []
    mtime = 1_700_000_000_000_000_000
    if reader == "modis_hdf4":
        i = 0
        while len(out) < count:
            doy = 1 + 16 * (i % 23)
            year = 2001 + i // 23
            for h in range(36):
                for v in range(18):
                    name = (
                        f"MOD13A2.A{year}{doy:03d}.h{h:02d}v{v:02d}.061.{year}{doy:03d}000000.hdf"
                    )
                    out.append((f"{root}/modis/{year}/{name}", 9_000_000, mtime + len(out)))
            i += 1
    elif reader == "ahi_hsd":
        t = datetime(2024, 1, 1)
        while len(out) < count:
            stamp = t.strftime("%Y%m%d_%H%M")
            folder = f"{root}/ahi/{t:%Y/%m/%d/%H%M}"
            for band in range(1, 17):
                for seg in range(1, 11):
                    name = f"HS_H09_{stamp}_B{band:02d}_FLDK_R20_S{seg:02d}10.DAT.bz2"
                    out.append((f"{folder}/{name}", 2_500_000, mtime + len(out)))
            t += timedelta(minutes=10)
    else:
        day = datetime(2018, 1, 1)
        while len(out) < count:
            for v in range(18):
                for h in range(36):
                    name = f"GC1SG1_{day:%Y%m%d}D01D_T{v:02d}{h:02d}_L2SG_VGI_K_3000.h5"
                    out.append((f"{root}/sgli/{day:%Y}/{name}", 3_000_000, mtime + len(out)))
            day += timedelta(days=1)
    return out[:count]


def name_granule(reader: str):
    """A granule_info that makes the Granule from the file name alone (see the module doc)."""
    from fluxscape.readers import ahi_hsd, modis_hdf4, sgli_l2
    from fluxscape.readers.ontile import Granule

    def base(path: str) -> str:
        return path[path.rfind("/") + 1 :]

    def modis(path):
        m = modis_hdf4.FILENAME_RE.fullmatch(base(path))
        start = datetime(int(m["year"]), 1, 1) + timedelta(days=int(m["doy"]) - 1)
        bbox = modis_hdf4.tile_lonlat_bbox(int(m["h"]), int(m["v"]))
        key = ("modis", m["h"], m["v"])
        return Granule(path, start, bbox, key, (path,), frozenset({"ndvi"}))

    def ahi(path):
        name = base(path)
        m = ahi_hsd.FILENAME_RE.fullmatch(name)
        d, t = m["date"], m["time"]
        start = datetime(int(d[:4]), int(d[4:6]), int(d[6:]), int(t[:2]), int(t[2:]))
        return Granule(
            path, start, ahi_hsd.name_bbox(name), ("ahi", m["segment"]), (path,),
            frozenset({"red"}), group=("ahi", start),
        )  # fmt: skip

    def sgli(path):
        name = base(path)
        m = sgli_l2._NAME_RE.fullmatch(name)
        d = m["date"]
        start = datetime(int(d[:4]), int(d[4:6]), int(d[6:]))
        key = ("sgli", m["vtile"], m["htile"])
        return Granule(
            path, start, tuple(sgli_l2.name_bbox(name)), key, (path,), frozenset({"ndvi"})
        )

    return {"modis_hdf4": modis, "ahi_hsd": ahi, "sgli_l2": sgli}[reader]


def use_name_granules() -> None:
    """Register each reader with its name-made granule_info (in this process only)."""
    from fluxscape.readers import registry

    for reader in SHARES:
        spec = registry.get_reader(reader)
        registry._READERS[reader] = replace(spec, granule_info=name_granule(reader))


def child(n: int, work: Path, phase: str, trace: bool) -> dict:
    """One measurement in this (fresh) process; prints a JSON document."""
    import tracemalloc

    from fluxscape.pipeline.inputs import index_input

    if trace:
        tracemalloc.start()
    use_name_granules()
    cache = work / f"n{n}" / ".fluxscape" / "index"
    c0 = time.process_time()
    t0 = time.perf_counter()
    listings = {r: names(r, int(n * share), f"/archive{n}") for r, share in SHARES.items()}
    if phase == "update":  # 0.1 % new names: the next ones in each archive
        listings = {r: names(r, int(len(v) * 1.001), f"/archive{n}") for r, v in listings.items()}
    t_list = time.perf_counter() - t0
    out = {"n": n, "phase": phase, "listing_s": t_list, "inputs": {}}
    out["listing_cpu_s"] = time.process_time() - c0
    c0 = time.process_time()
    t0 = time.perf_counter()
    for reader, listing in listings.items():
        t1 = time.perf_counter()
        index = index_input(reader, reader, [], region=REGION, cache_dir=cache, listing=listing)
        out["inputs"][reader] = {
            "listed": len(listing),
            "outside_by_name": index.outside,
            "kept": len(index.files),
            "headers_read": index.read,
            "granules": len(index.granules),
            "skipped": len(index.skipped),
            "seconds": time.perf_counter() - t1,
        }
    out["index_s"] = time.perf_counter() - t0
    out["index_cpu_s"] = time.process_time() - c0
    out["load"] = os.getloadavg()[0]
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if trace:
        out["heap_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    out["cache_mib"] = sum(f.stat().st_size for f in cache.glob("*.pkl")) / 2**20
    return out


def header_costs(sample: Path, count: int) -> dict:
    """Seconds per real header read (``granule_info``), serially, per reader."""
    from fluxscape.readers.registry import get_reader

    files = {
        "modis_hdf4": sorted((sample / "modis").glob("MOD13A2.*.hdf")),
        "ahi_hsd": sorted((sample / "ahi" / "hsd").rglob("HS_*.DAT.bz2")),
        "sgli_l2": sorted((sample / "sgli").glob("GC1SG1_*_L2SG_VGI_K_*.h5")),
    }
    out = {}
    for reader, paths in files.items():
        paths = paths[:count]
        spec = get_reader(reader)
        spec.granule_info(paths[0])  # imports and first-use costs out of the timing
        t0 = time.perf_counter()
        for p in paths:
            spec.granule_info(p)
        seconds = (time.perf_counter() - t0) / len(paths)
        out[reader] = {"files": len(paths), "seconds_per_file": seconds}
    return out


def folder_listing(n: int, work: Path) -> dict:
    """Seconds to list a folder tree of ``n`` empty files (glob + stat) and to build it."""
    from fluxscape.pipeline.archive import list_stamped

    root = work / f"folder{n}"
    stamps = names("modis_hdf4", n, str(root))
    t0 = time.perf_counter()
    if not root.is_dir():
        for path, _, _ in stamps:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).touch()
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    listed = list_stamped([f"{root}/modis/*/*.hdf"])
    return {"files": len(listed), "build_s": built, "list_s": time.perf_counter() - t0}


def run_child(n: int, work: Path, phase: str, trace: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), "--work", str(work), "--phase", phase]
    if trace:
        cmd.append("--trace")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def section(results: dict) -> str:
    """The ``## Index`` section of bench/RESULTS.md."""
    m = results["machine"]
    lines = [
        "## Index",
        "",
        f"Written by `python bench/index.py` (see its docstring) on {results['date']}.",
        f"Machine: {m['cpus']} CPUs shared with other jobs (load average {m['load']:.1f} at the "
        f"start), Python {m['python']}.",
        "",
        "A synthetic archive of granule names (50 % MODIS MOD13A2 `hHHvVV`, 40 % Himawari "
        "full-disk HSD segments, 10 % SGLI L2 EQA tiles), fed as a listing (name, size, mtime) "
        "to `index_input`, region Northeast Asia (100-150 E, 20-55 N). Kept names' granules "
        "come from their names (no file behind them); real header reads are timed separately "
        "on the sample world and projected. Each figure is one process (`ru_maxrss`: the "
        "driver's peak RSS, imports included; the heap peak from a separate `tracemalloc` pass).",
        "",
        "Times are CPU seconds of the indexing process (`time.process_time`; the machine was "
        "shared, so wall time is given in brackets).",
        "",
        "| names | listing built (s) | first index (s) | kept (header reads) | granules "
        "| reuse (s) | reuse / first | update +0.1 % (s, reads) | driver peak RSS (MiB) "
        "| heap peak (MiB) | cache (MiB) | load |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["sizes"]:
        first, again, upd = r["first"], r["reuse"], r["update"]
        kept = sum(i["kept"] for i in first["inputs"].values())
        gran = sum(i["granules"] for i in first["inputs"].values())
        reads = sum(i["headers_read"] for i in upd["inputs"].values())
        rss = max(first["peak_rss_mib"], again["peak_rss_mib"], upd["peak_rss_mib"])
        ratio = again["index_cpu_s"] / first["index_cpu_s"]
        lines.append(
            f"| {r['n']:,} | {first['listing_cpu_s']:.1f} | {first['index_cpu_s']:.1f} "
            f"({first['index_s']:.1f}) | {kept:,} | {gran:,} | {again['index_cpu_s']:.2f} "
            f"({again['index_s']:.2f}) | {ratio:.1%} | {upd['index_cpu_s']:.1f} ({reads:,}) | "
            f"{rss:.0f} | {r['heap']['heap_peak_mib']:.0f} | {first['cache_mib']:.1f} | "
            f"{first['load']:.0f} |"
        )
    lines += ["", "Per source at the largest size (first index):", ""]
    lines += ["| source | listed | outside by name (never opened) | kept | granules | wall s |"]
    lines += ["|---|---:|---:|---:|---:|---:|"]
    for reader, i in results["sizes"][-1]["first"]["inputs"].items():
        lines.append(
            f"| {reader} | {i['listed']:,} | {i['outside_by_name']:,} | {i['kept']:,} | "
            f"{i['granules']:,} | {i['seconds']:.1f} |"
        )
    h = results["headers"]
    lines += ["", "Real header reads (serial, sample world files, after a first read):", ""]
    lines += ["| source | files | ms per header | kept at the largest size | hours on 1 worker "
              "| minutes on 32 workers |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    last = results["sizes"][-1]["first"]["inputs"]
    for reader, c in h.items():
        kept = last[reader]["kept"]
        sec = kept * c["seconds_per_file"]
        lines.append(
            f"| {reader} | {c['files']} | {c['seconds_per_file'] * 1000:.1f} | {kept:,} | "
            f"{sec / 3600:.2f} | {sec / 32 / 60:.1f} |"
        )
    real = sum(last[r]["kept"] * c["seconds_per_file"] for r, c in h.items())
    first = results["sizes"][-1]["first"]["index_cpu_s"]
    reuse = results["sizes"][-1]["reuse"]["index_cpu_s"]
    lines += [
        "",
        f"With real header reads the first index of the largest archive costs about "
        f"{first:.1f} + {real:,.0f} = {first + real:,.0f} CPU-s (the reads on the workers), so "
        f"its reuse ({reuse:.2f} s) is {reuse / (first + real):.3%} of it; against the "
        f"name-made headers of the table it is {reuse / first:.1%}.",
    ]
    if results.get("folder"):
        f = results["folder"]
        lines += [
            "",
            f"Listing a local folder tree of {f['files']:,} empty files (glob + stat): "
            f"{f['list_s']:.1f} s ({f['list_s'] / f['files'] * 1e6:.0f} µs a file).",
        ]
    lines += ["", results.get("notes", "").strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "index")
    ap.add_argument("--sample", type=Path, default=REPO.parent / "demo-s8" / "sample")
    ap.add_argument("--headers", type=int, default=40)
    ap.add_argument("--folder", type=int, default=0, help="also list a tree of N empty files")
    ap.add_argument("--notes", type=Path)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--child", type=int)
    ap.add_argument("--phase", default="first")
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="rewrite from index.json")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.work, args.phase, args.trace)))
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        results = json.loads((args.work / "index.json").read_text())
        if args.notes:
            results["notes"] = args.notes.read_text()
        if args.write:
            from results import write_section

            write_section(REPO / "bench" / "RESULTS.md", "Index", section(results))
        return 0
    import shutil

    results = {
        "date": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "load": os.getloadavg()[0],
            "python": platform.python_version(),
        },
        "sizes": [],
    }
    for n in args.sizes:
        shutil.rmtree(args.work / f"n{n}", ignore_errors=True)
        first = run_child(n, args.work, "first")
        again = run_child(n, args.work, "reuse")
        update = run_child(n, args.work, "update")
        shutil.rmtree(args.work / f"n{n}", ignore_errors=True)
        heap = run_child(n, args.work, "first", trace=True)
        shutil.rmtree(args.work / f"n{n}", ignore_errors=True)
        results["sizes"].append(
            {"n": n, "first": first, "reuse": again, "update": update, "heap": heap}
        )
        print(
            f"{n:>9,} names: first {first['index_cpu_s']:.1f} s CPU, reuse "
            f"{again['index_cpu_s']:.2f} s ({again['index_cpu_s'] / first['index_cpu_s']:.1%}), "
            f"update {update['index_cpu_s']:.1f} s, "
            f"peak RSS {first['peak_rss_mib']:.0f} MiB, heap {heap['heap_peak_mib']:.0f} MiB",
            flush=True,
        )
    results["headers"] = header_costs(args.sample, args.headers)
    if args.folder:
        results["folder"] = folder_listing(args.folder, args.work)
        shutil.rmtree(args.work / f"folder{args.folder}", ignore_errors=True)
    if args.notes:
        results["notes"] = args.notes.read_text()
    (args.work / "index.json").write_text(json.dumps(results, indent=1))
    if args.write:
        from results import write_section

        write_section(REPO / "bench" / "RESULTS.md", "Index", section(results))
    big = results["sizes"][-1]
    ok = (
        big["first"]["listing_cpu_s"] + big["first"]["index_cpu_s"] < 60
        and big["first"]["peak_rss_mib"] < 1024
        and big["reuse"]["index_cpu_s"] < 0.05 * big["first"]["index_cpu_s"]
    )
    print("targets met" if ok else "targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
