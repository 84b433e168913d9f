"""Thread-seconds by phase from py-spy's raw (collapsed-stack) output of a demo run.

    py-spy record -r 40 -f raw -o prof.txt -- python -m fluxscape.cli run WF --fresh
    python bench/pyspy_phases.py prof.txt [other.txt ...] [--rate 40]

``WF``: the demo's workflow with ``dask: {processes: false, workers: 1, threads_per_worker:
1}`` (the whole run in one process, so py-spy sees every thread). Each stack is counted in
the first phase (in the order of :data:`PHASES`) one of whose frames contains the phase's
pattern; the rest is "other"; stacks ending in a wait (:data:`IDLE`) are "waiting", left
out of the busy total. Prints one column per file (seconds = samples / rate).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

#: (phase, frame pattern), most specific first: a stack goes to the first that matches
PHASES = [
    ("numba compile (cold cache)", "numba/core/compiler"),
    ("flux: compiled forest predict", "predict_tile ("),
    ("flux features: meteo_periods", "meteo_periods ("),
    ("flux features: fill_time_gaps", "fill_time_gaps ("),
    ("flux features: other", "block_features ("),
    ("CV report plots", "_plots ("),
    ("run report", "report.py"),
    ("quicklooks: savefig", "savefig ("),
    ("quicklooks: other", "write_quicklooks ("),
    ("CV folds", "fold_predictions ("),
    ("final ensemble members", "fit_member ("),
    ("model saved (skops)", "save_model ("),
    ("flux planning, other (training table, model)", "steps/flux.py"),
    ("phenology tiles", "phenology"),
    ("vi tiles", "steps/vi.py"),
    ("gosat tiles", "gosat"),
    ("imports", "<module> ("),
]

#: leaf frames of threads waiting (a queue, a condition, the event loop's poll): py-spy takes
#: them for busy when a loaded machine leaves it no time to read the thread's state
IDLE = (
    "Condition.wait (",
    "EpollSelector.select (",
    "_worker (concurrent/futures/thread.py",
    "Event.wait (",
    "Queue.get (",
)
WAITING = "waiting (idle threads)"


def phases(path: Path, rate: float) -> Counter:
    """Seconds per phase of one raw py-spy file."""
    out: Counter = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        leaf = stack.rsplit(";", 1)[-1]
        if not stack.strip() or any(leaf.startswith(p) for p in IDLE):
            name = WAITING
        else:
            name = next((p for p, pattern in PHASES if pattern in stack), "other")
        out[name] += int(count) / rate
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--rate", type=float, default=40.0)
    args = ap.parse_args()
    tables = [phases(f, args.rate) for f in args.files]
    names = [p for p, _ in PHASES] + ["other"]
    print("| phase | " + " | ".join(f.name for f in args.files) + " |")
    print("|---|" + "---:|" * len(args.files))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{t.get(name, 0):.1f}" for t in tables) + " |")
    busy = [sum(v for k, v in t.items() if k != WAITING) for t in tables]
    print("| **busy total** | " + " | ".join(f"**{b:.1f}**" for b in busy) + " |")
    print(f"| {WAITING} | " + " | ".join(f"{t.get(WAITING, 0):.1f}" for t in tables) + " |")


if __name__ == "__main__":
    main()
