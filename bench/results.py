"""Shared by the benchmarks: replace one ``## Heading`` section of bench/RESULTS.md."""

from __future__ import annotations

import re
from pathlib import Path


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace the ``## <heading>`` section of ``path`` (up to the next ``## ``) by
    ``section``, or append it; the other sections are left as they are."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip() + "\n\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + ("\n\n" if text else "") + section
    path.write_text(text)
