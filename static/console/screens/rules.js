// Rules: list, create and edit (a form with the JSON parts as JSON), pause/resume, archive (asked first), and the
// simulator (POST /admin/rules/simulate): what an event would earn, and why each other rule would not.

import * as api from "../api.js";
import {h, isoFromLocal, json, num, replace} from "../dom.js";
import {button, dangerButton, facts, field, form, optionalInt, pagedTable, parseJSON, problemBox, say, screen, table}
  from "../ui.js";

const TRIGGERS = ["purchase", "check_in", "scan", "enrolment", "birthday", "inactivity", "referral"];

const REASONS = {
  not_stackable: "another rule that does not stack won first",
  nothing_to_grant: "it would grant nothing (for example 0 points)",
  draw: "its random draw (surprise and delight) did not come up",
  already_granted: "it already granted this event",
  offer_unavailable: "its offer cannot be issued now",
};

export function reasonText(reason) {
  if (!reason) return "";
  if (reason.startsWith("condition:")) return `a condition is not met: ${reason.slice(10).replace(/_/g, " ")}`;
  if (reason.startsWith("cap:")) return `a cap is reached: ${reason.slice(4).replace(/_/g, " ")}`;
  return REASONS[reason] || reason;
}

function ruleForm(listing, rule) {
  const editing = Boolean(rule);
  return form({label: editing ? `Edit “${rule.title}”` : "New rule", submitText: editing ? "Save changes" : "Create rule",
    fields: [
      field({label: "Title", name: "title", required: true, maxlength: 120, value: rule ? rule.title : ""}),
      field({label: "Trigger", name: "trigger", options: TRIGGERS.map((t) => [t]), value: rule ? rule.trigger : "purchase"}),
      field({label: "Reward (JSON)", name: "reward", type: "textarea", rows: 2, required: true,
        value: rule ? json(rule.reward) : '{"points_per_currency_unit": 1}',
        hint: '{"points": 10}, {"points_per_currency_unit": 1}, {"multiplier": 2}, {"offer_id": "..."}'}),
      field({label: "Conditions (JSON)", name: "conditions", type: "textarea", rows: 3,
        value: rule ? json(rule.conditions) : "{}",
        hint: 'e.g. {"min_amount": "50.00", "stores": ["..."], "days_of_week": [4], "tiers": ["gold"]}'}),
      field({label: "Probability (1 = always; below 1 is surprise and delight)", name: "probability", type: "number",
        step: "any", min: 0.0001, max: 1, value: rule ? rule.probability : 1}),
      field({label: "Priority", name: "priority", type: "number", value: rule ? rule.priority : 0}),
      field({label: "Stacks with other rules", name: "stackable", type: "checkbox", checked: rule ? rule.stackable : true}),
      field({label: "Per member limit", name: "per_member_limit", type: "number", min: 1, value: rule ? rule.per_member_limit ?? "" : ""}),
      field({label: "Daily limit", name: "daily_limit", type: "number", min: 1, value: rule ? rule.daily_limit ?? "" : ""}),
      field({label: "Total limit", name: "total_limit", type: "number", min: 1, value: rule ? rule.total_limit ?? "" : ""}),
    ],
    submit: async (values, formEl, result) => {
      const body = {title: values.title, trigger: values.trigger, reward: parseJSON(values.reward, "reward"),
        conditions: parseJSON(values.conditions, "conditions") || {}, probability: Number(values.probability),
        priority: Number.parseInt(values.priority || "0", 10), stackable: values.stackable,
        per_member_limit: optionalInt(values.per_member_limit), daily_limit: optionalInt(values.daily_limit),
        total_limit: optionalInt(values.total_limit)};
      const saved = editing ? await api.patch(`/admin/rules/${encodeURIComponent(rule.id)}`, body)
        : await api.post("/admin/rules", body);
      replace(result, h("p", {class: "ok", text: `${editing ? "Saved" : "Created"} “${saved.title}” (version ${saved.version}).`}));
      say(editing ? "Rule saved" : "Rule created");
      if (!editing) formEl.reset();
      listing.refresh();
    }});
}

function simulator(memberId) {
  return form({label: "Simulator: what would an event earn?", submitText: "Simulate", fields: [
    field({label: "Member id", name: "member_id", required: true, value: memberId || "",
      hint: "from the member's page (Members)"}),
    field({label: "Trigger", name: "trigger", options: TRIGGERS.map((t) => [t])}),
    field({label: "Store id (optional)", name: "store_id"}),
    field({label: "Amount (a purchase)", name: "amount", inputmode: "decimal", pattern: "[0-9]+(\\.[0-9]{1,2})?",
      value: "100.00"}),
    field({label: "When (UTC, optional; default now)", name: "at", type: "datetime-local"}),
    field({label: "Items (JSON, optional)", name: "items", type: "textarea", rows: 2,
      hint: '[{"barcode": "7290001234518", "quantity": 2, "unit_price": "12.50"}]'}),
  ], submit: async (values, formEl, out) => {
    const body = {member_id: values.member_id.trim(), trigger: values.trigger, store_id: values.store_id.trim() || null,
      amount: values.amount || null, items: parseJSON(values.items, "items") || [], at: isoFromLocal(values.at)};
    const s = await api.post("/admin/rules/simulate", body);
    replace(out, h("h4", {text: `It would earn ${num(s.points_awarded)} points`}),
      s.grants.length ? table("Rules that would grant", [["Rule", (g) => g.title], ["Points", (g) => num(g.points)],
        ["Offer", (g) => g.offer_id], ["Chance", (g) => (g.surprise ? `${g.probability * 100}% (surprise)` : "always")]],
      s.grants) : h("p", {text: "No rule would grant anything."}),
      s.skipped.length ? table("Rules that would not, and why", [["Rule", (g) => g.title],
        ["Why not", (g) => reasonText(g.reason)], ["Reason code", (g) => g.reason]], s.skipped) : null);
    say(`Simulation: ${s.points_awarded} points`);
  }});
}

export default function rules([sub, memberId]) {
  const problems = h("div", {"aria-live": "polite"});
  const editor = h("div", {class: "editor"});
  const listing = pagedTable({caption: "Rules", what: "Rules", columns: [
    ["Title", (r) => r.title], ["Trigger", (r) => r.trigger], ["Reward", (r) => json(r.reward)],
    ["Conditions", (r) => json(r.conditions)], ["Probability", (r) => r.probability], ["Status", (r) => r.status],
    ["", (r) => h("div", {class: "row-actions"},
      button("Edit", () => { replace(editor, ruleForm(listing, r)); editor.querySelector("input").focus(); }),
      r.status === "paused"
        ? button("Resume", async () => { await run(() => api.post(`/admin/rules/${encodeURIComponent(r.id)}/resume`)); })
        : button("Pause", async () => { await run(() => api.post(`/admin/rules/${encodeURIComponent(r.id)}/pause`)); }),
      dangerButton("Archive", {title: "Archive this rule?",
        message: `“${r.title}” stops granting for good; its past grants stay explainable.`, confirm: "Archive rule"},
      async () => { await api.del(`/admin/rules/${encodeURIComponent(r.id)}`); say("Rule archived"); listing.refresh(); },
      problems))]],
  load: (cursor) => api.get("/admin/rules", {cursor, limit: 25}), empty: "No rules yet."});
  async function run(action) {
    try { await action(); replace(problems); listing.refresh(); } catch (error) {
      replace(problems, problemBox(error));
    }
  }
  replace(editor, ruleForm(listing, null));
  return screen("Rules", problems, listing,
    h("div", {class: "columns"}, editor, simulator(sub === "simulate" ? memberId : "")),
    facts([["Why a rule would not grant", "The simulator names the condition or cap that stops each rule; it writes nothing and draws nothing."]]));
}
