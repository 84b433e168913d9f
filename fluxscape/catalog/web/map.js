// fluxscape map page: the served catalog's products as titiler-xarray tiles on a Leaflet map.
// Everything comes from this server (no CDN, no basemap service): works offline.
"use strict";

const state = { collections: [], coll: null, variable: null, dim: null, values: [],
                fixed: {}, range: [0, 1], tiles: 0, errors: 0 };
const $ = (id) => document.getElementById(id);

function headers() {
  const token = sessionStorage.getItem("fluxscapeToken");
  return token ? { Authorization: "Bearer " + token } : {};
}

function report(message) {
  state.errors += 1;
  $("status").dataset.errors = String(state.errors);
  $("status").textContent = "error: " + message;
}
window.addEventListener("error", (e) => report(e.message));
window.addEventListener("unhandledrejection", (e) => report(String(e.reason)));

async function getJSON(url) {
  const r = await fetch(url, { headers: headers() });
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}

const map = L.map("map", { zoomSnap: 0.5 }).setView([36, 138.5], 8);
const outlines = L.layerGroup().addTo(map);

// Tiles are fetched (not <img src>) so that a bearer token can go in a header.
const ProductTiles = L.GridLayer.extend({
  createTile(coords, done) {
    const img = document.createElement("img");
    img.alt = "";
    fetch(tileURL(coords), { headers: headers() })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new Error("tile HTTP " + r.status))))
      .then((blob) => {
        img.onload = () => { URL.revokeObjectURL(img.src); done(null, img); };
        img.src = URL.createObjectURL(blob);
        if (blob.size > 0) {
          state.tiles += 1;
          $("status").dataset.tiles = String(state.tiles);
        }
      })
      .catch((err) => { report(err.message); done(err, img); });
    return img;
  },
});
let layer = null;

function tileURL(c) {
  const q = new URLSearchParams({ collection: state.coll.id, variable: state.variable,
                                  rescale: state.range.join(","), colormap_name: "viridis" });
  if (state.dim) q.append("sel", state.dim + "=" + state.values[+$("step").value]);
  for (const [d, v] of Object.entries(state.fixed)) q.append("sel", d + "=" + v);
  return `/tiler/tiles/WebMercatorQuad/${c.z}/${c.x}/${c.y}.png?${q}`;
}

function fill(select, items, label) {
  select.innerHTML = "";
  for (const it of items) {
    const o = document.createElement("option");
    o.value = it; o.textContent = label ? label(it) : it;
    select.appendChild(o);
  }
}

function bounds(coll) {
  const [w, s, e, n] = coll.extent.spatial.bbox[0];
  return L.latLngBounds([s, w], [n, e]);
}

async function chooseProduct(id) {
  state.coll = state.collections.find((c) => c.id === id);
  const vars = Object.entries(state.coll["cube:variables"] || {})
    .filter(([, v]) => v.dimensions.includes("x") && v.dimensions.includes("y"))
    .map(([k]) => k);
  fill($("variable"), vars);
  const preferred = ["ndvi", "sos", "xco2"].find((v) => vars.includes(v)) || vars[0];
  $("variable").value = preferred;
  map.fitBounds(bounds(state.coll));
  await chooseVariable(preferred);
}

async function chooseVariable(name) {
  state.variable = name;
  const dims = state.coll["cube:variables"][name].dimensions.filter((d) => d !== "x" && d !== "y");
  const cube = state.coll["cube:dimensions"];
  state.dim = dims[0] || null;
  state.values = state.dim ? cube[state.dim].values.map(String) : [];
  state.fixed = {};
  for (const d of dims.slice(1)) state.fixed[d] = String(cube[d].values[0]);
  $("steplabel").firstChild.textContent = (state.dim || "time") + " ";
  $("step").max = String(Math.max(0, state.values.length - 1));
  $("step").value = String(Math.floor(state.values.length / 2));
  const stats = await getJSON(`/stats/${state.coll.id}?variable=${name}`);
  state.range = [stats.min, stats.max];
  $("legend").innerHTML = `<div class="bar"></div><div class="ticks"><span>${stats.min.toPrecision(3)}</span>` +
    `<span>${name} ${stats.units || ""}</span><span>${stats.max.toPrecision(3)}</span></div>`;
  redraw();
}

function redraw() {
  $("stepvalue").textContent = state.dim ? state.values[+$("step").value] : "";
  if (layer) map.removeLayer(layer);
  layer = new ProductTiles({ bounds: bounds(state.coll), opacity: 0.9, tileSize: 256 });
  layer.addTo(map);
}

async function timeSeries(ev) {
  const { lat, lng } = ev.latlng;
  if (!bounds(state.coll).contains(ev.latlng)) return;
  const ts = await getJSON(`/timeseries/${state.coll.id}?variable=${state.variable}` +
                           `&lon=${lng.toFixed(5)}&lat=${lat.toFixed(5)}`);
  const vals = ts.values.map((v) => (v === null ? NaN : v));
  const ok = vals.filter((v) => !Number.isNaN(v));
  const lo = Math.min(...ok), hi = Math.max(...ok);
  const W = 270, H = 140, pad = 6;
  const xs = (i) => pad + (i * (W - 2 * pad)) / Math.max(1, vals.length - 1);
  const ys = (v) => H - pad - ((v - lo) / ((hi - lo) || 1)) * (H - 2 * pad);
  const pts = vals.map((v, i) => (Number.isNaN(v) ? null : `${xs(i)},${ys(v)}`)).filter(Boolean);
  $("series").innerHTML =
    `<div class="where" data-values="${ok.length}">${ts.variable} at pixel x=${ts.x}, y=${ts.y} ` +
    `(${ts.labels[0]} … ${ts.labels[ts.labels.length - 1]}; ${lo.toPrecision(3)}–${hi.toPrecision(3)})</div>` +
    `<svg viewBox="0 0 ${W} ${H}"><polyline fill="none" stroke="#21918c" stroke-width="1.5" ` +
    `points="${pts.join(" ")}"/></svg>`;
  L.popup().setLatLng(ev.latlng).setContent(`${ts.variable}: ${ok.length} values`).openOn(map);
}

async function init() {
  const { collections } = await getJSON("/collections");
  state.collections = collections;
  outlines.clearLayers();
  for (const c of collections) {
    L.rectangle(bounds(c), { color: "#d33", weight: 1, fill: false }).bindTooltip(c.id).addTo(outlines);
  }
  if (!collections.length) { $("status").textContent = "no products visible"; return; }
  fill($("product"), collections.map((c) => c.id), (id) => {
    const c = collections.find((x) => x.id === id);
    return `${id} (${c["fluxscape:access"] || "public"})`;
  });
  const first = (collections.find((c) => c["fluxscape:product"] === "vi") || collections[0]).id;
  $("product").value = first;
  await chooseProduct(first);
  // #point=LON,LAT opens that pixel's series (a link to share, and the browser test's click)
  const m = location.hash.match(/point=([-\d.]+),([-\d.]+)/);
  if (m) await timeSeries({ latlng: L.latLng(+m[2], +m[1]) });
  $("status").dataset.ready = "1";
}

$("product").addEventListener("change", (e) => chooseProduct(e.target.value));
$("variable").addEventListener("change", (e) => chooseVariable(e.target.value));
$("step").addEventListener("input", redraw);
$("tokenform").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("fluxscapeToken", $("token").value.trim());
  $("token").value = "";
  init();
});
map.on("click", (ev) => timeSeries(ev).catch((err) => report(err.message)));
init().catch((err) => report(err.message));
