"""Product steps of the pipeline, one module per product kind."""

from __future__ import annotations

from types import ModuleType

from fluxscape.pipeline.steps import disturbance, flux, gosat_l3, lst, phenology, vi

STEPS: dict[str, ModuleType] = {
    "vi": vi,
    "gosat_l3": gosat_l3,
    "phenology": phenology,
    "disturbance": disturbance,
    "flux": flux,
    "lst": lst,
}


def step_for(kind: str) -> ModuleType:
    """The step module of a product kind."""
    return STEPS[kind]
