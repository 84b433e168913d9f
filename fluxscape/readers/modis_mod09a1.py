"""MOD09A1 / MYD09A1 8-day 500 m surface reflectance: layer names and quality rules.

Follows the MODIS Surface Reflectance User's Guide, Collection 6 (E. Vermote, J.-C. Roger,
J. P. Ray, MODIS Land Surface Reflectance Science Computing Facility, v1.4 2015 / v1.5 2018;
tables "MOD09A1 500 m surface reflectance QA" and "500 m state flags"), checked against the
``QA bitmap index`` attributes that real MOD09A1 files carry.

The file is read by :func:`fluxscape.readers.modis_hdf4.open_modis_tile` (reflectance DN x
0.0001, fill -28672 and values outside -100..16000 -> NaN; QA words kept as integers). This
module holds what is specific to the product, as pure functions of that decoded dataset (or of
plain arrays): which SDS is which band, and which pixels to trust.

``sur_refl_qc_500m`` (uint32, fill 0xFFFFFFFF):

========  =================================================================================
bits      meaning
========  =================================================================================
0-1       MODLAND QA: 00 ideal quality all bands, 01 less than ideal, 10 not produced (cloud),
          11 not produced (other reasons; bands may be fill)
2-5       band 1 data quality (0000 highest quality, 0111 noisy detector, 1000 dead detector,
          1001/1010 solar zenith >= 86 / 85..86 degrees, 1011 missing input, 1100 internal
          constant used, 1101 correction out of bounds, 1110 L1B faulty, 1111 not processed)
6-9       band 2 data quality (same codes); bands 3..7 in bits 10-13, ..., 26-29
30        atmospheric correction performed; 31 adjacency correction performed
========  =================================================================================

``sur_refl_state_500m`` (uint16, fill 0xFFFF):

========  =================================================================================
bits      meaning
========  =================================================================================
0-1       cloud state: 00 clear, 01 cloudy, 10 mixed, 11 not set (assumed clear)
2         cloud shadow
3-5       land/water: 000 shallow ocean, 001 land, 010 coastline/lake shore, 011 shallow
          inland water, 100 ephemeral water, 101 deep inland water, 110 continental/moderate
          ocean, 111 deep ocean
6-7       aerosol quantity: 00 climatology, 01 low, 10 average, 11 high
8-9       cirrus: 00 none, 01 small, 10 average, 11 high
10        internal cloud algorithm flag (cloud)
11        internal fire algorithm flag
12        MOD35 snow/ice flag
13        pixel adjacent to cloud
14        salt pan
15        internal snow mask
========  =================================================================================
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from fluxscape.readers.modis_hdf4 import ModisProduct, register_product
from fluxscape.readers.qa import bits

#: Short names this module describes (Terra, Aqua).
PRODUCTS = ("MOD09A1", "MYD09A1")
#: HDF-EOS grid name of full tiles (HEG subsets append a suffix, e.g. ``_463``).
GRID = "MOD_Grid_500m_Surface_Reflectance"
#: Days per composite (the file name holds the first day).
COMPOSITE_DAYS = 8

#: Standard layer name -> SDS name. Bands: red 620-670 nm (b1), nir 841-876 (b2), blue 459-479
#: (b3), green 545-565 (b4), swir12 1230-1250 (b5), swir16 1628-1652 (b6), swir22 2105-2155
#: (b7); ``doy`` is the day of year of each pixel's observation.
SDS = {
    "red": "sur_refl_b01",
    "nir": "sur_refl_b02",
    "blue": "sur_refl_b03",
    "green": "sur_refl_b04",
    "swir12": "sur_refl_b05",
    "swir16": "sur_refl_b06",
    "swir22": "sur_refl_b07",
    "doy": "sur_refl_day_of_year",
}
#: Quality SDS, in the order :func:`quality` takes them.
QA_SDS = ("sur_refl_qc_500m", "sur_refl_state_500m")

QC_FILL = 0xFFFFFFFF
STATE_FILL = 0xFFFF

#: Pixel reliability ranks of :func:`quality` (the MOD13 ``pixel_reliability`` meanings).
RELIABILITY = {-1: "no observation", 0: "good", 1: "marginal", 2: "snow/ice", 3: "cloudy"}

#: Cloud state codes (state bits 0-1).
CLOUD_CLEAR, CLOUD_CLOUDY, CLOUD_MIXED, CLOUD_NOT_SET = 0, 1, 2, 3
#: Highest aerosol quantity and cirrus codes (state bits 6-7 and 8-9).
AEROSOL_HIGH = 3
CIRRUS_HIGH = 3



def qc_flags(qc) -> dict[str, np.ndarray]:
    """The fields of ``sur_refl_qc_500m`` words: ``modland`` (0-3), ``band1``..``band7`` data
    quality (0-15), ``atmospheric_correction`` and ``adjacency_correction`` (bool) and
    ``fill`` (the word is the SDS fill value)."""
    qc = np.asarray(qc)
    out = {"modland": bits(qc, 0, 1)}
    for band in range(1, 8):
        first = 2 + 4 * (band - 1)
        out[f"band{band}"] = bits(qc, first, first + 3)
    out["atmospheric_correction"] = bits(qc, 30, 30) == 1
    out["adjacency_correction"] = bits(qc, 31, 31) == 1
    out["fill"] = qc.astype(np.uint64) == QC_FILL
    return out


def state_flags(state) -> dict[str, np.ndarray]:
    """The fields of ``sur_refl_state_500m`` words: ``cloud`` (0-3), ``land_water`` (0-7),
    ``aerosol`` (0-3), ``cirrus`` (0-3) and the bool flags ``shadow``, ``internal_cloud``,
    ``fire``, ``mod35_snow``, ``adjacent_cloud``, ``salt_pan``, ``internal_snow``, ``fill``."""
    state = np.asarray(state)
    return {
        "cloud": bits(state, 0, 1),
        "shadow": bits(state, 2, 2) == 1,
        "land_water": bits(state, 3, 5),
        "aerosol": bits(state, 6, 7),
        "cirrus": bits(state, 8, 9),
        "internal_cloud": bits(state, 10, 10) == 1,
        "fire": bits(state, 11, 11) == 1,
        "mod35_snow": bits(state, 12, 12) == 1,
        "adjacent_cloud": bits(state, 13, 13) == 1,
        "salt_pan": bits(state, 14, 14) == 1,
        "internal_snow": bits(state, 15, 15) == 1,
        "fill": state.astype(np.uint64) == STATE_FILL,
    }


def quality(qc, state, max_reliability: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Pixel reliability (int8) and usability (bool) from the ``sur_refl_qc_500m`` and
    ``sur_refl_state_500m`` words (any broadcastable integer arrays).

    Reliability, the first rule that applies (same ranks as MOD13 ``pixel_reliability``):

    * ``-1`` no observation: either word is its fill value, or MODLAND QA is 11 (not produced
      for reasons other than cloud).
    * ``3`` cloudy: MODLAND QA 10 (not produced, cloud), cloud state 01 (cloudy) or the
      internal cloud algorithm flag (bit 10) set.
    * ``2`` snow/ice: MOD35 snow/ice flag (bit 12) or internal snow mask (bit 15).
    * ``1`` marginal: the pixel is produced and not cloudy, but something lowers trust:
      MODLAND QA 01 (less than ideal), band 1 or band 2 data quality not 0000 (noisy/dead
      detector, high sun zenith, ...), cloud state 11 ("not set, assumed clear" -- taken as
      clear but not as certain), or contamination: cloud state 10 (mixed), cloud shadow
      (bit 2), adjacent to cloud (bit 13), high aerosol (bits 6-7 = 11) or high cirrus
      (bits 8-9 = 11).
    * ``0`` good: everything else (MODLAND 00, clear, no shadow/adjacency/snow, red and NIR
      of highest quality, aerosol and cirrus not high).

    Usable = reliability 0..``max_reliability`` and none of the contamination rules: the
    MODLAND QA says the product was produced (00 or 01), the cloud state is clear (00, or 11
    "assumed clear" unless ``max_reliability`` is 0), no cloud shadow, not adjacent to cloud,
    no snow/ice, aerosol not high, cirrus not high. With ``max_reliability=0`` only good
    pixels are usable; with the default 1 also the marginal ones whose only fault is a
    less-than-ideal MODLAND QA, a band 1/2 quality code or an "assumed clear" cloud state.
    Higher values change nothing, since snow and clouds always fail the usability rules.
    Land/water, fire and salt-pan flags are not used.
    """
    qcf, st = qc_flags(qc), state_flags(state)
    modland = qcf["modland"]
    no_obs = qcf["fill"] | st["fill"] | (modland == 3)
    cloudy = (modland == 2) | (st["cloud"] == CLOUD_CLOUDY) | st["internal_cloud"]
    snow = st["mod35_snow"] | st["internal_snow"]
    contaminated = (
        (st["cloud"] == CLOUD_MIXED)
        | st["shadow"]
        | st["adjacent_cloud"]
        | (st["aerosol"] == AEROSOL_HIGH)
        | (st["cirrus"] == CIRRUS_HIGH)
    )
    lesser = (
        (modland == 1) | (qcf["band1"] != 0) | (qcf["band2"] != 0) | (st["cloud"] == CLOUD_NOT_SET)
    )
    reliability = np.select(
        [no_obs, cloudy, snow, contaminated | lesser], [-1, 3, 2, 1], default=0
    ).astype(np.int8)
    usable = (
        (reliability >= 0)
        & (reliability <= max_reliability)
        & ~(cloudy | snow | contaminated | no_obs)
    )
    return reliability, usable


def standard_layers(ds: xr.Dataset, max_reliability: int = 1) -> xr.Dataset:
    """The bands of a decoded MOD09A1 dataset (:func:`open_modis_tile`) under their standard
    names (:data:`SDS`; those present), plus ``reliability`` and ``usable`` from
    :func:`quality` when both QA layers are there. Reflectances stay as decoded (NaN fill);
    nothing is masked."""
    out = xr.Dataset({name: ds[sds] for name, sds in SDS.items() if sds in ds}, attrs=ds.attrs)
    if all(q in ds for q in QA_SDS):
        reliability, usable = quality(ds[QA_SDS[0]].values, ds[QA_SDS[1]].values, max_reliability)
        dims = ds[QA_SDS[0]].dims
        out["reliability"] = (dims, reliability, {"flag_meanings": _meanings()})
        out["usable"] = (dims, usable, {"max_reliability": max_reliability})
    return out


def ndvi(red, nir) -> np.ndarray:
    """NDVI (nir - red) / (nir + red) from surface reflectances (NaN where either is)."""
    red, nir = np.asarray(red, float), np.asarray(nir, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (nir - red) / (nir + red)


def _meanings() -> str:
    return ", ".join(f"{k} {v}" for k, v in RELIABILITY.items())


# --- the source: MOD09A1 reflectances onto tiles through the MODIS HDF4-EOS reader ----------
register_product(
    ModisProduct(
        PRODUCTS,
        {std: sds for std, sds in SDS.items() if std != "doy"},
        QA_SDS,
        lambda a, options: quality(
            a["sur_refl_qc_500m"], a["sur_refl_state_500m"], options.get("max_reliability", 1)
        ),
        doy=SDS["doy"],
    )
)
