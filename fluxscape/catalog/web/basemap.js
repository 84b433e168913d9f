// fluxscape map page: the offline basemap (Natural Earth land, coastlines and borders from
// vendor/world-atlas, decoded with vendor/topojson-client), a graticule, a scale bar and the
// cursor's coordinates. Nothing is fetched from another host.
"use strict";

const BASEMAP_URL = "vendor/world-atlas/countries-50m.json";

// Land fill under the product tiles (tilePane is 200); coastlines, borders and the graticule
// above them (overlayPane is 400, popups 700), so the coast stays visible over data.
function basemapPanes(map) {
  map.createPane("land").style.zIndex = 150;
  const lines = map.createPane("lines");
  lines.style.zIndex = 450;
  lines.style.pointerEvents = "none";
}

// Loads the Natural Earth TopoJSON and draws land, coastline and borders. Resolves to the
// number of features drawn; sets data-basemap="1" on #status once they are on the map.
async function addBasemap(map, status) {
  const r = await fetch(BASEMAP_URL);
  if (!r.ok) throw new Error(BASEMAP_URL + ": HTTP " + r.status);
  const topo = await r.json();
  const land = topojson.feature(topo, topo.objects.land);
  const coast = topojson.mesh(topo, topo.objects.land);
  const borders = topojson.mesh(topo, topo.objects.countries, (a, b) => a !== b);
  const landCanvas = L.canvas({ pane: "land", padding: 0.5 });
  const lineCanvas = L.canvas({ pane: "lines", padding: 0.5 });
  L.geoJSON(land, { pane: "land", renderer: landCanvas, interactive: false,
                    style: { stroke: false, fillColor: "#f3f0e8", fillOpacity: 1 } }).addTo(map);
  L.geoJSON(coast, { pane: "lines", renderer: lineCanvas, interactive: false,
                     style: { color: "#35556f", weight: 1.1, opacity: 0.9 } }).addTo(map);
  L.geoJSON(borders, { pane: "lines", renderer: lineCanvas, interactive: false,
                       style: { color: "#7a5c7a", weight: 0.9, dashArray: "4 3" } }).addTo(map);
  map.attributionControl.addAttribution("Natural Earth (public domain)");
  const n = (land.features || [land]).length + 2;
  status.dataset.basemap = "1";
  status.dataset.basemapFeatures = String(n);
  return n;
}

// Graticule: meridians and parallels every `step` degrees (about 4-8 lines across the view),
// labelled along the view's north and east edges (clear of the controls); redrawn when the
// view moves.
const GRATICULE_STEPS = [0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30];

function degrees(v, pos, neg) {
  const a = Math.abs(v);
  const text = Number.isInteger(a) ? String(a) : a.toFixed(a * 100 % 10 ? 2 : 1);
  return text + "°" + (v > 0 ? pos : v < 0 ? neg : "");
}

function addGraticule(map) {
  const group = L.layerGroup().addTo(map);
  const style = { pane: "lines", color: "#5a6b7b", weight: 0.6, opacity: 0.55,
                  interactive: false, dashArray: "2 4" };
  function draw() {
    group.clearLayers();
    const b = map.getBounds();
    const span = Math.max(b.getEast() - b.getWest(), 1e-6);
    const step = GRATICULE_STEPS.find((s) => span / s <= 8) || 30;
    const w = Math.floor(b.getWest() / step) * step, e = Math.ceil(b.getEast() / step) * step;
    const s = Math.max(-85, Math.floor(b.getSouth() / step) * step);
    const n = Math.min(85, Math.ceil(b.getNorth() / step) * step);
    const label = (latlng, text, cls) => L.marker(latlng, { pane: "lines", interactive: false,
      icon: L.divIcon({ className: "gratlabel " + cls, html: `<span>${text}</span>`,
                        iconSize: [0, 0] }) });
    for (let lon = w; lon <= e + step / 2; lon += step) {
      const x = +lon.toFixed(6);
      group.addLayer(L.polyline([[s, x], [n, x]], style));
      group.addLayer(label([b.getNorth(), x], degrees(x, "E", "W"), "lon"));
    }
    for (let lat = s; lat <= n + step / 2; lat += step) {
      const y = +lat.toFixed(6);
      group.addLayer(L.polyline([[y, w], [y, e]], style));
      group.addLayer(label([y, b.getEast()], degrees(y, "N", "S"), "lat"));
    }
  }
  map.on("moveend", draw);
  draw();
  return group;
}

// The cursor's longitude and latitude, bottom left above the scale bar.
const CursorControl = L.Control.extend({
  options: { position: "bottomleft" },
  onAdd(map) {
    const div = L.DomUtil.create("div", "cursor-coords");
    div.textContent = "move the cursor over the map";
    map.on("mousemove", (ev) => {
      const { lat, lng } = ev.latlng;
      div.textContent = `lon ${lng.toFixed(4)}°, lat ${lat.toFixed(4)}°`;
    });
    return div;
  },
});

function addMapFurniture(map) {
  L.control.scale({ imperial: false, position: "bottomleft", maxWidth: 150 }).addTo(map);
  new CursorControl().addTo(map);
  addGraticule(map);
}

// How many resources the page loaded from another host (the offline check; blob: and data:
// URLs are this page's own).
function foreignRequests() {
  return performance.getEntriesByType("resource")
    .map((e) => e.name)
    .filter((u) => !u.startsWith("blob:") && !u.startsWith("data:"))
    .filter((u) => new URL(u, location.href).host !== location.host).length;
}
