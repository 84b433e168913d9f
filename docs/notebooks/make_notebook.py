"""Write docs/notebooks/first-flux-map.ipynb (nbformat v4, outputs cleared).

Edit the cells here and rerun ``python docs/notebooks/make_notebook.py``; the notebook itself is
generated so that its JSON stays clean in version control.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    (
        "md",
        """# A first flux map

This notebook opens what `fluxscape demo` made: it finds the products in the STAC catalog,
draws a map of the upscaled GPP, extracts the GPP time series at an eddy-covariance tower and
compares it with that tower's own record.

Run `fluxscape demo --out demo-out` first (about five minutes). The notebook reads the demo's
output folder from the environment variable `FLUXSCAPE_DEMO_OUT` (default `demo-out`, relative
to where Jupyter was started).""",
    ),
    (
        "code",
        """import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from fluxscape.catalog import open_catalog
from fluxscape.readers.fluxnet import read_fluxnet

OUT = Path(os.environ.get("FLUXSCAPE_DEMO_OUT", "demo-out"))
assert (OUT / "catalog" / "catalog.json").exists(), f"no demo output in {OUT.resolve()}"
OUT""",
    ),
    ("md", "## 1. Open the catalog and find the products"),
    (
        "code",
        """cat = open_catalog(OUT / "catalog")
for entry in cat.search():
    print(f"{entry.id:20s} {', '.join(entry.variables)}")""",
    ),
    (
        "md",
        "Which products carry GPP over the sample world's region in 2021? "
        "(`bbox` is W, S, E, N in degrees.)",
    ),
    (
        "code",
        """region = (138.0, 35.5, 139.0, 36.5)
hits = cat.search(variable="gpp", bbox=region, time="2021-01-01/2021-12-31")
[h.id for h in hits]""",
    ),
    ("md", "## 2. Open the flux product lazily and map GPP"),
    (
        "code",
        """flux = cat.open("flux")  # an xarray.Dataset of dask arrays: nothing is read yet
flux""",
    ),
    (
        "code",
        """gpp_2021 = flux["gpp"].sel(time=slice("2021-01-01", "2021-12-31")).mean("time")
fig, ax = plt.subplots(figsize=(6, 5))
gpp_2021.plot(ax=ax, cmap="YlGn", cbar_kwargs={"label": "GPP (gC m-2 d-1)"})
ax.set_title("Mean GPP 2021 (flux product)")
ax.set_aspect("equal")
plt.show()
print(f"mean GPP 2021 over the region: {float(gpp_2021.mean()):.2f} gC m-2 d-1")""",
    ),
    ("md", "The ensemble spread (`gpp_sd`) says where the models disagree:"),
    (
        "code",
        """fig, ax = plt.subplots(figsize=(6, 5))
flux["gpp_sd"].sel(time=slice("2021-01-01", "2021-12-31")).mean("time").plot(
    ax=ax, cmap="magma", cbar_kwargs={"label": "GPP ensemble sd (gC m-2 d-1)"}
)
ax.set_aspect("equal")
plt.show()""",
    ),
    ("md", "## 3. Extract the GPP series at a tower"),
    (
        "code",
        """sites = pd.read_csv(OUT / "sample" / "towers" / "SitesList.csv", encoding="utf-8-sig")
sites""",
    ),
    (
        "code",
        """site = sites.iloc[0]
series = cat.extract("gpp", point=(site.Longitude, site.Latitude), product="flux")
series = series.set_index("time")["value"]
series.head()""",
    ),
    ("md", "## 4. Compare with the tower record"),
    (
        "md",
        "The tower's FULLSET daily file holds `GPP_NT_VUT_REF` (night-time partitioning, "
        "gC m-2 d-1), the target the models were trained on. Average it over each 16-day "
        "product period and compare. The flux models saw this tower in training, so this is a "
        "sanity check, not a validation: the honest skill is the leave-one-site-out report in "
        "`reports/flux/`.",
    ),
    (
        "code",
        """towers = OUT / "sample" / "towers"
tower_file = next(towers.glob(f"FLX_{site.SiteCode}_*FULLSET_DD*.csv"))
tower = read_fluxnet(tower_file, columns=["GPP_NT_VUT_REF", "NEE_VUT_REF_QC"])
daily = tower["GPP_NT_VUT_REF"].to_series()
good = tower["NEE_VUT_REF_QC"].to_series() >= 0.8  # days with >= 80 % good half-hours
# each day belongs to the 16-day period that starts on or before it
start = series.index[np.searchsorted(series.index, daily.index, side="right") - 1]
observed = daily[good].groupby(start[good.to_numpy()]).mean()
both = pd.DataFrame({"map": series, "tower": observed}).dropna()
r2 = np.corrcoef(both["map"], both["tower"])[0, 1] ** 2
print(f"{site.SiteCode}: {len(both)} periods, R2 = {r2:.3f}")""",
    ),
    (
        "code",
        """fig, ax = plt.subplots(figsize=(8, 3.5))
ax.plot(both.index, both["tower"], "o", ms=4, label=f"tower {site.SiteCode} (GPP_NT_VUT_REF)")
ax.plot(both.index, both["map"], "-", label="flux product, nearest pixel")
ax.set_ylabel("GPP (gC m-2 d-1)")
ax.legend()
plt.show()""",
    ),
    (
        "md",
        """## Next

- `fluxscape catalog extract OUT/catalog --variable gpp --sites sites.csv -o gpp.csv` does step 3
  for many towers from the shell.
- `OUT/reports/flux/report.md` holds the leave-one-site-out skill; `OUT/report.html` the run
  report.
- The [user guide](../products.md) lists every product and variable.""",
    ),
]


def build() -> nbformat.NotebookNode:
    nb = new_notebook(
        cells=[new_markdown_cell(s) if k == "md" else new_code_cell(s) for k, s in CELLS]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    path = Path(__file__).with_name("first-flux-map.ipynb")
    nbformat.write(build(), path)
    print(f"wrote {path}")
