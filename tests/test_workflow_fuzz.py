"""Fuzzing the workflow schema: any mutation of a valid workflow validates, or fails with one
line (a FluxscapeError naming the file and key); never another exception. Validation only."""

from __future__ import annotations

import copy
import datetime as dt
import math
import re

import yaml
from conftest import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.config import Workflow, parse_workflow, workflow_hash, workflow_yaml
from fluxscape.pipeline.grid import region_geobox

BASE = yaml.safe_load((REPO / "workflows" / "demo.yaml").read_text())

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1, 2**63, -(2**63), 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0]),
    st.text(max_size=20),
    st.sampled_from(["", " ", "EPSG:4326", "16D", "vi", "towers", "*", "../..", "\x00", "é"]),
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)),
)
JUNK = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)


def _paths(node, prefix=()) -> list[tuple]:
    """Every path (keys and list indices) to a value in a nested dict/list."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = [p for p in _paths(BASE) if p]


@st.composite
def mutated(draw) -> dict:
    """The demo workflow with one to four values replaced (by junk or by the value of another
    key), keys dropped or keys added."""
    doc = copy.deepcopy(BASE)
    rng = draw(st.randoms(use_true_random=False))  # every path equally likely (not the first)
    for _ in range(draw(st.integers(1, 4))):
        path = rng.choice(PATHS)
        parent = doc
        for key in path[:-1]:
            if not isinstance(parent, dict | list):
                break
            try:
                parent = parent[key]
            except (KeyError, IndexError, TypeError):
                break
        else:
            op = draw(st.sampled_from(["replace", "borrow", "drop", "add"]))
            last = path[-1]
            if not isinstance(parent, dict | list):
                continue
            if op == "replace" and _has(parent, last):
                parent[last] = draw(JUNK)
            elif op == "borrow" and _has(parent, last):  # a value of another key: plausible
                parent[last] = copy.deepcopy(_get(BASE, rng.choice(PATHS)))
            elif op == "drop" and _has(parent, last):
                del parent[last]
            elif op == "add" and isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=10))] = draw(JUNK)
    return doc


def _get(node, path: tuple):
    for key in path:
        node = node[key]
    return node


def _has(parent, key) -> bool:
    if isinstance(parent, dict):
        return key in parent
    return isinstance(key, int) and key < len(parent)


def _check(text: str) -> None:
    try:
        wf = parse_workflow(text, "fuzz.yaml")
    except FluxscapeError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yaml: ") and "\n" not in message, message
        assert "Traceback" not in message
        return
    assert isinstance(wf, Workflow)
    assert all(math.isfinite(x) for x in _floats(wf.model_dump())), wf
    workflow_hash(wf)  # what a run derives from a valid workflow before any work
    parse_workflow(workflow_yaml(wf), "again.yaml")
    box = region_geobox(wf.region)  # lazy: an affine and a shape, no pixels
    assert all(n > 0 for n in box.shape) and box.extent.geom.is_valid


def _floats(node):
    """Every float in a nested dict/list/tuple."""
    if isinstance(node, float):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _floats(v)
    elif isinstance(node, list | tuple):
        for v in node:
            yield from _floats(v)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_workflows_validate_or_fail_in_one_line(doc):
    _check(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


@settings(max_examples=60, deadline=None)
@given(JUNK)
def test_any_yaml_document_validates_or_fails_in_one_line(doc):
    _check(yaml.safe_dump(doc, allow_unicode=True))


CRSES = [
    "EPSG:4326",
    "EPSG:3857",
    "EPSG:6933",
    "EPSG:32654",
    "EPSG:3413",
    "EPSG:3031",
    "+proj=ortho +lat_0=35 +lon_0=139",
    "EPSG:4978",
    "EPSG:5773",
    "foo",
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(-200, 200), min_size=4, max_size=4),
    st.sampled_from(CRSES),
    st.floats(1e-3, 1e7),
)
def test_any_valid_region_has_a_grid(bbox, crs, resolution):
    """A region that validates gives a finite, non-empty grid in its CRS; one that does not
    is refused in one line (naming region.bbox, region.crs, region.resolution or a product
    setting that does not fit the region)."""
    doc = copy.deepcopy(BASE)
    doc["region"] = {"bbox": bbox, "crs": crs, "resolution": resolution}
    try:
        wf = parse_workflow(yaml.safe_dump(doc), "fuzz.yaml")
    except FluxscapeError as exc:
        assert re.match(r"fuzz\.yaml: (region|products)[.:]", str(exc)), exc
        assert "\n" not in str(exc)
        return
    box = region_geobox(wf.region)
    assert all(n > 0 for n in box.shape)
