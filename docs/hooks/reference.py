"""MkDocs hook: the workflow file reference and the reader list, generated from the code.

``docs/workflow-reference.md`` is generated from ``Workflow.model_json_schema()`` (every key,
type, default and description) and committed, so it reads on GitHub and in a clone without a
docs build; ``python docs/hooks/reference.py`` rewrites it, and the build (and
``tests/test_docs.py``) fail when it is stale. The ``<!-- readers-table -->`` marker in a page
is replaced by one section per registered reader at build time. MkDocs has no built-in way to
render a pydantic schema, hence this small hook.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

REFERENCE = "workflow-reference.md"
READERS_MARKER = "<!-- readers-table -->"


def _models() -> dict:
    """Every model of the workflow schema by name: the shared blocks and each step's Config."""
    from fluxscape.pipeline import config, schema
    from fluxscape.pipeline.steps import STEPS

    found = {
        name: obj
        for module in (schema, config)
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, schema.StrictModel)
        and obj is not schema.StrictModel
    }
    return found | {step.Config.__name__: step.Config for step in STEPS.values()}


def _field_comments(cls) -> dict[str, str]:
    """Trailing ``# comment`` of each field line in the model's source (the code's own notes),
    of its fluxscape base classes too (a subclass's own comment wins)."""
    out = {}
    for base in reversed(_bases(cls)):
        for line in inspect.getsource(base).splitlines():
            m = re.match(r"^    (\w+): .*?#\s*(.+)$", line)
            if m:
                out[m.group(1)] = m.group(2).strip()
    return out


def _bases(cls) -> list:
    """The class and its fluxscape base classes, nearest first (where its fields and their
    notes are declared)."""
    return [c for c in cls.__mro__ if c.__module__.startswith("fluxscape.")]


def _note(cls, key: str) -> str | None:
    """The FIELD_NOTES entry of a field, under the class or the base class declaring it."""
    return next(
        (FIELD_NOTES[n] for c in _bases(cls) if (n := f"{c.__name__}.{key}") in FIELD_NOTES), None
    )


def _type(prop: dict) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"])
    if "oneOf" in prop:
        return " or ".join(_type(p) for p in prop["oneOf"])
    kind = prop.get("type")
    if kind == "array":
        if "prefixItems" in prop:
            return "[" + ", ".join(_type(p) for p in prop["prefixItems"]) + "]"
        return f"list of ({_type(prop.get('items', {}))})"
    if kind == "object":
        extra = prop.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return f"mapping of name → ({_type(extra)})"
        return "mapping"
    if kind == "string" and prop.get("format") == "date":
        return "date (YYYY-MM-DD)"
    limits = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤")):
        if key in prop:
            limits.append(f"{sign} {prop[key]}")
    if "minItems" in prop:
        limits.append(f"at least {prop['minItems']} item(s)")
    if "minProperties" in prop:
        limits.append(f"at least {prop['minProperties']} entry")
    if "pattern" in prop:
        limits.append(f"matching `{prop['pattern']}`")
    return (kind or "any") + (f" ({', '.join(limits)})" if limits else "")


def _limits(prop: dict) -> str:
    parts = []
    if "minItems" in prop:
        parts.append(f"at least {prop['minItems']} item(s)")
    if "minProperties" in prop:
        parts.append(f"at least {prop['minProperties']} entry")
    return "; ".join(parts)


def _default(name: str, prop: dict, required: set[str]) -> str:
    if name in required:
        return "**required**"
    if "default" not in prop:
        return ""
    return f"`{json.dumps(prop['default'])}`"


#: What a key means, for keys whose description is neither in the schema nor in a trailing
#: comment in fluxscape/pipeline/config.py. A key with no description anywhere fails the build.
FIELD_NOTES = {
    "Workflow.name": "Names the run and its catalog collections (`<name>.<product>`).",
    "Workflow.description": "Free text, shown in the catalog.",
    "Workflow.region": "The target grid.",
    "Workflow.tile_size": "Pixels per tile side: the unit of work, of resume and of memory.",
    "Workflow.period": "Time period and product time step.",
    "Workflow.data_dir": "Folder that relative input globs, `sites` and `regions` are resolved "
    "against (itself relative to the workflow file; `fluxscape demo` points it at OUT/sample), "
    "or an object storage URL such as `s3://bucket/prefix` (input globs only; see "
    "[inputs on object storage](workflow.md#inputs-on-object-storage)).",
    "Workflow.inputs": "Named inputs that products refer to.",
    "Workflow.products": "Named products; each becomes `OUT/products/<name>.zarr`.",
    "Workflow.output": "Where stores, catalog, reports and logs go.",
    "Workflow.dask": "Where the tiles run.",
    "Region.bbox": "[W, S, E, N] in degrees (lon/lat), or in the units of `bbox_crs`.",
    "Region.bbox_crs": "CRS of the `bbox` values: EPSG:4326 (degrees) by default, or e.g. the "
    "grid's own CRS to give an exact window in metres.",
    "Region.preset": "A named region instead of `bbox` (list above).",
    "UpscalingConfig.land_cover_resampling": "How land-cover classes meet the grid: `nearest` (the "
    "class at each pixel centre) or `mode` (the most common class of the source pixels under "
    "each pixel: for a grid coarser than the land-cover source, e.g. 0.05° over 500 m "
    "MCD12Q1).",
    "Region.origin": "Upper-left corner [x, y] of a geobox region in `crs` units: with `shape` "
    "and `resolution`, the grid exactly (pixel edges start there), e.g. a MODIS tile's own "
    "sinusoidal grid, instead of `bbox`.",
    "Region.crs": "CRS of the target grid.",
    "Region.resolution": "Pixel size in CRS units (degrees for EPSG:4326; 0.01 is about 1 km).",
    "Period.start": "First day (inclusive).",
    "Period.end": "Last day (inclusive).",
    "Period.step": "Product time step: 16-day (MODIS DOY 1, 17, ...), 8-day, daily or monthly.",
    "Input.reader": "Reader name (see [Readers](readers.md)); unknown names are errors.",
    "Input.paths": "Glob patterns; each must match at least one file. A pattern may be a URL "
    "(`s3://bucket/modis/*.hdf`, `https://...`): objects are listed through fsspec.",
    "Input.variables": "`topdown` reader only: role (`land`, `land_sd`, `fire`) -> the file's "
    "variable; default CarbonTracker's `{land: bio_flux_opt, fire: fire_flux_imp}`.",
    "Input.relative_error": "`topdown` reader only: `land_sd` as this share of `|land|` when "
    "the map names no `land_sd` variable (a stated error).",
    "BudgetConfig.kind": "Product kind.",
    "BudgetConfig.source": "The `flux` product whose `nee` (and `nee_sd`) is the bottom-up side.",
    "BudgetConfig.topdown": "An input of the `topdown` reader: the inversion's monthly fluxes.",
    "BudgetConfig.fire": "A `disturbance` product, optional: its burned pixels (MCD64A1 burn "
    "dates with a `reference`, else breaks of low burn severity or more dated by `date`) release "
    "`fire_consumption` in their month, added to the bottom-up side; the top-down side is then "
    "its land flux plus its fire variable (when the file gives one).",
    "Output.dir": "Output folder, relative to the workflow file (`--out` overrides it).",
    "Output.catalog": "Catalog folder inside `dir` (`--catalog` overrides it).",
    "DaskSettings.scheduler": "Address of an existing Dask scheduler (`--scheduler` overrides).",
    "DaskSettings.cluster": "Start a LocalCluster, or Slurm/PBS jobs through dask-jobqueue.",
    "UpscalingConfig.biophysical": "An input giving leaf area index / FPAR (e.g. MCD15A2H tiles): "
    "period means of `biophysical_variables` become features.",
    "UpscalingConfig.biophysical_variables": "Which of `lai`, `fpar` to use as features.",
    "UpscalingConfig.elevation": "An input giving `elevation` (a DEM in CF NetCDF, reader "
    "`cf_elevation`), optional: the elevation (m) at each pixel centre, bilinear between the "
    "DEM's cells, becomes the feature `elevation`.",
    "UpscalingConfig.inference": "How tiles are predicted: `auto` (the default: compiled when "
    "the compiled members are cached or the estimated prediction time saved beats the "
    "estimated compile time, docs/models.md), `compiled` (each ensemble member flattened "
    "once per model card into arrays walked by a numba kernel, or compiled by treelite + "
    "tl2cgen when the kernel cannot take it, cached beside the model as "
    "`<model>.compiled/`; the saved model with a warning when nothing can be compiled) or "
    "`reference` (the saved scikit-learn/LightGBM model). Both give the same values (float32 "
    "features, exact threshold comparisons; docs/models.md), so switching keeps a store on "
    "`--resume`.",
    "DaskSettings.workers": "Workers of the cluster started (`--workers` overrides).",
    "DaskSettings.threads_per_worker": "Threads per worker (`cores` of a jobqueue job).",
    "DaskSettings.memory_limit": "Memory per worker (`memory` of a jobqueue job).",
    "DaskSettings.jobqueue": "Extra keyword arguments of `SLURMCluster`/`PBSCluster` "
    "(queue, account, walltime, ...).",
    "ViConfig.kind": "Product kind.",
    "ViConfig.input": "The raster input: a source giving the bands or indices the variables need.",
    "ViConfig.variables": "Indices to compute (each must be possible from the reader's bands).",
    "ViConfig.max_pixel_reliability": "Worst pixel reliability kept (MODIS: 0 good, "
    "1 marginal, 2 snow/ice, 3 cloudy).",
    "ViConfig.resampling": "Resampling of source pixels onto the target grid: `nearest` (each "
    "pixel takes the source pixel under its centre; on the source's own grid the pixels are "
    "copied), `average` or `bilinear` for the index values on a coarser grid (QA classes then "
    "take the most common class under the pixel, never an average).",
    "ViConfig.composite": "Per-step compositing: the maximum-NDVI observation, the "
    "QA-weighted median NDVI observation, or (AHI inputs) the usable scene nearest "
    "`solar_time` (the daily clear-sky layer).",
    "GosatL3Config.kind": "Product kind.",
    "GosatL3Config.inputs": "Inputs giving GOSAT soundings (`xco2`/`xch4`: NIES HDF5, ACOS Lite).",
    "GosatL3Config.variables": "Gases to map.",
    "GosatL3Config.resolution": "Cell size of the L3 grid (CRS units).",
    "PhenologyConfig.kind": "Product kind.",
    "PhenologyConfig.source": "A `vi` product of the same workflow.",
    "PhenologyConfig.variable": "Index whose seasonal curve is fitted.",
    "PhenologyConfig.method": "Smoother or curve: Whittaker, Savitzky-Golay, or a double "
    "logistic per season fitted at the observation days, the pixel's other years lending "
    "their shape (default; gives `sos_sd`/`eos_sd`).",
    "PhenologyConfig.seasons": "Up to this many seasons per year (2 for double cropping).",
    "DisturbanceConfig.kind": "Product kind.",
    "DisturbanceConfig.source": "A `vi` product of the same workflow.",
    "DisturbanceConfig.variable": "Index monitored for breaks.",
    "DisturbanceConfig.history": "[first, last] dates of the stable history period.",
    "DisturbanceConfig.monitor": "[first, last] dates of the monitoring period.",
    "DisturbanceConfig.process": "Monitoring statistic (BFAST Monitor style).",
    "DisturbanceConfig.min_magnitude": "Smallest index drop reported as a disturbance.",
    "DisturbanceConfig.reference": "Input of MODIS MCD64A1 monthly burned-area tiles "
    "(reader `modis_hdf4`): its burn dates are stored beside the breaks and scored against them.",
    "FluxConfig.kind": "Product kind.",
    "UpscalingConfig.source": "A `vi` product of the same workflow: the remote-sensing predictors.",
    "UpscalingConfig.predictors": "Variables of the `source` store used as predictors.",
    "UpscalingConfig.meteo": "Input of gridded meteorology (reader `cf_meteo`), optional.",
    "UpscalingConfig.meteo_variables": "Meteorological predictors: `ta` (degC), `sw_in` "
    "(W m-2), `vpd` (hPa), `precip` (mm d-1), and of the top soil layer where the source gives "
    "it `ts` (soil temperature, degC; ERA5 `stl1`) and `swc` (volumetric soil water, m3 m-3; "
    "ERA5 `swvl1`).",
    "UpscalingConfig.seasonal_features": "Add sin/cos of the day of year as predictors.",
    "UpscalingConfig.land_cover": "Input of MODIS MCD12Q1 land-cover tiles (reader `modis_hdf4`), "
    "optional: the static class (each MODIS tile's latest year) read through the source at each "
    "pixel centre, as one-hot `lc_<code>` predictors, one per class found at the sites' pixels "
    "(towers, chambers; listed in the model card).",
    "UpscalingConfig.land_cover_layer": "MCD12Q1 layer of the land-cover classes: `LC_Type1` "
    "(IGBP) or `LC_Type5` (plant functional types).",
    "SoilFluxConfig.kind": "Product kind.",
    "SoilFluxConfig.chambers": "Input of COSORE soil-chamber dataset folders (reader `cosore`, "
    'e.g. `paths: ["chambers/d*_*"]`): the sites (lon/lat from each description) and the '
    "targets.",
    "SoilFluxConfig.targets": "Fluxes to upscale: `soil_co2` (soil CO2 efflux, gC m-2 d-1) and "
    "`soil_ch4` (soil CH4 flux, mgCH4 m-2 d-1; negative: uptake).",
    "FluxConfig.towers": "Input of FLUXNET FULLSET tower files (reader `fluxnet`): the targets.",
    "FluxConfig.sites": "FLUXNET `SitesList.csv` with tower coordinates "
    "(default: the one beside the tower files).",
    "FluxConfig.targets": "Fluxes to upscale (gC m-2 d-1).",
    "FluxConfig.partitioning": "GPP/RECO partitioning: night-time (NT) or daytime (DT).",
    "FluxConfig.min_qc": "Smallest fraction of measured/good-quality half-hours for a day to "
    "count.",
    "FluxConfig.min_coverage": "Smallest fraction of good days for a period to count.",
    "UpscalingConfig.window": "Pixel window (1, 3 or 5) of the vi and phenology predictors: the "
    "nanmean over the window around each pixel, for the sites' pixels and the map alike.",
    "UpscalingConfig.methods": "Learners of the ensemble: random forest, histogram gradient "
    "boosting, LightGBM.",
    "UpscalingConfig.method_params": "Hyperparameters per learner, overriding the defaults, e.g. "
    "`{rf: {n_estimators: 100, min_samples_leaf: 5}}`; names as in scikit-learn / LightGBM. "
    "The model card records the hyperparameters used.",
    "UpscalingConfig.cv": "Validation: leave-one-site-out or site-grouped k-fold.",
    "UpscalingConfig.seed": "Random seed of the folds and learners.",
}


def _one_line(text: str) -> str:
    return " ".join(text.replace("``", "`").split())


def _section(name: str, schema: dict, cls) -> list[str]:
    comments = _field_comments(cls)
    required = set(schema.get("required", []))
    kind = schema.get("properties", {}).get("kind", {}).get("const")
    title = {
        "Workflow": "Top level",
        "DaskSettings": "`dask`",
        "Input": "`inputs.<name>`",
    }.get(name, f"`{name.lower()}`")
    if kind:
        title = f"`products.<name>` of kind `{kind}`"
    lines = [f"## {title} {{#{name.lower()}}}", "", _one_line(schema.get("description", "")), ""]
    lines += ["| key | type | default | description |", "|---|---|---|---|"]
    for key, prop in schema.get("properties", {}).items():
        typ = _type(prop)
        if prop.get("type") in ("array", "object") and _limits(prop) and "$ref" not in prop:
            typ = f"{typ}; {_limits(prop)}"
        desc = prop.get("description") or comments.get(key) or _note(cls, key)
        if not desc:
            raise ValueError(
                f"{cls.__name__}.{key} has no description: add a trailing comment in "
                "the step module (or pipeline/schema.py) or an entry in FIELD_NOTES of "
                "docs/hooks/reference.py"
            )
        lines.append(
            f"| `{key}` | {typ} | {_default(key, prop, required)} | {_one_line(desc)} |".replace(
                "\n", " "
            )
        )
    return lines + [""]


def workflow_reference() -> str:
    """Markdown for every model of the workflow schema, top level first."""
    from fluxscape.pipeline.config import Workflow
    from fluxscape.pipeline.schema import REGION_PRESETS

    schema = Workflow.model_json_schema()
    models = _models()
    defs = schema["$defs"]
    kinds = dict(
        sorted(
            schema["properties"]["products"]["additionalProperties"]["discriminator"][
                "mapping"
            ].items()
        )
    )
    out = [
        "# Workflow file reference",
        "",
        "<!-- generated by docs/hooks/reference.py from "
        "fluxscape.pipeline.config.Workflow.model_json_schema(); do not edit: rerun "
        "`python docs/hooks/reference.py` -->",
        "",
        "Generated from the workflow schema (`fluxscape.pipeline.config.Workflow`); the docs "
        "build and the tests check that it is current. Unknown keys are errors; see "
        "[Writing a workflow](workflow.md) for how the pieces fit together.",
        "",
        "Product kinds (`products.<name>.kind`): "
        + ", ".join(f"[`{k}`](#{ref.rsplit('/', 1)[-1].lower()})" for k, ref in kinds.items())
        + ".",
        "",
        "Region presets (`region.preset`): "
        + ", ".join(f"`{k}` {list(v)}" for k, v in REGION_PRESETS.items())
        + ".",
        "",
    ]
    out += _section("Workflow", schema, Workflow)
    order = ["Region", "Period", "Input", "Output", "DaskSettings"]
    order += [n for n in defs if n not in order]
    for name in order:
        out += _section(name, defs[name], models[name])
    out += _demo_with_defaults()
    return "\n".join(out)


def _demo_with_defaults() -> list[str]:
    """``workflows/demo.yaml`` as the program sees it: every default filled in."""
    from fluxscape.pipeline.config import parse_workflow, workflow_yaml

    demo = Path(__file__).resolve().parents[2] / "workflows" / "demo.yaml"
    wf = parse_workflow(demo.read_text(), str(demo))
    return [
        "## Example: the demo workflow with every default",
        "",
        "`workflows/demo.yaml` after validation, every key present (what `OUT/workflow.yaml` "
        "holds before paths are made absolute):",
        "",
        "```yaml",
        workflow_yaml(wf).rstrip(),
        "```",
        "",
    ]


def readers_markdown() -> str:
    """One section per registered reader: name, description and accepted file names."""
    from fluxscape.readers.registry import readers

    out = []
    for name, spec in sorted(readers().items()):
        out += [f"### `{name}`", "", _one_line(spec.description) or "(no description)", ""]
        if spec.capabilities:
            gives = ", ".join(f"`{c}`" for c in sorted(spec.capabilities))
            many = " Seen many times a day (geostationary)." if spec.many_per_day else ""
            out += [f"Gives: {gives}.{many}", ""]
        out += ["Accepted file names (regular expressions on the base name):", ""]
        out += [f"- `{p}`" for p in spec.patterns] + [""]
    return "\n".join(out)


def reference_path() -> Path:
    """The committed reference page, ``docs/workflow-reference.md``."""
    return Path(__file__).resolve().parents[1] / REFERENCE


def stale_reference() -> str | None:
    """Why the committed reference differs from the schema's (None when it is current)."""
    path = reference_path()
    if not path.exists():
        return f"{path} is missing"
    if path.read_text() != workflow_reference() + "\n":
        return f"{path} is stale"
    return None


def on_files(files, config):
    """Refuse to build from a reference page that does not match the workflow schema."""
    problem = stale_reference()
    if problem:
        raise ValueError(f"{problem}: run python docs/hooks/reference.py")
    return files


def on_page_markdown(markdown, page, config, files):
    if READERS_MARKER in markdown:
        markdown = markdown.replace(READERS_MARKER, readers_markdown())
    return markdown


if __name__ == "__main__":
    reference_path().write_text(workflow_reference() + "\n")
    print(f"wrote {reference_path()}")
