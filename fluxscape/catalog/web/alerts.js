// fluxscape map page: the catalog's `alerts` collection (issue #15) as a layer with time.
// Fires are circles coloured by confidence class and sized by fire radiative power, heat
// waves orange polygons from their onset to their last hot day, disturbance breaks brown
// polygons for 30 days from their onset;
// the "Alerts until" slider runs over the alert times and shows the alerts of the
// `alertHours` before it (older ones fainter). #alerts=TIME in the URL hash picks the time.
// Items come from /collections/alerts/items with the page's bearer token (access levels).
"use strict";

const alertState = { items: [], times: [], layer: null, hours: 24 };
const ALERT_COLOURS = { low: "#fdae61", nominal: "#f46d43", high: "#a50026" };

function alertRadius(p) {
  const frp = p.frp || 0;
  return 4 + Math.min(8, Math.sqrt(frp) / 6);  // 4 px, up to 12 px from ~2300 MW
}

function drawAlerts(map, status) {
  if (alertState.layer) alertState.layer.remove();
  const group = L.layerGroup();
  const i = +document.getElementById("alerttime").value;
  const until = alertState.times[i];
  if (until === undefined) return;
  const end = Date.parse(until);
  const start = end - alertState.hours * 3600e3;
  let shown = 0;
  for (const f of alertState.items) {
    const t = Date.parse(f.properties.datetime);
    const p = f.properties;
    if (p.kind === "disturbance") {
      // a confirmed break patch: shown for 30 days from its onset
      if (t > end || t <= end - 30 * 86400e3) continue;
      L.geoJSON(f.geometry, {
        style: { color: "#543005", weight: 1.5, fillColor: "#8c510a", fillOpacity: 0.45 },
      }).bindPopup(
        `<b>disturbance</b> from ${p.onset}` + (p.detected ? ` (confirmed ${p.detected})` : "") +
        `<br>${p.area_km2} km2, NDVI change ${p.magnitude}` +
        (p.dnbr !== undefined && p.dnbr !== null ? `, dNBR ${p.dnbr}` : "")
      ).addTo(group);
      shown += 1;
      continue;
    }
    if (f.geometry.type !== "Point") {
      // a heat wave: shown from its onset to the end of its last hot day
      const over = p.last ? Date.parse(p.last + "T00:00:00Z") + 86400e3 : t + 86400e3;
      if (t > end || over <= start) continue;
      L.geoJSON(f.geometry, {
        style: { color: "#b35806", weight: 1.5, fillColor: "#f1a340", fillOpacity: 0.35 },
      }).bindPopup(
        `<b>heat wave</b> from ${p.onset} to ${p.last} (${p.duration_days} d)<br>` +
        `${p.extent_km2} km2, peak anomaly +${p.peak_anomaly_k} K`
      ).addTo(group);
      shown += 1;
      continue;
    }
    if (t > end || t <= start) continue;
    const [lon, lat] = f.geometry.coordinates;
    const age = (end - t) / (alertState.hours * 3600e3);
    L.circleMarker([lat, lon], {
      radius: alertRadius(p), color: "#222", weight: 0.8,
      fillColor: ALERT_COLOURS[p.confidence_class] || "#d73027",
      fillOpacity: 0.95 - 0.7 * age, opacity: 1 - 0.6 * age, pane: "markerPane",
    }).bindPopup(
      `<b>${p.kind || "alert"}</b> ${p.datetime}<br>` +
      `BT 3.9 um ${p.bt07} K, dT ${p.dT} K<br>FRP ${p.frp ?? "-"} MW, ` +
      `confidence ${p.confidence} (${p.confidence_class})<br>` +
      `latency ${p.latency_s} s`
    ).addTo(group);
    shown += 1;
  }
  group.addTo(map);
  alertState.layer = group;
  document.getElementById("alertvalue").textContent =
    `${until.replace("T", " ").replace(":00Z", " UTC")}: ${shown} alert(s) in ${alertState.hours} h`;
  status.dataset.alerts = String(shown);
}

async function loadAlerts(map, status, getJSON, hashParam) {
  const box = document.getElementById("alertbox");
  let doc;
  try {
    doc = await getJSON("/collections/alerts/items?limit=10000");
  } catch (err) {
    box.hidden = true;  // no alerts in this catalog (404) or none readable
    status.dataset.alerts = "0";
    return;
  }
  alertState.items = doc.features;
  alertState.times = [...new Set(doc.features.map((f) => f.properties.datetime))].sort();
  status.dataset.alertItems = String(doc.features.length);
  if (!alertState.times.length) { box.hidden = true; status.dataset.alerts = "0"; return; }
  box.hidden = false;
  const slider = document.getElementById("alerttime");
  slider.max = String(alertState.times.length - 1);
  const wanted = hashParam("alerts");
  const k = wanted ? alertState.times.findIndex((t) => t.startsWith(wanted)) : -1;
  slider.value = String(k >= 0 ? k : alertState.times.length - 1);
  slider.oninput = () => drawAlerts(map, status);
  drawAlerts(map, status);
}
