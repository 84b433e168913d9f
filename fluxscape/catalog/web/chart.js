// fluxscape map page: a pixel's series as an SVG line chart with axes (dates or years on x,
// the variable with its units on y), tick labels and the map's current step marked.
"use strict";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

// About `count` round tick values; `outer`: the first and last enclose [lo, hi] (an axis
// range), otherwise all lie inside it.
function niceTicks(lo, hi, count, outer = true) {
  if (!(hi > lo)) { const d = Math.abs(lo) || 1; lo -= d / 2; hi += d / 2; }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const first = (outer ? Math.floor(lo / step + 1e-9) : Math.ceil(lo / step - 1e-9)) * step;
  const last = (outer ? Math.ceil(hi / step - 1e-9) : Math.floor(hi / step + 1e-9)) * step;
  const ticks = [];
  for (let v = first; v <= last + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
  return ticks;
}

// Date ticks: month starts every 1, 3 or 6 months (or years) so that about 4-7 fit.
function dateTicks(t0, t1) {
  const months = (t1 - t0) / (30.44 * 864e5);
  const every = [1, 2, 3, 6, 12, 24, 60].find((m) => months / m <= 7) || 120;
  const start = new Date(t0);
  let y = start.getUTCFullYear(), m = start.getUTCMonth();
  m = Math.ceil(m / every) * every;
  const ticks = [];
  for (;;) {
    const t = Date.UTC(y + Math.floor(m / 12), m % 12, 1);
    if (t > t1) break;
    if (t >= t0) {
      const d = new Date(t);
      const label = every >= 12 ? String(d.getUTCFullYear())
        : d.getUTCMonth() === 0 || ticks.length === 0
          ? `${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}` : MONTHS[d.getUTCMonth()];
      ticks.push({ t, label });
    }
    m += every;
  }
  return ticks;
}

function esc(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

// series: {x: [Date ms or numbers], y: [numbers, NaN for gaps], time: bool, xLabel, yLabel,
// current: index of the map's step or -1}. Returns the SVG markup.
function seriesChart(series) {
  const W = 280, H = 190, L0 = 44, R = 14, T = 8, B = 40;
  const ok = series.y.map((v, i) => [series.x[i], v]).filter(([, v]) => Number.isFinite(v));
  const xs = series.x;
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x1 === x0) { x0 -= series.time ? 864e5 * 15 : 0.5; x1 += series.time ? 864e5 * 15 : 0.5; }
  const yTicks = ok.length ? niceTicks(Math.min(...ok.map((p) => p[1])),
                                       Math.max(...ok.map((p) => p[1])), 4) : [0, 1];
  const y0 = yTicks[0], y1 = yTicks[yTicks.length - 1] === y0 ? y0 + 1 : yTicks[yTicks.length - 1];
  const px = (x) => L0 + ((x - x0) / (x1 - x0)) * (W - L0 - R);
  const py = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const xTicks = series.time ? dateTicks(x0, x1)
    : niceTicks(x0, x1, Math.min(5, Math.round(x1 - x0) || 1), false)
      .filter((v) => Number.isInteger(v)).map((v) => ({ t: v, label: String(v) }));
  const parts = [];
  parts.push(`<svg class="chart" viewBox="0 0 ${W} ${H}" data-xticks="${xTicks.length}" ` +
             `data-yticks="${yTicks.length}" data-points="${ok.length}">`);
  for (const v of yTicks) {
    parts.push(`<line class="grid" x1="${L0}" x2="${W - R}" y1="${py(v)}" y2="${py(v)}"/>`);
    parts.push(`<text class="ytick" x="${L0 - 4}" y="${py(v) + 3}" text-anchor="end">${esc(+v.toPrecision(4))}</text>`);
  }
  for (const { t, label } of xTicks) {
    parts.push(`<line class="tick" x1="${px(t)}" x2="${px(t)}" y1="${H - B}" y2="${H - B + 4}"/>`);
    parts.push(`<text class="xtick" x="${px(t)}" y="${H - B + 14}" text-anchor="middle">${esc(label)}</text>`);
  }
  parts.push(`<line class="axis" x1="${L0}" x2="${W - R}" y1="${H - B}" y2="${H - B}"/>`);
  parts.push(`<line class="axis" x1="${L0}" x2="${L0}" y1="${T}" y2="${H - B}"/>`);
  parts.push(`<text class="xlabel" x="${(L0 + W - R) / 2}" y="${H - 4}" text-anchor="middle">${esc(series.xLabel)}</text>`);
  parts.push(`<text class="ylabel" transform="translate(11 ${(T + H - B) / 2}) rotate(-90)" ` +
             `text-anchor="middle">${esc(series.yLabel)}</text>`);
  if (series.current >= 0 && series.current < xs.length) {
    const cx = px(xs[series.current]);
    parts.push(`<line class="current" x1="${cx}" x2="${cx}" y1="${T}" y2="${H - B}"/>`);
  }
  // a line through consecutive values, broken at gaps; dots so that short series show
  let path = "", pen = false;
  series.y.forEach((v, i) => {
    if (!Number.isFinite(v)) { pen = false; return; }
    path += `${pen ? "L" : "M"}${px(xs[i]).toFixed(1)},${py(v).toFixed(1)}`;
    pen = true;
  });
  parts.push(`<path class="line" d="${path}"/>`);
  for (const [x, v] of ok) parts.push(`<circle class="dot" cx="${px(x)}" cy="${py(v)}" r="1.8"/>`);
  parts.push("</svg>");
  return parts.join("");
}
