"""Inputs on object storage (issue #17), against a real S3 API on 127.0.0.1 (moto's server):
the small vi workflow with its MODIS granules read from a bucket gives the local run's store
chunk by chunk; provenance names each object's URL, size and ETag; the secret key reaches no
file of the output; a missing bucket or object is a one-line error naming the URL."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import free_port, run_cli, small_workflow

from fluxscape.pipeline import remote

SECRET = "fluxscape-test-secret-do-not-leak-9f3a"
BUCKET = "fluxscape-inputs"


@pytest.fixture(scope="module")
def s3(sample_dir: Path, tmp_path_factory):
    """moto's S3 server on a free loopback port, the AWS environment pointing at it (dummy
    credentials), the sample world's MODIS granules, tower tables (with their site list),
    meteorology and region polygons uploaded under ``s3://BUCKET/sample`` and the
    staged-copy cache in a temporary folder. Yields the endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto keeps its buckets in process-wide state: start each module with none
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
            mp.delenv(key, raising=False)
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("AWS_ACCESS_KEY_ID", "fluxscape-test-key")
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path_factory.mktemp("aws") / "none"))
        mp.setenv("FLUXSCAPE_CACHE_DIR", str(tmp_path_factory.mktemp("remote-cache")))
        import s3fs

        # file systems made for an earlier module's server still point at its port
        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir(BUCKET)
        for folder in ("modis", "towers", "meteo", "regions"):  # about 35 MB
            fs.put(str(sample_dir / folder) + "/", f"{BUCKET}/sample/{folder}/", recursive=True)
        try:
            yield endpoint
        finally:
            server.stop()


@pytest.fixture(scope="module")
def remote_run(s3, small_reference: Path, tmp_path_factory) -> Path:
    """The small vi workflow with ``data_dir: s3://BUCKET/sample``; returns its output folder."""
    folder = tmp_path_factory.mktemp("small_s3")
    wf = small_workflow(folder, f"s3://{BUCKET}/sample")  # type: ignore[arg-type]
    proc = run_cli("run", wf, "--out", folder / "out")
    (folder / "stdout.txt").write_text(proc.stdout + proc.stderr)
    return folder / "out"


def _chunks(store: Path) -> dict[str, bytes]:
    """Every chunk file of a Zarr store (metadata files left out), by relative path."""
    return {
        str(p.relative_to(store)): p.read_bytes()
        for p in store.rglob("*")
        if p.is_file() and p.name not in ("zarr.json", ".zmetadata", ".zattrs", ".zarray")
    }


def test_vi_from_a_bucket_equals_the_local_run_chunk_by_chunk(remote_run, small_reference):
    local, there = small_reference / "products" / "vi.zarr", remote_run / "products" / "vi.zarr"
    a, b = xr.open_zarr(local), xr.open_zarr(there)
    assert set(a.data_vars) == set(b.data_vars) >= {"ndvi", "evi"}
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
        assert a[name].attrs == b[name].attrs, name
    local_chunks, remote_chunks = _chunks(local), _chunks(there)
    assert len(local_chunks) > 10
    assert local_chunks.keys() == remote_chunks.keys()
    for key, data in local_chunks.items():
        assert remote_chunks[key] == data, key


def test_provenance_names_each_object_url_size_and_etag(remote_run, small_reference):
    attrs = xr.open_zarr(remote_run / "products" / "vi.zarr").attrs
    local_attrs = xr.open_zarr(small_reference / "products" / "vi.zarr").attrs
    inputs = attrs["inputs"]
    assert sorted(e["file"] for e in inputs) == sorted(e["file"] for e in local_attrs["inputs"])
    for entry in inputs:
        assert entry["path"] == f"s3://{BUCKET}/sample/modis/{entry['file']}"
        assert entry["size"] > 0 and len(entry["etag"]) >= 16
        assert "sha256" not in entry  # no content hash of remote objects unless asked
    workflow = (remote_run / "workflow.yaml").read_text()
    assert f"data_dir: s3://{BUCKET}/sample" in workflow
    assert f"s3://{BUCKET}/sample/modis/*.hdf" in workflow


def test_the_secret_key_reaches_no_output_file(remote_run):
    leaks = [
        str(p) for p in remote_run.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()
    ]
    assert leaks == []
    assert SECRET not in (remote_run.parent / "stdout.txt").read_text()
    assert (remote_run / "workflow.yaml").is_file()  # the scan saw the resolved workflow


def test_staged_copies_keep_the_object_name_and_are_made_once(s3, sample_dir):
    name = sorted(p.name for p in (sample_dir / "modis").iterdir())[0]
    url = f"s3://{BUCKET}/sample/modis/{name}"
    copy = remote.local(url)
    assert Path(copy).name == name
    assert Path(copy).read_bytes() == (sample_dir / "modis" / name).read_bytes()
    assert Path(copy).is_relative_to(remote.cache_dir())
    assert remote.local(url) == copy and remote.original(copy) == url


def test_a_missing_bucket_is_a_one_line_error_naming_the_url(s3, tmp_path):
    wf = small_workflow(tmp_path, "s3://no-such-bucket/sample")  # type: ignore[arg-type]
    proc = run_cli("run", wf, "--out", tmp_path / "out", check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if "no-such-bucket" in line]
    assert lines, proc.stderr
    assert "s3://no-such-bucket/sample/modis/*.hdf" in lines[0]
    assert "bucket 'no-such-bucket' not found" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "products").exists()


def test_a_glob_matching_no_object_names_the_url(s3, sample_dir, tmp_path):
    wf = small_workflow(tmp_path, sample_dir)  # --data-dir overrides it with a URL
    data = f"s3://{BUCKET}/elsewhere"
    proc = run_cli("run", wf, "--out", tmp_path / "out", "--data-dir", data, check=False)
    assert proc.returncode != 0
    assert f"'s3://{BUCKET}/elsewhere/modis/*.hdf' matches no file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_missing_object_is_an_os_error_naming_the_url(s3):
    url = f"s3://{BUCKET}/sample/modis/MOD13A2.A2099001.h29v05.061.2099018034215.hdf"
    with pytest.raises(FileNotFoundError, match=f"^{url}: no such object$"):
        remote.local(url)


@pytest.mark.parametrize(
    ("base", "relative", "expected"),
    [
        ("s3://b/sample", "modis/*.hdf", "s3://b/sample/modis/*.hdf"),
        ("s3://b/sample", "../other/*.nc", "s3://b/other/*.nc"),
        ("s3://b", "x.csv", "s3://b/x.csv"),
        ("s3://b/sample", "https://host/x.nc", "https://host/x.nc"),
        ("s3://b/sample", "/data/x.nc", "/data/x.nc"),
    ],
)
def test_globs_under_a_url_data_dir(base, relative, expected):
    assert remote.join(base, relative) == expected


def test_urls_and_paths_are_told_apart():
    assert remote.is_url("s3://bucket/key") and remote.is_url("https://host/a.nc")
    assert not remote.is_url("/data/a.hdf") and not remote.is_url("file:///data/a.hdf")
    assert not remote.is_url("C://data")  # a Windows drive, not a scheme


def test_run_log_lines_name_urls_not_local_copies(remote_run):
    manifests = [p for p in remote_run.rglob("*.json") if ".fluxscape" in p.parts]
    text = " ".join(p.read_text() for p in manifests)
    assert f"s3://{BUCKET}/sample/modis/" in text
    assert str(remote.cache_dir()) not in text


def test_resume_of_a_run_with_url_inputs_keeps_its_store(remote_run):
    store = remote_run / "products" / "vi.zarr"
    before = os.readlink(store) if store.is_symlink() else None
    chunks = _chunks(store)
    proc = run_cli("run", remote_run / "workflow.yaml", "--resume")
    assert "vi: 0 of 4 tiles run" in proc.stdout
    after = os.readlink(store) if store.is_symlink() else None
    assert after == before
    assert _chunks(store) == chunks
    assert SECRET not in proc.stdout + proc.stderr


def test_an_object_changed_after_indexing_stops_the_run(s3, sample_dir):
    import s3fs

    from fluxscape.pipeline.inputs import InputChanged, check_indexes_unchanged, index_input

    names = sorted(p.name for p in (sample_dir / "modis").iterdir())[:2]
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    for name in names:
        fs.put(str(sample_dir / "modis" / name), f"{BUCKET}/changing/{name}")
    index = index_input("modis_vi", "modis_hdf4", [f"s3://{BUCKET}/changing/*.hdf"])
    assert [g.path for g in index.granules] == [f"s3://{BUCKET}/changing/{n}" for n in names]
    assert index.skipped == []
    check_indexes_unchanged([index])  # nothing changed yet
    fs.pipe(f"{BUCKET}/changing/{names[1]}", b"not the granule any more")
    with pytest.raises(InputChanged, match=f"input s3://{BUCKET}/changing/{names[1]} changed"):
        check_indexes_unchanged([index])


def test_plain_https_style_urls_are_listed_and_staged(sample_dir, tmp_path, monkeypatch):
    """fsspec's HTTP file system, against a local HTTP server of the sample folder (no ETag:
    each process downloads again rather than trust an earlier copy)."""
    import functools
    import http.server
    import threading

    monkeypatch.setenv("FLUXSCAPE_CACHE_DIR", str(tmp_path))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(sample_dir))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        name = sorted(p.name for p in (sample_dir / "modis").iterdir())[0]
        assert remote.expand(f"{base}/modis/{name}") == [f"{base}/modis/{name}"]
        copy = Path(remote.local(f"{base}/modis/{name}"))
        assert copy.name == name and copy.is_relative_to(tmp_path)
        assert copy.read_bytes() == (sample_dir / "modis" / name).read_bytes()
    finally:
        server.shutdown()
