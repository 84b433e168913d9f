#!/usr/bin/env python
"""Index reuse on real files: the first index of a sample world's archives (every header read
in this process) against the reuse of that unchanged index (issue #17).

``bench/index.py`` measures archives of 10^5-10^6 synthetic names, whose granules are made
from the names, so its "first index" has no header reads; this one indexes the files a sample
world holds (SGLI L2 tiles, Himawari HSD segments, MODIS tiles), so the first index pays the
real header reads a run pays. Times are CPU seconds of this process (``time.process_time``).

    PYTHONPATH=. python bench/index_real.py --sample demo-out/sample [--write]

Writes the ``## Index on real files`` section of bench/RESULTS.md with ``--write``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

from results import write_section

from fluxscape.pipeline.inputs import index_input

BENCH_DIR = Path(__file__).resolve().parent

#: (input name, reader, glob under the sample world) of each archive indexed.
ARCHIVES = (
    ("sgli", "sgli_l2", "sgli/GC1SG1_*_L2SG_*.h5"),
    ("ahi", "ahi_hsd", "ahi/hsd/*/*/*/*/HS_H08_*.DAT.bz2"),
    ("modis", "modis_hdf4", "modis/MOD13A2.A*.h*v*.061.*.hdf"),
)


def measure(sample: Path) -> list[dict]:
    """Per archive: files, granules, CPU seconds of the first index and of its reuse."""
    rows = []
    for name, reader, pattern in ARCHIVES:
        cache = Path(tempfile.mkdtemp(prefix="fluxscape-index-"))
        try:
            paths = [str(sample / pattern)]
            start = time.process_time()
            first = index_input(name, reader, paths, cache_dir=cache)
            first_s = time.process_time() - start
            start = time.process_time()
            again = index_input(name, reader, paths, cache_dir=cache)
            reuse_s = time.process_time() - start
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        if len(again.granules) != len(first.granules):
            raise SystemExit(f"{name}: the reused index differs from the first")
        rows.append(
            {
                "archive": f"{name} ({reader})",
                "files": len(first.files),
                "granules": len(first.granules),
                "first": first_s,
                "reuse": reuse_s,
            }
        )
    return rows


def section(rows: list[dict], sample: Path) -> str:
    """The markdown section of the results."""
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load = os.getloadavg()[0]
    lines = [
        "## Index on real files",
        "",
        f"Written by `python bench/index_real.py` on {when} (sample world `{sample.name}`, "
        f"load average {load:.1f} on 2 cores). First index: every header read in one process; "
        "reuse: the same unchanged listing again (no file opened). CPU seconds.",
        "",
        "| archive | files | granules | first index (s) | reuse (s) | reuse / first |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['archive']} | {r['files']} | {r['granules']} | {r['first']:.2f} | "
            f"{r['reuse']:.3f} | {100 * r['reuse'] / r['first']:.2f} % |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", type=Path, required=True, help="a sample world folder")
    ap.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    args = ap.parse_args()
    rows = measure(args.sample)
    text = section(rows, args.sample)
    print(text)
    if args.write:
        write_section(BENCH_DIR / "RESULTS.md", "Index on real files", text)
    return 0 if all(r["reuse"] < 0.05 * r["first"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
