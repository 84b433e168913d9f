"""Data access levels shared by workflows, product stores, the catalog and the server.

The flux networks share some tower data only inside the partnership before it is public, so
every input and every product carries one of three levels, from least to most restrictive:
``public`` < ``partners`` < ``restricted``. A derived product is at least as restricted as
anything it was made from (:func:`most_restrictive`).
"""

from __future__ import annotations

from typing import Literal

AccessLevel = Literal["public", "partners", "restricted"]
LEVELS: tuple[str, ...] = ("public", "partners", "restricted")
DEFAULT_LEVEL = "public"


def check_level(level: str, where: str = "access") -> str:
    """Return ``level`` if it is a known access level, else raise ValueError naming ``where``."""
    if level not in LEVELS:
        raise ValueError(f"{where}: unknown access level {level!r}; known: {list(LEVELS)}")
    return level


def most_restrictive(*levels: str | None) -> str:
    """The most restrictive of the given levels (``None`` counts as public)."""
    known = [check_level(lv) for lv in levels if lv is not None]
    return max(known, key=LEVELS.index, default=DEFAULT_LEVEL)


def readable_levels(granted: str) -> list[str]:
    """The levels a client granted ``granted`` may read: that level and every lower one."""
    return list(LEVELS[: LEVELS.index(check_level(granted)) + 1])
