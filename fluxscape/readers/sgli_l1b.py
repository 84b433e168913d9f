"""GCOM-C SGLI Level-1B granules (VNR and IRS subsystems) read through satpy's ``sgli_l1b``.

Format specification: JAXA, "SGLI Level-1 Product Format Description"
(https://gportal.jaxa.jp/gpr/assets/mng_upload/GCOM-C/SGLI_Level1_Product_Format_Description_en.pdf).
Decoding and geolocation are satpy's (``satpy/readers/sgli_l1b.py``, reader status Beta): DNs
are masked to 14 bits (the upper bits carry stray-light flags), 16383/16382 (missing/saturated,
from the ``Bit00(LSB)-13`` attribute) become NaN, reflectance is
``(DN * Slope_reflectance + Offset_reflectance)`` (pi L / F0, not yet divided by the cosine of
the solar zenith angle, as JAXA's own tools do), and the tie-point ``Geometry_data``
``Latitude``/``Longitude`` (every ``Resampling_interval`` pixels) are interpolated to every
pixel with python-geotiepoints. By default the bands are loaded with satpy's ``sunz_corrected``
modifier (as satpy's own SGLI composites are): 1/cos(SZA) from the file's ``Solar_zenith``
(VNR) or from the solar position at the scene start (IRS, whose angles satpy does not map).

This module checks the file first (so that a bad file gives a ReaderError naming the file and
the problem rather than a satpy traceback), then asks satpy. JAXA stores
``Resampling_interval`` and ``Number_of_lines``/``Number_of_pixels`` as 1-element arrays,
which satpy 0.60 cannot pass to numpy >= 2.4 (pytroll/satpy#3470, fix in review as
pytroll/satpy#3475); for such files satpy reads a small view file (external links to the
bands, unwrapped attributes) until a fixed satpy is required.

File names (satpy's pattern, matched on the base name)::

    GC1SG1_{YYYYMMDDhhmm}{s}{path:3}{scene:2}_1BS{type}_{VNR|IRS|POL}{mode}{Q|K|L}_{a}{ppp}.h5

``Q`` is 250 m, ``K`` and ``L`` 1 km. VNR files hold VN01-VN11 (0.38-0.87 um), IRS files
SW01-SW04 (1.05-2.21 um; SW04 exists at 1 km only) and the thermal TI01/TI02.

Band names here follow the file (``VN08``); satpy calls them ``VN8``. Centre wavelengths from
satpy's ``sgli_l1b.yaml`` (um): VN01 0.380, VN02 0.412, VN03 0.443, VN04 0.490, VN05 0.530,
VN06 0.565, VN07 and VN08 0.6735, VN09 0.763, VN10 and VN11 0.8685, SW01 1.05, SW02 1.38,
SW03 1.63, SW04 2.21.

Importing this module registers the ``sgli_l1b`` reader with :mod:`fluxscape.readers.registry`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import warnings
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import xarray as xr

from fluxscape.errors import ReaderError
from fluxscape.readers.magic import require
from fluxscape.readers.ontile import Granule
from fluxscape.readers.registry import FileSummary, ReaderSpec, register
from fluxscape.readers.sgli_l2 import (
    attr_number,
    attr_value,
    no_data_warnings,
    open_h5,
    parse_jaxa_time,
    valid_counts,
)

__all__ = [
    "BANDS",
    "L1B_NAME_PATTERN",
    "granule_info",
    "open_sgli_l1b",
    "parse_l1b_filename",
    "swath_definition",
    "window_for_bbox",
]

SPEC_URL = (
    "https://gportal.jaxa.jp/gpr/assets/mng_upload/GCOM-C/"
    "SGLI_Level1_Product_Format_Description_en.pdf"
)

L1B_NAME_PATTERN = (
    r"GC1SG1_(?P<start>\d{12})(?P<second>\w)(?P<path>\d{3})(?P<scene>\d{2})_1BS(?P<type>\w)_"
    r"(?P<subsystem>VNR|IRS|POL)(?P<mode>\w)(?P<res>[QKL])_(?P<algorithm>\w)(?P<parameter>\d{3})"
    r"\.h5"
)
_NAME_RE = re.compile(L1B_NAME_PATTERN)

#: Reflective bands: our name -> (satpy dataset name, centre wavelength in um).
BANDS: dict[str, tuple[str, float]] = {
    **{
        f"VN{i:02d}": (f"VN{i}", w)
        for i, w in enumerate(
            (0.380, 0.412, 0.443, 0.490, 0.530, 0.565, 0.6735, 0.6735, 0.763, 0.8685, 0.8685),
            start=1,
        )
    },
    **{f"SW{i:02d}": (f"SW{i}", w) for i, w in enumerate((1.05, 1.38, 1.63, 2.21), start=1)},
}
_SATPY_TO_OURS = {satpy: ours for ours, (satpy, _) in BANDS.items()}
RESOLUTION_M = {"Q": 250, "K": 1000, "L": 1000}
_BAND_ATTRS = ("Mask", "Slope_reflectance", "Offset_reflectance", "Bit00(LSB)-13")


def parse_l1b_filename(path: str | Path) -> dict | None:
    """Fields of an SGLI L1B file name, or None: ``start`` (datetime, to the minute),
    ``path_number``, ``scene``, ``subsystem`` (VNR/IRS/POL), ``resolution`` (Q/K/L) and
    ``resolution_m``."""
    m = _NAME_RE.fullmatch(Path(path).name)
    if not m:
        return None
    return {
        "start": datetime.strptime(m["start"], "%Y%m%d%H%M"),
        "path_number": int(m["path"]),
        "scene": int(m["scene"]),
        "subsystem": m["subsystem"],
        "resolution": m["res"],
        "resolution_m": RESOLUTION_M[m["res"]],
        "version": m["algorithm"] + m["parameter"],
    }


def _our_name(name: str) -> str:
    return _SATPY_TO_OURS.get(name, name)


def _check_file(path: Path, h5: h5py.File, bands: list[str] | None) -> dict:
    """Validate what satpy will need; return times, size, tie points and the bands to load."""
    glob_attrs = h5.get("Global_attributes")
    image = h5.get("Image_data")
    geometry = h5.get("Geometry_data")
    for name, group in (
        ("Global_attributes", glob_attrs),
        ("Image_data", image),
        ("Geometry_data", geometry),
    ):
        if not isinstance(group, h5py.Group):
            raise ReaderError(f"{path}: no /{name} group, not an SGLI L1B file")
    where = f"{path}: /Global_attributes"
    start = parse_jaxa_time(
        attr_value(glob_attrs.attrs, "Scene_start_time", where), where, "Scene_start_time"
    )
    end = parse_jaxa_time(
        attr_value(glob_attrs.attrs, "Scene_end_time", where), where, "Scene_end_time"
    )
    if end < start:
        raise ReaderError(f"{where}: Scene_end_time {end} is before Scene_start_time {start}")
    img_where = f"{path}: /Image_data"
    n_lines = int(attr_number(image.attrs, "Number_of_lines", img_where))
    n_pixels = int(attr_number(image.attrs, "Number_of_pixels", img_where))
    available = [
        k[3:]
        for k, v in image.items()
        if isinstance(v, h5py.Dataset) and k.startswith("Lt_") and k[3:] in BANDS
    ]
    if bands is None:
        wanted = available
        if not wanted:
            raise ReaderError(f"{img_where}: no reflective band (Lt_VNxx/Lt_SWxx) in the file")
    else:
        wanted = list(dict.fromkeys(_our_name(b) for b in bands))
        missing = [b for b in wanted if b not in available]
        if missing:
            raise ReaderError(f"{img_where}: no band {missing}; the file has {sorted(available)}")
    for band in wanted:
        dset = image[f"Lt_{band}"]
        band_where = f"{path}: /Image_data/Lt_{band}"
        if dset.shape != (n_lines, n_pixels):
            raise ReaderError(
                f"{band_where} has shape {dset.shape}, expected "
                f"({n_lines}, {n_pixels}) from Number_of_lines/pixels"
            )
        for key in _BAND_ATTRS:
            attr_value(dset.attrs, key, band_where)
        for key in ("Slope_reflectance", "Offset_reflectance", "Mask"):
            attr_number(dset.attrs, key, band_where)
        bits = str(attr_value(dset.attrs, "Bit00(LSB)-13", band_where))
        if len(re.findall(r"^\s*\d+\s*:", bits, flags=re.M)) < 2:
            raise ReaderError(
                f"{band_where}: attribute 'Bit00(LSB)-13' does not give the "
                f"missing and saturation DNs ({bits!r})"
            )
    ties = {}
    for name in ("Latitude", "Longitude"):
        dset = geometry.get(name)
        geo_where = f"{path}: /Geometry_data/{name}"
        if not isinstance(dset, h5py.Dataset) or dset.ndim != 2:
            raise ReaderError(f"{geo_where}: missing or not a 2-D dataset")
        interval = int(attr_number(dset.attrs, "Resampling_interval", geo_where))
        if interval < 1:
            raise ReaderError(f"{geo_where}: Resampling_interval {interval} < 1")
        need = (-(-(n_lines - 1) // interval) + 1, -(-(n_pixels - 1) // interval) + 1)
        if dset.shape[0] < need[0] or dset.shape[1] < need[1]:
            raise ReaderError(
                f"{geo_where}: {dset.shape} tie points do not cover "
                f"{n_lines} x {n_pixels} pixels every {interval}"
            )
        ties[name] = (np.asarray(dset[()], dtype=np.float64), interval)
    return {
        "start": start,
        "end": end,
        "lines": n_lines,
        "pixels": n_pixels,
        "bands": wanted,
        "available": available,
        "ties": ties,
    }


def granule_info(path: str | Path) -> dict:
    """Cheap index entry for an L1B granule (attributes and tie points only, no satpy).

    Keys: ``start``/``end`` (datetime, UTC, Scene_start_time/Scene_end_time), ``bbox``
    [W, S, E, N] (degrees, from the tie points), ``lines``, ``pixels``, ``variables`` (bands
    in our names), ``subsystem``, ``resolution_m``, ``path_number`` and ``scene``.
    """
    path = Path(path)
    with open_h5(path) as h5:
        info = _check_file(path, h5, None)
    lat = info["ties"]["Latitude"][0]
    lon = info["ties"]["Longitude"][0]
    ok = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    if not ok.any():
        raise ReaderError(f"{path}: no valid tie-point latitude/longitude")
    meta = parse_l1b_filename(path) or {}
    return {
        "start": info["start"],
        "end": info["end"],
        "bbox": [
            float(lon[ok].min()),
            float(lat[ok].min()),
            float(lon[ok].max()),
            float(lat[ok].max()),
        ],
        "lines": info["lines"],
        "pixels": info["pixels"],
        "variables": info["available"],
        "subsystem": meta.get("subsystem"),
        "resolution_m": meta.get("resolution_m"),
        "path_number": meta.get("path_number"),
        "scene": meta.get("scene"),
    }


def window_for_bbox(path: str | Path, bbox) -> tuple[slice, slice] | None:
    """Lines/pixels of the granule whose tie-point cells meet a lon/lat bbox [W, S, E, N]
    (degrees), padded by one tie interval; None when the granule misses it. Reads only the
    tie points."""
    path = Path(path)
    w, s, e, n = (float(v) for v in bbox)
    with open_h5(path) as h5:
        info = _check_file(path, h5, None)
    lat, interval = info["ties"]["Latitude"]
    lon, _ = info["ties"]["Longitude"]
    inside = (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)
    if not inside.any():
        return None
    rows, cols = np.nonzero(inside)
    r0 = max(0, (int(rows.min()) - 1) * interval)
    r1 = min(info["lines"], (int(rows.max()) + 1) * interval + 1)
    c0 = max(0, (int(cols.min()) - 1) * interval)
    c1 = min(info["pixels"], (int(cols.max()) + 1) * interval + 1)
    return slice(r0, r1), slice(c0, c1)


def open_sgli_l1b(
    path: str | Path,
    variables: list[str] | None = None,
    roi: tuple[slice, slice] | None = None,
    sunz_corrected: bool = True,
) -> xr.Dataset:
    """Load the reflective bands of an SGLI L1B file with satpy's ``sgli_l1b`` reader.

    ``variables``: band names (``VN08`` or satpy's ``VN8``); None loads every VN/SW band in the
    file. ``roi`` = (line slice, pixel slice) computes only that window (see
    :func:`window_for_bbox`). ``sunz_corrected``: divide by cos(solar zenith) with satpy's
    modifier (default), giving TOA bidirectional reflectance; False gives JAXA's
    Slope_reflectance quantity pi L / F0.

    Returns dims ``(y, x)`` (``y``/``x`` = line/pixel numbers of the granule): one float32
    variable per band, TOA reflectance as a fraction (satpy gives percent; divided by 100,
    ``units`` "1"), NaN for missing/saturated DNs; 2-D ``lat``/``lon`` coordinates in degrees
    (WGS84) from satpy's SwathDefinition (tie points interpolated by python-geotiepoints);
    scalar ``time`` = middle of Scene_start_time..Scene_end_time (UTC). Band attributes keep
    ``wavelength_um`` and satpy's ``standard_name``.

    Raises ReaderError naming the file and the problem (not HDF5, missing group/attribute,
    bad times, unknown band, a file name satpy does not recognise, or satpy failing).
    """
    path = Path(path)
    meta = parse_l1b_filename(path)
    if meta is None:
        raise ReaderError(
            f"{path}: file name does not follow the JAXA L1B convention "
            "(GC1SG1_YYYYMMDDhhmm..._1BS?_{VNR|IRS|POL}??_????.h5) that satpy's sgli_l1b needs"
        )
    with open_h5(path) as h5:
        info = _check_file(path, h5, variables)
    names = [BANDS[b][0] for b in info["bands"]]
    lines = slice(0, info["lines"]) if roi is None else slice(*roi[0].indices(info["lines"])[:2])
    pixels = slice(0, info["pixels"]) if roi is None else slice(*roi[1].indices(info["pixels"])[:2])
    if lines.stop <= lines.start or pixels.stop <= pixels.start:
        raise ReaderError(f"{path}: empty roi {roi} for {info['lines']} x {info['pixels']}")
    loaded = _load_with_satpy(path, names, meta["resolution_m"], sunz_corrected, (lines, pixels))
    data_vars = {}
    for band, name in zip(info["bands"], names, strict=True):
        values, satpy_attrs = loaded["bands"][name]
        attrs = {
            "long_name": f"SGLI {band} TOA reflectance"
            + (" (sun-zenith corrected)" if sunz_corrected else " (pi L / F0, no cos SZA)"),
            "units": "1",
            "standard_name": str(satpy_attrs.get("standard_name", "toa_bidirectional_reflectance")),
            "wavelength_um": BANDS[band][1],
        }
        data_vars[band] = (("y", "x"), values.astype(np.float32) / np.float32(100.0), attrs)
    lon, lat = loaded["lon"], loaded["lat"]
    mid = info["start"] + (info["end"] - info["start"]) / 2
    ds = xr.Dataset(
        data_vars,
        coords={
            "y": ("y", np.arange(lines.start, lines.stop), {"long_name": "line number"}),
            "x": ("x", np.arange(pixels.start, pixels.stop), {"long_name": "pixel number"}),
            "lat": (("y", "x"), lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": (("y", "x"), lon, {"units": "degrees_east", "standard_name": "longitude"}),
            "time": np.datetime64(mid, "ns"),
        },
    )
    ds["time"].attrs["long_name"] = "middle of the scene (UTC)"
    ds.attrs.update(
        source_file=str(path),
        reader="satpy sgli_l1b",
        platform="GCOM-C",
        sensor="SGLI",
        subsystem=meta["subsystem"],
        resolution_m=meta["resolution_m"],
        time_coverage_start=info["start"].isoformat(),
        time_coverage_end=info["end"].isoformat(),
        format_reference=SPEC_URL,
    )
    return ds


#: Attributes satpy's sgli_l1b (0.60) passes to numpy as scalars.
_SCALAR_ATTRS = {
    "Image_data": ("Number_of_lines", "Number_of_pixels"),
    "Geometry_data/*": ("Resampling_interval",),
}


def _needs_scalar_view(h5: h5py.File) -> bool:
    """True when the file stores satpy's scalar attributes as 1-element arrays (as JAXA does)."""
    holders = [h5["Image_data"]] + [
        d for d in h5["Geometry_data"].values() if isinstance(d, h5py.Dataset)
    ]
    keys = _SCALAR_ATTRS["Image_data"] + _SCALAR_ATTRS["Geometry_data/*"]
    return any(np.ndim(obj.attrs[k]) > 0 for obj in holders for k in keys if k in obj.attrs)


def _scalar_view(path: Path, folder: Path) -> Path:
    """A small HDF5 file named like ``path`` in ``folder`` that satpy can read: the band
    datasets are external links into ``path``, the tie-point datasets are copied and the
    1-element attributes satpy needs as scalars are unwrapped.

    Written because satpy 0.60's sgli_l1b breaks on JAXA's 1-element array attributes with
    numpy >= 2.4 (pytroll/satpy#3470, fix proposed in pytroll/satpy#3475); remove once a satpy
    release with that fix is required.
    """
    view = folder / path.name
    with h5py.File(path, "r") as src, h5py.File(view, "w") as dst:
        for name, obj in src.items():
            if not isinstance(obj, h5py.Group):
                dst[name] = h5py.ExternalLink(str(path.resolve()), f"/{name}")
                continue
            group = dst.create_group(name)
            for key, value in obj.attrs.items():
                unwrap = name == "Image_data" and key in _SCALAR_ATTRS["Image_data"]
                group.attrs[key] = np.asarray(value).reshape(-1)[0] if unwrap else value
            for child, item in obj.items():
                if name == "Geometry_data" and isinstance(item, h5py.Dataset):
                    copy = group.create_dataset(child, data=item[()])
                    for key, value in item.attrs.items():
                        unwrap = key in _SCALAR_ATTRS["Geometry_data/*"]
                        copy.attrs[key] = np.asarray(value).reshape(-1)[0] if unwrap else value
                else:
                    group[child] = h5py.ExternalLink(str(path.resolve()), f"/{name}/{child}")
    return view


@contextlib.contextmanager
def _quiet_satpy():
    """Silence satpy's logging while loading: an IRS file has no solar_zenith_angle, so the
    ``sunz_corrected`` modifier logs tracebacks for that optional input before computing the
    angle from time and position, which is the intended path. Real failures are raised."""
    logger = logging.getLogger("satpy")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _load_with_satpy(
    path: Path,
    names: list[str],
    resolution_m: int,
    sunz_corrected: bool,
    window: tuple[slice, slice],
) -> dict:
    """satpy ``Scene.load`` of ``names`` as reflectance in percent (optionally with satpy's
    ``sunz_corrected`` modifier, which divides by cos(SZA) from the file's Solar_zenith or, for
    IRS files, from pyorbital), computed over ``window`` only. Returns ``bands`` (satpy name ->
    (values, attrs)) and the window's ``lon``/``lat`` from satpy's SwathDefinition."""
    from satpy import Scene  # imported here: satpy's import costs ~1 s and most runs need none
    from satpy.dataset.dataid import DataQuery

    modifiers = ("sunz_corrected",) if sunz_corrected else ()
    queries = [
        DataQuery(name=n, calibration="reflectance", resolution=resolution_m, modifiers=modifiers)
        for n in names
    ]
    lines, pixels = window
    with tempfile.TemporaryDirectory(prefix="fluxscape_sgli_") as tmp:
        try:
            with h5py.File(path, "r") as h5:
                needs_view = _needs_scalar_view(h5)
            source = _scalar_view(path, Path(tmp)) if needs_view else path
            with warnings.catch_warnings(), _quiet_satpy():
                warnings.simplefilter("ignore")
                scn = Scene(filenames=[str(source)], reader="sgli_l1b")
                scn.load(queries)
                bands, area = {}, None
                for did in scn.keys():
                    arr = scn[did]
                    bands[did["name"]] = (np.asarray(arr.data[lines, pixels]), dict(arr.attrs))
                    area = arr.attrs.get("area", area)
                if area is None or not hasattr(area, "lons"):
                    raise ReaderError(f"{path}: satpy gave no swath geolocation for {names}")
                lon = np.asarray(area.lons.data[lines, pixels], dtype=np.float64)
                lat = np.asarray(area.lats.data[lines, pixels], dtype=np.float64)
            del scn
        except ReaderError:
            raise
        except Exception as exc:  # satpy raises many types; the caller gets one clear error
            raise ReaderError(f"{path}: satpy sgli_l1b could not load {names} ({exc})") from exc
    missing = [n for n in names if n not in bands]
    if missing:
        raise ReaderError(f"{path}: satpy sgli_l1b did not load {missing} at {resolution_m} m")
    return {"bands": bands, "lon": lon, "lat": lat}


def swath_definition(ds: xr.Dataset):
    """A pyresample SwathDefinition from an opened granule's 2-D ``lon``/``lat`` (degrees), for
    ``pyresample.kd_tree.resample_nearest`` (or ``satpy.Scene.resample``) onto a target area."""
    from pyresample.geometry import SwathDefinition

    return SwathDefinition(lons=ds["lon"].values, lats=ds["lat"].values)


# --- registry ----------------------------------------------------------------------------------


def _sniff(path: Path) -> bool:
    """HDF5 with /Global_attributes (Scene_start_time) and Lt_* bands in /Image_data;
    ReaderError saying what is missing otherwise."""
    path = Path(path)
    require(path, "hdf5", "HDF5", "GCOM-C SGLI products are HDF5")
    with open_h5(path) as h5:
        glob_attrs = h5.get("Global_attributes")
        image = h5.get("Image_data")
        if not isinstance(glob_attrs, h5py.Group) or "Scene_start_time" not in glob_attrs.attrs:
            raise ReaderError(
                f"{path}: has no /Global_attributes Scene_start_time, not an SGLI L1B granule"
            )
        if not isinstance(image, h5py.Group) or not any(k.startswith("Lt_") for k in image):
            raise ReaderError(f"{path}: has no Lt_* band in /Image_data, not an SGLI L1B granule")
    return True


def _summarize(path: Path) -> FileSummary:
    """Header summary; ``details["valid_values"]`` counts valid DNs of each band."""
    info = granule_info(path)
    counts = {k: n for k, n in valid_counts(path).items() if k.startswith("Lt_")}
    warnings = no_data_warnings(counts)
    return FileSummary(
        path=str(path),
        reader="sgli_l1b",
        variables=info["variables"],
        bbox=[round(v, 6) for v in info["bbox"]],
        time=[info["start"].isoformat(), info["end"].isoformat()],
        details={
            "subsystem": info["subsystem"],
            "shape": [info["lines"], info["pixels"]],
            "resolution_m": info["resolution_m"],
            "valid_values": counts,
        }
        | ({"warnings": warnings} if warnings else {}),
    )


# --- source: VNR swaths onto a target tile ----------------------------------------------------

#: VNR bands -> standard layers.
L1B_LAYERS = {"VN03": "blue", "VN06": "green", "VN08": "red", "VN11": "nir"}


def _granule_info(path: str | Path) -> Granule | None:
    """A VNR L1B scene as a granule (each swath its own grid); None for the IRS/POL files of
    the scene, which carry no VN band."""
    if "_VNR" not in Path(path).name:
        return None
    info = granule_info(path)
    return Granule(
        str(path),
        info["start"],
        tuple(info["bbox"]),
        str(path),
        (str(path),),
        layers=frozenset(L1B_LAYERS.values()),
    )


def _prepare(granule: Granule, tile, options: dict):
    from pyresample import geometry

    from fluxscape.readers.ontile import tile_lonlat

    lon, lat = tile_lonlat(tile)
    return geometry.GridDefinition(lons=lon, lats=lat)


def _read(granule: Granule, tile, layers, options: dict, target) -> dict | None:
    """TOA reflectances of one swath resampled to the tile by nearest neighbour (pyresample
    kd-tree, 1.5 km radius) with the bright-red cloud screen."""
    from pyresample import geometry, kd_tree

    from fluxscape.readers.ontile import cloud_screen, day_of_year, tile_bbox

    window = window_for_bbox(granule.path, tile_bbox(tile, 0.05))
    if window is None:
        return None
    bands = [b for b, name in L1B_LAYERS.items() if name in layers or name == "red"]
    ds = open_sgli_l1b(granule.path, bands, roi=window)
    swath = geometry.SwathDefinition(lons=ds["lon"].values, lats=ds["lat"].values)
    valid_in, valid_out, index_array, _ = kd_tree.get_neighbour_info(
        swath, target, radius_of_influence=1500, neighbours=1
    )
    out = {}
    for band in bands:
        out[L1B_LAYERS[band]] = kd_tree.get_sample_from_neighbour_info(
            "nn",
            target.shape,
            ds[band].values.astype("float32"),
            valid_in,
            valid_out,
            index_array,
            fill_value=np.nan,
        ).astype("float32")
    observed = np.isfinite(out["red"]) & np.isfinite(out.get("nir", out["red"]))
    cloudy = cloud_screen(out["red"])
    out["reliability"] = np.where(observed, np.where(cloudy, 3, 0), -1)
    out["usable"] = observed & ~cloudy
    out["doy"] = np.full(target.shape, day_of_year(granule.start), "float32")
    out["files"] = [granule.path]
    return out


SPEC = register(
    ReaderSpec(
        name="sgli_l1b",
        patterns=(L1B_NAME_PATTERN,),
        sniff=_sniff,
        open=open_sgli_l1b,
        summarize=_summarize,
        description="GCOM-C SGLI L1B VNR/IRS granules (TOA reflectance through satpy sgli_l1b)",
        capabilities=frozenset(L1B_LAYERS.values()),
        granule_info=_granule_info,
        prepare=_prepare,
        read=_read,
        quality="bright-red cloud screen",
    )
)
