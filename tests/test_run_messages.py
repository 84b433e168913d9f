"""What a run says when it cannot go on: a full disk names the product and store (or the
file), in one line."""

from __future__ import annotations

import errno
from pathlib import Path

import yaml
from click.testing import CliRunner
from conftest import small_workflow

from fluxscape.cli import cli
from fluxscape.pipeline import run as runner


def _threaded(folder: Path, sample_dir: Path) -> Path:
    """The small 4-tile workflow with its tiles in threads of this process (a patched
    function reaches them)."""
    path = small_workflow(folder, sample_dir, workers=1)
    doc = yaml.safe_load(path.read_text())
    doc["dask"]["processes"] = False
    path.write_text(yaml.safe_dump(doc))
    return path


def _full_disk(filename: str):
    def write(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", filename)

    return write


def _one_line(result) -> str:
    """The one error line, last on stderr (progress lines of the run may precede it)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert result.exit_code == 1, result.output
    assert errors == lines[-1:] and "Traceback" not in result.stderr, result.stderr
    return lines[-1]


def test_full_disk_on_a_worker_names_the_product_and_store(tmp_path, sample_dir, monkeypatch):
    chunk = str(tmp_path / "out" / ".fluxscape" / "building" / "vi.zarr" / "ndvi" / "c" / "0")
    monkeypatch.setattr(runner, "write_tile", _full_disk(chunk))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(_threaded(tmp_path, sample_dir)), "--out", out])
    line = _one_line(result)
    store = out / ".fluxscape" / "building" / "vi.zarr"
    assert line == (
        f"error: products.vi: disk full writing {store} ({chunk}: No space left on device); "
        "free space and rerun with --resume"
    )


def test_full_disk_in_the_driver_names_the_file(tmp_path, sample_dir, monkeypatch):
    target = str(tmp_path / "out" / ".fluxscape" / "vi.manifest.jsonl")
    monkeypatch.setattr(runner.Manifest, "start", _full_disk(target))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(_threaded(tmp_path, sample_dir)), "--out", out])
    assert _one_line(result) == f"error: {target}: disk full (No space left on device)"


def test_read_only_disk_without_a_file_name_names_the_workflow(tmp_path, sample_dir, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(runner, "prepare", read_only)
    wf = _threaded(tmp_path, sample_dir)
    result = CliRunner().invoke(cli, ["run", str(wf)])
    assert _one_line(result) == (
        f"error: read-only file system writing the output folder of {wf} (Read-only file "
        "system); make it writable and rerun with --resume"
    )


def test_full_disk_without_a_file_name_names_the_output_folder(tmp_path, sample_dir, monkeypatch):
    """A write() that finds the disk full raises an OSError without a file name."""

    def write(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runner.Manifest, "start", write)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(_threaded(tmp_path, sample_dir)), "--out", out])
    assert _one_line(result) == (
        f"error: disk full writing {out} (No space left on device); free space and rerun with "
        "--resume"
    )
