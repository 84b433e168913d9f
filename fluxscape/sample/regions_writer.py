"""Sample-world administrative regions: a GeoJSON FeatureCollection of three made-up
"prefectures" with slanted borders across the region (so pixels are cut at their edges), for
regional flux totals."""

from __future__ import annotations

import json
from pathlib import Path

from fluxscape.sample.world import World


def region_polygons(world: World) -> dict:
    """A GeoJSON FeatureCollection (EPSG:4326 lon/lat) of three regions: ``West`` and
    ``East`` split the region along a slanted line, ``Lakeside`` is a pentagon inside it;
    each has properties ``name`` and ``code``."""
    w, s, e, n = world.preset.bbox
    dx, dy = e - w, n - s

    def pt(fx: float, fy: float) -> list[float]:
        return [round(w + fx * dx, 6), round(s + fy * dy, 6)]

    west = [pt(0, 0), pt(0.43, 0), pt(0.57, 1), pt(0, 1), pt(0, 0)]
    east = [pt(0.43, 0), pt(1, 0), pt(1, 1), pt(0.57, 1), pt(0.43, 0)]
    lake = [
        pt(0.62, 0.21),
        pt(0.83, 0.27),
        pt(0.87, 0.52),
        pt(0.7, 0.66),
        pt(0.58, 0.44),
        pt(0.62, 0.21),
    ]
    features = [
        {
            "type": "Feature",
            "properties": {"name": name, "code": code},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }
        for name, code, ring in (
            ("West", "SW-01", west),
            ("East", "SW-02", east),
            ("Lakeside", "SW-03", lake),
        )
    ]
    return {"type": "FeatureCollection", "features": features}


def write_regions(world: World, out: Path) -> Path:
    """Write ``prefectures.geojson`` into ``out``; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "prefectures.geojson"
    path.write_text(json.dumps(region_polygons(world), indent=1))
    return path
