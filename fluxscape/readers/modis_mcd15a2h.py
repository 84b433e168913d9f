"""MCD15A2H / MOD15A2H / MYD15A2H 8-day 500 m LAI and FPAR: layer names and quality rules.

Follows the MODIS Collection 6 LAI/FPAR Product User's Guide (R. Myneni, Y. Knyazikhin,
T. Park; MOD15A2H/MCD15A2H, LP DAAC, 2015/2018: "FparLai_QC" and "FparExtra_QC" tables and the
fill-value legend), checked against the ``FparLai_QC_DOC``, ``FparExtra_QC_DOC`` and
``MOD15A2_FILLVALUE_DOC`` attributes that real MCD15A2H files carry.

The file is read by :func:`fluxscape.readers.modis_hdf4.open_modis_tile`: ``Lai_500m`` DN x 0.1
(m2 m-2) and ``Fpar_500m`` DN x 0.01 (fraction), valid DN 0..100; DNs 249..255 are fill
*classes* and decode to NaN (249 unclassified, 250 urban, 251 permanent wetland, 252 snow/ice,
253 barren or sparse vegetation, 254 water, 255 fill); QC words stay integers. This module
holds what is specific to the product, as pure functions of that decoded dataset (or plain
arrays).

``FparLai_QC`` (uint8, fill 255):

========  =================================================================================
bits      meaning
========  =================================================================================
0         MODLAND: 0 good quality (main algorithm with or without saturation), 1 other
          (backup algorithm or fill)
1         sensor: 0 Terra, 1 Aqua
2         dead detector: 1 dead detectors caused > 50 % adjacent detector retrieval
3-4       cloud state: 00 significant clouds not present (clear), 01 significant clouds
          present, 10 mixed clouds, 11 not defined (assumed clear)
5-7       SCF_QC: 000 main (RT) algorithm, best result; 001 main algorithm with saturation
          ("good, very usable"); 010 main failed because of geometry, empirical (backup)
          algorithm used; 011 main failed for other reasons, backup used; 100 not produced
========  =================================================================================

``FparExtra_QC`` (uint8, fill 255): bits 0-1 land/sea (00 land, 01 shore, 10 fresh water,
11 ocean), 2 snow/ice, 3 aerosol (average or high), 4 cirrus, 5 internal cloud mask, 6 cloud
shadow, 7 biome in 1..4 (grasses/cereal crops, shrubs, broadleaf crops, savannah).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from fluxscape.readers.modis_hdf4 import ModisProduct, register_product
from fluxscape.readers.qa import bits

#: Short names this module describes (Terra+Aqua combined, Terra, Aqua).
PRODUCTS = ("MCD15A2H", "MOD15A2H", "MYD15A2H")
#: HDF-EOS grid name of the files (MCD15A2H files too, as real LP DAAC files show).
GRID = "MOD_Grid_MOD15A2H"
#: Days per composite (the file name holds the first day).
COMPOSITE_DAYS = 8

#: Standard layer name -> SDS name.
SDS = {"lai": "Lai_500m", "fpar": "Fpar_500m"}
#: Quality SDS, in the order :func:`quality` takes them (``FparExtra_QC`` is optional there).
QA_SDS = ("FparLai_QC",)
EXTRA_QA_SDS = "FparExtra_QC"

QC_FILL = 255
#: Largest valid DN of Lai_500m / Fpar_500m; 249..255 are fill classes.
MAX_VALID_DN = 100
#: Fill classes of the LAI/FPAR DNs (``MOD15A2_FILLVALUE_DOC``).
FILL_CLASSES = {
    249: "unclassified",
    250: "urban/built-up",
    251: "permanent wetland",
    252: "perennial snow/ice",
    253: "barren/sparse vegetation",
    254: "water",
    255: "fill",
}

#: Pixel reliability ranks of :func:`quality` (the MOD13 ``pixel_reliability`` meanings).
RELIABILITY = {-1: "no observation", 0: "good", 1: "marginal", 2: "snow/ice", 3: "cloudy"}

#: SCF_QC codes (bits 5-7).
SCF_MAIN, SCF_MAIN_SATURATED, SCF_BACKUP_GEOMETRY, SCF_BACKUP_OTHER, SCF_NOT_PRODUCED = range(5)
#: Cloud state codes (bits 3-4).
CLOUD_CLEAR, CLOUD_SIGNIFICANT, CLOUD_MIXED, CLOUD_NOT_SET = range(4)



def qc_flags(qc) -> dict[str, np.ndarray]:
    """The fields of ``FparLai_QC`` words: ``modland`` (0/1), ``sensor`` (0 Terra, 1 Aqua),
    ``dead_detector`` (bool), ``cloud`` (0-3), ``scf`` (0-4) and ``fill`` (bool)."""
    qc = np.asarray(qc)
    return {
        "modland": bits(qc, 0, 0),
        "sensor": bits(qc, 1, 1),
        "dead_detector": bits(qc, 2, 2) == 1,
        "cloud": bits(qc, 3, 4),
        "scf": bits(qc, 5, 7),
        "fill": qc.astype(np.int64) == QC_FILL,
    }


def extra_flags(extra) -> dict[str, np.ndarray]:
    """The fields of ``FparExtra_QC`` words: ``land_sea`` (0-3) and the bool flags ``snow``,
    ``aerosol``, ``cirrus``, ``internal_cloud``, ``shadow``, ``biome_1_4``, ``fill``."""
    extra = np.asarray(extra)
    return {
        "land_sea": bits(extra, 0, 1),
        "snow": bits(extra, 2, 2) == 1,
        "aerosol": bits(extra, 3, 3) == 1,
        "cirrus": bits(extra, 4, 4) == 1,
        "internal_cloud": bits(extra, 5, 5) == 1,
        "shadow": bits(extra, 6, 6) == 1,
        "biome_1_4": bits(extra, 7, 7) == 1,
        "fill": extra.astype(np.int64) == QC_FILL,
    }


def no_value(values) -> np.ndarray:
    """True where an LAI/FPAR layer holds no retrieval: NaN in decoded (float) values, or a
    DN above 100 (fill classes 249..255) in stored integer values."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return ~np.isfinite(values)
    return values.astype(np.int64) > MAX_VALID_DN


def quality(qc, lai, max_reliability: int = 1, extra=None) -> tuple[np.ndarray, np.ndarray]:
    """Pixel reliability (int8) and usability (bool) from ``FparLai_QC`` words and the LAI
    layer (decoded float with NaN fill, or stored DNs), optionally ``FparExtra_QC`` words.

    Reliability, the first rule that applies (same ranks as MOD13 ``pixel_reliability``):

    * ``-1`` no observation: LAI is a fill class (DN 249..255, NaN once decoded: water,
      barren, urban, ... are no observation, not zero LAI), the QC word is fill (255) or
      SCF_QC is 100 (not produced).
    * ``3`` cloudy: cloud state 01 (significant clouds present).
    * ``2`` snow/ice: ``extra`` given and its snow/ice bit (2) set.
    * ``1`` marginal: backup empirical algorithm (SCF_QC 010 geometry, 011 other), mixed
      clouds (cloud state 10), cloud state 11 (not defined, assumed clear) or the dead
      detector bit.
    * ``0`` good: main radiative-transfer algorithm (SCF_QC 000, or 001 with saturation,
      "good, very usable"), clear, no dead detector.

    Usable = reliability 0..``max_reliability``. With the default 1, backup-algorithm
    retrievals and mixed/undefined cloud states are kept (as marginal MOD13 pixels are);
    ``max_reliability=0`` keeps only main-algorithm retrievals under a clear sky, the user
    guide's choice for the best quality. Pixels with significant clouds are never usable
    unless ``max_reliability`` is 3. The MODLAND bit is not used (SCF_QC says the same, in
    more detail).
    """
    f = qc_flags(qc)
    no_obs = no_value(lai) | f["fill"] | (f["scf"] >= SCF_NOT_PRODUCED)
    cloudy = f["cloud"] == CLOUD_SIGNIFICANT
    snow = np.zeros(np.shape(no_obs), bool)
    if extra is not None:
        e = extra_flags(extra)
        snow = e["snow"] & ~e["fill"]
    marginal = (
        (f["scf"] == SCF_BACKUP_GEOMETRY)
        | (f["scf"] == SCF_BACKUP_OTHER)
        | (f["cloud"] == CLOUD_MIXED)
        | (f["cloud"] == CLOUD_NOT_SET)
        | f["dead_detector"]
    )
    reliability = np.select([no_obs, cloudy, snow, marginal], [-1, 3, 2, 1], default=0).astype(
        np.int8
    )
    usable = (reliability >= 0) & (reliability <= max_reliability)
    return reliability, usable


def standard_layers(ds: xr.Dataset, max_reliability: int = 1) -> xr.Dataset:
    """``lai`` and ``fpar`` of a decoded MCD15A2H dataset (:func:`open_modis_tile`; those
    present) plus ``reliability`` and ``usable`` from :func:`quality` when ``FparLai_QC`` and
    ``Lai_500m`` are there (``FparExtra_QC`` used when present). Nothing is masked."""
    out = xr.Dataset({name: ds[sds] for name, sds in SDS.items() if sds in ds}, attrs=ds.attrs)
    if QA_SDS[0] in ds and SDS["lai"] in ds:
        extra = ds[EXTRA_QA_SDS].values if EXTRA_QA_SDS in ds else None
        reliability, usable = quality(
            ds[QA_SDS[0]].values, ds[SDS["lai"]].values, max_reliability, extra
        )
        dims = ds[QA_SDS[0]].dims
        meanings = ", ".join(f"{k} {v}" for k, v in RELIABILITY.items())
        out["reliability"] = (dims, reliability, {"flag_meanings": meanings})
        out["usable"] = (dims, usable, {"max_reliability": max_reliability})
    return out


# --- the source: LAI/FPAR onto tiles through the MODIS HDF4-EOS reader ----------------------
register_product(
    ModisProduct(
        PRODUCTS,
        dict(SDS),
        QA_SDS,
        lambda a, options: quality(
            a["FparLai_QC"], a["Lai_500m"], options.get("max_reliability", 1)
        ),
        checks=("Lai_500m",),
    )
)
