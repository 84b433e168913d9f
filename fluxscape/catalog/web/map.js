// fluxscape map page: the served catalog's products as titiler-xarray tiles on a Leaflet map,
// over an offline Natural Earth basemap (basemap.js) with a graticule, scale bar and cursor
// coordinates. Everything comes from this server (no CDN, no tile service): works offline.
// The URL hash may name #product=ID&variable=NAME&step=2021-07&season=2&point=LON,LAT (a
// link to share, and the browser tests' click; step: the first step starting with that text;
// any further dimension by its name).
"use strict";

const state = { collections: [], coll: null, variable: null, dim: null, values: [],
                extra: {}, scale: null, series: null, clicked: null, tiles: 0, errors: 0 };
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

// no fade: popups and tiles are shown at once (and so in the browser tests' screenshots)
const map = L.map("map", { zoomSnap: 0.5, fadeAnimation: false }).setView([36, 138.5], 8);
basemapPanes(map);
addMapFurniture(map);
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

// The selection on every non-spatial dimension: the slider's and the selectors'.
function selection() {
  const sel = Object.assign({}, state.extra);
  if (state.dim) sel[state.dim] = state.values[+$("step").value];
  return sel;
}

function tileURL(c) {
  const q = new URLSearchParams({ collection: state.coll.id, variable: state.variable,
                                  rescale: [state.scale.min, state.scale.max].join(","),
                                  colormap_name: state.scale.colormap });
  for (const [d, v] of Object.entries(selection())) q.append("sel", d + "=" + v);
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

function hashParam(name) {
  const m = location.hash.match(new RegExp("[#&]" + name + "=([^&]+)"));
  return m ? decodeURIComponent(m[1]) : null;
}

// "gC m-2 d-1" stays; dimensionless ("1", "") gives nothing.
// The y axis unit: the store's units, or for a dimensionless count named in the long name's
// last parentheses (CF units "1" with "(day of year)" in the long name) that name.
function yUnits(d) {
  if (d.units) return d.units;
  const m = /\(([^()]+)\)$/.exec(d.long || "");
  return m ? m[1] : "";
}

function unitsText(units) {
  return units && units !== "1" ? units : "";
}

function describe(name) {
  const s = state.scale;
  const long = s && s.long_name ? s.long_name : name;
  const units = unitsText(s && s.units);
  return { long, units, full: units ? `${long} (${units})` : long };
}

async function chooseProduct(id, variable) {
  state.coll = state.collections.find((c) => c.id === id);
  const vars = Object.entries(state.coll["cube:variables"] || {})
    .filter(([, v]) => v.dimensions.includes("x") && v.dimensions.includes("y"))
    .map(([k]) => k);
  fill($("variable"), vars);
  const preferred = [variable, "ndvi", "nee", "sos", "xco2"].find((v) => vars.includes(v)) || vars[0];
  $("variable").value = preferred;
  map.fitBounds(bounds(state.coll).pad(0.8));  // the product with its surroundings
  state.series = null; state.clicked = null;
  $("series").innerHTML = "<em>Click the map for a pixel's time series.</em>";
  map.closePopup();
  await chooseVariable(preferred);
}

// One selector per further dimension (e.g. phenology's season), the slider for the first.
function dimensionSelectors(dims, cube) {
  $("dims").innerHTML = "";
  state.extra = {};
  for (const d of dims.slice(1)) {
    const values = cube[d].values.map(String);
    const label = document.createElement("label");
    label.textContent = d + " ";
    const select = document.createElement("select");
    select.id = "dim-" + d;
    select.dataset.dim = d;
    fill(select, values);
    select.addEventListener("change", () => { state.extra[d] = select.value; redraw(); });
    label.appendChild(select);
    $("dims").appendChild(label);
    state.extra[d] = values.includes(hashParam(d)) ? hashParam(d) : values[0];
    select.value = state.extra[d];
  }
}

async function chooseVariable(name) {
  state.variable = name;
  const dims = state.coll["cube:variables"][name].dimensions.filter((d) => d !== "x" && d !== "y");
  const cube = state.coll["cube:dimensions"];
  state.dim = dims[0] || null;
  state.values = state.dim ? cube[state.dim].values.map(String) : [];
  dimensionSelectors(dims, cube);
  $("steplabel").firstChild.textContent = (state.dim || "time") + " ";
  $("step").max = String(Math.max(0, state.values.length - 1));
  const wanted = state.values.findIndex((v) => v.startsWith(hashParam("step") || "\u0000"));
  $("step").value = String(wanted >= 0 ? wanted : Math.floor(state.values.length / 2));
  state.scale = await getJSON(`/stats/${state.coll.id}?variable=${encodeURIComponent(name)}`);
  legend();
  if (state.clicked) await timeSeries(state.clicked);
  redraw();
}

function legend() {
  const s = state.scale, d = describe(state.variable);
  const fmt = (v) => (+v.toPrecision(3)).toString();
  const ticks = s.signed ? [fmt(s.min), "0", fmt(s.max)] : [fmt(s.min), fmt(s.max)];
  $("legend").dataset.colormap = s.colormap;
  $("legend").dataset.signed = String(s.signed);
  $("legend").innerHTML =
    `<div class="title">${esc(d.long)}${d.units ? ` <span class="units">(${esc(d.units)})</span>` : ""}</div>` +
    `<div class="bar" style="background: linear-gradient(to right, ${s.colours.join(", ")})"></div>` +
    `<div class="ticks">${ticks.map((t) => `<span>${t}</span>`).join("")}</div>` +
    (s.signed ? `<div class="note">diverging, centred on 0</div>` : "");
}

function redraw() {
  $("stepvalue").textContent = state.dim ? state.values[+$("step").value].slice(0, 10) : "";
  if (layer) map.removeLayer(layer);
  layer = new ProductTiles({ bounds: bounds(state.coll), opacity: 0.9, tileSize: 256 });
  layer.addTo(map);
  showSeries();
}

// The rows of the clicked series that match the selectors (e.g. one season), in order.
function seriesRows() {
  const ts = state.series;
  const rows = [];
  for (let i = 0; i < ts.values.length; i++) {
    const match = Object.entries(state.extra).every(([d, v]) => !ts.coords[d] || ts.coords[d][i] === v);
    if (match) rows.push(i);
  }
  return rows;
}

function showSeries() {
  const ts = state.series;
  if (!ts || ts.variable !== state.variable || ts.collection !== state.coll.id) return;
  const rows = seriesRows();
  const dim = state.dim || "time";
  const keys = rows.map((i) => (ts.coords[dim] || ts.labels)[i]);
  const isTime = dim === "time";
  const x = keys.map((k) => (isTime ? Date.parse(k.slice(0, 10) + "T00:00:00Z") : +k));
  const y = rows.map((i) => (ts.values[i] === null ? NaN : ts.values[i]));
  const current = state.dim ? keys.indexOf(state.values[+$("step").value].slice(0, 10)) : -1;
  const d = describe(state.variable);
  const ok = y.filter((v) => Number.isFinite(v));
  const extra = Object.entries(state.extra).map(([k, v]) => `${k} ${v}`).join(", ");
  $("series").innerHTML =
    `<div class="where" data-values="${ok.length}">${esc(d.long)} at pixel x=${ts.x}, y=${ts.y}` +
    `${extra ? " (" + esc(extra) + ")" : ""}</div>` +
    seriesChart({ x, y, time: isTime, current,
                  xLabel: isTime ? "date" : dim, yLabel: `${state.variable}${yUnits(d) ? " (" + yUnits(d) + ")" : ""}` });
  popup(current >= 0 ? y[current] : NaN, current >= 0 ? keys[current] : "");
}

function popup(value, when) {
  if (!state.clicked) return;
  const d = describe(state.variable);
  const { lat, lng } = state.clicked.latlng;
  const extra = Object.entries(state.extra).map(([k, v]) => `, ${k} ${v}`).join("");
  const shown = Number.isFinite(value)
    ? `<b class="value" data-value="${value}">${+value.toPrecision(4)}</b>${d.units ? " " + esc(d.units) : ""}`
    : `<b class="value" data-value="">no value</b>`;
  L.popup({ autoPan: false, maxWidth: 230 }).setLatLng(state.clicked.latlng)
    .setContent(`${esc(state.variable)}: ${shown}<br><span class="when">${esc(when)}${esc(extra)}</span>` +
                `<br><span class="where">${lng.toFixed(4)}°, ${lat.toFixed(4)}°</span>`)
    .openOn(map);
}

async function timeSeries(ev) {
  const { lat, lng } = ev.latlng;
  if (!bounds(state.coll).contains(ev.latlng)) return;
  state.clicked = ev;
  state.series = await getJSON(`/timeseries/${state.coll.id}?variable=${encodeURIComponent(state.variable)}` +
                               `&lon=${lng.toFixed(5)}&lat=${lat.toFixed(5)}`);
  showSeries();
}

async function init() {
  const all = (await getJSON("/collections")).collections;
  const collections = all.filter((c) => c.id !== "alerts");  // the alerts: a point layer
  state.collections = collections;
  await loadAlerts(map, $("status"), getJSON, hashParam);
  outlines.clearLayers();
  for (const c of collections) {
    L.rectangle(bounds(c), { color: "#d33", weight: 1, fill: false }).bindTooltip(c.id).addTo(outlines);
  }
  if (!collections.length) { $("status").textContent = "no products visible"; return; }
  fill($("product"), collections.map((c) => c.id), (id) => {
    const c = collections.find((x) => x.id === id);
    return `${id} (${c["fluxscape:access"] || "public"})`;
  });
  const wanted = hashParam("product");
  const first = (collections.find((c) => c.id === wanted) ||
                 collections.find((c) => c["fluxscape:product"] === "vi") || collections[0]).id;
  $("product").value = first;
  await chooseProduct(first, hashParam("variable"));
  const point = (hashParam("point") || "").match(/^([-\d.]+),([-\d.]+)$/);
  if (point) await timeSeries({ latlng: L.latLng(+point[2], +point[1]) });
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
Promise.all([
  addBasemap(map, $("status")),
  init(),
]).then(() => { $("status").dataset.foreign = String(foreignRequests()); })
  .catch((err) => report(err.message));
