// Campaigns (API.md "Consents, contact rules, messages and campaigns"): create, launch (asked first: it fixes the
// audience and sends), and the report with the holdout's lift and its 95% interval.

import * as api from "../api.js";
import {barChart} from "../charts.js";
import {h, isoFromLocal, num, pct, replace, when} from "../dom.js";
import {button, confirmAction, dangerButton, facts, field, form, optionalInt, pagedTable, problemBox, say, screen,
  showError} from "../ui.js";

async function options(path, label) {
  try {
    const page = await api.get(path, {limit: 200});
    return (page.items || []).map((i) => [i.id, i[label] || i.id]);
  } catch (error) {
    return [];
  }
}

async function report(id) {
  const slot = h("div", {class: "report", "aria-live": "polite"});
  try {
    const r = await api.get(`/admin/campaigns/${encodeURIComponent(id)}/report`);
    const ci = Array.isArray(r.lift_ci95) ? `${pct(r.lift_ci95[0])} to ${pct(r.lift_ci95[1])}` : "—";
    replace(slot, facts([["Audience", num(r.audience)], ["Holdout (got nothing)", num(r.holdout)],
      ["Treated", num(r.treated)], ["Sent", num(r.sent)], ["Delivered", num(r.delivered)], ["Failed", num(r.failed)],
      ["Suppressed", num(r.suppressed)], ["Tracked (profiling consent)", num(r.tracked)],
      ["Opened (of tracked)", num(r.opened)], ["Clicked (of tracked)", num(r.clicked)],
      ["Redeemed", num(r.redeemed)], ["Responders", num(r.responders)], ["Response rate", pct(r.response_rate)],
      ["Holdout responders", num(r.holdout_responders)], ["Holdout response rate", pct(r.holdout_response_rate)],
      ["Lift", r.lift === null || r.lift === undefined ? "— (no holdout)" : pct(r.lift)], ["Lift, 95% interval", ci]]),
    barChart({title: "Response rate: treated and holdout", format: "percent",
      bars: [["Treated", r.response_rate || 0], ["Holdout", r.holdout_response_rate || 0]]}));
  } catch (error) {
    showError(slot, error, "Campaign reports");
  }
  return slot;
}

async function detail(id) {
  const problems = h("div", {"aria-live": "polite"});
  let c;
  try {
    c = await api.get(`/admin/campaigns/${encodeURIComponent(id)}`);
  } catch (error) {
    return screen("Campaign", h("p", {}, h("a", {href: "#/campaigns", text: "← Campaigns"})), problemBox(error));
  }
  return screen(`Campaign: ${c.name}`, h("p", {}, h("a", {href: "#/campaigns", text: "← Campaigns"})), problems,
    facts([["Status", c.status], ["Channel", c.channel], ["Segment", c.segment_id], ["Holdout", `${c.holdout_percent ?? 0}%`],
      ["Response window (days)", c.response_days], ["Send at", when(c.send_at)],
      ["Subject", c.message && c.message.subject], ["Message", c.message && c.message.body]]),
    h("h2", {text: "Report"}), await report(id));
}

function launchButton(c, listing, problems) {
  return button("Launch", async () => {
    const ok = await confirmAction({title: "Launch this campaign?", confirm: "Launch campaign",
      message: `“${c.name}” fixes its audience now and starts sending on ${c.channel}. Messages cannot be called back.`});
    if (!ok) return;
    try {
      await api.post(`/admin/campaigns/${encodeURIComponent(c.id)}/launch`, undefined, {idempotencyKey: `launch-${c.id}`});
      replace(problems, h("p", {class: "ok", text: `Launched “${c.name}”.`}));
      say("Campaign launched");
      listing.refresh();
    } catch (error) {
      replace(problems, problemBox(error));
    }
  }, "danger");
}

async function list() {
  const problems = h("div", {"aria-live": "polite"});
  const listing = pagedTable({caption: "Campaigns", what: "Campaigns", columns: [
    ["Name", (c) => h("a", {href: `#/campaigns/${encodeURIComponent(c.id)}`, text: c.name})],
    ["Channel", (c) => c.channel], ["Status", (c) => c.status], ["Holdout", (c) => `${c.holdout_percent ?? 0}%`],
    ["Send at", (c) => when(c.send_at)],
    ["", (c) => (c.status === "draft" || !c.status ? h("div", {class: "row-actions"}, launchButton(c, listing, problems),
      dangerButton("Delete", {title: "Delete this draft?", message: `“${c.name}” has not been sent; it goes for good.`,
        confirm: "Delete draft"}, async () => {
        await api.del(`/admin/campaigns/${encodeURIComponent(c.id)}`); say("Campaign deleted"); listing.refresh();
      }, problems)) : "")]],
  load: (cursor) => api.get("/admin/campaigns", {cursor}), empty: "No campaigns yet."});
  const [segmentsList, offersList] = await Promise.all([options("/admin/segments", "name"), options("/admin/offers", "title")]);
  const create = form({label: "New campaign", submitText: "Create campaign", fields: [
    field({label: "Name", name: "name", required: true, maxlength: 120}),
    segmentsList.length ? field({label: "Segment", name: "segment_id", options: segmentsList, required: true})
      : field({label: "Segment id", name: "segment_id", required: true}),
    field({label: "Channel", name: "channel", options: [["email"], ["sms"], ["push"]]}),
    field({label: "Subject (email)", name: "subject", maxlength: 200}),
    field({label: "Message", name: "body", type: "textarea", required: true, rows: 4}),
    field({label: "Offer (optional)", name: "offer_id", options: [["", "none"], ...offersList]}),
    field({label: "Holdout (% of the audience who get nothing, to measure the lift)", name: "holdout_percent",
      type: "number", min: 0, max: 50, value: 10}),
    field({label: "Response window (days)", name: "response_days", type: "number", min: 1, max: 365, value: 14}),
    field({label: "Send at (UTC, optional)", name: "send_at", type: "datetime-local"}),
  ], submit: async (values, formEl, result) => {
    const body = {name: values.name, segment_id: values.segment_id, channel: values.channel,
      message: {body: values.body, ...(values.subject ? {subject: values.subject} : {})},
      holdout_percent: optionalInt(values.holdout_percent) ?? 0, response_days: optionalInt(values.response_days) ?? 14};
    if (values.offer_id) body.offer_id = values.offer_id;
    if (values.send_at) body.send_at = isoFromLocal(values.send_at);
    const c = await api.post("/admin/campaigns", body);
    replace(result, h("p", {class: "ok"}, `Created “${c.name}”. `, h("a", {href: `#/campaigns/${encodeURIComponent(c.id)}`, text: "Open it"})));
    say("Campaign created");
    listing.reload();
  }});
  return screen("Campaigns", problems, listing, create);
}

export default function campaigns([id]) {
  return id ? detail(id) : list();
}
