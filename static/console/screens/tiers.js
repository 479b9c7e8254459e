// Tiers (API.md "Tiers"): list, create, delete (asked first). Says so plainly while the server lacks them.

import * as api from "../api.js";
import {h, num, replace} from "../dom.js";
import {dangerButton, field, form, optionalInt, pagedTable, say, screen} from "../ui.js";

export default function tiers() {
  const problems = h("div", {"aria-live": "polite"});
  const listing = pagedTable({caption: "Tiers by rank", what: "Tiers", columns: [
    ["Rank", (t) => t.rank], ["Code", (t) => t.code], ["Name", (t) => t.name],
    ["Qualifies by", (t) => (t.qualify ? `${t.qualify.metric} ≥ ${t.qualify.threshold} in ${num(t.qualify.window_days)} days` : "—")],
    ["Kept for (days)", (t) => t.retain_days], ["Description", (t) => t.description],
    ["", (t) => dangerButton("Delete", {title: "Delete this tier?",
      message: `Members in “${t.name}” fall back at the next review; rules that name it stop matching.`,
      confirm: "Delete tier"}, async () => {
      await api.del(`/admin/tiers/${encodeURIComponent(t.id || t.code)}`); say("Tier deleted"); listing.refresh();
    }, problems)]],
  load: (cursor) => api.get("/admin/tiers", {cursor}), empty: "No tiers yet."});
  const create = form({label: "New tier", submitText: "Create tier", fields: [
    field({label: "Code", name: "code", required: true, maxlength: 32}),
    field({label: "Name", name: "name", required: true, maxlength: 120}),
    field({label: "Rank (0 is the entry tier)", name: "rank", type: "number", min: 0, required: true}),
    field({label: "Qualifying metric", name: "metric", options: [["points_earned", "points earned"], ["spend"],
      ["visits"], ["referral_value", "referral value"]]}),
    field({label: "Threshold (an integer; spend and referral value: an amount such as 1000.00)", name: "threshold",
      required: true}),
    field({label: "Window (days)", name: "window_days", type: "number", min: 1, value: 365, required: true}),
    field({label: "Kept for at least (days, optional)", name: "retain_days", type: "number", min: 0}),
    field({label: "Description", name: "description", maxlength: 500}),
  ], submit: async (values, formEl, result) => {
    const money = values.metric === "spend" || values.metric === "referral_value";
    const body = {code: values.code, name: values.name, rank: Number.parseInt(values.rank, 10),
      qualify: {metric: values.metric, threshold: money ? values.threshold : Number.parseInt(values.threshold, 10),
        window_days: Number.parseInt(values.window_days, 10)}};
    if (values.retain_days) body.retain_days = optionalInt(values.retain_days);
    if (values.description) body.description = values.description;
    const tier = await api.post("/admin/tiers", body);
    replace(result, h("p", {class: "ok", text: `Created the tier “${tier.name}”.`}));
    say("Tier created");
    formEl.reset();
    listing.reload();
  }});
  return screen("Tiers", problems, listing, create);
}
