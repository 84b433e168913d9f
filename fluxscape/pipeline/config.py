"""The workflow file (DESIGN section 4): schema, validation and resolution.

A workflow is validated completely before any work starts. Unknown keys and wrong types are
errors naming the key (``region.bbox: ...``); an input glob that matches no file is an error
naming the input. :func:`resolve_workflow` fills defaults and makes every path absolute, so the
resolved YAML (written to ``OUT/workflow.yaml``) reruns anywhere with ``--resume``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, ValidationError, model_validator

from fluxscape.access import AccessLevel, most_restrictive
from fluxscape.errors import WorkflowError
from fluxscape.pipeline import recipes, remote
from fluxscape.pipeline.schema import (
    DaskSettings,
    Input,
    Limits,
    Output,
    Period,
    Provenance,
    Region,
    StrictModel,
    input_names,
    product_names,
    references,
)


def _product_union():
    """The product models of the registered steps as one union discriminated by ``kind``."""
    from functools import reduce
    from operator import or_

    from fluxscape.pipeline.steps import STEPS

    return Annotated[reduce(or_, [s.Config for s in STEPS.values()]), Field(discriminator="kind")]


Product = _product_union()


#: Names of the workflow, its inputs and products: they become file and folder names in OUT.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


def run_order(products: dict) -> list[str]:
    """Product names in the order they must run: each after the products its typed
    references name (a 16-day vi made from a daily vi runs after it, phenology after that;
    an lst product before the disturbance product that reads it); otherwise in the order
    given. A cycle is reported by the workflow's validation."""
    order: list[str] = []
    pending = list(products)
    while pending:
        ready = [
            n for n in pending if all(r in order for r in product_names(products[n]) if r != n)
        ]
        nxt = ready[0] if ready else pending[0]
        order.append(nxt)
        pending.remove(nxt)
    return order


class Workflow(StrictModel):
    """A complete workflow file."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    region: Region
    tile_size: Annotated[int, Field(ge=8, le=4096)] = 256
    period: Period
    data_dir: str = "."
    inputs: dict[str, Input] = Field(min_length=1)
    products: dict[str, Product] = Field(min_length=1)
    output: Output = Output()
    provenance: Provenance = Provenance()  # what stores record of their input files
    dask: DaskSettings = DaskSettings()
    access: AccessLevel = "public"  # floor for every product (fluxscape.access)
    # a product fails (instead of publishing) when more than this share of its inputs were
    # skipped as unreadable; `fluxscape run --allow-partial` publishes it marked partial
    max_skipped_share: Annotated[float, Field(ge=0, le=1)] = 0.5  # skipped share that fails
    limits: Limits = Limits()  # what one run may ask for (tiles, time steps, bytes, memory)

    @model_validator(mode="after")
    def _names(self) -> Workflow:
        """Input and product names become file and folder names under OUT: letters, digits,
        ``_`` and ``-`` only, so none can lead out of it (``../x``, ``/x``, ``a/b``)."""
        for section in ("inputs", "products"):
            for key in getattr(self, section):
                if not re.fullmatch(NAME_PATTERN, key):
                    raise ValueError(
                        f"{section}.{key}: a name may hold only letters, digits, '_' and '-' "
                        f"(at most 64, starting with a letter or digit); it names files in OUT"
                    )
        return self

    @model_validator(mode="after")
    def _references(self) -> Workflow:
        """Every typed reference names an existing input whose source gives what the field
        needs, or an existing product of an accepted kind; no product reads itself or a
        product that (indirectly) reads it."""
        from fluxscape.readers.registry import get_reader, sources_giving

        for name, product in self.products.items():
            for ref in references(product):
                key = f"products.{name}.{ref.field}"
                for target in ref.names:
                    if ref.to_input:
                        if target not in self.inputs:
                            raise ValueError(
                                f"{key}: {target!r} is not one of the inputs {sorted(self.inputs)}"
                            )
                        reader = self.inputs[target].reader
                        if not ref.marker.accepts(get_reader(reader).capabilities):
                            alts = " or ".join("+".join(sorted(a)) for a in ref.marker.gives)
                            able = sorted({s for a in ref.marker.gives for s in sources_giving(*a)})
                            what = f" ({ref.marker.what})" if ref.marker.what else ""
                            raise ValueError(
                                f"{key}: input {target!r} (reader {reader}) gives no {alts}"
                                f"{what}; readers that do: {', '.join(able)}"
                            )
                        continue
                    kind = getattr(self.products.get(target), "kind", None)
                    if target == name or kind not in ref.marker.kinds:
                        accepted = "/".join(ref.marker.kinds)
                        known = [k for k, v in self.products.items() if v.kind in ref.marker.kinds]
                        article = "an" if accepted[0] in "aefhilmnorsx" else "a"  # "an lst"
                        raise ValueError(
                            f"{key}: {target!r} is not {article} {accepted} product of this "
                            f"workflow ({accepted} products: {known})"
                        )
        _check_cycles(self.products)
        return self

    @model_validator(mode="after")
    def _step_checks(self) -> Workflow:
        from fluxscape.pipeline.steps import step_for

        for name, product in self.products.items():
            step_for(product.kind).validate(self, name, product)
        return self


def _check_cycles(products: dict) -> None:
    """ValueError naming a product that reads itself through other products."""

    def reaches(start: str, goal: str, seen: frozenset) -> bool:
        for ref in product_names(products[start]):
            if ref == goal or (ref not in seen and reaches(ref, goal, seen | {ref})):
                return True
        return False

    for name in products:
        if reaches(name, name, frozenset({name})):
            raise ValueError(f"products.{name}: reads its own store through other products")


def _known_keys() -> set[str]:
    from fluxscape.pipeline.steps import STEPS

    models = [Workflow, Region, Period, Input, Output, Provenance, DaskSettings, Limits]
    models += [s.Config for s in STEPS.values()]
    return {key for model in models for key in model.model_fields}


def _suggest(key: str) -> str:
    """``; did you mean 'x'?`` for a misspelt key (difflib), else ''."""
    import difflib

    close = difflib.get_close_matches(key, sorted(_known_keys()), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def _product_kinds() -> set[str]:
    """The ``kind`` tags of the product union (``vi``, ``phenology``, ...)."""
    from fluxscape.pipeline.steps import STEPS

    return set(STEPS)


def _key_text(key: object) -> str:
    """A key of a location as written in messages: quoted when it is not a plain name (a
    key with spaces, dots or control characters stays readable on one line)."""
    text = str(key)
    plain = text.isprintable() and text and not any(c in text for c in " .:'\"")
    return text if plain else repr(text)


#: Member types pydantic appends to the location of a value that fits no type of a union.
_UNION_MEMBERS = {"int", "float", "str", "bool", "none"}


def _format_error(source: str, exc: ValidationError) -> str:
    err = exc.errors()[0]
    parts = list(err["loc"])
    if len(parts) >= 4 and parts[0] == "products" and parts[2] in _product_kinds():
        del parts[2]  # pydantic puts the discriminated union's tag into the location
    if len(parts) > 1 and parts[-1] in _UNION_MEMBERS:
        del parts[-1]  # ... and a plain union's member type (method_params values)
    loc = ".".join(_key_text(p) for p in parts)
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key" + _suggest(str(err["loc"][-1]))
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "union_tag_not_found":
        loc, msg = f"{loc}.kind", "required key is missing (the product kind)"
    elif err["type"] == "union_tag_invalid":
        ctx = err.get("ctx", {})
        loc = f"{loc}.kind"
        msg = f"unknown product kind {ctx.get('tag')!r}; known: {ctx.get('expected_tags')}"
    elif err["type"] == "finite_number":
        msg = f"must be a finite number, not {err['input']}"
    msg = msg.removeprefix("Value error, ")
    where = f"{loc}: " if loc else ""
    more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return f"{source}: {where}{msg}{more}".replace("\n", "\\n")


def parse_workflow(text: str, source: str = "<workflow>") -> Workflow:
    """Validate workflow YAML text; WorkflowError with one line naming the key otherwise."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WorkflowError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    except RecursionError:
        raise WorkflowError(f"{source}: not valid YAML (nested too deeply)") from None
    if not isinstance(raw, dict):
        found = "it is empty" if raw is None else f"its top level is a {_yaml_type(raw)}"
        raise WorkflowError(
            f"{source}: not a YAML workflow file ({found}; a workflow is a mapping of keys: "
            "name, region, period, inputs, products, ...)"
        )
    try:
        return Workflow.model_validate(raw)
    except ValidationError as exc:
        raise WorkflowError(_format_error(source, exc)) from None


def _yaml_type(value: object) -> str:
    """How YAML calls the type of a parsed value: list, string, number, ..."""
    names = {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}
    return names.get(type(value), type(value).__name__)


#: Leading bytes of binary formats a workflow path may point at by mistake.
_MAGIC = {
    b"\x1f\x8b": "gzip data",
    b"\x89PNG": "a PNG image",
    b"\x89HDF": "an HDF5 file",
    b"PK\x03\x04": "a zip archive",
    b"\x0e\x03\x13\x01": "an HDF4 file",
    b"CDF\x01": "a NetCDF file",
    b"CDF\x02": "a NetCDF file",
    b"%PDF": "a PDF document",
    **{b"\x80" + bytes([protocol]): "a Python pickle" for protocol in (2, 3, 4, 5)},
}


def read_workflow_text(path: Path) -> str:
    """The text of a workflow file; WorkflowError naming the file when it cannot be read or
    holds binary data (what it looks like, when known) rather than UTF-8 text."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WorkflowError(f"{path}: cannot read the workflow file ({exc.strerror})") from None
    kind = next((what for magic, what in _MAGIC.items() if data.startswith(magic)), None)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if kind is not None or text is None or "\x00" in text:
        what = kind or "binary data, not UTF-8 text"
        raise WorkflowError(f"{path}: not a YAML workflow file ({what})")
    return text


def load_workflow(path: str | Path) -> tuple[Workflow, Path]:
    """Read and validate a workflow file; returns the workflow and the base folder of its
    relative paths (the file's folder).

    A bare name that is no file, such as ``gosat-xco2.yaml`` or ``gosat-xco2``, is the recipe
    of that name shipped with fluxscape (:mod:`fluxscape.pipeline.recipes`); its relative paths
    start where they would in a clone, in ``./workflows`` (``data_dir: ../demo-out/sample`` is
    ``./demo-out/sample``). A file of that name in the current folder takes precedence."""
    path = Path(path)
    if path.is_file():
        return parse_workflow(read_workflow_text(path), str(path)), path.resolve().parent
    if path.is_dir():
        raise WorkflowError(f"{path}: is a folder, not a workflow file")
    shipped = recipes.shipped_recipe(str(path))
    if shipped is not None:
        base = Path.cwd().resolve() / recipes.RECIPE_BASE
        return parse_workflow(shipped.read_text(), str(shipped)), base
    names = recipes.recipe_names()
    hint = (
        f"; hint: the recipes shipped with fluxscape run by name ({', '.join(names)}), "
        f"copies in {recipes.recipes_folder()}"
        if names
        else ""
    )
    raise WorkflowError(f"{path}: workflow file not found{hint}")


def resolve_workflow(
    wf: Workflow, base: Path, out: str | Path | None = None, data_dir: str | Path | None = None
) -> Workflow:
    """Make every path absolute (``data_dir`` and ``output.dir`` relative to ``base``, input
    globs relative to ``data_dir``), apply overrides and check each glob matches a file."""
    given = str(data_dir) if data_dir is not None else wf.data_dir
    if remote.is_url(given):  # object storage (s3://bucket/prefix): globs are URLs under it
        data: Path | str = given.rstrip("/")
    else:
        data = (Path(given) if data_dir is not None else base / wf.data_dir).resolve()
    given_out = str(out) if out is not None else wf.output.dir
    if remote.is_url(given_out):  # object storage: stores and state under the URL's prefix
        out_dir: Path | str = given_out.rstrip("/")
    else:
        out_dir = (Path(out) if out is not None else base / wf.output.dir).resolve()
    inputs = {}
    for name, inp in wf.inputs.items():
        patterns = [_input_glob(data, p) for p in inp.paths]
        for pattern in patterns:
            if remote.is_url(pattern):
                try:
                    found = remote.expand(pattern)
                except remote.RemoteError as exc:
                    raise WorkflowError(f"inputs.{name}.paths: {exc}") from None
            else:
                found = glob.glob(pattern)
            if not found:
                raise WorkflowError(f"inputs.{name}.paths: {pattern!r} matches no file")
        inputs[name] = inp.model_copy(update={"paths": patterns})
    products = {}
    for name, prod in wf.products.items():
        for key in ("sites", "regions"):
            if getattr(prod, key, None):
                path = _data_file(data, getattr(prod, key), f"products.{name}.{key}")
                prod = prod.model_copy(update={key: path})
        products[name] = prod
    region = wf.region
    if region.preset is not None:
        region = region.model_copy(update={"bbox": region.lonlat_bbox})
    if region.polygon:
        polygon = _data_file(data, region.polygon, "region.polygon")
        region = region.model_copy(update={"polygon": polygon})
    return wf.model_copy(
        update={
            "data_dir": str(data),
            "inputs": inputs,
            "products": products,
            "region": region,
            "output": wf.output.model_copy(update={"dir": str(out_dir)}),
        }
    )


def _input_glob(data: Path | str, pattern: str) -> str:
    """An input glob made absolute: a URL or absolute path as is, else under ``data_dir``
    (a folder or a URL)."""
    if remote.is_url(pattern) or Path(pattern).is_absolute():
        return pattern
    if isinstance(data, str):
        return remote.join(data, pattern)
    return str(data / pattern)


def _data_file(data: Path | str, value: str, key: str) -> str:
    """The absolute path of a file named in the workflow (relative to ``data_dir``), or its
    URL (a URL, or relative to a URL ``data_dir``: read through the staged copies of
    :func:`remote.local` like every URL input); WorkflowError naming ``key`` when there is no
    such file or object."""
    if remote.is_url(value) or isinstance(data, str) and not Path(value).is_absolute():
        where = value if remote.is_url(value) else remote.join(str(data), value)
        try:
            remote.check_object(where)
        except remote.RemoteError as exc:
            raise WorkflowError(f"{key}: {exc}") from None
        return where
    path = Path(value) if Path(value).is_absolute() else data / value
    if not path.is_file():
        raise WorkflowError(f"{key}: {path} not found")
    return str(path)


def workflow_yaml(wf: Workflow) -> str:
    """The workflow as YAML text (every field, defaults included)."""
    return yaml.safe_dump(json.loads(wf.model_dump_json()), sort_keys=False)


def workflow_hash(wf: Workflow) -> str:
    """A digest of what determines the products (everything but Dask and output settings)."""
    # Access levels say who may read a product, not what it holds: reclassifying one
    # republishes the catalog entry without recomputing the store.
    skip = dict.fromkeys(
        ("dask", "output", "description", "access", "max_skipped_share", "limits"), True
    )
    exclude = skip | {"inputs": {"__all__": {"access"}}}
    payload = json.loads(wf.model_dump_json(exclude=exclude))
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def product_hash(wf: Workflow, name: str) -> str:
    """A digest of what determines product ``name``'s store: the region, tile size and
    period, the product's own settings, the inputs it names (reader and resolved paths) and
    the digests of the products it reads. Changing another product, Dask, output or access
    settings leaves it unchanged, so ``--resume`` keeps the store (DESIGN's one workflow
    digest is :func:`workflow_hash`, still recorded as provenance)."""
    product = wf.products[name]

    def dump(model, **kw) -> dict:
        # keys left at their defaults are left out: a release that adds a key (with a default
        # that keeps today's behaviour) does not change the digest of every existing store
        return json.loads(model.model_dump_json(exclude_defaults=True, **kw))

    payload = {
        "region": dump(wf.region),
        "tile_size": wf.tile_size,
        "period": dump(wf.period),
        # how tiles are predicted (compiled or reference model) does not change the values
        "product": dump(product, exclude={"inference"}),
        "inputs": {i: dump(wf.inputs[i], exclude={"access"}) for i in input_names(product)},
        "sources": {p: product_hash(wf, p) for p in product_names(product) if p != name},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# --- access levels ----------------------------------------------------------------------------


def product_inputs(wf: Workflow, name: str, _seen: frozenset = frozenset()) -> list[str]:
    """Names of the inputs product ``name`` is made from: those its typed input references
    name and, recursively, those of the products its product references name. Sorted."""
    product = wf.products[name]
    found = set(input_names(product))
    for ref in product_names(product):
        if ref != name and ref not in _seen:
            found.update(product_inputs(wf, ref, _seen | {name}))
    return sorted(found)


def catalog_dir(wf: Workflow, out_dir: Path) -> Path:
    """The folder the run publishes into: ``output.catalog``, relative to ``out_dir`` unless
    absolute (``--catalog`` has already replaced it)."""
    path = Path(wf.output.catalog)
    return path if path.is_absolute() else out_dir / path


def product_access(wf: Workflow, name: str) -> str:
    """Effective access level of product ``name``: the most restrictive of the workflow's
    level and the levels of every input it is made from (:func:`product_inputs`), so a
    product trained on partner-only towers is partner-only."""
    return most_restrictive(wf.access, *(wf.inputs[i].access for i in product_inputs(wf, name)))
