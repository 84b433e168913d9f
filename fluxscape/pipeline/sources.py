"""Input files: glob expansion, skipped-input records and checksums (the per-source header
index lives in :mod:`fluxscape.pipeline.adapters`)."""

from __future__ import annotations

import glob
import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Skipped:
    """An input that could not be used, and why."""

    path: str
    reason: str

    def to_json(self) -> dict:
        return {"file": self.path, "reason": self.reason}


def expand_paths(patterns: list[str]) -> list[str]:
    """Sorted unique files matched by the glob patterns."""
    return sorted({p for pattern in patterns for p in glob.glob(pattern) if Path(p).is_file()})


def file_checksum(path: str) -> str:
    """SHA-256 of a file (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
