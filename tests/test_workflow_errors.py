"""A bad workflow fails before any work, with one line naming the problem, exit status 1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_cli

from fluxscape.errors import WorkflowError
from fluxscape.pipeline.config import load_workflow, parse_workflow, resolve_workflow


@pytest.fixture()
def good(tmp_path: Path) -> dict:
    (tmp_path / "data" / "modis").mkdir(parents=True)
    (tmp_path / "data" / "modis" / "MOD13A2.A2021001.h29v05.061.2021018034215.hdf").write_text("")
    (tmp_path / "data" / "gosat" / "nies").mkdir(parents=True)
    for code in ("02C01S", "02C02S"):
        name = f"GOSATTFTS20210101_{code}V0290R21021900000GU000.h5"
        (tmp_path / "data" / "gosat" / "nies" / name).write_text("")
    for rel in (
        "towers/FLX_JP-S01_FLUXNET2015_FULLSET_DD_2021-2022_1-4.csv",
        "meteo/era5_daily_2021.nc",
        "landcover/MCD12Q1.A2022001.h29v05.061.2023190034107.hdf",
        "regions/prefectures.geojson",
    ):
        (tmp_path / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / rel).write_text("")
    doc = yaml.safe_load((REPO / "workflows" / "demo.yaml").read_text())
    doc["data_dir"] = str(tmp_path / "data")
    doc["output"]["dir"] = str(tmp_path / "out")
    return doc


def _run(tmp_path: Path, doc: dict):
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(doc))
    return run_cli("run", path, check=False)


def _assert_one_line_error(proc, *needles: str, progress: bool = False) -> None:
    """Exit status 1 and one line on stderr holding ``needles`` (with ``progress``, after
    any INFO progress lines of what ran before)."""
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if progress:
        lines = [line for line in lines if not re.match(r"\d\d:\d\d:\d\d INFO ", line)]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_demo_workflow_is_valid():
    wf, _ = load_workflow(REPO / "workflows" / "demo.yaml")
    assert wf.name == "demo" and "vi" in wf.products


def test_unknown_key_is_named(tmp_path, good):
    good["region"]["bbx"] = [1, 2, 3, 4]
    proc = _run(tmp_path, good)
    _assert_one_line_error(proc, "region.bbx", "unknown key")
    assert not (tmp_path / "out").exists()


def test_wrong_type_is_named(tmp_path, good):
    good["tile_size"] = "big"
    proc = _run(tmp_path, good)
    _assert_one_line_error(proc, "tile_size")
    assert not (tmp_path / "out").exists()


def test_glob_matching_nothing_names_the_input(tmp_path, good):
    good["inputs"]["modis_vi"]["paths"] = ["nowhere/*.hdf"]
    proc = _run(tmp_path, good)
    _assert_one_line_error(proc, "inputs.modis_vi.paths", "matches no file")
    assert not (tmp_path / "out").exists()


def test_product_using_unknown_input_is_named(tmp_path, good):
    good["products"]["vi"]["input"] = "sgli"
    proc = _run(tmp_path, good)
    _assert_one_line_error(proc, "products.vi.input", "sgli")


def test_unknown_reader_lists_known_readers(tmp_path, good):
    good["inputs"]["modis_vi"]["reader"] = "modis"
    proc = _run(tmp_path, good)
    _assert_one_line_error(proc, "inputs.modis_vi.reader", "modis_hdf4")


def test_derived_product_needs_a_vi_source(tmp_path, good):
    good["products"]["phenology"]["source"] = "gosat_l3"
    proc = _run(tmp_path, good)
    _assert_one_line_error(proc, "products.phenology.source", "not a vi product")


def test_products_run_sources_first_whatever_the_listing_order():
    from fluxscape.pipeline.config import run_order

    wf = parse_workflow(
        yaml.safe_dump(
            yaml.safe_load((REPO / "workflows" / "demo.yaml").read_text()), sort_keys=True
        )
    )
    order = run_order(wf.products)
    assert order.index("vi") < order.index("phenology")


def test_inverted_bbox_is_rejected():
    text = (
        (REPO / "workflows" / "demo.yaml")
        .read_text()
        .replace("[138.0, 35.5, 139.0, 36.5]", "[139.0, 35.5, 138.0, 36.5]")
    )
    with pytest.raises(WorkflowError, match="region"):
        parse_workflow(text)


def test_missing_workflow_file_exit_1(tmp_path):
    proc = run_cli("run", tmp_path / "nope.yaml", check=False)
    _assert_one_line_error(proc, "nope.yaml", "not found")


def test_resolved_workflow_has_absolute_paths(tmp_path, good):
    wf = parse_workflow(yaml.safe_dump(good))
    resolved = resolve_workflow(wf, tmp_path)
    pattern = resolved.inputs["modis_vi"].paths[0]
    assert Path(pattern).is_absolute() and pattern.startswith(str(tmp_path / "data"))
    assert Path(resolved.output.dir).is_absolute()


def test_resume_and_fresh_together_is_usage_error(tmp_path, good):
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(good))
    proc = run_cli("run", path, "--resume", "--fresh", check=False)
    assert proc.returncode == 2


def test_misspelt_key_gets_a_suggestion(tmp_path, good):
    good["tile_sise"] = good.pop("tile_size")
    proc = _run(tmp_path, good)
    _assert_one_line_error(proc, "tile_sise: unknown key", "did you mean 'tile_size'?")


def test_missing_workflow_names_the_shipped_recipes(tmp_path):
    proc = run_cli("run", tmp_path / "demo.yml", check=False)
    _assert_one_line_error(
        proc, "demo.yml: workflow file not found", "demo.yaml", "gpp-upscaling.yaml"
    )


def test_region_without_input_coverage_says_where_the_inputs_are(tmp_path, sample_dir):
    """Coverage is known only once a product indexes its inputs: products planned before it
    may have logged progress, but the run ends with one error line and exit status 1."""
    doc = yaml.safe_load((REPO / "workflows" / "demo.yaml").read_text())
    doc["data_dir"] = str(sample_dir)
    doc["output"]["dir"] = str(tmp_path / "out")
    doc["products"] = {"vi": doc["products"]["vi"]}
    doc["region"]["bbox"] = [100.0, 35.5, 101.0, 36.5]  # far west of the sample's MODIS tile
    proc = _run(tmp_path, doc)
    _assert_one_line_error(
        proc,
        "inputs.modis_vi: none of its 46 file(s) covers the region",
        "hint: check region.bbox",
        progress=True,
    )
    doc["region"]["bbox"] = [138.0, 35.5, 139.0, 36.5]
    doc["period"] = {"start": "2019-01-01", "end": "2019-12-31", "step": "16D"}
    proc = _run(tmp_path, doc)
    _assert_one_line_error(
        proc, "outside period 2019-01-01 to 2019-12-31", "hint: change period", progress=True
    )


def test_misspelt_product_key_names_the_product_once(tmp_path, good):
    good["products"]["vi"]["variabels"] = good["products"]["vi"].pop("variables")
    proc = _run(tmp_path, good)
    _assert_one_line_error(
        proc, "products.vi.variabels: unknown key", "did you mean 'variables'?"
    )
    assert "products.vi.vi." not in proc.stderr


def _demo_text(old: str, new: str) -> str:
    text = (REPO / "workflows" / "demo.yaml").read_text()
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("resolution: 0.01 ", "resolution: .inf ", "region.resolution: must be a finite number"),
        ("resolution: 0.01 ", "resolution: .nan ", "region.resolution: must be a finite number"),
        ("resolution: 0.01 ", "resolution: -1 ", "region.resolution: Input should be greater"),
        ("[138.0, 35.5, 139.0, 36.5]", "[138.0, .nan, 139.0, 36.5]", "region.bbox.1: must be a"),
        # named "region.bbox: [...]" or, where a bbox_crs says the units, "region.bbox_crs:
        # region.bbox [...] is outside ..."
        ("[138.0, 35.5, 139.0, 36.5]", "[138.0, 35.5, 139.0, 95]", "95.0] is outside [-180, -90"),
        ("[138.0, 35.5, 139.0, 36.5]", "[138.0, 35.5, 400, 36.5]", "longitudes from -180 to"),
        ("start: 2021-01-01", "start: .nan", "period.start:"),
        ("crs: EPSG:4326", "crs: EPSG:999999", "region.crs: 'EPSG:999999' is not a CRS"),
        ("crs: EPSG:4326", "crs: foo", "give an EPSG code (EPSG:4326), WKT or a PROJ string"),
        ("crs: EPSG:4326", "crs: EPSG:4978", "region.crs: 'EPSG:4978' is a Geocentric CRS"),
        ("max_pixel_reliability: 1", "max_pixel_reliability: .inf", "max_pixel_reliability"),
        ("n_estimators: 100", "n_estimators: .nan", "method_params.rf.n_estimators: must be"),
    ],
)
def test_bad_region_numbers_and_crs_are_named(old, new, key):
    with pytest.raises(WorkflowError) as info:
        parse_workflow(_demo_text(old, new), "wf.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("wf.yaml: ")
    assert key in message
    if old.startswith("[138.0"):  # the bbox cases
        assert "region.bbox" in message


def test_projected_crs_is_accepted():
    wf = parse_workflow(_demo_text("crs: EPSG:4326", "crs: EPSG:6933"))
    assert wf.region.crs == "EPSG:6933"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\x1f\x8b\x08\x00" + bytes(range(256)), "not a YAML workflow file (gzip data)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not a YAML workflow file (a PNG image)"),
        (bytes(range(128, 256)) * 4, "not a YAML workflow file (binary data, not UTF-8 text)"),
        (b"name: x\x00\x00", "not a YAML workflow file (binary data"),
        (b"", "not a YAML workflow file (it is empty;"),
        (b"- name: demo\n- name: other\n", "not a YAML workflow file (its top level is a list;"),
        (b"region: [1, 2\n", "not valid YAML"),
    ],
    ids=["gzip", "png", "random", "nul", "empty", "list", "broken"],
)
def test_files_that_are_no_workflow_are_named(tmp_path, content, says):
    path = tmp_path / "wf.yaml"
    path.write_bytes(content)
    with pytest.raises(WorkflowError) as info:
        load_workflow(path)
    assert str(info.value).startswith(f"{path}: {says}")
    assert "\n" not in str(info.value)


def test_binary_workflow_is_one_line_on_the_command_line(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_bytes(bytes(range(256)) * 8)
    proc = run_cli("run", path, check=False)
    _assert_one_line_error(proc, f"{path}: not a YAML workflow file")
    assert "UnicodeDecodeError" not in proc.stderr


def test_region_outside_the_projection_is_named():
    text = _demo_text("crs: EPSG:4326", "crs: '+proj=ortho +lat_0=-35 +lon_0=-41'")
    with pytest.raises(WorkflowError, match=r"region.crs: .* cannot represent the region"):
        parse_workflow(text)


def test_key_with_a_line_break_is_quoted_on_one_line(good):
    """Found by tests/test_workflow_fuzz.py: a key holding a newline split the message."""
    good["inputs"]["two\nlines"] = {"reader": "fluxnet"}
    with pytest.raises(WorkflowError) as info:
        parse_workflow(yaml.safe_dump(good), "wf.yaml")
    assert "\n" not in str(info.value)
    assert "inputs.'two\\nlines'" in str(info.value)
