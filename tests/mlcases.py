"""Shared synthetic cases for the fluxscape.ml tests (not a test module)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SMALL = {"rf": {"n_estimators": 20}, "hgb": {"max_iter": 40}, "lgbm": {"n_estimators": 40}}


def sites_table(n_sites=6, n=60, seed=0) -> pd.DataFrame:
    """Rows of several sites; gpp = 2 + 0.3*TA + 0.01*SW - 0.2*VPD + noise (sd 0.2)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sites):
        ta = rng.uniform(-5, 25, n)
        sw = rng.uniform(20, 300, n)
        vpd = rng.uniform(0, 15, n)
        gpp = 2 + 0.3 * ta + 0.01 * sw - 0.2 * vpd + rng.normal(0, 0.2, n)
        rows.append(pd.DataFrame({"site": f"S{s}", "TA_F": ta, "SW_IN_F": sw, "VPD_F": vpd,
                                  "gpp": gpp, "reco": 1 + 0.1 * ta}))
    return pd.concat(rows, ignore_index=True)


FEATS = ["TA_F", "SW_IN_F", "VPD_F"]
