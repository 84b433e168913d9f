"""Product steps of the pipeline: one module per product kind, registered here.

Each module defines a :class:`~fluxscape.pipeline.steps.base.Step` (its ``kind``, its pydantic
``Config`` and what it does) as ``STEP``. Third-party packages add kinds through the
``fluxscape.steps`` entry-point group (each entry a Step instance).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from fluxscape.pipeline.steps import (
    budget,
    disturbance,
    fire,
    flux,
    gosat_l3,
    heatwave,
    lst,
    phenology,
    soil_flux,
    vi,
)
from fluxscape.pipeline.steps.base import Step

ENTRY_POINT_GROUP = "fluxscape.steps"


def _registry() -> dict[str, Step]:
    modules = (vi, gosat_l3, phenology, disturbance, flux, soil_flux, lst, budget, fire, heatwave)
    steps = [m.STEP for m in modules]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        step = ep.load()
        if isinstance(step, Step):
            steps.append(step)
    return {step.kind: step for step in steps}


STEPS: dict[str, Step] = _registry()


def step_for(kind: str) -> Step:
    """The step of a product kind."""
    return STEPS[kind]
