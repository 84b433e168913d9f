"""The vi step's compositing rule, shared by its two paths: observations read from an input's
files (one scene at a time) and daily values read from another vi product's store.

An observation is a dict of (y, x) arrays on one tile: the float variables a composite carries
over from the observation it picks (the indices, ``doy`` and, for AHI, ``solar_time`` and
``sza``), ``reliability`` (int: -1 no observation, 0 good, 1 marginal, 2 snow/ice, 3 cloudy)
and ``usable`` (bool). :class:`Compositor` collects them per period and applies the rule of
:mod:`fluxscape.products.composite`:

* ``max_ndvi``, ``nearest_time``: the pick from a pair of observations is the pick from all of
  them (ties go to the earlier one), so only the best-so-far observation of each period is
  kept (memory: one observation per period, whatever the number of scenes);
* ``median``: the QA-weighted median needs every observation of the period (kept until the
  end).

The composite carries the picked observation's values and reliability; where nothing is usable
it holds no values and the best reliability seen (``qa`` 255 where nothing was observed).
"""

from __future__ import annotations

import numpy as np

from fluxscape.products import composite

RULES = ("max_ndvi", "median", "nearest_time")


class Compositor:
    """Per-period composites of one tile's observations by one rule.

    ``n_periods`` periods of ``shape`` (y, x); ``carried``: the float variables taken from
    the picked observation (must include ``ndvi``, and ``solar_time`` for ``nearest_time``);
    ``solar_time``: the local solar hour ``nearest_time`` aims at."""

    def __init__(self, n_periods: int, shape: tuple[int, int], carried, rule: str, solar_time=12.0):
        if rule not in RULES:
            raise ValueError(f"unknown composite rule {rule!r}; known: {RULES}")
        self.n, self.shape, self.carried = n_periods, shape, tuple(carried)
        self.rule, self.solar_time = rule, float(solar_time)
        self._best: dict[int, dict] = {}
        self._stacks: dict[int, list[dict]] = {}

    def add(self, t: int, obs: dict) -> None:
        """Add observation ``obs`` to period ``t``."""
        if self.rule == "median":
            self._stacks.setdefault(t, []).append(obs)
            return
        prev = self._best.get(t)
        self._best[t] = self._select([obs] if prev is None else [prev, obs])

    def _select(self, stack: list[dict]) -> dict:
        """The composite of ``stack`` (in time order) as one observation."""
        ndvi = np.stack([o["ndvi"] for o in stack])
        rel = np.stack([np.asarray(o["reliability"]) for o in stack])
        usable = np.stack([o["usable"] for o in stack]) & np.isfinite(ndvi)
        if self.rule == "median":
            index, found = composite.weighted_median_index(ndvi, composite.qa_weights(rel, usable))
        elif self.rule == "nearest_time":
            hours = np.stack([o["solar_time"] for o in stack])
            index, found = composite.nearest_time_index(hours, self.solar_time, usable)
        else:
            index, found = composite.max_ndvi_index(ndvi, usable)

        def pick(a: np.ndarray) -> np.ndarray:
            return np.take_along_axis(a, index[None], axis=0)[0]

        out = {
            name: np.where(found, pick(np.stack([o[name] for o in stack])), np.nan).astype(
                np.float32
            )
            for name in self.carried
        }
        seen = np.where(rel >= 0, rel, 255).min(axis=0)
        out["reliability"] = np.where(found, pick(rel), np.where(seen == 255, -1, seen))
        out["usable"] = found
        return out

    def result(self) -> dict[str, np.ndarray]:
        """(period, y, x) arrays: each carried variable (float32, NaN where nothing usable)
        and ``qa`` (uint8: the picked observation's reliability 0-3, else the best one seen,
        255 where nothing was observed)."""
        shape = (self.n, *self.shape)
        out = {name: np.full(shape, np.nan, np.float32) for name in self.carried}
        qa = np.full(shape, 255, np.uint8)
        picks = dict(self._best)
        picks.update({t: self._select(stack) for t, stack in self._stacks.items()})
        for t, obs in picks.items():
            for name in self.carried:
                out[name][t] = obs[name]
            rel = obs["reliability"]
            qa[t] = np.where(rel >= 0, np.clip(rel, 0, 3), 255).astype(np.uint8)
        out["qa"] = qa
        return out
