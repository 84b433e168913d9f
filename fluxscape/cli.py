"""The ``fluxscape`` command (DESIGN section 3).

Exit status: 0 success, 1 a reported error (one line on stderr; ``--debug`` adds the
traceback), 2 wrong usage, 130 stopped by Ctrl-C and 143 by SIGTERM (one line saying how to
resume).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import click

from fluxscape import __version__
from fluxscape.errors import FluxscapeError, one_line, storage_message, storage_problem
from fluxscape.pipeline.remote import is_url


def _process_start() -> float:
    """``time.monotonic()`` at this process's start (Python's own start-up included), from
    the kernel's clock ticks since boot (``/proc``); now, where there is no ``/proc``."""
    import os

    try:
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        with open("/proc/self/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic()
    # older than a command's start-up: imported by a long-lived process (tests, a notebook)
    return time.monotonic() - age if 0.0 <= age < 10.0 else time.monotonic()


_IMPORTED = time.monotonic()
_STARTED = _process_start()
log = logging.getLogger("fluxscape")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM, raised in the main thread so that what the command started
    (the Dask cluster first) is closed on the way out; ``resume``: the command that continues
    the work, when there is one."""

    def __init__(self, signum: int = signal.SIGINT, resume: str = ""):
        super().__init__(signum)
        self.signum, self.resume = signum, resume


def _on_signal(signum: int, frame) -> None:
    """The first SIGINT/SIGTERM raises :class:`Interrupted`; later ones are ignored so that
    closing the cluster is not cut short (it takes a few seconds at most)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    _mute_dask_logging()
    raise Interrupted(signum)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` while the command runs (main thread
    only: signal handlers cannot be set elsewhere); the previous handlers are restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _mute_dask_logging() -> None:
    """From now on, log records of distributed, tornado and asyncio go to the run's log file
    (when a run is on), not to the terminal: a cluster being stopped complains (workers killed
    mid-tile, lost connections), which is no news to someone who stopped it."""
    files = [
        h for h in logging.getLogger("fluxscape").handlers if isinstance(h, logging.FileHandler)
    ]
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger):
            continue
        if name.split(".")[0] not in ("distributed", "tornado", "asyncio"):
            continue
        for handler in list(logger.handlers):
            if not isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
        if "." not in name:
            logger.propagate = False
            for handler in files:
                logger.addHandler(handler)


def _interrupted_line(exc: KeyboardInterrupt) -> str:
    resume = getattr(exc, "resume", "")
    return f"interrupted; resume with: {resume}" if resume else "interrupted"


class _Group(click.Group):
    """Turns FluxscapeError (and unexpected errors) into one line on stderr and exit 1; an
    OSError of a full, read-only or forbidden disk names its file and the problem. Ctrl-C
    and SIGTERM stop the command quietly: one line (how to resume), exit 130 or 143."""

    def invoke(self, ctx: click.Context):
        with _interruptible():
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except FluxscapeError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {one_line(exc)}", err=True)
            _json_failure(ctx, 1, one_line(exc))
            sys.exit(1)
        except KeyboardInterrupt as exc:
            click.echo(_interrupted_line(exc), err=True)
            status = 128 + getattr(exc, "signum", signal.SIGINT)
            _json_failure(ctx, status, _interrupted_line(exc))
            sys.exit(status)
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            hint = "" if storage_problem(exc) else " (rerun with --debug for details)"
            click.echo(f"error: {one_line(exc)}{hint}", err=True)
            _json_failure(ctx, 1, one_line(exc))
            sys.exit(1)


def _json_failure(ctx: click.Context, status: int, error: str) -> None:
    """With ``--json``, a run or demo that stops still prints its one JSON document."""
    command = (ctx.obj or {}).get("json")
    if command:
        from fluxscape.pipeline.summary import summary_json

        doc = summary_json(
            None, command=command, wall_seconds=_elapsed(), exit_status=status, error=error
        )
        click.echo(json.dumps(doc, indent=2))


def _elapsed() -> float:
    """Seconds since the command's process started."""
    return time.monotonic() - _STARTED


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``-v`` / ``-q``, given to ``fluxscape`` or to the command (``fluxscape -q run ...``
    and ``fluxscape run ... -q`` alike)."""
    if not value or ctx.resilient_parsing:
        return
    obj = ctx.find_root().obj
    if obj is None:
        obj = ctx.find_root().obj = {}
    wanted = "verbose" if param.name == "verbose" else "quiet"
    if obj.get("verbosity", wanted) != wanted:
        raise click.UsageError("-v/--verbose and -q/--quiet exclude each other", ctx=ctx)
    obj["verbosity"] = wanted
    _setup_logging(obj)


def _verbosity_options(f):
    """The ``-v`` and ``-q`` options (of the group and of every command)."""
    f = click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_set_verbosity,
        help="Warnings and errors only, and the final summary line.",
    )(f)
    return click.option(
        "-v",
        "--verbose",
        is_flag=True,
        expose_value=False,
        callback=_set_verbosity,
        help="Debug messages too.",
    )(f)


def _setup_logging(obj: dict) -> None:
    from fluxscape import logs
    from fluxscape.pipeline import progress

    debug = bool(obj.get("debug"))
    verbosity = obj.get("verbosity", "")
    level = {"verbose": logging.DEBUG, "quiet": logging.WARNING}.get(verbosity, logging.INFO)
    logs.setup(logging.DEBUG if debug else level, debug=debug)
    progress.configure(bars=verbosity != "quiet")


def _quiet() -> bool:
    obj = click.get_current_context().find_root().obj or {}
    return obj.get("verbosity") == "quiet"


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Example: fluxscape demo --out demo-out",
)
@click.version_option(__version__, prog_name="fluxscape")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@_verbosity_options
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """fluxscape: satellite and flux-tower data to gridded, catalogued Zarr products.

    -v/-q may also follow the command's name (fluxscape run WORKFLOW -q)."""
    global _STARTED
    if time.monotonic() - _IMPORTED > 2.0:  # not this process's first command (tests)
        _STARTED = time.monotonic()
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    _setup_logging(ctx.obj)


# --- sample data and demo -----------------------------------------------------------------


@cli.command("sample-data", epilog="Example: fluxscape sample-data sample --preset demo")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=42, show_default=True, help="Random seed of the world.")
@click.option(
    "--preset",
    default="demo",
    show_default=True,
    help="Region preset: demo (1 degree), demo-4x (2 x 2 degrees), demo-rs (the demo plus "
    "MODIS MOD09A1 reflectance and MCD15A2H LAI/FPAR, 8-day 500 m) or disturbance (0.5 degree, "
    "MODIS only, 2017-2022 with forest clearings, fires and a heat wave in 2022) or soil (15 "
    "COSORE soil-chamber sites in the demo region, 2021).",
)
def sample_data(directory: Path, seed: int, preset: str) -> None:
    """Write the sample world in real formats (MODIS, SGLI, AHI, GOSAT, FLUXNET) and its truth."""
    from fluxscape.sample.generate import write_sample_world

    t0 = time.monotonic()
    summary = write_sample_world(directory, preset=preset, seed=seed)
    labels = {
        "modis_files": "MODIS VI tiles",
        "tower_files": "tower files",
        "gosat_files": "GOSAT files",
        "sgli_files": "SGLI files",
        "ahi_files": "AHI files",
        "burned_area_files": "MCD64A1 burned-area tiles",
        "modis_lst_files": "MOD11A2 LST tiles",
        "ahi_ptree_files": "AHI P-Tree files",
        "landcover_files": "MCD12Q1 land-cover tiles",
        "modis_sr_files": "MOD09A1 reflectance tiles",
        "modis_lai_files": "MCD15A2H LAI/FPAR tiles",
        "chambers_files": "COSORE chamber datasets",
    }
    counts = ", ".join(f"{summary[k]} {label}" for k, label in labels.items() if summary.get(k))
    click.echo(
        f"sample world {preset!r} (seed {seed}) written to {directory} in "
        f"{time.monotonic() - t0:.0f} s: {counts}; truth in {directory / 'truth'}"
    )


def _sample_is_current(directory: Path, preset: str, seed: int) -> bool:
    """True when ``directory`` holds the sample world of ``preset`` and ``seed`` with every
    source the preset writes today (a sample from an older fluxscape lacks newer sources)."""
    from fluxscape.sample.world import PRESETS

    world = directory / "truth" / "world.json"
    if not world.exists():
        return False
    info = json.loads(world.read_text())
    return (
        info.get("preset") == preset
        and info.get("seed") == seed
        and info.get("sources") == list(PRESETS[preset].sources)
    )


# the options `run` and `demo` share: a JSON summary on stdout, the Dask dashboard's address
_json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document on stdout at the end: stores, tiles, skipped inputs, wall "
    "time, peak memory, exit status (messages stay on stderr).",
)
_dashboard_option = click.option(
    "--dashboard",
    is_flag=True,
    help="Serve the Dask dashboard (on a free port) and print its address; without it no "
    "dashboard runs.",
)


@cli.command(epilog="Example: fluxscape demo --out demo-out")
@click.option(
    "--out",
    "out",
    default="demo-out",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the sample world (OUT/sample) and the products.",
)
@click.option("--workers", type=int, default=None, help="Dask workers (default 2).")
@_json_option
@_dashboard_option
def demo(out: Path, workers: int | None, as_json: bool, dashboard: bool) -> None:
    """Generate the sample world into OUT/sample and run the demo.yaml recipe into OUT."""
    from importlib.resources import as_file

    from fluxscape.pipeline.recipes import recipes_folder, shipped_recipe

    recipe = shipped_recipe("demo.yaml")
    if recipe is None:
        raise FluxscapeError(
            f"{recipes_folder()}: the demo recipe demo.yaml is missing (fluxscape was installed "
            "without its package data; reinstall it)"
        )
    if as_json:
        click.get_current_context().find_root().obj["json"] = "demo"
    say = not _quiet()  # the lines before the summary; on stderr with --json
    sample = out / "sample"
    if _sample_is_current(sample, "demo", 42):
        if say:
            click.echo(f"using the sample world already in {sample}", err=as_json)
    else:
        if say:
            click.echo(f"writing the sample world to {sample} ...", err=as_json)
        from fluxscape.sample.generate import write_sample_world

        write_sample_world(sample, preset="demo", seed=42)
    with as_file(recipe) as workflow:
        try:
            result = _run_or_skip(
                workflow,
                dashboard=dashboard,
                out=out,
                data_dir=sample,
                workers=workers,
                resume=True,
                fresh=False,
                scheduler=None,
                catalog=None,
            )
        except KeyboardInterrupt as exc:
            again = ["fluxscape", "demo", "--out", str(out)]
            again += ["--workers", str(workers)] if workers else []
            raise Interrupted(getattr(exc, "signum", signal.SIGINT), shlex.join(again)) from None
    if as_json:
        _print_json(result, "demo")
        return
    cat_dir = out / "catalog"
    root = json.loads((cat_dir / "catalog.json").read_text())
    entries = [link for link in root.get("links", []) if link.get("rel") == "child"]
    if _quiet():
        click.echo(f"demo finished in {_seconds(_elapsed())}; catalog: {cat_dir / 'catalog.json'}")
        return
    click.echo("")
    click.echo(f"demo finished in {_seconds(_elapsed())}")
    for p in result.products:
        click.echo(
            f"  product {p.name}: {p.store} ({p.tiles_total} tiles, "
            f"{len(p.skipped_inputs)} skipped inputs)"
        )
    click.echo(f"  catalog: {cat_dir / 'catalog.json'} ({len(entries)} product(s))")
    click.echo(f"  resolved workflow: {out / 'workflow.yaml'}")
    click.echo(f"  run report (open in a browser): {out / 'report.html'}")
    tower = json.loads((sample / "truth" / "world.json").read_text())["towers"][0]
    click.echo("\nTry:")
    click.echo(f"  fluxscape catalog list {cat_dir}")
    click.echo(f"  fluxscape catalog search {cat_dir} --variable ndvi --json")
    click.echo(
        f"  fluxscape catalog extract {cat_dir} --variable gpp "
        f"--point {tower['lon']},{tower['lat']} -o {out / 'gpp_at_tower.csv'}"
    )
    click.echo(
        f"  fluxscape inspect {sorted((sample / 'towers').glob('FLX_*.csv'))[0]} "
        f"{sorted((sample / 'modis').glob('*.hdf'))[0]}"
    )
    click.echo(f"  fluxscape run {out / 'workflow.yaml'} --resume")


# --- run -------------------------------------------------------------------------------------


# the options `run` and `validate` share: where outputs go and where relative inputs start
def _folder_or_url(ctx, param, value: str | None) -> Path | str | None:
    """A ``--data-dir`` value: a URL (``s3://bucket/prefix``) as given, else a Path."""
    from fluxscape.pipeline.remote import is_url

    return value if value is None or is_url(value) else Path(value)


_out_option = click.option(
    "--out",
    type=str,
    default=None,
    callback=_folder_or_url,
    help="Output folder, or object storage URL (s3://bucket/prefix; credentials from the "
    "AWS environment or profile) (overrides output.dir of the workflow).",
)
_data_dir_option = click.option(
    "--data-dir",
    "data_dir",
    type=str,
    default=None,
    callback=_folder_or_url,
    help="Folder (or object storage URL, s3://bucket/prefix) the relative input paths start "
    "from (overrides data_dir of the workflow).",
)


@cli.command(
    epilog="Examples: fluxscape run workflows/demo.yaml --out demo-out --resume; "
    "fluxscape run gosat-xco2.yaml --data-dir demo-out/sample --out gosat-out"
)
@click.argument("workflow", type=click.Path(dir_okay=False, path_type=Path))
@_out_option
@_data_dir_option
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Use an existing Dask scheduler, e.g. tcp://127.0.0.1:8786.",
)
@click.option("--workers", type=int, default=None, help="Workers of the local Dask cluster.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue existing stores (finished tiles are kept); products whose settings, inputs "
    "or source products changed are rebuilt (see fluxscape validate).",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Build every product again; each new store replaces the published one when finished.",
)
@click.option(
    "--catalog",
    "catalog_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Publish into this catalog folder (overrides output.catalog; may be shared by runs).",
)
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Publish a product even when more than max_skipped_share of its inputs were "
    "skipped, marked as partial in the store and the catalog.",
)
@_json_option
@_dashboard_option
def run(
    workflow: Path,
    out: Path | None,
    data_dir: Path | None,
    scheduler: str | None,
    workers: int | None,
    resume: bool,
    fresh: bool,
    catalog_dir: Path | None,
    allow_partial: bool,
    as_json: bool,
    dashboard: bool,
) -> None:
    """Run a workflow file: every product, tile by tile, then publish to the catalog.

    WORKFLOW is a file or, when no such file exists, the name of a recipe shipped with
    fluxscape (demo.yaml, gosat-xco2.yaml, ...: the repository's workflows/ folder). A shipped
    recipe's relative paths resolve as in a clone's top folder (gosat-xco2.yaml reads
    ./demo-out/sample); --data-dir and --out override them. A --resume with nothing to do
    takes about a second."""
    if resume and fresh:
        raise click.UsageError("--resume and --fresh exclude each other")
    if scheduler and workers:
        raise click.UsageError("--scheduler and --workers exclude each other")
    if as_json:
        click.get_current_context().find_root().obj["json"] = "run"
    try:
        result = _run_or_skip(
            workflow,
            dashboard=dashboard,
            out=out,
            data_dir=data_dir,
            scheduler=scheduler,
            workers=workers,
            resume=resume,
            fresh=fresh,
            catalog=catalog_dir,
            allow_partial=allow_partial,
        )
    except KeyboardInterrupt as exc:
        options = {
            "--out": out,
            "--data-dir": data_dir,
            "--catalog": catalog_dir,
            "--scheduler": scheduler,
            "--workers": workers,
            "--allow-partial": allow_partial or None,
        }
        signum = getattr(exc, "signum", signal.SIGINT)
        raise Interrupted(signum, _resume_command(workflow, options)) from None
    except OSError as exc:
        if not storage_problem(exc) or exc.filename:
            raise
        # e.g. a write() that found the disk full: its error names no file
        where = out if out is not None else f"the output folder of {workflow}"
        raise FluxscapeError(storage_message(exc, where)) from None
    if as_json:
        _print_json(result, "run")
        return
    if not _quiet():
        for p in result.products:
            click.echo(
                f"{p.name}: {p.tiles_run} of {p.tiles_total} tiles run, "
                f"{len(p.skipped_inputs)} input(s) skipped -> {p.store}"
            )
    where = result.out / "workflow.yaml"
    if result.workflow is not None and is_url(result.workflow.output.dir):
        where = f"{result.workflow.output.dir}/workflow.yaml"  # uploaded from the work folder
    click.echo(
        f"done in {_seconds(_elapsed())}{' (nothing to do)' if result.noop else ''}; "
        f"resolved workflow: {where}"
    )


def _run_or_skip(workflow: Path, dashboard: bool, **kwargs):
    """``run_workflow``, after trying the quick way of a ``--resume`` with nothing to do
    (:mod:`fluxscape.pipeline.noop`: before numpy, xarray and Dask are even imported)."""
    from fluxscape.pipeline.noop import noop_resume

    if kwargs["resume"] and not kwargs["fresh"]:
        keys = ("out", "data_dir", "scheduler", "workers", "catalog")
        done = noop_resume(workflow, **{k: kwargs[k] for k in keys}, started=_STARTED)
        if done is not None:
            if dashboard:
                click.echo("no Dask dashboard: nothing to run, no cluster started", err=True)
            return done
    from fluxscape.pipeline.run import run_workflow

    def show(link: str) -> None:
        click.echo(f"Dask dashboard: {link}", err=True)

    result = run_workflow(
        workflow, dashboard=show if dashboard else None, started=_STARTED, **kwargs
    )
    if dashboard and not result.cluster:
        click.echo("no Dask dashboard: nothing to run, no cluster started", err=True)
    return result


def _print_json(result, command: str) -> None:
    from fluxscape.pipeline.summary import summary_json

    click.echo(json.dumps(summary_json(result, command=command, wall_seconds=_elapsed()), indent=2))


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


@cli.command(
    epilog="Example: fluxscape validate workflows/demo.yaml --out demo-out --data-dir "
    "demo-out/sample"
)
@click.argument("workflow", type=click.Path(dir_okay=False, path_type=Path))
@_out_option
@_data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def validate(workflow: Path, out: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Dry run: check WORKFLOW as a run would before its first tile (keys, names, inputs and
    every file's header, site lists, CRS, grid size, memory budget, output folder) and print
    the plan: products, tiles, what each reads and what --resume would rebuild. Writes
    nothing; exit 1 on the first problem."""
    from fluxscape.pipeline.validate import format_plan, validate_workflow

    plan = validate_workflow(workflow, out=out, data_dir=data_dir)
    if as_json:
        click.echo(json.dumps(plan.to_json(), indent=2))
    else:
        click.echo(format_plan(plan))


def _resume_command(workflow: Path, options: dict) -> str:
    """``fluxscape run WORKFLOW --resume`` with the options given (None: not given; True: a
    flag), quoted for a shell."""
    words = ["fluxscape", "run", str(workflow), "--resume"]
    for flag, value in options.items():
        if value is True:
            words.append(flag)
        elif value is not None:
            words += [flag, str(value)]
    return shlex.join(words)


# --- update and watch ------------------------------------------------------------------------

_catalog_option = click.option(
    "--catalog",
    "catalog_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Publish into this catalog folder (overrides output.catalog; may be shared by runs).",
)


def _update_once(workflow: Path, out, data_dir, catalog_dir, started: float, retrain=False):
    """One update; the result (see fluxscape.pipeline.update)."""
    from fluxscape.pipeline.update_record import nothing_new

    quick = nothing_new(workflow, out, data_dir, catalog_dir)
    if quick is not None:  # decided before numpy, xarray and Dask are imported
        return None
    from fluxscape.pipeline.update import update_workflow

    return update_workflow(workflow, out, data_dir, catalog_dir, started=started, retrain=retrain)


def _update_lines(result) -> list[str]:
    if result is None or result.nothing_new:
        return ["nothing new"]
    lines = []
    for p in result.products:
        if p.action == "kept":
            lines.append(f"{p.name}: up to date -> {p.store}")
            continue
        periods = ", ".join(p.periods_changed[:6]) + (" ..." if len(p.periods_changed) > 6 else "")
        lines.append(
            f"{p.name}: {p.action}: {p.tiles_run} of {p.tiles_total} tiles, "
            f"{p.inputs_added} input(s) added, periods changed: {periods or 'none'} -> {p.store}"
        )
    return lines


@cli.command(
    epilog="Examples: fluxscape update workflows/nrt.yaml; in a crontab: */10 * * * * "
    "fluxscape -q update /data/nrt.yaml"
)
@click.argument("workflow", type=click.Path(dir_okay=False, path_type=Path))
@_out_option
@_data_dir_option
@_catalog_option
@click.option(
    "--retrain",
    is_flag=True,
    help="Train the models of upscaling products (flux) again instead of predicting the new "
    "periods with the saved ones.",
)
def update(
    workflow: Path, out: Path | None, data_dir: Path | None, catalog_dir, retrain: bool
) -> None:
    """Bring the products of WORKFLOW up to date with the input files that arrived since the
    last update: new periods appended, only the periods and tiles the new files touch
    recomputed (a period not yet over is written as provisional), derived products updated
    on the tiles that changed, each store replaced atomically and its catalog entry with it.

    Exits in a fraction of a second with "nothing new" (status 0) when no input file was
    added or changed (a listing: no file is read), so it can run from cron; a second update
    while one runs exits 1 naming the holder. The first update builds every product."""
    result = _update_once(workflow, out, data_dir, catalog_dir, _STARTED, retrain)
    for line in _update_lines(result):
        if line == "nothing new" or not _quiet():
            click.echo(line)
    if result is not None and not result.nothing_new:
        click.echo(f"updated in {_seconds(_elapsed())}")


def parse_every(text: str) -> float:
    """Seconds of a watch interval: a number with ``s``, ``m`` or ``h`` (``10m``, ``30s``,
    ``1h``; a bare number is seconds). click.BadParameter otherwise."""
    units = {"s": 1, "m": 60, "h": 3600}
    value = text.strip().lower()
    scale = units.get(value[-1:], None)
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise click.BadParameter(f"{text!r}: give e.g. 30s, 10m or 1h") from None
    if not seconds > 0:
        raise click.BadParameter(f"{text!r}: the interval must be positive")
    return seconds


@cli.command(epilog="Example: fluxscape watch workflows/nrt.yaml --every 10m")
@click.argument("workflow", type=click.Path(dir_okay=False, path_type=Path))
@_out_option
@_data_dir_option
@_catalog_option
@click.option("--every", default="10m", show_default=True, help="Time between updates.")
@click.option(
    "--times",
    type=int,
    default=None,
    help="Stop after this many updates (default: run until Ctrl-C or SIGTERM).",
)
def watch(
    workflow: Path, out: Path | None, data_dir: Path | None, catalog_dir, every: str, times
) -> None:
    """Run `fluxscape update WORKFLOW` every --every until stopped (Ctrl-C or SIGTERM: the
    update in progress is cut short, the published stores stay as they were and the next
    update starts it again). One update per tick; a tick that finds nothing new logs
    "nothing new"; an update that fails is logged and the next tick tries again."""
    interval = parse_every(every)
    done = 0
    try:
        while times is None or done < times:
            tick = time.monotonic()
            stamp = time.strftime("%H:%M:%S")
            try:
                result = _update_once(workflow, out, data_dir, catalog_dir, tick)
                for line in _update_lines(result):
                    click.echo(f"{stamp} {line}")
            except FluxscapeError as exc:
                click.echo(f"{stamp} error: {one_line(exc)}", err=True)
            done += 1
            if times is not None and done >= times:
                break
            time.sleep(max(0.0, interval - (time.monotonic() - tick)))
    except KeyboardInterrupt:
        click.echo("watch stopped", err=True)


# --- inspect ---------------------------------------------------------------------------------


@cli.command(epilog="Example: fluxscape inspect demo-out/sample/modis/*.hdf --json")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of text.")
def inspect(files: tuple[Path, ...], as_json: bool) -> None:
    """Show reader, variables, lon/lat bbox and time span of each FILE.

    A file without valid data gets a warning line on stderr (exit 0); a file no reader
    accepts gets an error line naming the problem (exit 1).
    """
    from fluxscape.readers import inspect_file

    summaries, errors = [], []
    for f in files:
        try:
            summaries.append(inspect_file(f))
        except FluxscapeError as exc:
            errors.append(str(exc))
    if as_json:
        click.echo(json.dumps([s.to_json() for s in summaries], indent=2))
    else:
        for s in summaries:
            click.echo(
                f"{s.path}\n  reader:    {s.reader}\n  variables: {', '.join(s.variables)}"
                f"\n  bbox:      {s.bbox}\n  time:      {s.time}"
            )
            if "ports" in s.details:  # a multi-chamber site (cosore): site and ports too
                click.echo(
                    f"  site:      {s.details.get('site_name')} ({s.details.get('igbp')}, "
                    f"{s.details.get('timezone')})\n  ports:     {', '.join(s.details['ports'])}"
                )
    for s in summaries:
        for w in s.details.get("warnings", []):
            click.echo(f"warning: {s.path}: {w}", err=True)
    for e in errors:
        click.echo(f"error: {e}", err=True)
    if errors:
        sys.exit(1)


# --- catalog ---------------------------------------------------------------------------------


@cli.group(epilog="Example: fluxscape catalog list demo-out/catalog")
def catalog() -> None:
    """Find products, and extract time series from them."""


def _print_entries(entries, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([e.to_json() for e in entries], indent=2))
        return
    if not entries:
        click.echo("no products match")
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    # Fits the terminal's width (COLUMNS, or 80 when stdout is not a terminal): a table when
    # its widest row fits, else one short block per product, long values wrapped.
    console = Console()
    rows = [
        {
            "id": e.id,
            "product": e.product,
            "run id": e.run_id,
            "access": e.access,
            "variables": ", ".join(e.variables),
            "bbox (W,S,E,N)": ", ".join(f"{v:.2f}" for v in e.bbox),
            "time": f"{e.time[0][:10]} / {e.time[1][:10]}",
        }
        for e in entries
    ]
    widths = {key: max(len(key), *(len(row[key]) for row in rows)) for key in rows[0]}
    widths["variables"] = min(widths["variables"], 24)  # the one column that wraps
    if sum(widths.values()) + 2 * (len(widths) - 1) <= console.width:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for key in rows[0]:
            table.add_column(key, no_wrap=key != "variables", overflow="fold")
        for row in rows:
            table.add_row(*row.values())
        console.print(table)
        return
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for row in rows:
        grid.add_row(f"[bold]{row['id']}[/bold]", "")
        for key, value in row.items():
            if key != "id":
                grid.add_row(f"  {key}:", value)
    console.print(grid)


@catalog.command("list", epilog="Example: fluxscape catalog list demo-out/catalog")
@click.argument("catalog_path", metavar="CATALOG", type=str, callback=_folder_or_url)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def catalog_list(catalog_path: Path, as_json: bool) -> None:
    """List the products published in CATALOG."""
    from fluxscape.catalog import open_catalog

    _print_entries(open_catalog(catalog_path).entries(), as_json)


@catalog.command(
    "search",
    epilog="Example: fluxscape catalog search demo-out/catalog --variable ndvi "
    "--bbox 138.2,35.8,138.4,36.0 --time 2021-04-01/2021-10-31 --json",
)
@click.argument("catalog_path", metavar="CATALOG", type=str, callback=_folder_or_url)
@click.option("--product", default=None, help="Product name or id, e.g. vi.")
@click.option("--variable", default=None, help="Variable, e.g. ndvi.")
@click.option("--bbox", default=None, metavar="W,S,E,N", help="Lon/lat box to intersect.")
@click.option(
    "--time", "time_range", default=None, metavar="START/END", help="Time range to overlap."
)
@click.option("--run", default=None, help="Workflow name or run id.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def catalog_search(catalog_path: Path, product, variable, bbox, time_range, run, as_json) -> None:
    """Search CATALOG by product, variable, place, time and run."""
    from fluxscape.catalog import open_catalog
    from fluxscape.catalog.api import parse_bbox

    entries = open_catalog(catalog_path).search(
        product=product,
        variable=variable,
        bbox=parse_bbox(bbox) if bbox else None,
        time=time_range,
        run=run,
    )
    _print_entries(entries, as_json)


@catalog.command(
    "extract",
    epilog="Example: fluxscape catalog extract demo-out/catalog --variable ndvi "
    "--point 138.44,35.96 -o ndvi.csv",
)
@click.argument("catalog_path", metavar="CATALOG", type=str, callback=_folder_or_url)
@click.option("--variable", required=True, help="Variable to extract, e.g. ndvi.")
@click.option("--point", default=None, metavar="LON,LAT", help="Nearest pixel to this point.")
@click.option(
    "--sites",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Nearest pixel of each site: FLUXNET SitesList.csv, a site,lat,lon CSV or GeoJSON points.",
)
@click.option("--bbox", default=None, metavar="W,S,E,N", help="Mean over this lon/lat box.")
@click.option(
    "--polygon",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Polygons in any vector format (GeoJSON, GeoPackage, Shapefile, ...): one "
    "area-weighted mean per feature (exact pixel fractions).",
)
@click.option(
    "--name-property",
    default=None,
    metavar="PROPERTY",
    help="Property naming each --polygon feature (default: name, else id, else 1, 2, ...).",
)
@click.option("--time", "time_range", default=None, metavar="START/END", help="Time range.")
@click.option("--product", default=None, help="Only this product.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write CSV, or Parquet for a .parquet name (default: CSV to stdout).",
)
def catalog_extract(
    catalog_path: Path,
    variable,
    point,
    sites,
    bbox,
    polygon,
    name_property,
    time_range,
    product,
    output,
) -> None:
    """Extract a tidy time series of a variable at a point or sites (nearest pixel; its x, y
    in the output), or as the area-weighted mean over a bbox or each polygon feature.
    Places are longitude first."""
    from fluxscape.catalog import open_catalog
    from fluxscape.catalog.api import parse_bbox

    if sum(v is not None for v in (point, sites, bbox, polygon)) != 1:
        raise click.UsageError("give exactly one of --point, --sites, --bbox or --polygon")
    pt = None
    if point:
        try:
            lon, lat = (float(v) for v in point.split(","))
        except ValueError as exc:
            raise click.UsageError(f"--point {point!r}: expected LON,LAT") from exc
        pt = (lon, lat)
    df = open_catalog(catalog_path).extract(
        variable,
        point=pt,
        bbox=parse_bbox(bbox) if bbox else None,
        time=time_range,
        product=product,
        sites=sites,
        polygon=polygon,
        name_property=name_property,
    )
    if output and output.suffix.lower() in (".parquet", ".pq"):
        df.to_parquet(output, index=False)
        click.echo(f"{len(df)} rows written to {output}")
    elif output:
        df.to_csv(output, index=False, float_format="%.6g")
        click.echo(f"{len(df)} rows written to {output}")
    else:
        click.echo(df.to_csv(index=False, float_format="%.6g"), nl=False)


# --- catalog export, tokens and serve (issue #6) ----------------------------------------------


@catalog.command(
    "export",
    epilog="Example: fluxscape catalog export demo-out/catalog demo.vi ndvi-2021.tif "
    "--variable ndvi --time 2021-01-01/2021-12-31",
)
@click.argument("catalog_path", metavar="CATALOG", type=str, callback=_folder_or_url)
@click.argument("product")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--variable", "variables", multiple=True, help="Variable(s) (repeat); default all.")
@click.option("--bbox", default=None, metavar="W,S,E,N", help="Lon/lat box to cut.")
@click.option("--time", "time_range", default=None, metavar="START/END", help="Time range.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["netcdf", "cog"]),
    default=None,
    help="Default from OUTPUT's suffix (.nc or .tif).",
)
def catalog_export(catalog_path: Path, product, output, variables, bbox, time_range, fmt) -> None:
    """Export a subset of PRODUCT to CF NetCDF or a Cloud-Optimised GeoTIFF (one variable,
    one band per time step) for desktop GIS."""
    from fluxscape.catalog import open_catalog
    from fluxscape.catalog.api import parse_bbox

    path = open_catalog(catalog_path).export(
        product,
        output,
        variables=list(variables) or None,
        bbox=parse_bbox(bbox) if bbox else None,
        time=time_range,
        fmt=fmt,
    )
    click.echo(f"written {path}")


@catalog.command("reindex", epilog="Example: fluxscape catalog reindex demo-out/catalog")
@click.argument("catalog_path", metavar="CATALOG", type=click.Path(path_type=Path))
def catalog_reindex(catalog_path: Path) -> None:
    """Rebuild CATALOG's search index and catalog.json from its collection.json files."""
    from fluxscape.catalog import open_catalog
    from fluxscape.catalog.publish import reindex

    count = reindex(open_catalog(catalog_path).directory)
    click.echo(f"{count} product(s) indexed in {catalog_path}")


@catalog.command(
    "token",
    epilog="Example: fluxscape catalog token tokens.json --name tohoku --access partners",
)
@click.argument("tokens_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Who the token is for (replaces a same-name one).")
@click.option(
    "--access",
    type=click.Choice(["public", "partners", "restricted"]),
    default="partners",
    show_default=True,
    help="Highest level the token may read.",
)
def catalog_token(tokens_file: Path, name: str, access: str) -> None:
    """Create a bearer token for `fluxscape serve`: its SHA-256 goes into TOKENS_FILE and the
    token is printed once (it is stored nowhere)."""
    from fluxscape.catalog.serve import add_token

    click.echo(add_token(tokens_file, name, access))


@cli.command(epilog="Example: fluxscape serve demo-out/catalog --port 8080")
@click.argument("catalog_path", metavar="CATALOG", type=str, callback=_folder_or_url)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to bind.")
@click.option(
    "--tokens",
    "tokens_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Bearer tokens file (JSON, hashed; default $FLUXSCAPE_TOKENS_FILE).",
)
@click.option(
    "--limit",
    "limits",
    multiple=True,
    metavar="NAME=VALUE",
    help="Change a request limit, e.g. max_image=4096 or tile_rate=0 (see docs/catalog.md).",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Web origin allowed to read the API from a browser (repeatable; default '*': any "
    "origin, anonymous requests only; 'none': no CORS). A named origin may also send tokens.",
)
def serve(
    catalog_path: Path,
    host: str,
    port: int,
    tokens_file: Path | None,
    limits: tuple[str, ...],
    cors_origins: tuple[str, ...],
) -> None:
    """Serve CATALOG read-only over HTTP: STAC API, Zarr stores, map tiles and a map page at
    /web/. Anonymous clients see public products only."""
    from fluxscape.catalog.serve import ServeLimits
    from fluxscape.catalog.serve import serve as run_server

    checked = ServeLimits.parse(limits)
    origins = [o for o in cors_origins or ("*",) if o.lower() != "none"]
    click.echo(f"serving {catalog_path} at http://{host}:{port}/ (map: /web/)", err=True)
    run_server(catalog_path, host, port, tokens_file, checked, origins)


def _verbosity_everywhere(group: click.Group) -> None:
    """``-v`` and ``-q`` on every command, as on ``fluxscape`` itself."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _verbosity_everywhere(command)
        if not any(p.name == "verbose" for p in command.params):
            command.params += _verbosity_options(click.Command("x")).params


_verbosity_everywhere(cli)


def main() -> None:
    """Entry point of the ``fluxscape`` console script."""
    cli(obj={})


if __name__ == "__main__":
    main()
