"""Packaging: the recipes of workflows/ ship as package data, found through importlib.resources
and run by name; every other non-Python file of the package is package data too.

The wheel itself is built, installed into a fresh venv and run from another folder by
.ci/check_wheel.sh (minutes: CI only)."""

from __future__ import annotations

import fnmatch
import os
import tomllib
from pathlib import PurePosixPath

import pytest
import yaml
from conftest import REPO

from fluxscape.errors import WorkflowError
from fluxscape.pipeline.config import load_workflow
from fluxscape.pipeline.recipes import recipe_names, recipes_folder, shipped_recipe


def test_every_file_in_workflows_is_a_recipe_reachable_through_importlib_resources():
    in_repo = sorted(p.name for p in (REPO / "workflows").iterdir())
    assert recipe_names() == in_repo  # every file, and only .yaml recipes, in workflows/
    for name in in_repo:
        shipped = recipes_folder() / name
        assert shipped.read_text() == (REPO / "workflows" / name).read_text(), name


def test_the_package_folder_of_the_recipes_links_to_the_top_level_workflows_folder():
    link = REPO / "fluxscape" / "workflows"
    assert link.is_symlink() and os.readlink(link) == "../workflows"


def _package_data_globs() -> list[str]:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return [
        f"{package.replace('.', '/')}/{pattern}"
        for package, patterns in setuptools["package-data"].items()
        for pattern in patterns
    ]


def _is_listed(path: str, globs: list[str]) -> bool:
    """setuptools semantics: ``*`` stays within one folder."""
    depth = len(PurePosixPath(path).parts)
    return any(len(PurePosixPath(g).parts) == depth and fnmatch.fnmatch(path, g) for g in globs)


def test_every_non_python_file_of_the_package_is_package_data():
    """Anything the code opens by path (web assets, recipes) must reach the wheel."""
    globs = _package_data_globs()
    unlisted = []
    for root, dirs, names in os.walk(REPO / "fluxscape", followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in names:
            rel = (PurePosixPath(root) / name).relative_to(REPO.as_posix()).as_posix()
            if not name.endswith((".py", ".pyc")) and not _is_listed(rel, globs):
                unlisted.append(rel)
    assert unlisted == [], f"add to [tool.setuptools.package-data] in pyproject.toml: {unlisted}"


@pytest.mark.parametrize("name", ["gosat-xco2.yaml", "gosat-xco2"])
def test_a_shipped_recipe_runs_by_name_with_its_paths_starting_as_in_a_clone(
    name, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    wf, base = load_workflow(name)
    assert wf.name == "gosat-xco2"
    assert base == tmp_path.resolve() / "workflows"  # data_dir ../demo-out/sample -> ./demo-out
    assert (base / wf.data_dir).resolve() == tmp_path.resolve() / "demo-out" / "sample"


def test_a_file_in_the_current_folder_wins_over_the_shipped_recipe_of_that_name(
    tmp_path, monkeypatch
):
    doc = yaml.safe_load(shipped_recipe("gosat-xco2.yaml").read_text())
    doc["name"] = "my-gosat"
    (tmp_path / "gosat-xco2.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.chdir(tmp_path)
    wf, base = load_workflow("gosat-xco2.yaml")
    assert wf.name == "my-gosat" and base == tmp_path.resolve()


def test_a_path_with_a_folder_is_never_taken_for_a_recipe_name(tmp_path):
    with pytest.raises(WorkflowError, match="workflow file not found"):
        load_workflow(tmp_path / "gosat-xco2.yaml")
    assert shipped_recipe("workflows/gosat-xco2.yaml") is None
    assert shipped_recipe("no-such-recipe") is None


def test_missing_workflow_hint_names_every_shipped_recipe(tmp_path):
    with pytest.raises(WorkflowError) as err:
        load_workflow(tmp_path / "demo.yml")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'demo.yml'}: workflow file not found; hint:")
    assert "run by name" in message
    for name in recipe_names():
        assert name in message
