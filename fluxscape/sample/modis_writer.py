"""Write MODIS sinusoidal grid tiles in the real HDF4-EOS layout (pyhdf): MOD13A2 16-day VI,
MCD64A1 monthly burned area, MOD11A2 8-day land surface temperature, MCD12Q1 annual land
cover, MOD09A1 8-day surface reflectance and MCD15A2H 8-day LAI/FPAR.

SDS names, data types, ``scale_factor``/``add_offset``/``_FillValue``/``valid_range``
attributes and the ``StructMetadata.0`` grid block follow the MOD13 C6.1 User's Guide and real
LP DAAC files (dimension names ``YDim:<grid>``/``XDim:<grid>``, deflate-compressed chunked SDS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from pyhdf.SD import SD, SDC

from fluxscape.sample import modis_legends


@dataclass(frozen=True)
class Sds:
    """One science data set of a MODIS product: name, HDF type, numpy dtype, fill, valid range,
    scale/offset (None: not written) and the other attributes real files carry."""

    name: str
    hdf_type: int
    dtype: type
    fill: int
    valid_range: tuple[int, int]
    scale: float | None
    offset: float | None
    attrs: dict


def sds_table(rows: list[tuple]) -> list[Sds]:
    """Sds from compact rows (name, HDF type, dtype, fill, valid range, scale_factor or None,
    units, long name); a scaled SDS gets add_offset 0."""
    return [
        Sds(
            name,
            hdf,
            dtype,
            fill,
            vrange,
            scale,
            None if scale is None else 0.0,
            {"long_name": long_name, "units": units},
        )
        for name, hdf, dtype, fill, vrange, scale, units, long_name in rows
    ]


GRID_1KM = "MODIS_Grid_16DAY_1km_VI"
PREFIX_1KM = "1 km 16 days "

#: (SDS suffix, HDF type, numpy dtype, fill, valid range, scale_factor, units, long name)
MOD13_SDS = sds_table(
    [
        ("NDVI", SDC.INT16, np.int16, -3000, (-2000, 10000), 10000.0, "NDVI", "1 km 16 days NDVI"),
        ("EVI", SDC.INT16, np.int16, -3000, (-2000, 10000), 10000.0, "EVI", "1 km 16 days EVI"),
        (
            "VI Quality",
            SDC.UINT16,
            np.uint16,
            65535,
            (0, 65534),
            None,
            "bits",
            "1 km 16 days VI Quality",
        ),
        (
            "red reflectance",
            SDC.INT16,
            np.int16,
            -1000,
            (0, 10000),
            10000.0,
            "reflectance",
            "1 km 16 days red reflectance (Band 1)",
        ),
        (
            "NIR reflectance",
            SDC.INT16,
            np.int16,
            -1000,
            (0, 10000),
            10000.0,
            "reflectance",
            "1 km 16 days NIR reflectance (Band 2)",
        ),
        (
            "blue reflectance",
            SDC.INT16,
            np.int16,
            -1000,
            (0, 10000),
            10000.0,
            "reflectance",
            "1 km 16 days blue reflectance (Band 3)",
        ),
        (
            "MIR reflectance",
            SDC.INT16,
            np.int16,
            -1000,
            (0, 10000),
            10000.0,
            "reflectance",
            "1 km 16 days MIR reflectance (Band 7)",
        ),
        (
            "view zenith angle",
            SDC.INT16,
            np.int16,
            -10000,
            (-9000, 9000),
            100.0,
            "degrees",
            "1 km 16 days view zenith angle",
        ),
        (
            "sun zenith angle",
            SDC.INT16,
            np.int16,
            -10000,
            (-9000, 9000),
            100.0,
            "degrees",
            "1 km 16 days sun zenith angle",
        ),
        (
            "relative azimuth angle",
            SDC.INT16,
            np.int16,
            -4000,
            (-3600, 3600),
            10.0,
            "degrees",
            "1 km 16 days relative azimuth angle",
        ),
        (
            "composite day of the year",
            SDC.INT16,
            np.int16,
            -1,
            (1, 366),
            None,
            "Julian day of year",
            "1 km 16 days composite day of the year",
        ),
        (
            "pixel reliability",
            SDC.INT8,
            np.int8,
            -1,
            (0, 3),
            None,
            "rank",
            "1 km 16 days pixel reliability summary QA",
        ),
    ]
)


@dataclass(frozen=True)
class TileSpec:
    """A MODIS sinusoidal tile: h, v, pixels per side and its corners in metres."""

    h: int
    v: int
    size: int
    upper_left: tuple[float, float]
    lower_right: tuple[float, float]


def struct_metadata(grid_name: str, tile: TileSpec, fields: list[tuple[str, str]]) -> str:
    """``StructMetadata.0`` ODL text for one sinusoidal grid; ``fields`` = (name, DFNT type)."""
    ulx, uly = tile.upper_left
    lrx, lry = tile.lower_right
    lines = [
        "GROUP=SwathStructure",
        "END_GROUP=SwathStructure",
        "GROUP=GridStructure",
        "\tGROUP=GRID_1",
        f'\t\tGridName="{grid_name}"',
        f"\t\tXDim={tile.size}",
        f"\t\tYDim={tile.size}",
        f"\t\tUpperLeftPointMtrs=({ulx:.6f},{uly:.6f})",
        f"\t\tLowerRightMtrs=({lrx:.6f},{lry:.6f})",
        "\t\tProjection=GCTP_SNSOID",
        "\t\tProjParams=(6371007.181000,0,0,0,0,0,0,0,0,0,0,0,0)",
        "\t\tSphereCode=-1",
        "\t\tGridOrigin=HDFE_GD_UL",
        "\t\tGROUP=Dimension",
        "\t\tEND_GROUP=Dimension",
        "\t\tGROUP=DataField",
    ]
    for i, (name, dfnt) in enumerate(fields, start=1):
        lines += [
            f"\t\t\tOBJECT=DataField_{i}",
            f'\t\t\t\tDataFieldName="{name}"',
            f"\t\t\t\tDataType={dfnt}",
            '\t\t\t\tDimList=("YDim","XDim")',
            f"\t\t\tEND_OBJECT=DataField_{i}",
        ]
    lines += [
        "\t\tEND_GROUP=DataField",
        "\t\tGROUP=MergedFields",
        "\t\tEND_GROUP=MergedFields",
        "\tEND_GROUP=GRID_1",
        "END_GROUP=GridStructure",
        "GROUP=PointStructure",
        "END_GROUP=PointStructure",
        "END",
        "",
    ]
    return "\n".join(lines)


def core_metadata(
    short_name: str,
    start: datetime,
    end: datetime,
    tile: TileSpec,
    bbox: tuple[float, float, float, float],
    production: datetime,
) -> str:
    """A minimal ECS ``CoreMetadata.0`` (inventory metadata) like LP DAAC files carry."""
    w, s, e, n = bbox

    def obj(name: str, value: str) -> list[str]:
        return [
            f"    OBJECT                 = {name}",
            "      NUM_VAL              = 1",
            f"      VALUE                = {value}",
            f"    END_OBJECT             = {name}",
        ]

    lines = [
        "GROUP                  = INVENTORYMETADATA",
        "  GROUPTYPE            = MASTERGROUP",
        "  GROUP                  = COLLECTIONDESCRIPTIONCLASS",
    ]
    lines += obj("SHORTNAME", f'"{short_name}"') + obj("VERSIONID", "61")
    lines += [
        "  END_GROUP              = COLLECTIONDESCRIPTIONCLASS",
        "  GROUP                  = RANGEDATETIME",
    ]
    lines += obj("RANGEBEGINNINGDATE", f'"{start:%Y-%m-%d}"')
    lines += obj("RANGEBEGINNINGTIME", '"00:00:00.000000"')
    lines += obj("RANGEENDINGDATE", f'"{end:%Y-%m-%d}"')
    lines += obj("RANGEENDINGTIME", '"23:59:59.999999"')
    lines += [
        "  END_GROUP              = RANGEDATETIME",
        "  GROUP                  = SPATIALDOMAINCONTAINER",
        "    GROUP                  = HORIZONTALSPATIALDOMAINCONTAINER",
        "      GROUP                  = BOUNDINGRECTANGLE",
    ]
    lines += obj("WESTBOUNDINGCOORDINATE", f"{w:.6f}") + obj("NORTHBOUNDINGCOORDINATE", f"{n:.6f}")
    lines += obj("EASTBOUNDINGCOORDINATE", f"{e:.6f}") + obj("SOUTHBOUNDINGCOORDINATE", f"{s:.6f}")
    lines += [
        "      END_GROUP              = BOUNDINGRECTANGLE",
        "    END_GROUP              = HORIZONTALSPATIALDOMAINCONTAINER",
        "  END_GROUP              = SPATIALDOMAINCONTAINER",
        "  GROUP                  = ADDITIONALATTRIBUTES",
    ]
    lines += obj("HORIZONTALTILENUMBER", f'"{tile.h:02d}"')
    lines += obj("VERTICALTILENUMBER", f'"{tile.v:02d}"')
    lines += obj("PRODUCTIONDATETIME", f'"{production:%Y-%m-%dT%H:%M:%S.000Z}"')
    lines += [
        "  END_GROUP              = ADDITIONALATTRIBUTES",
        "END_GROUP              = INVENTORYMETADATA",
        "END",
        "",
    ]
    return "\n".join(lines)


_DFNT = {
    SDC.INT16: "DFNT_INT16",
    SDC.UINT16: "DFNT_UINT16",
    SDC.INT8: "DFNT_INT8",
    SDC.UINT8: "DFNT_UINT8",
    SDC.UINT32: "DFNT_UINT32",
}


@dataclass(frozen=True)
class ModisProduct:
    """What differs between MODIS grid products in the file: short name, DOI, grid name, the
    prefix of the SDS names and the SDS table (as :data:`MOD13_SDS`)."""

    short_name: str
    doi: str
    grid: str
    prefix: str
    sds: list[Sds]
    legends: dict[str, str]
    #: ``calibrated_nt`` attribute of scaled SDS (5 in MOD13 files, 0 in MOD11 files).
    calibrated_nt: int = 5
    #: MOD11 files carry a ``Number Type`` text attribute on each SDS.
    number_type: bool = False
    #: Further global attributes of the real files (text legends of MOD15A2).
    global_attrs: dict[str, str] = field(default_factory=dict)


def write_modis_grid(
    path: Path,
    product: ModisProduct,
    tile: TileSpec,
    layers: dict[str, np.ndarray],
    start: datetime,
    end: datetime,
    bbox: tuple[float, float, float, float],
    production: datetime,
) -> Path:
    """Write one HDF4-EOS sinusoidal tile of ``product``. ``layers`` maps SDS suffixes to
    stored DN arrays of shape (size, size); layers not given are written as fill. Written to
    a ``.part`` file first, so a crash never leaves a truncated tile behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".hdf.part")
    sd = SD(str(tmp), SDC.WRITE | SDC.CREATE | SDC.TRUNC)
    try:
        sd.HDFEOSVersion = "HDFEOS_V2.19"
        fields = [(product.prefix + x.name, _DFNT[x.hdf_type]) for x in product.sds]
        setattr(sd, "StructMetadata.0", struct_metadata(product.grid, tile, fields))
        core = core_metadata(product.short_name, start, end, tile, bbox, production)
        setattr(sd, "CoreMetadata.0", core)
        setattr(
            sd, "ArchiveMetadata.0", "GROUP = ARCHIVEDMETADATA\nEND_GROUP = ARCHIVEDMETADATA\nEND\n"
        )
        sd.identifier_product_doi = product.doi
        sd.identifier_product_doi_authority = "http://dx.doi.org"
        for key, value in product.global_attrs.items():
            setattr(sd, key, value)
        for sd_spec in product.sds:
            _write_sds(sd, product, sd_spec, layers.get(sd_spec.name), tile.size)
    finally:
        sd.end()
    tmp.replace(path)
    return path


def _write_sds(sd: SD, product: ModisProduct, spec: Sds, data, size: int) -> None:
    """One deflate-compressed SDS with its attributes; fill where ``data`` is None."""
    if data is None:
        data = np.full((size, size), spec.fill, dtype=spec.dtype)
    sds = sd.create(product.prefix + spec.name, spec.hdf_type, (size, size))
    sds.dim(0).setname(f"YDim:{product.grid}")
    sds.dim(1).setname(f"XDim:{product.grid}")
    # Deflate level 1: the same values as level 4, written in ~55 % of the CPU time (a tile is
    # 1.4-5.8 M pixels, mostly fill, and the writers make hundreds); files are larger: the
    # demo's MODIS folder 37.5 MB instead of 31.5, mostly-fill tiles ~1.7x.
    sds.setcompress(SDC.COMP_DEFLATE, 1)
    sds.setfillvalue(spec.fill)
    for key, value in spec.attrs.items():
        setattr(sds, key, value)
    if product.number_type:
        sds.attr("Number Type").set(SDC.CHAR8, np.dtype(spec.dtype).name)
    sds.attr("valid_range").set(spec.hdf_type, list(spec.valid_range))
    if spec.scale is not None:
        sds.scale_factor = spec.scale
        sds.scale_factor_err = 0.0
        sds.add_offset = spec.offset
        sds.add_offset_err = 0.0
        sds.attr("calibrated_nt").set(SDC.INT32, product.calibrated_nt)
    if spec.name in product.legends:
        sds.Legend = product.legends[spec.name]
    sds[:] = np.asarray(data, dtype=spec.dtype)
    sds.endaccess()


VI_QUALITY_LEGEND = (
    "Bit Fields Description (Right to Left):\n"
    "[0-1] : MODLAND_QA [2 bit range]\n 00: VI produced, good quality\n"
    " 01: VI produced, but check other QA\n 10: Pixel produced, but most probably cloudy\n"
    " 11: Pixel not produced due to other reasons than clouds\n"
    "[2-5] : VI usefulness [4 bit range]\n 0000: Highest quality ... "
    "1111: Not useful for any other reason/not processed\n"
    "[6-7] : Aerosol quantity [2 bit range]\n 00: Climatology 01: Low 10: Average 11: High\n"
    "[8] : Adjacent cloud detected\n[9] : Atmosphere BRDF correction performed\n"
    "[10] : Mixed clouds\n[11-13] : Land/Water Flag\n 001: Land (Nothing else but land)\n"
    "[14] : Possible snow/ice\n[15] : Possible shadow\n"
)


MOD13A2 = ModisProduct(
    "MOD13A2",
    "10.5067/MODIS/MOD13A2.061",
    GRID_1KM,
    PREFIX_1KM,
    MOD13_SDS,
    {"VI Quality": VI_QUALITY_LEGEND},
)

GRID_BA = "MOD_Grid_Monthly_500m_DB_BA"
MODIS_500M = 2400

#: MCD64A1 C6.1 SDS (User's Guide, Giglio et al. 2021, Table 1). Burn Date: 0 unburned,
#: 1-366 day of year of burning, -1 unmapped (insufficient data), -2 water. Fill values and
#: valid ranges as seen in gdalinfo listings of LP DAAC files [hedged].
MCD64_SDS = sds_table(
    [
        ("Burn Date", SDC.INT16, np.int16, -1, (-2, 366), None, "Julian day", "Burn Date"),
        (
            "Burn Date Uncertainty",
            SDC.UINT8,
            np.uint8,
            0,
            (0, 100),
            None,
            "days",
            "Burn Date Uncertainty",
        ),
        ("QA", SDC.UINT8, np.uint8, 0, (0, 255), None, "bit field", "QA"),
        ("First Day", SDC.INT16, np.int16, -1, (1, 366), None, "Julian day", "First Day"),
        ("Last Day", SDC.INT16, np.int16, -1, (1, 366), None, "Julian day", "Last Day"),
    ]
)

MCD64_QA_LEGEND = (
    "Bit 0: land/water (1 land, 0 water)\nBit 1: valid data flag (1 valid)\n"
    "Bit 2: mapping period shortened\nBit 3: grid cell relabeled\n"
    "Bit 4: spare\nBits 5-7: special condition code (0 none)\n"
)

MCD64A1 = ModisProduct(
    "MCD64A1", "10.5067/MODIS/MCD64A1.061", GRID_BA, "", MCD64_SDS, {"QA": MCD64_QA_LEGEND}
)


# --- MOD11A2: 8-day land surface temperature and emissivity, 1 km --------------------------

GRID_LST_1KM = "MODIS_Grid_8Day_1km_LST"


def _lst_sds(when: str) -> list[Sds]:
    time_of_day = "daytime" if when == "Day" else "nighttime"
    cf = f"{when}_view_angl"
    return [
        Sds(
            f"LST_{when}_1km",
            SDC.UINT16,
            np.uint16,
            0,
            (7500, 65535),
            0.02,
            0.0,
            {
                "long_name": f"8-day {time_of_day} 1km grid Land-surface Temperature",
                "units": "K",
                "LST": "LST data * scale_factor",
            },
        ),
        Sds(
            f"QC_{when}",
            SDC.UINT8,
            np.uint8,
            0,
            (0, 255),
            None,
            None,
            {"long_name": f"Quality control for {time_of_day} LST and emissivity"},
        ),
        Sds(
            f"{when}_view_time",
            SDC.UINT8,
            np.uint8,
            255,
            (0, 240),
            0.1,
            0.0,
            {
                "long_name": f"Average time of {time_of_day} Land-surface Temperature observation",
                "units": "hrs",
                "View_time": "View_time data * scale_factor",
            },
        ),
        Sds(
            cf,
            SDC.UINT8,
            np.uint8,
            255,
            (0, 130),
            1.0,
            -65.0,
            {
                "long_name": f"Average view zenith angle of {time_of_day} Land-surface Temperature",
                "units": "deg",
                "View_angle": "View_angle data * scale_factor + add_offset",
            },
        ),
    ]


def _emis_sds(band: int) -> Sds:
    return Sds(
        f"Emis_{band}",
        SDC.UINT8,
        np.uint8,
        0,
        (1, 255),
        0.002,
        0.49,
        {
            "long_name": f"Band {band} emissivity",
            f"Emis_{band}": f"Emis_{band} data * scale_factor + add_offset",
        },
    )


def _clear_sky_sds(when: str) -> Sds:
    what = "days" if when == "days" else "nights"
    return Sds(
        f"Clear_sky_{what}",
        SDC.UINT8,
        np.uint8,
        0,
        (1, 255),
        None,
        None,
        {"long_name": f"the {what} in clear-sky conditions and with validate LSTs"},
    )


#: MOD11A2 C6.1 science data sets in file order (LP DAAC MOD11 User's Guide; attributes as in
#: real files: LST DN x 0.02 K with fill 0, QC bit fields with _FillValue 0, emissivity
#: DN x 0.002 + 0.49 in CF order, view angle DN - 65 degrees, view time DN x 0.1 h).
MOD11A2_SDS: list[Sds] = [
    *_lst_sds("Day"),
    *_lst_sds("Night"),
    _emis_sds(31),
    _emis_sds(32),
    _clear_sky_sds("days"),
    _clear_sky_sds("nights"),
]

QC_LEGEND = (
    "Bit Fields Description (Right to Left):\n"
    "[0-1] : Mandatory QA flags\n 00: LST produced, good quality\n"
    " 01: LST produced, other quality, recommend examination of more detailed QA\n"
    " 10: LST not produced due to cloud effects\n"
    " 11: LST not produced primarily due to reasons other than cloud\n"
    "[2-3] : Data quality flag\n 00: good data quality 01: other quality data 10-11: TBD\n"
    "[4-5] : Emis error flag\n 00: average emissivity error <= 0.01\n"
    " 01: <= 0.02 10: <= 0.04 11: > 0.04\n"
    "[6-7] : LST error flag\n 00: average LST error <= 1K 01: <= 2K 10: <= 3K 11: > 3K\n"
)


MOD11A2 = ModisProduct(
    "MOD11A2",
    "10.5067/MODIS/MOD11A2.061",
    GRID_LST_1KM,
    "",
    MOD11A2_SDS,
    {"QC_Day": QC_LEGEND, "QC_Night": QC_LEGEND},
    calibrated_nt=0,
    number_type=True,
)


# --- MCD12Q1: annual land cover, 500 m -------------------------------------------------------

#: MCD12Q1 C6.1 SDS written (User Guide, Sulla-Menashe & Friedl 2018, Table 1; the real files
#: also carry LC_Type2-4, LC_Prop1-3 and their assessments). All uint8, fill 255, no scaling.
MCD12Q1_SDS = sds_table(
    [
        ("LC_Type1", SDC.UINT8, np.uint8, 255, (1, 17), None, "class number", "Land_Cover_Type_1"),
        ("LC_Type5", SDC.UINT8, np.uint8, 255, (0, 11), None, "class number", "Land_Cover_Type_5"),
        ("QC", SDC.UINT8, np.uint8, 255, (0, 10), None, "class number", "Quality_Assessment"),
        ("LW", SDC.UINT8, np.uint8, 255, (1, 2), None, "class number", "Land_Water_Mask"),
    ]
)

MCD12Q1_LEGENDS = {
    "LC_Type1": "IGBP: 1 ENF, 2 EBF, 3 DNF, 4 DBF, 5 MF, 6 CSH, 7 OSH, 8 WSA, 9 SAV, 10 GRA, "
    "11 WET, 12 CRO, 13 URB, 14 CVM, 15 SNO, 16 BAR, 17 WAT",
    "LC_Type5": "PFT: 0 water, 1 ENF, 2 EBF, 3 DNF, 4 DBF, 5 shrub, 6 grass, 7 cereal crop, "
    "8 broadleaf crop, 9 urban, 10 snow and ice, 11 barren",
    "QC": "0 classified land, 1 unclassified land, 2 classified water, 3 unclassified water, "
    "4 classified sea ice, 5 misclassified water, 6 omitted snow/ice, 7 misclassified snow/ice, "
    "8 backfilled label, 9 forest type changed, 10 no data",
    "LW": "1 water, 2 land",
}

MCD12Q1 = ModisProduct(
    "MCD12Q1", "10.5067/MODIS/MCD12Q1.061", "MCD12Q1", "", MCD12Q1_SDS, MCD12Q1_LEGENDS
)


# --- MOD09A1: 8-day surface reflectance, 500 m ------------------------------------------------

GRID_SR_500M = "MOD_Grid_500m_Surface_Reflectance"
#: sur_refl_qc_500m and sur_refl_state_500m fill words.
MOD09_QC_FILL = 0xFFFFFFFF
MOD09_STATE_FILL = 0xFFFF


def _mod09_band(band: int) -> Sds:
    return Sds(
        f"sur_refl_b0{band}",
        SDC.INT16,
        np.int16,
        -28672,
        (-100, 16000),
        0.0001,
        0.0,
        {"long_name": f"Surface_reflectance_for_band_{band}", "units": "reflectance"},
    )


def _mod09_angle(name: str, long_name: str, lo: int) -> Sds:
    return Sds(
        name,
        SDC.INT16,
        np.int16,
        0,
        (lo, 18000),
        0.01,
        0.0,
        {"long_name": long_name, "units": "degree"},
    )


#: MOD09A1 C6/C6.1 science data sets in file order, with the attributes of real LP DAAC files
#: (MOD09 User's Guide; printed with pyhdf from MOD09A1.A2017193.h18v04.006): reflectance DN x
#: 0.0001, valid -100..16000, fill -28672; angles DN x 0.01 degrees, fill 0; QA bit fields.
MOD09A1_SDS: list[Sds] = [
    *[_mod09_band(b) for b in range(1, 8)],
    Sds(
        "sur_refl_qc_500m",
        SDC.UINT32,
        np.uint32,
        MOD09_QC_FILL,
        (0, 4294966531),
        None,
        None,
        {
            "long_name": "Surface_reflectance_500m_quality_control_flags",
            "units": "bit field",
            "QA bitmap index": modis_legends.MOD09_QC_BITMAP,
        },
    ),
    _mod09_angle("sur_refl_szen", "Solar_zenith", 0),
    _mod09_angle("sur_refl_vzen", "View_zenith", 0),
    _mod09_angle("sur_refl_raz", "Relative_azimuth", -18000),
    Sds(
        "sur_refl_state_500m",
        SDC.UINT16,
        np.uint16,
        MOD09_STATE_FILL,
        (0, 57343),
        None,
        None,
        {
            "long_name": "Surface_reflectance_500m_state_flags",
            "units": "bit field",
            "QA bitmap index": modis_legends.MOD09_STATE_BITMAP,
        },
    ),
    Sds(
        "sur_refl_day_of_year",
        SDC.UINT16,
        np.uint16,
        65535,
        (1, 366),
        None,
        None,
        {"long_name": "Surface_reflectance_day_of_year", "units": "Julian day"},
    ),
]

MOD09A1 = ModisProduct("MOD09A1", "10.5067/MODIS/MOD09A1.061", GRID_SR_500M, "", MOD09A1_SDS, {})


# --- MCD15A2H: 8-day LAI/FPAR, 500 m ----------------------------------------------------------

#: The grid name of real MCD15A2H files (the MOD15 one, Terra+Aqua files too).
GRID_LAI_500M = "MOD_Grid_MOD15A2H"
MCD15_FILL = 255


def _mod15_value(name: str, scale: float, units: str, what: str, doc_key: str, doc: str) -> Sds:
    return Sds(
        name,
        SDC.UINT8,
        np.uint8,
        MCD15_FILL,
        (0, 100),
        scale,
        0.0,
        {
            "long_name": f"MOD15A2H MODIS/Terra Gridded 500M {what} (8-day composite)",
            "units": units,
            doc_key: doc,
        },
    )


def _mod15_qc(name: str, what: str, doc: str) -> Sds:
    return Sds(
        name,
        SDC.UINT8,
        np.uint8,
        MCD15_FILL,
        (0, 254),
        None,
        None,
        {
            "long_name": f"MOD15A2H MODIS/Terra+Aqua {what} for FPAR and LAI (8-day composite)",
            "units": "class-flag",
            f"{name}_DOC": doc,
        },
    )


#: MCD15A2H C6/C6.1 science data sets in file order, with the attributes of real LP DAAC files
#: (MOD15 User's Guide; printed with pyhdf from MCD15A2H.A2016201.h18v05.006): FPAR DN x 0.01,
#: LAI DN x 0.1, valid 0..100, 249..255 fill classes (248 in the standard deviations: backup
#: method, no standard deviation), QC words with fill 255.
MCD15A2H_SDS: list[Sds] = [
    _mod15_value(
        "Fpar_500m",
        0.01,
        "Percent",
        "FPAR",
        "MOD15A2_FILLVALUE_DOC",
        modis_legends.MOD15_FILLVALUE_DOC,
    ),
    _mod15_value(
        "Lai_500m",
        0.1,
        "m^2/m^2",
        "Leaf Area Index LAI",
        "MOD15A2_FILLVALUE_DOC",
        modis_legends.MOD15_FILLVALUE_DOC,
    ),
    _mod15_qc("FparLai_QC", "QC", modis_legends.MOD15_FPARLAI_QC_DOC),
    _mod15_qc("FparExtra_QC", "pass-through QC", modis_legends.MOD15_FPAREXTRA_QC_DOC),
    _mod15_value(
        "FparStdDev_500m",
        0.01,
        "Percent",
        "Standard Deviation FPAR",
        "MOD15A2_STD_DEV_FILLVALUE_DOC",
        modis_legends.MOD15_STDDEV_DOC,
    ),
    _mod15_value(
        "LaiStdDev_500m",
        0.1,
        "m^2/m^2",
        "Standard Deviation Leaf Area Index",
        "MOD15A2_STD_DEV_FILLVALUE_DOC",
        modis_legends.MOD15_STDDEV_DOC,
    ),
]

MCD15A2H = ModisProduct(
    "MCD15A2H",
    "10.5067/MODIS/MCD15A2H.061",
    GRID_LAI_500M,
    "",
    MCD15A2H_SDS,
    {},
    calibrated_nt=21,
    global_attrs={
        "MOD15A2_FILLVALUE_DOC": modis_legends.MOD15_FILLVALUE_DOC,
        "MOD15A2_FparLai_QC_DOC": modis_legends.MOD15_FPARLAI_QC_DOC,
        "MOD15A2_FparExtra_QC_DOC": modis_legends.MOD15_FPAREXTRA_QC_DOC,
        "MOD15A2_StdDev_QC_DOC": modis_legends.MOD15_STDDEV_DOC,
    },
)
