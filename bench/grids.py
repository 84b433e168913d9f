"""Any grid (issue #20): the demo workflow on EPSG:4326, UTM 54N and the MODIS sinusoidal
grid, compared with the sample world's truth and with each other.

    python bench/grids.py --sample demo-out/sample [--work bench/out/grids] [--reuse NAME=DIR]

For each grid, runs ``workflows/demo.yaml`` with only ``region.crs``/``region.resolution`` (and
the GOSAT grid's resolution, in the same units) changed, unless ``--reuse NAME=DIR`` names a
finished output of that variant. Reports per grid: the towers the flux model trained on, the
leave-one-site-out GPP R², the flux maps' GPP at the towers against the EPSG:4326 run (mean
absolute difference and correlation over every period), and phenology's SOS/EOS RMSE against
the world's truth on single-season, undisturbed pixels (the masks of
tests/test_phenology_product.py, evaluated at each grid's pixel centres). Writes the ``## Grids``
section of bench/RESULTS.md and bench/out/grids.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import yaml
from pyproj import Transformer
from results import write_section

from fluxscape.sample.world import PRESETS, World

REPO = Path(__file__).resolve().parents[1]
SINUSOIDAL = "+proj=sinu +R=6371007.181 +nadgrids=@null +wktext +units=m +no_defs"
MODIS_1KM = 1111950.5197665 / 1200
VARIANTS = {
    "epsg4326": ("EPSG:4326", 0.01, 0.25),
    "utm54": ("EPSG:32654", 1000.0, 25000.0),
    "sinusoidal": (SINUSOIDAL, MODIS_1KM, 25 * MODIS_1KM),
}


def workflow_for(name: str, work: Path) -> Path:
    """demo.yaml with the variant's CRS and resolutions."""
    crs, res, gosat = VARIANTS[name]
    wf = yaml.safe_load((REPO / "workflows" / "demo.yaml").read_text())
    wf["region"].update(crs=crs, resolution=res)
    wf["products"]["gosat_l3"]["resolution"] = gosat
    path = work / f"demo-{name}.yaml"
    path.write_text(yaml.safe_dump(wf, sort_keys=False))
    return path


def run_variant(name: str, sample: Path, work: Path) -> Path:
    out = work / name
    if (out / "products" / "flux.zarr").exists():
        return out
    cmd = [sys.executable, "-m", "fluxscape.cli", "run", str(workflow_for(name, work))]
    cmd += ["--data-dir", str(sample), "--out", str(out)]
    subprocess.run(cmd, check=True)
    return out


def _store_lonlat(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.meshgrid(ds.x.values, ds.y.values)
    crs = ds.spatial_ref.attrs["crs_wkt"]
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def phenology_rmse(out: Path, sample: Path) -> dict:
    """SOS/EOS RMSE (days) per year on single-season undisturbed pixels against the truth."""
    ph = xr.open_zarr(out / "products" / "phenology.zarr").load()
    truth = xr.open_dataset(sample / "truth" / "phenology.nc")
    seed = json.loads((sample / "truth" / "world.json").read_text())["seed"]
    world = World(PRESETS["demo"], seed=seed)
    lon, lat = _store_lonlat(ph)
    keep = world.homogeneous(lon, lat, 0.015) & ~world.disturbance(lon, lat)["disturbed"]
    single = keep & ~world.double_crop(lon, lat)
    w, e = float(truth.lon.min()), float(truth.lon.max())
    s, n = float(truth.lat.min()), float(truth.lat.max())
    single &= (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)  # the world's extent only
    pick = {"lon": xr.DataArray(lon), "lat": xr.DataArray(lat)}
    out_rmse = {}
    for year in ph.year.values:
        py = ph.sel(year=year)
        amp = py.amplitude.fillna(-1)
        main = (amp.isel(season=1) > amp.isel(season=0)).values
        for name in ("sos", "eos"):
            est = np.where(main, py[name].isel(season=1).values, py[name].isel(season=0).values)
            true = truth[name].sel(year=year).sel(pick, method="nearest").values
            ok = single & np.isfinite(est) & np.isfinite(true)
            out_rmse[f"{name}_{int(year)}"] = float(np.sqrt(np.mean((est[ok] - true[ok]) ** 2)))
    return out_rmse


def towers_gpp(out: Path, sample: Path) -> pd.DataFrame:
    """GPP of the flux map at each tower (nearest pixel), rows time, columns towers."""
    ds = xr.open_zarr(out / "products" / "flux.zarr")
    sites = pd.read_csv(sample / "towers" / "SitesList.csv", encoding="utf-8-sig")
    crs = ds.spatial_ref.attrs["crs_wkt"]
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(
        sites.Longitude.values, sites.Latitude.values
    )
    gpp = ds.gpp.sel(
        x=xr.DataArray(x, dims="site"), y=xr.DataArray(y, dims="site"), method="nearest"
    )
    return pd.DataFrame(gpp.load().values, columns=sites.SiteCode)


def measure(outs: dict[str, Path], sample: Path) -> dict:
    ref = towers_gpp(outs["epsg4326"], sample)
    rows = {}
    for name, out in outs.items():
        skill = json.loads((out / "reports" / "flux" / "skill.json").read_text())
        gpp = towers_gpp(out, sample)
        diff = (gpp - ref).to_numpy()
        ok = np.isfinite(diff)
        ds = xr.open_zarr(out / "products" / "vi.zarr")
        rows[name] = {
            "grid": f"{ds.sizes['y']} x {ds.sizes['x']}",
            "towers_trained": len(skill["sites"]),
            "loso_gpp_r2": skill["skill"]["gpp"]["step"]["r2"],
            "tower_gpp_mad": float(np.mean(np.abs(diff[ok]))),
            "tower_gpp_r": float(np.corrcoef(gpp.to_numpy()[ok], ref.to_numpy()[ok])[0, 1]),
            "tower_gpp_mean": float(np.nanmean(ref.to_numpy())),
            **phenology_rmse(out, sample),
        }
    return rows


def section(rows: dict) -> str:
    years = sorted({k.split("_")[1] for r in rows.values() for k in r if k.startswith("sos_")})
    head = "| grid | pixels | towers | LOSO GPP R² | GPP at towers vs EPSG:4326 (MAD, r) |"
    head += "".join(f" SOS/EOS RMSE {y} (d) |" for y in years)
    lines = ["## Grids", "", "`python bench/grids.py --sample SAMPLE` (issue #20): the demo on", ""]
    lines[-2] += (
        " three grids, each run from the same sample world. GPP at the towers is the nearest "
        "pixel's, over all 46 periods; phenology against the world's truth on single-season, "
        "undisturbed pixels."
    )
    lines += [head, "|" + "---|" * (5 + len(years))]
    for name, r in rows.items():
        pheno = "".join(f" {r[f'sos_{y}']:.2f} / {r[f'eos_{y}']:.2f} |" for y in years)
        lines.append(
            f"| {name} | {r['grid']} | {r['towers_trained']} | {r['loso_gpp_r2']:.3f} | "
            f"{r['tower_gpp_mad']:.3f} gC m-2 d-1 of {r['tower_gpp_mean']:.2f}, "
            f"r {r['tower_gpp_r']:.3f} |{pheno}"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "grids")
    ap.add_argument("--reuse", action="append", default=[], metavar="NAME=DIR")
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    reuse = dict(r.split("=", 1) for r in args.reuse)
    outs = {
        name: Path(reuse[name]) if name in reuse else run_variant(name, args.sample, args.work)
        for name in VARIANTS
    }
    rows = measure(outs, args.sample)
    (args.work / "grids.json").write_text(json.dumps(rows, indent=2))
    write_section(args.results, "Grids", section(rows))
    print(section(rows))


if __name__ == "__main__":
    main()
