"""The documentation builds strictly, with the workflow reference generated from the schema."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from fluxscape.pipeline.config import Workflow

REPO = Path(__file__).resolve().parent.parent


def test_mkdocs_strict_build_with_generated_reference(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (site / "workflow-reference" / "index.html").read_text()
    text = re.sub(r"<[^>]+>", " ", html)
    for kind in ("vi", "phenology", "disturbance", "gosat_l3", "flux", "lst"):
        assert f'"{kind}"' in text.replace("&quot;", '"'), f"product kind {kind} missing"
    schema = Workflow.model_json_schema()
    # every key of every section of the schema is documented, with its default
    for section in [schema, *schema["$defs"].values()]:
        for key in section["properties"]:
            assert f"{key}" in text, f"key {key} missing from the reference"
    for known in ("max_pixel_reliability", "ensemble_folds", "min_qc", "jobqueue", "tile_size"):
        assert known in text
    assert "0.8" in text and "3GiB" in text  # defaults of min_qc and dask.memory_limit
    readers = (site / "readers" / "index.html").read_text()
    for name in ("modis_hdf4", "fluxnet", "gosat_nies", "sgli_l2", "ahi_hsd", "cf_meteo"):
        assert f"<code>{name}</code>" in readers
    assert (site / "notebooks" / "first-flux-map.ipynb").is_file()
    assert not (site / "hooks").exists()


def test_committed_workflow_reference_is_current() -> None:
    """docs/workflow-reference.md is the schema's reference (regenerate it with
    ``python docs/hooks/reference.py`` after changing a workflow key)."""
    sys.path.insert(0, str(REPO / "docs" / "hooks"))
    try:
        import reference
    finally:
        sys.path.pop(0)
    assert reference.stale_reference() is None
    assert "limits" in reference.reference_path().read_text()
