// Today: the KPIs of a period (GET /admin/kpis, API.md "KPIs") as tiles and SVG charts of its series.

import * as api from "../api.js";
import {barChart, lineChart} from "../charts.js";
import {h, num, pct, replace} from "../dom.js";
import {field, form, screen, showError} from "../ui.js";

function isoDay(date) { return date.toISOString().slice(0, 10); }

/** A value of a series point, whether the API nests it ({points: {issued}}) or flattens it (points_issued). */
export function pick(item, ...paths) {
  for (const path of paths) {
    let value = item;
    for (const key of path.split(".")) value = value === null || value === undefined ? undefined : value[key];
    if (value !== undefined && value !== null) {
      const n = Number(value);
      return Number.isFinite(n) ? n : null;
    }
  }
  return null;
}

function tile(label, value) {
  return h("div", {class: "tile"}, h("span", {class: "tile-label", text: label}), h("span", {class: "tile-value", text: value}));
}

function tiles(k) {
  const m = k.members || {}; const p = k.purchases || {}; const pts = k.points || {};
  const c = k.coupons || {}; const camp = k.campaigns || {};
  return h("div", {class: "tiles"},
    tile("Members", num(m.total)), tile("New members", num(m.new)), tile("Active, 30 days", num(m.active_30d)),
    tile("Active, 90 days", num(m.active_90d)), tile("Purchases", num(p.count)), tile("Revenue", p.revenue ?? "—"),
    tile("Purchases per active member", p.per_active_member ?? "—"),
    tile("Points issued", num(pts.issued)), tile("Points redeemed", num(pts.redeemed)),
    tile("Points expired", num(pts.expired)), tile("Points outstanding", num(pts.outstanding)),
    tile("Liability", pts.liability ?? "—"), tile("Coupons issued", num(c.issued)),
    tile("Coupons redeemed", num(c.redeemed)), tile("Redemption rate", pct(c.redemption_rate)),
    tile("Campaign messages sent", num(camp.sent)), tile("Campaign response rate", pct(camp.response_rate)));
}

function charts(k) {
  const series = Array.isArray(k.series) ? k.series : [];
  const out = [];
  if (series.length) {
    const labels = series.map((s) => s.date || s.period || "");
    const line = (title, spec, format) => lineChart({title, labels, format,
      series: spec.map(([name, paths]) => ({name, values: series.map((s) => pick(s, ...paths))}))});
    out.push(
      line("Members active", [["Active members", ["members.active", "members.active_30d", "members_active", "active_members", "active"]]]),
      line("Purchases", [["Purchases", ["purchases.count", "purchases_count", "purchases"]]]),
      line("Points", [["Issued", ["points.issued", "points_issued", "issued"]],
        ["Redeemed", ["points.redeemed", "points_redeemed", "redeemed"]],
        ["Expired", ["points.expired", "points_expired", "expired"]]]),
      line("Redemption and response rates", [
        ["Coupon redemption rate", ["coupons.redemption_rate", "redemption_rate"]],
        ["Campaign response rate", ["campaigns.response_rate", "response_rate"]]], "percent"));
  } else {
    out.push(h("p", {class: "empty", text: "Choose an interval (day, week or month) to see the period as charts."}));
  }
  const channels = Object.entries(k.by_channel || {});
  if (channels.length) out.push(barChart({title: "Activity by channel", bars: channels}));
  return out;
}

export default async function today() {
  const to = new Date();
  const from = new Date(to.getTime() - 29 * 86400000);
  const slot = h("div", {class: "kpis", "aria-live": "polite"});
  const load = async (values) => {
    slot.setAttribute("aria-busy", "true");
    try {
      const k = await api.get("/admin/kpis", {from: values.from, to: values.to,
        interval: values.interval || undefined});
      replace(slot, tiles(k), h("div", {class: "charts"}, charts(k)));
    } catch (error) {
      if (error instanceof api.Problem && error.status === 404 && api.isMissingRoute(error)) {
        replace(slot, h("div", {class: "unavailable", role: "note"},
          h("strong", {text: "KPIs are not available on this server yet."}),
          h("p", {text: "This screen reads GET /api/v1/admin/kpis; it shows the period here once the server has it."})));
      } else {
        showError(slot, error);
      }
    } finally {
      slot.removeAttribute("aria-busy");
    }
  };
  const period = form({label: "Period", submitText: "Show", fields: [
    field({label: "From", name: "from", type: "date", value: isoDay(from), required: true}),
    field({label: "To", name: "to", type: "date", value: isoDay(to), required: true}),
    field({label: "Chart by", name: "interval", value: "day",
      options: [["", "no charts"], ["day", "day"], ["week", "week"], ["month", "month"]]}),
  ], submit: (values) => load(values)});
  period.classList.add("inline");
  load({from: isoDay(from), to: isoDay(to), interval: "day"});
  return screen("Today", period, slot);
}
