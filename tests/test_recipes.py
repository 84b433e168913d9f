"""The workflow recipes in workflows/: each validates; the quick ones run on the sample world."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from conftest import REPO, run_cli

from fluxscape.pipeline.config import load_workflow

RECIPES = sorted((REPO / "workflows").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_recipe_validates_and_says_what_it_produces(recipe):
    wf, _ = load_workflow(recipe)
    assert wf.name == recipe.stem
    header = recipe.read_text().split("\nname:")[0]
    assert "produc" in header.lower() or "->" in header


def _on_sample(recipe: Path, sample_dir: Path, folder: Path) -> Path:
    doc = yaml.safe_load(recipe.read_text())
    doc["data_dir"] = str(sample_dir)
    doc["output"]["dir"] = str(folder / "out")
    path = folder / recipe.name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_gosat_xco2_recipe_runs_on_sample_world(tmp_path, sample_dir):
    run_cli("run", _on_sample(REPO / "workflows" / "gosat-xco2.yaml", sample_dir, tmp_path))
    ds = xr.open_zarr(tmp_path / "out" / "products" / "gosat_l3.zarr")
    assert int(ds.xco2_count.sum()) > int(ds.xch4_count.sum()) > 0  # NIES + ACOS for CO2
    assert 405 < float(ds.xco2.mean()) < 425 and 1880 < float(ds.xch4.mean()) < 1940


@pytest.mark.slow
def test_phenology_ahi_recipe_runs_on_sample_world(tmp_path, sample_dir):
    run_cli("run", _on_sample(REPO / "workflows" / "phenology-ahi.yaml", sample_dir, tmp_path))
    pheno = xr.open_zarr(tmp_path / "out" / "products" / "phenology_ahi.zarr")
    assert np.isfinite(pheno.sos.sel(year=2021, season=1).values).mean() > 0.9
