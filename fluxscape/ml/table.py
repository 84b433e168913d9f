"""The training table: predictors at the towers joined to the towers' own fluxes.

One row per (site, time step) with the feature columns, the target columns and the target
coverage. Rows whose target is missing (too few good-quality days in the step) are kept with
NaN targets: each model drops them for its own target, so a missing NEE does not remove a
valid GPP.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from fluxscape.errors import FluxscapeError

#: Tower quantities that must never be predictors of a flux model (they are, or derive from,
#: the tower's own fluxes): carbon, energy and water fluxes and their QC / partitioned forms.
_FLUX_NAME = re.compile(r"^(gpp|nee|reco|fch4|le|h|g|et|nep|ter)(_|$)", re.IGNORECASE)


def check_no_leakage(features: Sequence[str]) -> None:
    """FluxscapeError when a feature name is a tower flux (GPP, NEE, RECO, FCH4, LE, H...)."""
    leaked = [f for f in features if _FLUX_NAME.match(f)]
    if leaked:
        raise FluxscapeError(
            f"predictors {leaked} are tower fluxes; a flux model must not see its targets"
        )


def training_table(
    predictors: pd.DataFrame, targets: pd.DataFrame, features: Sequence[str], names: Sequence[str]
) -> pd.DataFrame:
    """Join ``predictors`` (index (site, time), columns ``features``) and ``targets`` (index
    (site, time), columns ``names``, gC m-2 d-1) into one table with columns site, time,
    features..., targets...; rows lacking any feature are dropped, missing targets stay NaN."""
    check_no_leakage(features)
    missing = [f for f in features if f not in predictors.columns]
    if missing:
        raise FluxscapeError(f"predictors {missing} were not extracted at the towers")
    table = predictors[list(features)].join(targets[list(names)], how="inner")
    table = table.dropna(subset=list(features))
    table = table[table[list(names)].notna().any(axis=1)]
    return table.reset_index()
