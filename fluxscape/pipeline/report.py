"""``OUT/report.html``: one self-contained page about a run (no scripts, no CDN; images are
embedded as data URIs so the file opens offline and can be mailed).

Sections: the run (workflow, time, peak memory), each product (its variables and a quicklook
map per variable and year), the models of the upscaling products (``flux``, ``soil_flux``:
cross-validation skill by scale, observed against out-of-fold predicted, annual regional
totals, time series at each site: observed vs the map), each budget product (bottom-up
against top-down per region: a monthly plot with +-sd bands), and the inputs used and
skipped.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import fluxscape
from fluxscape.figlayout import set_margins

if TYPE_CHECKING:  # imported where used: a no-op resume rewrites the page from its cache
    import pandas as pd
    import xarray as xr

#: Counts the images that decoded once the page has loaded (``data-images`` and
#: ``data-images-loaded`` on <body>), so a headless browser can check the page.
_CHECK = (
    "<script>window.addEventListener('load',function(){var i=document.images,n=0;"
    "for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0){n++;}}"
    "document.body.setAttribute('data-images',i.length);"
    "document.body.setAttribute('data-images-loaded',n);});</script>"
)

#: Product kinds with a models section (skill, card, out-of-fold and site plots, totals).
MODEL_KINDS = ("flux", "soil_flux")

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;font-size:.9em}th{background:#f3f3f3}.maps{display:flex;flex-wrap:wrap;gap:8px}
.maps figure{margin:0;width:340px}.maps img{width:340px}figcaption{font-size:.8em;color:#555}
.ts img{max-width:100%}code{background:#f6f6f6;padding:0 .2em}
"""


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>none</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    """Table cells: three significant digits, large numbers whole with thousands separators
    (an area of 5 034 km² reads ``5,034``, not ``5.03e+03``)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return "" if value is None else str(value)


def _product_section(out: Path, name: str, store: Path) -> str:
    import xarray as xr

    ds = xr.open_zarr(store, consolidated=True)
    rows = [
        {
            "variable": v,
            "long name": ds[v].attrs.get("long_name", ""),
            "units": ds[v].attrs.get("units", ""),
            "dims": " × ".join(map(str, ds[v].dims)),
        }
        for v in ds.data_vars
        if v != "spatial_ref"
    ]
    maps = []
    for png in sorted((out / "quicklooks" / name).glob("*.png")):
        maps.append(
            f"<figure>{_img(png.read_bytes(), png.stem)}<figcaption>{html.escape(png.stem)}"
            "</figcaption></figure>"
        )
    inputs = ds.attrs.get("inputs", [])
    skipped = ds.attrs.get("skipped_inputs", [])
    return (
        f"<h2 id='{html.escape(name)}'>Product <code>{html.escape(name)}</code></h2>"
        f"<p>{html.escape(ds.attrs.get('summary', ''))}</p>"
        f"{_resampling_note(ds.attrs)}"
        f"<p>Store: <code>{html.escape(str(store))}</code></p>{_table(rows)}"
        f"<div class='maps'>{''.join(maps)}</div>"
        f"<p>{len(inputs)} input file(s) used, {len(skipped)} skipped.</p>"
        + (
            _table([{"skipped file": s["file"], "reason": s["reason"]} for s in skipped])
            if skipped
            else ""
        )
    )


def _resampling_note(attrs: dict) -> str:
    """How the grid met the input's native pixels (``native_grid`` of a vi store)."""
    if "native_grid" not in attrs:
        return ""
    share = json.loads(attrs["native_grid"])
    method = html.escape(str(attrs.get("resampling", "")))
    if share.get("aligned"):
        return f"<p>Resampling ({method}): the grid is the input's own; pixels are copied.</p>"
    if share.get("pixels_from_neighbour") is None:
        return ""
    return (
        f"<p>Resampling ({method}): {100 * share['pixels_from_neighbour']:.0f} % of the pixels "
        "take a neighbouring source pixel rather than the one covering most of them; a pixel "
        f"spans about {share['source_pixels_per_pixel']:g} source pixels (estimated on "
        f"{share['sampled']:,} pixels).</p>"
    )


def _tower_rows(sites: pd.DataFrame) -> list[dict]:
    def shared(value) -> str:
        return {"True": "yes", "False": "no"}.get(str(value), "—")

    return [
        {
            "site": r.site,
            "lon, lat": f"{r.lon:.4f}, {r.lat:.4f}",
            "distance to pixel centre (m)": float(r.distance_m),
            "in the source pixel its grid pixel takes": shared(getattr(r, "native_pixel", None)),
            "left out": r.reason if isinstance(r.reason, str) else "",
        }
        for r in sites.itertuples()
    ]


def _skill_rows(cv_skill: dict) -> list[dict]:
    rows = []
    for target, scales in cv_skill.items():
        for scale, metrics in scales.items():
            if isinstance(metrics, dict):
                rows.append(
                    {
                        "target": target,
                        "scale": scale,
                        **{k: metrics.get(k) for k in ("r2", "rmse", "bias", "nse", "n")},
                    }
                )
    return rows


def _units(card: dict, target: str) -> str:
    """The units of a target as its model card names them (gC m-2 d-1, mgCH4 m-2 d-1)."""
    units = card.get("units", "gC m-2 d-1")
    return units.get(target, "") if isinstance(units, dict) else str(units)


def _oof_plot(pred: pd.DataFrame, target: str, units: str, metrics: dict) -> bytes:
    """Observed against out-of-fold predicted values of one target (the cross-validation's
    predictions.csv: each site predicted by models that never saw it), with the 1:1 line."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = pred[pred["target"] == target]
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.scatter(sub["obs"], sub["pred"], s=5, alpha=0.45, color="C0", lw=0)
    lo = float(np.nanmin([sub["obs"].min(), sub["pred"].min()]))
    hi = float(np.nanmax([sub["obs"].max(), sub["pred"].max()]))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel(f"observed ({units})", fontsize=8)
    ax.set_ylabel(f"predicted, site held out ({units})", fontsize=8)
    r2 = metrics.get("r2")
    r2_text = f"R² {r2:.2f}, " if isinstance(r2, float) and math.isfinite(r2) else ""
    ax.set_title(f"{target}: {r2_text}n {metrics.get('n', len(sub))}", fontsize=9)
    ax.tick_params(labelsize=7)
    set_margins(fig, left=0.62, right=0.15, bottom=0.45, top=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def _tower_plot(
    table: pd.DataFrame,
    flux: xr.Dataset,
    sites: dict,
    target: str,
    units: str = "gC m-2 d-1",
    noun: str = "tower",
) -> bytes:
    import matplotlib
    import numpy as np
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    names = sorted(sites)
    ncol = 3
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(11, 2.2 * nrow), sharex=True, squeeze=False)
    for ax, site in zip(axes.ravel(), names, strict=False):
        lon, lat = sites[site]
        pred = flux[target].sel(x=lon, y=lat, method="nearest")
        ax.plot(pred["time"].values, pred.values, color="C1", lw=1.2, label="predicted (map)")
        obs = table[table["site"] == site]
        ax.plot(pd.to_datetime(obs["time"]), obs[target], ".", color="C0", ms=3, label=noun)
        ax.set_title(site, fontsize=8)
        ax.tick_params(labelsize=7)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(
        f"{target.upper()} ({units}) at the {noun}s: observations vs the map. "
        f"In-sample: the map's models were trained on these {noun}s; the out-of-fold skill "
        "is in the table above",
        fontsize=9,
    )
    set_margins(fig, left=0.5, right=0.15, bottom=0.45, top=0.6, wgap=0.5, hgap=0.35)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def _flux_section(out: Path, name: str, store: Path) -> str:
    import pandas as pd
    import xarray as xr

    ds = xr.open_zarr(store, consolidated=True)
    if "cv_skill" not in ds.attrs:
        return ""
    skill = json.loads(ds.attrs["cv_skill"])
    card = json.loads(ds.attrs.get("model_card", "{}"))
    noun = "tower" if "towers" in ds.attrs else "site"
    parts = [
        f"<h2>Models of <code>{html.escape(name)}</code></h2>",
        "<p>Out-of-fold skill (sites held out whole), by scale"
        + (
            "; <code>daily</code>: each held-out day against its period's prediction"
            if any("daily" in v for v in skill.values())
            else ""
        )
        + ":</p>",
        _table(_skill_rows(skill)),
        "<p>Model card:</p>",
        _table(
            [
                {
                    "card id": card.get("card_id"),
                    "targets": ", ".join(card.get("targets", [])),
                    "methods": "/".join(card.get("methods", [])),
                    "features": ", ".join(card.get("features", [])),
                    "sites": len(card.get("sites", [])),
                    "period": " – ".join(card.get("period", [])),
                }
            ]
        ),
    ]
    predictions = out / "reports" / name / "predictions.csv"
    if predictions.is_file():
        pred = pd.read_csv(predictions)
        parts.append("<p>Observed against out-of-fold predicted, at the product step:</p>")
        images = [
            _img(_oof_plot(pred, t, _units(card, t), skill[t].get("step", {})), f"{t} out of fold")
            for t in skill
            if t in set(pred["target"])
        ]
        parts.append(f"<div class='maps'>{''.join(images)}</div>")
    totals = out / "reports" / name / "regional_totals.csv"
    if totals.is_file():
        parts.append("<p>Annual regional totals (± ensemble spread):</p>")
        parts.append(_table(_totals_rows(pd.read_csv(totals))))
    table_path = out / "reports" / name / "training_table.csv"
    sites_path = out / "reports" / name / "sites.csv"
    if sites_path.is_file():
        parts.append(f"<p>Where each {noun} was placed on the grid:</p>")
        parts.append(_table(_tower_rows(pd.read_csv(sites_path))))
    if table_path.is_file() and sites_path.is_file():
        table = pd.read_csv(table_path)
        rows = pd.read_csv(sites_path).dropna(subset=["pixel_x", "pixel_y"])  # off-grid: none
        sites = {r.site: (r.pixel_x, r.pixel_y) for r in rows.itertuples()}
        for target in skill:
            if target in ds and target in table:
                png = _tower_plot(table, ds, sites, target, _units(card, target), noun)
                parts.append(f"<div class='ts'>{_img(png, f'{target} at the {noun}s')}</div>")
    return "".join(parts)


def _totals_rows(df: pd.DataFrame) -> list[dict]:
    """The annual rows of a regional totals table: TgC columns (``total_TgC``, ``sd_TgC``:
    the flux product) or ``total``/``sd`` with a ``units`` column (soil_flux: TgC, GgCH4)."""
    annual = df[df["period_type"] == "year"]
    rows = []
    for r in annual.to_dict("records"):
        units = r.get("units", "TgC")
        total = r["total"] if "total" in r else r["total_TgC"]
        sd = r["sd"] if "sd" in r else r["sd_TgC"]
        rows.append(
            {
                "region": r["region"],
                "variable": r["variable"],
                "year": r["period"],
                "total": float(total),
                "±": float(sd),
                "units": units,
                "area (km²)": float(r["area_km2"]),
            }
        )
    return rows


def budget_figure(table: pd.DataFrame, region: str):
    """A matplotlib Figure of one region's monthly bottom-up and top-down totals (TgC, rows
    of a budget table) as two lines, each with a +-1 sd band; months on x."""
    import matplotlib
    import numpy as np
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    t = table[table["region"] == region].sort_values("month")
    x = pd.to_datetime(t["month"])
    fig, ax = plt.subplots(figsize=(7, 2.6))
    fire = "fire_included" in t and bool(t["fire_included"].any())
    for side, colour, label in (
        ("bottomup", "C0", "bottom-up NEE + fire" if fire else "bottom-up NEE (flux product)"),
        ("topdown", "C3", "top-down land + fire" if fire else "top-down land flux (inversion)"),
    ):
        v, sd = t[f"{side}_TgC"].to_numpy(float), t[f"{side}_sd_TgC"].to_numpy(float)
        ax.plot(x, v, "-o", color=colour, ms=3, lw=1.2, label=label)
        if np.isfinite(sd).any():
            ax.fill_between(x, v - sd, v + sd, color=colour, alpha=0.2, lw=0)
    ax.axhline(0, color="#888", lw=0.6)
    ax.set_ylabel("TgC per month", fontsize=8)
    ax.set_title(
        f"{region}: bottom-up vs top-down (± 1 sd; positive: to the atmosphere)", fontsize=9
    )
    ax.tick_params(labelsize=7)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _budget_plot(table: pd.DataFrame, region: str) -> bytes:
    """:func:`budget_figure` as PNG bytes."""
    import matplotlib.pyplot as plt

    fig = budget_figure(table, region)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def _budget_section(out: Path, name: str, store: Path) -> str:
    """A budget product's comparison: per region, how many months are within k combined sd,
    the mean difference, and a plot of both monthly series with bands."""
    import pandas as pd

    path = out / "reports" / name / "budget.csv"
    if not path.is_file():
        return ""
    table = pd.read_csv(path)
    k = float(table["k"].iloc[0]) if len(table) else 2.0
    rows = [
        {
            "region": region,
            "months": len(g),
            f"within {k:g} sd": int(g["within"].sum()),
            "mean diff, top-down − bottom-up (TgC/month)": float(g["diff_TgC"].mean()),
            "mean combined sd (TgC)": float(g["combined_sd_TgC"].mean()),
        }
        for region, g in table.groupby("region", sort=True)
    ]
    parts = [
        f"<h2>Budget <code>{html.escape(name)}</code>: bottom-up against top-down</h2>",
        f"<p>Per region and month (table: <code>reports/{html.escape(name)}/budget.csv</code>); "
        f"within: |difference| ≤ {k:g} × the combined sd.</p>",
        _table(rows),
    ]
    for region in sorted(table["region"].unique()):
        png = _budget_plot(table, region)
        parts.append(f"<div class='ts budget'>{_img(png, f'budget {region}')}</div>")
    return "".join(parts)


def _runs_section(out: Path) -> str:
    log = out / ".fluxscape" / "runs.jsonl"
    if not log.is_file():
        return ""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return "<h2>Runs into this folder</h2>" + _table(rows[-20:])


def record_run(result, peak_memory_mib: float | None) -> None:
    """Append this run's start, wall time, peak memory and tiles run to
    ``OUT/.fluxscape/runs.jsonl`` (the report's run history)."""
    log = Path(result.out) / ".fluxscape" / "runs.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "finished (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "wall time (s)": round(result.seconds, 1),
        "peak memory (MiB)": round(peak_memory_mib or 0.0),
        "tiles run": sum(p.tiles_run for p in result.products),
        "fluxscape": fluxscape.__version__,
    }
    with open(log, "a") as fh:
        fh.write(json.dumps(entry) + "\n")


def write_report(result, peak_memory_mib: float | None = None) -> Path:
    """Write ``OUT/report.html`` for a :class:`~fluxscape.pipeline.summary.RunResult`;
    returns its path (written to a temporary name, then renamed). The products' and models'
    sections come from :func:`_cached` when their inputs are unchanged: a run that rebuilt
    nothing redraws no plot."""
    out = Path(result.out)
    facts = result.facts
    head = [
        f"<h1>fluxscape run <code>{html.escape(facts['name'])}</code></h1>",
        f"<p>{html.escape(facts.get('description', ''))}</p>",
        _table(
            [
                {
                    "fluxscape": fluxscape.__version__,
                    "wall time": f"{result.seconds:.0f} s",
                    "peak memory": f"{peak_memory_mib:.0f} MiB" if peak_memory_mib else "—",
                    "region (W, S, E, N)": ", ".join(f"{v:g}" for v in facts["bbox"]),
                    "period": facts["period"],
                    "workflow": facts["workflow"],
                }
            ]
        ),
        _table(
            [
                {
                    "product": p.name,
                    "tiles": p.tiles_total,
                    "run now": p.tiles_run,
                    "skipped inputs": len(p.skipped_inputs),
                    "store": str(p.store),
                }
                for p in result.products
            ]
        ),
    ]
    body = []
    # The flux maps first: they are what most readers open the report for.
    ordered = sorted(result.products, key=lambda p: p.kind not in MODEL_KINDS)
    for p in ordered:
        body += product_sections(out, p.name, p.kind, p.store)
    body.append(_runs_section(out))
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>fluxscape run {html.escape(facts['name'])}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(head)}{''.join(body)}{_CHECK}</body></html>"
    )
    path = out / "report.html"
    tmp = path.with_name("report.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def product_sections(out: Path, name: str, kind: str, store: Path, *after) -> list[str]:
    """The report's HTML sections of one product (its model's, its budget's, its own), each
    through :func:`_cached`. The runner calls it as a task on a worker once the product's
    quicklooks are drawn (``after``: those tasks' results, only an ordering for Dask), so
    :func:`write_report` finds the sections rendered and the driver draws no plot."""
    from fluxscape.pipeline.remote import is_url

    out = Path(out)
    store = store if is_url(store) else Path(store)  # a version on object storage: its URL
    sections = []
    if kind in MODEL_KINDS:
        sections.append(_cached(out, "models", name, store, _flux_section))
    if kind == "budget":
        sections.append(_cached(out, "budget", name, store, _budget_section))
    sections.append(_cached(out, "product", name, store, _product_section))
    return sections


#: Where :func:`_cached` keeps the sections it rendered.
CACHE_DIR = Path(".fluxscape") / "report-cache"


def _cached(out: Path, section: str, name: str, store: Path, render) -> str:
    """``render(out, name, store)``, the HTML of a section of the report, or the same HTML
    rendered before from the same inputs: the store's version and metadata, the files under
    ``OUT/quicklooks/<name>`` and ``OUT/reports/<name>`` (names, sizes, times) and the code
    that draws them (this module and the quicklooks'). One file per section in
    ``OUT/.fluxscape/report-cache``; an older one of the same section is replaced."""
    digest = hashlib.sha256(f"{section}|{name}|{fluxscape.__version__}".encode())
    from fluxscape.pipeline.remote import is_url

    if is_url(store):  # a version on object storage: immutable, its URL names it
        digest.update(str(store).encode())
        files = []
    else:
        store = Path(store)
        digest.update(str(store.resolve()).encode())
        files = [store / ".zmetadata", store / ".zattrs", store / "zarr.json"]
    for folder in (out / "quicklooks" / name, out / "reports" / name):
        if folder.is_dir():
            files += sorted(folder.iterdir())
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        digest.update(f"{f}:{st.st_size}:{st.st_mtime_ns};".encode())
    for module in (Path(__file__), Path(__file__).with_name("quicklook.py")):
        digest.update(module.read_bytes())
    folder = out / CACHE_DIR
    path = folder / f"{section}-{name}-{digest.hexdigest()[:20]}.html"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    text = render(out, name, store)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{section}-{name}-*.html"):
        old.unlink(missing_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return text
