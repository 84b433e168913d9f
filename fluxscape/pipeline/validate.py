"""``fluxscape validate``: a dry run. Everything a run checks before its first tile, and the
plan it would follow, without writing anything.

Checks: the workflow (keys, names, references, CRS, bounds), every input glob, the budget
(tiles, time steps, bytes, memory per tile), the output folder, every input file's header
through its reader (unreadable files are reported as the run would skip them), each step's
own checks (e.g. the flux product's tower site list), and what ``--resume`` would do with
each product already in the output folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline import config as cfg
from fluxscape.pipeline.archive import pool_map
from fluxscape.pipeline.budget import estimate
from fluxscape.pipeline.inputs import expand_paths
from fluxscape.pipeline.outdir import check_output_dir
from fluxscape.pipeline.outstore import Outputs
from fluxscape.pipeline.run import index_inputs, make_context, prepare, resume_action
from fluxscape.pipeline.schema import input_names, product_names
from fluxscape.pipeline.steps import step_for


@dataclass
class ProductPlan:
    """One product of the plan: kind, tiles, the inputs and products it reads, the files of
    its inputs (readable, skipped, of other kinds) and what ``--resume`` would do."""

    name: str
    kind: str
    tiles: int
    grid: str
    inputs: list[str]
    sources: list[str]
    files: int
    skipped: list[dict] = field(default_factory=list)
    resume: str = ""
    why: str = ""


@dataclass
class RunPlan:
    """The whole plan: workflow, output folder, budget summary, products in run order."""

    workflow: str
    out: str
    budget: str
    products: list[ProductPlan]

    def to_json(self) -> dict:
        return asdict(self)


def validate_workflow(
    workflow_path: str | Path,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> RunPlan:
    """The plan of ``fluxscape run WORKFLOW`` (see the module doc), or the first problem as a
    FluxscapeError naming the key or file. Writes nothing."""
    wf = prepare(workflow_path, out, data_dir)  # checks the budget too
    budget = estimate(wf)
    outputs = Outputs.of(wf.output.dir)  # on object storage: its state is read from the bucket
    out_dir = (
        outputs.out_dir
        if outputs.remote
        else check_output_dir(Path(wf.output.dir), [Path(wf.data_dir)])
    )
    names = {i for p in wf.products.values() for i in input_names(p)}
    index = index_inputs(wf, names, out_dir, pool_map, write_cache=False)
    plans = []
    for name in cfg.run_order(wf.products):
        product = wf.products[name]
        ctx = make_context(wf, out_dir, name, index)
        step_for(product.kind).check(ctx)
        names = input_names(product)
        files = sum(
            len(index[i].files) if i in index else len(expand_paths(wf.inputs[i].paths))
            for i in names
        )
        skipped = [
            {"input": i, "file": s.path, "reason": s.reason}
            for i in names
            if i in index
            for s in index[i].skipped
        ]
        share = len(skipped) / files if files else 0.0
        if share > wf.max_skipped_share:
            raise FluxscapeError(
                f"products.{name}: {len(skipped)} of {files} input file(s) cannot be read, "
                f"more than max_skipped_share {wf.max_skipped_share:g} (first: "
                f"{skipped[0]['file']}: {skipped[0]['reason']})"
            )
        action, why = resume_action(wf, out_dir, name)
        box = ctx.grid.geobox
        plans.append(
            ProductPlan(
                name=name,
                kind=product.kind,
                tiles=len(ctx.grid.tiles),
                grid=f"{box.shape.y} x {box.shape.x} pixels, {box.crs}",
                inputs=sorted(names),
                sources=sorted(set(product_names(product)) - {name}),
                files=files,
                skipped=skipped,
                resume=action,
                why=why,
            )
        )
    return RunPlan(str(workflow_path), str(out_dir), budget.summary(), plans)


def format_plan(plan: RunPlan) -> str:
    """The plan as text for the terminal."""
    lines = [f"{plan.workflow}: valid", f"output: {plan.out}", f"budget: {plan.budget}"]
    for p in plan.products:
        reads = ", ".join([*(f"input {i}" for i in p.inputs), *(f"product {s}" for s in p.sources)])
        lines.append(
            f"- {p.name} ({p.kind}): {p.tiles} tile(s) on {p.grid}; reads {reads or 'nothing'}"
            f"; {p.files} file(s)"
            + (
                f", {len(p.skipped)} unreadable (first: {p.skipped[0]['file']})"
                if p.skipped
                else ""
            )
        )
        lines.append(f"    --resume would {p.resume} it: {p.why}")
    return "\n".join(lines)
