#!/usr/bin/env python
"""Serving benchmark: latency, throughput, errors and server memory of ``fluxscape serve``
under 20 and 100 concurrent clients on 127.0.0.1.

The server is the real command (``fluxscape serve CATALOG``, this checkout's code) in its own
process; the clients are coroutines of this process, each with one keep-alive HTTP/1.1
connection bound to its own loopback address (127.0.0.2, 127.0.0.3, ...), so per-client limits
apply to each client as they would to distinct hosts. Each client sends its next request as
soon as the previous answer has been read (closed loop). Four mixes run one after the other,
each for ``--duration`` seconds at each concurrency:

- ``search``: ``GET /search`` with a random bbox and/or datetime, or by collections, and
  ``POST /search`` with an ``intersects`` polygon (limit 10);
- ``item``: ``GET /collections/ID/items/ID`` of a random public product;
- ``chunk``: ``GET /zarr/ID/PATH`` of a random file of a random product's Zarr store;
- ``tile``: ``GET /tiler/tiles/WebMercatorQuad/Z/X/Y.png`` (zoom 8-10, over the products) of a
  random variable and time step;
- ``image``: ``GET /tiler/bbox/W,S,E,N/2048x2048.png``, the largest image the server renders by
  default, of a random variable and time step over the products (at most 20 clients): what
  bounds the server's memory.

Reported per mix and concurrency: requests, requests per second, median / 95th / 99th
percentile / maximum latency, errors (any status other than 200, or a failed connection) and
the server's peak memory (RSS of the server process, sampled every 0.1 s). Targets at 20
clients: search and item p99 < 200 ms, chunk p99 < 100 ms, 0 errors.

Run on demand, with a copy of a finished demo output (the catalog names its stores and
quicklooks relative to itself)::

    cp -r /work/demo-ref bench/out/serve-demo
    PYTHONPATH=. python bench/serve.py --catalog bench/out/serve-demo/catalog --write

``--label`` names the run in ``bench/out/serve-LABEL.json``; ``--write`` replaces the
``## Serve`` section of ``bench/RESULTS.md`` with this run (and, with ``--before LABEL``, an
earlier run's table for comparison). ``--serve-arg=--OPTION=VALUE`` passes options to
``fluxscape serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import xarray as xr

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from results import write_section  # noqa: E402

MIXES = ("search", "item", "chunk", "tile", "image")
#: The image mix (the largest images the server renders) runs with at most this many clients.
IMAGE_CLIENTS = 20
TARGETS_MS = {"search": 200.0, "item": 200.0, "chunk": 100.0}


# --- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(catalog: Path, port: int, extra: list[str]) -> subprocess.Popen:
    """``fluxscape serve`` of this checkout in a subprocess, once it answers."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", "from fluxscape.cli import main; main()", "serve"]
    proc = subprocess.Popen(
        [*cmd, str(catalog), "--port", str(port), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None:
                raise SystemExit("fluxscape serve exited at start-up") from None
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("fluxscape serve did not answer within 60 s")


class MemoryWatch:
    """Peak RSS (MiB) of a process and its children, sampled every 0.1 s in a thread."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> float:
        procs = [self.proc, *self.proc.children(recursive=True)]
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.1)

    def __enter__(self) -> MemoryWatch:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# --- requests --------------------------------------------------------------------------------


def workload(catalog: Path) -> dict:
    """What the mixes pick from: public products, their store files, tile variables."""
    from fluxscape.catalog import open_catalog

    cat = open_catalog(catalog)
    rows = cat.rows(access=["public"])
    chunks = []
    for row in rows:
        store = (cat.directory / row["store"]).resolve()
        for path in store.rglob("*"):
            if path.is_file():
                chunks.append((row["id"], path.relative_to(store).as_posix()))
    tiles = []
    for row in rows:
        ds = xr.open_zarr((cat.directory / row["store"]).resolve())
        if "time" not in ds.dims or min(ds.sizes["x"], ds.sizes["y"]) < 50:
            continue
        days = [str(t)[:10] for t in ds.time.values]
        for var in ds.data_vars:
            if var != "spatial_ref" and set(ds[var].dims) == {"time", "y", "x"}:
                tiles.append((row["id"], var, days))
    bbox = [min(r["xmin"] for r in rows), min(r["ymin"] for r in rows)]
    bbox += [max(r["xmax"] for r in rows), max(r["ymax"] for r in rows)]
    return {"ids": [r["id"] for r in rows], "chunks": chunks, "tiles": tiles, "bbox": bbox}


def tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The WebMercatorQuad tile holding a point."""
    import math

    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def make_request(mix: str, w: dict, rng: random.Random) -> tuple[str, str, bytes | None]:
    """(method, path with query, JSON body or None) of one request of ``mix``."""
    from urllib.parse import urlencode

    w0, s0, e0, n0 = w["bbox"]
    if mix == "item":
        cid = rng.choice(w["ids"])
        return "GET", f"/collections/{cid}/items/{cid}", None
    if mix == "chunk":
        cid, path = rng.choice(w["chunks"])
        return "GET", f"/zarr/{cid}/{path}", None
    if mix == "image":
        cid, var, days = rng.choice(w["tiles"])
        query = {"collection": cid, "variable": var, "sel": f"time={rng.choice(days)}"}
        return "GET", f"/tiler/bbox/{w0},{s0},{e0},{n0}/2048x2048.png?{urlencode(query)}", None
    if mix == "tile":
        cid, var, days = rng.choice(w["tiles"])
        z = rng.choice((8, 9, 10))
        x, y = tile_xy(rng.uniform(w0, e0), rng.uniform(s0, n0), z)
        query = {"collection": cid, "variable": var, "sel": f"time={rng.choice(days)}"}
        return "GET", f"/tiler/tiles/WebMercatorQuad/{z}/{x}/{y}.png?{urlencode(query)}", None
    lon, lat = rng.uniform(w0 - 1, e0), rng.uniform(s0 - 1, n0)
    kind = rng.choice(("bbox", "datetime", "collections", "intersects"))
    if kind == "intersects":
        ring = [[lon, lat], [lon + 1, lat], [lon + 1, lat + 1], [lon, lat + 1], [lon, lat]]
        body = {"intersects": {"type": "Polygon", "coordinates": [ring]}, "limit": 10}
        return "POST", "/search", json.dumps(body).encode()
    query = {"limit": 10}
    if kind == "bbox":
        query["bbox"] = f"{lon:.3f},{lat:.3f},{lon + 1:.3f},{lat + 1:.3f}"
    if kind in ("bbox", "datetime"):
        month = rng.randint(1, 12)
        query["datetime"] = f"2021-{month:02d}-01/2022-{month:02d}-28"
    else:
        query["collections"] = ",".join(rng.sample(w["ids"], min(2, len(w["ids"]))))
    return "GET", f"/search?{urlencode(query)}", None


# --- clients ---------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection from its own loopback address."""

    def __init__(self, port: int, source: str):
        self.port, self.source = port, source
        self.reader = self.writer = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.port, local_addr=(self.source, 0)
        )

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes | None) -> int:
        """Send one request, read the whole response; its status."""
        if self.writer is None:
            await self.connect()
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        headers = {}
        while line := (await self.reader.readline()).strip():
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            while size := int((await self.reader.readline()).strip(), 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readline()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status


async def run_client(port, index, mix, w, until, seed, out) -> None:
    client = Client(port, f"127.0.{(index + 2) // 256}.{(index + 2) % 256}")
    rng = random.Random(seed * 1000 + index)
    try:
        while time.perf_counter() < until:
            method, path, body = make_request(mix, w, rng)
            t0 = time.perf_counter()
            try:
                status = await asyncio.wait_for(client.request(method, path, body), 30)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                status = 0
                await client.close()
            out.append((time.perf_counter() - t0, status))
    finally:
        await client.close()


async def run_mix(port: int, mix: str, clients: int, duration: float, w: dict, seed: int):
    out: list[tuple[float, int]] = []
    until = time.perf_counter() + duration
    await asyncio.gather(*(run_client(port, i, mix, w, until, seed, out) for i in range(clients)))
    return out


def summary(samples: list[tuple[float, int]], duration: float, peak: float) -> dict:
    ms = sorted(t * 1000 for t, _ in samples)

    def pct(q: float) -> float:
        return ms[min(len(ms) - 1, int(q * len(ms)))] if ms else float("nan")

    statuses: dict[str, int] = {}
    for _, status in samples:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "requests": len(ms),
        "rps": len(ms) / duration,
        "p50": statistics.median(ms) if ms else float("nan"),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "max": ms[-1] if ms else float("nan"),
        "errors": sum(n for s, n in statuses.items() if s != "200"),
        "statuses": statuses,
        "peak_rss_mib": peak,
    }


# --- report ----------------------------------------------------------------------------------


def table(run: dict) -> str:
    lines = [
        "| mix | clients | requests | req/s | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) "
        "| errors | server peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, r in run["results"].items():
        mix, clients = key.split("@")
        bad = {s: n for s, n in r["statuses"].items() if s != "200"}
        errors = f"{r['errors']}" + (
            f" ({', '.join(f'{n} x {s}' for s, n in bad.items())})" if bad else ""
        )
        lines.append(
            f"| {mix} | {clients} | {r['requests']:,} | {r['rps']:.0f} | {r['p50']:.1f} "
            f"| {r['p95']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {errors} "
            f"| {r['peak_rss_mib']:.0f} |"
        )
    return "\n".join(lines)


def verdict(run: dict) -> str:
    missed = []
    for mix, target in TARGETS_MS.items():
        r = run["results"].get(f"{mix}@20")
        if r and r["p99"] >= target:
            missed.append(f"{mix} p99 {r['p99']:.0f} ms >= {target:.0f} ms")
    errors = sum(r["errors"] for k, r in run["results"].items() if k.endswith("@20"))
    if errors:
        missed.append(f"{errors} errors at 20 clients")
    return "all met" if not missed else "missed: " + "; ".join(missed)


def markdown(run: dict, before: dict | None, notes: str) -> str:
    out = [
        "## Serve",
        "",
        f"Written by `python bench/serve.py` (see `bench/README.md`) on {run['date']}.",
        "",
        f"`fluxscape serve` over `{run['catalog_name']}` ({run['products']} public products, "
        f"{run['files']} store files) in its own process on 127.0.0.1; closed-loop clients "
        "(one keep-alive connection each, each from its own loopback address) in the "
        f"benchmark's process, {run['duration']:.0f} s per mix and concurrency, one mix at a "
        "time (see the module docstring of `bench/serve.py` for the requests). Latency is "
        "from sending a request to having read the whole response. Errors: any status but "
        "200, or a failed connection. Server memory: RSS of the server process; "
        f"{run['idle_rss_mib']:.0f} MiB idle after start-up. Server options: "
        f"`{' '.join(run['serve_args']) or '(defaults)'}`. Targets at 20 clients: search and "
        "item p99 < 200 ms, chunk p99 < 100 ms, 0 errors.",
        "",
        f"**{run['label']}** ({run['commit']}): {verdict(run)}.",
        "",
        table(run),
        "",
    ]
    if before:
        out += [
            f"**{before['label']}** ({before['commit']}, {before['date']}): {verdict(before)}.",
            "",
            table(before),
            "",
        ]
    if notes:
        out += [notes.strip(), ""]
    out += [
        f"**Machine.** {os.cpu_count()} CPUs shared by server and clients, Python "
        f"{platform.python_version()}, {platform.platform()}; load average (1 min) "
        f"{run['load_before']:.1f} before and {run['load_after']:.1f} after the run. Raw "
        f"numbers: `bench/out/serve-{run['label']}.json`.",
        "",
    ]
    return "\n".join(out)


def commit() -> str:
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return proc.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalog", type=Path, required=True, help="catalog folder (a copy)")
    ap.add_argument("--clients", type=int, nargs="+", default=[20, 100])
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per mix")
    ap.add_argument("--mixes", nargs="+", default=list(MIXES), choices=MIXES)
    ap.add_argument("--label", default="after")
    ap.add_argument("--before", help="label of an earlier run to show beside this one")
    ap.add_argument("--notes", type=Path, help="a Markdown paragraph to add to the section")
    ap.add_argument("--serve-arg", action="append", default=[], dest="serve_args")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--write", action="store_true", help="replace ## Serve in RESULTS.md")
    ap.add_argument("--report-only", action="store_true", help="rewrite from the JSON")
    args = ap.parse_args(argv)
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    raw = out_dir / f"serve-{args.label}.json"
    if args.report_only:
        run = json.loads(raw.read_text())
    else:
        run = measure(args)
        raw.write_text(json.dumps(run, indent=2))
    print(table(run))
    print(verdict(run))
    if args.write:
        before = (
            json.loads((out_dir / f"serve-{args.before}.json").read_text()) if args.before else None
        )
        notes = args.notes.read_text() if args.notes else ""
        write_section(HERE / "RESULTS.md", "Serve", markdown(run, before, notes))
    return 0 if verdict(run) == "all met" else 1


def measure(args) -> dict:
    """Start the server, run every mix at every concurrency, stop it; the raw results."""
    w = workload(args.catalog)
    port = free_port()
    load_before = os.getloadavg()[0]
    proc = start_server(args.catalog.resolve(), port, args.serve_args)
    results = {}
    try:
        idle = MemoryWatch(proc.pid).rss()
        for mix in args.mixes:
            asyncio.run(run_mix(port, mix, 4, 2.0, w, args.seed))  # warm-up
            counts = args.clients if mix != "image" else {min(IMAGE_CLIENTS, min(args.clients))}
            for clients in counts:
                with MemoryWatch(proc.pid) as mem:
                    samples = asyncio.run(run_mix(port, mix, clients, args.duration, w, args.seed))
                results[f"{mix}@{clients}"] = summary(samples, args.duration, mem.peak)
                print(
                    mix,
                    clients,
                    {k: results[f"{mix}@{clients}"][k] for k in ("rps", "p99", "errors")},
                    flush=True,
                )
    finally:
        proc.terminate()
        proc.wait(20)
    return {
        "label": args.label,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "catalog_name": args.catalog.name,
        "products": len(w["ids"]),
        "files": len(w["chunks"]),
        "duration": args.duration,
        "serve_args": args.serve_args,
        "idle_rss_mib": idle,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "results": results,
    }


if __name__ == "__main__":
    sys.exit(main())
