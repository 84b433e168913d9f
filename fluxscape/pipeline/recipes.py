"""The workflow recipes shipped with fluxscape: the repository's ``workflows/*.yaml``.

They are package data of ``fluxscape`` under ``fluxscape/workflows/``, found through
:mod:`importlib.resources`, so a wheel, ``pip install .``, an editable install and a plain
checkout on ``PYTHONPATH`` all see them. In the repository ``fluxscape/workflows`` is a symbolic
link to the top-level ``workflows/`` folder, which stays the place users, the README and the
docs refer to; building a wheel copies the files behind the link.

A recipe is asked for by its file name (``gosat-xco2.yaml``) or stem (``gosat-xco2``);
:func:`fluxscape.pipeline.config.load_workflow` falls back to it when no such file exists.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import PurePath

#: Where a shipped recipe's relative paths (``data_dir``, ``output.dir``) start, relative to
#: the current folder: as in a clone, where the recipes sit in ``workflows/`` below it, so
#: ``data_dir: ../demo-out/sample`` is ``./demo-out/sample``.
RECIPE_BASE = PurePath("workflows")


def recipes_folder() -> Traversable:
    """The folder of the shipped recipes (a real folder for every ordinary install)."""
    return files("fluxscape") / "workflows"


def recipe_names() -> list[str]:
    """File names of the shipped recipes, sorted (``demo.yaml``, ...); [] if none ship."""
    folder = recipes_folder()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".yaml") and p.is_file())


def shipped_recipe(name: str) -> Traversable | None:
    """The shipped recipe called ``name`` (``gosat-xco2.yaml`` or ``gosat-xco2``); None when
    ``name`` has a folder part or no recipe of that name ships."""
    if not name or PurePath(name).name != name:
        return None
    file_name = name if name.endswith(".yaml") else f"{name}.yaml"
    if file_name not in recipe_names():
        return None
    return recipes_folder() / file_name
