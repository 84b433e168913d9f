"""OUT/report.html of the demo run: self-contained, every image decodes in a real browser,
no console errors; the flux section carries the validation table and the tower plots."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from conftest import REPO, headless
from PIL import Image


def test_report_is_self_contained_and_complete(demo_out: Path):
    html = (demo_out / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched
    for product in ("vi", "phenology", "gosat_l3", "flux"):
        assert f"Product <code>{product}</code>" in html
    assert "Models of <code>flux</code>" in html and "across_site" in html
    assert "gpp at the towers" in html  # observed vs predicted time series
    assert "Runs into this folder" in html and "peak memory" in html


def test_report_renders_in_headless_chromium(demo_out: Path, tmp_path):
    url = (demo_out / "report.html").as_uri()
    proc = headless(url, tmp_path, "--dump-dom")
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    body = re.search(r"<body ([^>]*)>", proc.stdout).group(1)
    counts = dict(re.findall(r'data-(images(?:-loaded)?)="(\d+)"', body))
    assert int(counts["images"]) >= 20
    assert counts["images-loaded"] == counts["images"]  # every embedded PNG decoded
    shot = tmp_path / "report.png"
    assert (
        headless(url, tmp_path, f"--screenshot={shot}", "--window-size=1100,1400").returncode == 0
    )
    rgb = np.asarray(Image.open(shot).convert("RGB"))
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50  # maps drawn, not a blank page
    assert (REPO / "docs" / "images" / "report.png").is_file()  # the kept screenshot
