"""Quality-flag decoding as pure array functions (integer bit fields in, booleans out)."""

from __future__ import annotations

import numpy as np


def bits(word, first: int, last: int):
    """The unsigned value of bits ``first``..``last`` (0 = least significant) of ``word``."""
    word = np.asarray(word).astype(np.uint32)
    return (word >> first) & ((1 << (last - first + 1)) - 1)


def modis_vi_usable(vi_quality, pixel_reliability, max_reliability: int = 1):
    """MOD13 pixels to keep: pixel reliability 0..``max_reliability`` (0 good, 1 marginal,
    2 snow/ice, 3 cloudy; -1 fill) and MODLAND QA (VI Quality bits 0-1) 0 or 1 (VI produced).

    ``vi_quality`` is the uint16 'VI Quality' word, ``pixel_reliability`` the int8 rank;
    returns a boolean array of their broadcast shape."""
    rel = np.asarray(pixel_reliability)
    modland = bits(vi_quality, 0, 1)
    return (rel >= 0) & (rel <= max_reliability) & (modland <= 1)


def mod11_usable(lst, qc, max_qa: int = 0):
    """MOD11 LST pixels to keep: finite ``lst`` (K, NaN where fill) whose mandatory QA
    (``qc`` bits 0-1: 0 good, 1 other quality, 2 not produced (cloud), 3 not produced (other))
    is at most ``max_qa``. ``qc`` is the uint8 QC_Day/QC_Night word, -1 where there is no
    pixel; returns a boolean array of their broadcast shape."""
    qc = np.asarray(qc)
    mandatory = bits(np.where(qc >= 0, qc, 3), 0, 1)
    return np.isfinite(np.asarray(lst, float)) & (qc >= 0) & (mandatory <= max_qa)
