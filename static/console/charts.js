// Small SVG charts drawn here (no library): a line chart of one or more series over dates, and a bar chart.
// Each chart is an image with a title and a description for screen readers, and a table of its numbers
// (in a <details>) for anyone who would rather read them.

import {h, num, pct} from "./dom.js";

const COLOURS = ["#0b5cad", "#b3261e", "#1e7b34", "#7a4cc2", "#a15c00"]; // each at least 4.5:1 on white
const W = 640;
const H = 220;
const PAD = {top: 16, right: 16, bottom: 34, left: 56};

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/**
 * lineChart({title, labels: [date...], series: [{name, values: [number|null...]}], format: "number"|"percent"})
 */
export function lineChart({title, labels, series, format = "number"}) {
  const fmt = format === "percent" ? pct : num;
  const all = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v));
  const top = niceMax(Math.max(0, ...all));
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (labels.length < 2 ? innerW / 2 : (i * innerW) / (labels.length - 1));
  const y = (v) => PAD.top + innerH - (v / top) * innerH;
  const svg = h("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart"});
  const titleEl = h("title", {text: title});
  const last = series.map((s) => `${s.name}: ${fmt(s.values[s.values.length - 1])}`).join(", ");
  const desc = h("desc", {text: `${labels.length} points from ${labels[0] || "—"} to ${labels[labels.length - 1] || "—"}; latest ${last}.`});
  svg.append(titleEl, desc);
  const grid = h("g", {class: "grid"});
  for (let i = 0; i <= 4; i += 1) {
    const v = (top * i) / 4;
    grid.append(h("line", {x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v)}),
      h("text", {x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end", text: fmt(v)}));
  }
  const every = Math.max(1, Math.ceil(labels.length / 6));
  labels.forEach((label, i) => {
    if (i % every === 0 || i === labels.length - 1) {
      const anchor = labels.length > 1 && i === labels.length - 1 ? "end" : i === 0 && labels.length > 1 ? "start" : "middle";
      grid.append(h("text", {x: x(i), y: H - 10, "text-anchor": anchor, text: String(label).slice(0, 10)}));
    }
  });
  svg.append(grid);
  series.forEach((s, k) => {
    const colour = COLOURS[k % COLOURS.length];
    const points = s.values.map((v, i) => (Number.isFinite(v) ? `${x(i).toFixed(1)},${y(v).toFixed(1)}` : null))
      .filter(Boolean);
    const g = h("g", {class: "series"});
    if (points.length > 1) {
      g.append(h("polyline", {points: points.join(" "), fill: "none", stroke: colour, "stroke-width": 2.5,
        "stroke-dasharray": k === 1 ? "6 3" : k === 2 ? "2 3" : null}));
    }
    s.values.forEach((v, i) => {
      if (!Number.isFinite(v)) return;
      g.append(h("circle", {cx: x(i), cy: y(v), r: 3.5, fill: colour},
        h("title", {text: `${s.name}, ${labels[i]}: ${fmt(v)}`})));
    });
    svg.append(g);
  });
  return figure(title, svg, series.map((s, k) => [s.name, COLOURS[k % COLOURS.length]]),
    ["Date", ...series.map((s) => s.name)], labels.map((label, i) => [label, ...series.map((s) => fmt(s.values[i]))]));
}

/** barChart({title, bars: [[label, value]...], format}) */
export function barChart({title, bars, format = "number"}) {
  const fmt = format === "percent" ? pct : num;
  const top = niceMax(Math.max(0, ...bars.map(([, v]) => Number(v) || 0)));
  const rowH = 28;
  const height = PAD.top + bars.length * rowH + 8;
  const left = 110;
  const innerW = W - left - 90;
  const svg = h("svg", {viewBox: `0 0 ${W} ${height}`, role: "img", class: "chart"});
  svg.append(h("title", {text: title}),
    h("desc", {text: bars.map(([label, v]) => `${label}: ${fmt(v)}`).join(", ")}));
  bars.forEach(([label, value], i) => {
    const v = Number(value) || 0;
    const yTop = PAD.top + i * rowH;
    svg.append(h("text", {x: left - 8, y: yTop + 17, "text-anchor": "end", text: label}),
      h("rect", {x: left, y: yTop + 4, width: Math.max(1, (v / top) * innerW), height: rowH - 10,
        fill: COLOURS[i % COLOURS.length]}, h("title", {text: `${label}: ${fmt(v)}`})),
      h("text", {x: left + Math.max(1, (v / top) * innerW) + 6, y: yTop + 17, text: fmt(v)}));
  });
  return figure(title, svg, null, ["", "Value"], bars.map(([label, v]) => [label, fmt(v)]));
}

function figure(title, svg, legend, headings, rows) {
  return h("figure", {class: "chart-figure"},
    h("figcaption", {text: title}),
    svg,
    legend ? h("ul", {class: "legend"}, legend.map(([name, colour]) =>
      h("li", {}, h("span", {class: "swatch", style: `background:${colour}`, "aria-hidden": "true"}), name))) : null,
    h("details", {}, h("summary", {text: "The numbers"}),
      h("table", {}, h("thead", {}, h("tr", {}, headings.map((t) => h("th", {scope: "col", text: t})))),
        h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {text: c}))))))));
}
