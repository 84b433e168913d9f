"""The terminal (issue #14): a no-op ``run --resume`` loads nothing and redraws nothing,
``--json`` is one document on stdout, ``-q`` leaves the summary line, long phases report the
time left and never stay silent, distributed's port and nanny noise stays off the terminal,
``--dashboard`` prints a free port's address, and tables fit 80 columns."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import small_workflow
from mlcases import FEATS, SMALL, sites_table

from fluxscape import logs
from fluxscape.cli import cli
from fluxscape.pipeline import progress


def _copy_output(demo_out: Path, folder: Path) -> Path:
    """The demo's output folder without its sample world (the copy's resolved workflow
    still reads the demo's)."""
    out = folder / "out"
    shutil.copytree(demo_out, out, symlinks=True, ignore=shutil.ignore_patterns("sample"))
    return out


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*.png")}


def test_noop_resume_starts_no_cluster_redraws_nothing_and_prints_json(
    demo_out, tmp_path, monkeypatch
):
    out = _copy_output(demo_out, tmp_path)
    args = ["run", str(out / "workflow.yaml"), "--out", str(out), "--resume", "--json"]
    first = CliRunner().invoke(cli, args)  # the copy's first resume checks every product
    assert first.exit_code == 0, first.output
    assert (out / ".fluxscape" / "noop.json").is_file()
    cache = out / ".fluxscape" / "report-cache"
    before = _mtimes(out) | {str(p): p.stat().st_mtime_ns for p in cache.iterdir()}
    report_before = (out / "report.html").stat().st_mtime_ns

    from fluxscape.pipeline import cluster, quicklook, report

    def forbidden(*a, **k):
        raise AssertionError("a no-op resume must not do this")

    monkeypatch.setattr(cluster, "dask_client", forbidden)
    monkeypatch.setattr(report, "_tower_plot", forbidden)
    monkeypatch.setattr(quicklook, "write_quicklooks", forbidden)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    doc = json.loads(again.stdout)
    assert doc["status"] == "ok" and doc["exit_status"] == 0 and doc["nothing_to_do"]
    assert doc["dask_cluster"] is False and doc["peak_memory_mib"]["workers"] is None
    stores = {s["name"]: s for s in doc["stores"]}
    assert set(stores) == {"vi", "phenology", "gosat_l3", "flux"}
    assert all(s["action"] == "reused" and s["tiles"]["run"] == 0 for s in stores.values())
    assert "ndvi" in stores["vi"]["variables"] and stores["flux"]["version"]
    after = _mtimes(out) | {str(p): p.stat().st_mtime_ns for p in cache.iterdir()}
    assert after == before  # no quicklook, no cached plot drawn again
    assert (out / "report.html").stat().st_mtime_ns > report_before  # the run is reported
    assert "Models of <code>flux</code>" in (out / "report.html").read_text()
    runs = (out / ".fluxscape" / "runs.jsonl").read_text().splitlines()
    assert json.loads(runs[-1])["tiles run"] == 0

    quiet = CliRunner().invoke(cli, ["-q", *args[:-1]])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stdout.splitlines() == [
        f"done in {quiet.stdout.split()[2]} s (nothing to do); resolved workflow: "
        f"{out / 'workflow.yaml'}"
    ]


def test_a_changed_file_sends_the_resume_the_ordinary_way(demo_out, tmp_path, monkeypatch):
    from fluxscape.errors import FluxscapeError
    from fluxscape.pipeline import run as runner
    from fluxscape.pipeline.noop import noop_resume

    out = _copy_output(demo_out, tmp_path)
    wf = out / "workflow.yaml"
    assert CliRunner().invoke(cli, ["run", str(wf), "--out", str(out), "--resume"]).exit_code == 0
    assert noop_resume(wf, out=out) is not None
    manifest = out / ".fluxscape" / "vi.manifest.jsonl"
    manifest.write_text(manifest.read_text())  # same text, another modification time
    assert noop_resume(wf, out=out) is None
    assert noop_resume(wf, out=out, workers=3) is None  # another invocation
    args = ["run", str(wf), "--out", str(out), "--resume"]
    assert CliRunner().invoke(cli, args).exit_code == 0  # the ordinary way, a new record
    assert noop_resume(wf, out=out) is not None

    def fails(*a, **k):
        raise FluxscapeError("products.vi: broken")

    monkeypatch.setattr(runner, "_contexts", fails)
    assert CliRunner().invoke(cli, [*args, "--workers", "3"]).exit_code == 1
    assert noop_resume(wf, out=out) is None  # a run that failed leaves no record


def test_json_of_a_failed_run_is_one_document_with_the_error(tmp_path, sample_dir):
    wf = small_workflow(tmp_path, sample_dir, workers=1)
    doc = yaml.safe_load(wf.read_text())
    doc["inputs"]["modis_vi"]["paths"] = ["nothing-here/*.hdf"]
    wf.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(cli, ["run", str(wf), "--json"])
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["status"] == "error" and out["exit_status"] == 1
    assert "matches no file" in out["error"] and out["stores"] == []
    assert result.stderr.splitlines()[-1].startswith("error: ")


def test_catalog_list_fits_80_columns(demo_out, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(cli, ["catalog", "list", str(demo_out / "catalog")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any("demo.flux" in line for line in lines)
    monkeypatch.setenv("COLUMNS", "250")
    wide = CliRunner().invoke(cli, ["catalog", "list", str(demo_out / "catalog")])
    assert any(line.split()[:2] == ["demo.vi", "vi"] for line in wide.stdout.splitlines())


def test_training_progress_counts_every_member_fitted():
    from fluxscape.ml.models import FluxModel
    from fluxscape.ml.validation import cross_validate, n_members

    table = sites_table(n_sites=4, n=30)
    table["time"] = pd.Timestamp("2021-01-01") + pd.to_timedelta(table.index % 30, "D")
    table.loc[table["site"] == "S3", "reco"] = float("nan")  # reco: three sites only
    methods = ("rf", "hgb")
    seen: list[str] = []
    cross_validate(
        table, FEATS, ["gpp", "reco"], methods=methods, method_params=SMALL, on_member=seen.append
    )
    assert len(seen) == n_members(table, FEATS, ["gpp", "reco"], methods=methods) == 14
    model = FluxModel(tuple(FEATS), ("gpp", "reco"), methods, n_splits=5, method_params=SMALL)
    seen.clear()
    model.fit(table[FEATS], table[["gpp", "reco"]], table["site"], on_member=seen.append)
    assert len(seen) == model.n_members(table[FEATS], table[["gpp", "reco"]], table["site"])
    assert len(seen) == 2 * 4 + 2 * 3


def test_progress_lines_say_the_time_left_and_a_silent_phase_speaks_up(monkeypatch, caplog):
    monkeypatch.setattr(progress, "HEARTBEAT", 0.2)
    progress.configure(bars=False)
    caplog.set_level(logging.INFO, logger="fluxscape")
    bar = progress.progress("vi tiles", 4)
    bar.advance("tile 0_0")
    bar.close()
    assert "vi tiles: 1/4 tile 0_0 (0 s elapsed, 0 s left)" in caplog.messages
    fits = progress.progress("flux model fits", 10, every=60.0)
    for _ in range(10):
        fits.advance()
    fits.close()
    lines = [m for m in caplog.messages if m.startswith("flux model fits")]
    assert [m.split()[3] for m in lines] == ["1/10", "10/10"]  # at most one a minute
    with progress.phase("flux: planning"):
        time.sleep(0.7)
    assert caplog.messages[-3].startswith("flux: planning: still working")
    assert caplog.messages[-1] == "flux: planning: done in 1 s" or "still" in caplog.messages[-1]


def test_distributed_port_and_nanny_noise_reaches_the_log_file_not_the_terminal(tmp_path, capsys):
    logs.setup(logging.INFO)
    kept = logging.FileHandler(tmp_path / "run.log")
    logging.getLogger("distributed").addHandler(kept)
    try:
        warnings.warn(
            "Port 8787 is already in use.\nPerhaps you already have a cluster running?\n"
            "Hosting the HTTP server on port 40123 instead",
            stacklevel=1,
        )
        logging.getLogger("distributed.nanny").warning(
            "Worker process still alive after 4.0 seconds, killing"
        )
        logging.getLogger("distributed.nanny").warning("Restarting worker")
    finally:
        logging.getLogger("distributed").removeHandler(kept)
        kept.close()
    err = capsys.readouterr().err
    assert "8787" not in err and "still alive" not in err
    assert "Restarting worker" in err  # news stays on the terminal
    text = (tmp_path / "run.log").read_text()
    assert "Port 8787 is already in use" in text and "still alive" in text


def test_dashboard_link_is_on_a_free_port(tmp_path, sample_dir):
    """With port 8787 taken, --dashboard prints another port's address and no warning."""
    wf = small_workflow(tmp_path, sample_dir, workers=1)
    doc = yaml.safe_load(wf.read_text())
    doc["dask"]["processes"] = False
    wf.write_text(yaml.safe_dump(doc))
    with socket.socket() as taken:
        try:
            taken.bind(("", 8787))
            taken.listen()
        except OSError:
            pass  # taken already
        result = CliRunner().invoke(cli, ["run", str(wf), "--out", tmp_path / "o", "--dashboard"])
    assert result.exit_code == 0, result.output
    links = [line for line in result.stderr.splitlines() if "Dask dashboard: http" in line]
    assert len(links) == 1 and ":8787" not in links[0], result.stderr
    assert "already in use" not in result.stderr
    # the run log keeps every line, those logged while the cluster ran included
    log = (tmp_path / "o" / ".fluxscape" / "run.log").read_text()
    assert "vi tiles: 4/4" in log and "vi: finishing" in log


@pytest.mark.parametrize("flag", ["-v", "-q"])
def test_verbosity_is_an_option_of_fluxscape_and_of_the_command(flag):
    for args in ([flag, "validate", "--help"], ["validate", "--help", flag]):
        assert CliRunner().invoke(cli, args).exit_code == 0
    both = CliRunner().invoke(cli, ["-v", "validate", "x.yaml", "-q"])
    assert both.exit_code == 2 and "exclude each other" in both.output
